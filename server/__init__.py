"""shopfloor server."""
