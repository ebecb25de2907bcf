"""Platform connectors. The registry is explicit: one line per connector."""

from connectors import shopify

__all__ = ["REGISTRY"]

REGISTRY = {"shopify": shopify.CONNECTOR}
