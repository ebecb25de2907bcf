"""Platform connectors. The registry is explicit: one line per connector."""

from connectors import shopify
from connectors import hubspot

__all__ = ["REGISTRY"]

REGISTRY = {
    "shopify": shopify.CONNECTOR,
    "hubspot": hubspot.CONNECTOR,
}
