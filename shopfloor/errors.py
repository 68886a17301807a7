"""The root of the project's own exceptions: ``except ShopfloorError`` catches every error
shopfloor raises on purpose (a bad config, a message that breaks the contract, a store
that refuses data, a service that did not start, a question a metric cannot answer)."""


class ShopfloorError(Exception):
    """Base of every exception the project defines."""
