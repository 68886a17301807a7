"""shopfloor simulators."""
