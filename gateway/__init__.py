"""shopfloor gateway."""
