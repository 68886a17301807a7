"""shopfloor: shop-floor data collection and digital-workshop metrics."""
__version__ = "0.1.0"
