"""shopfloor edge."""
