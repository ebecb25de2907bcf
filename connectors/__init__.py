"""Platform connectors. The registry is explicit: one line per connector."""

from connectors import hubspot, shopify, woocommerce

__all__ = ["REGISTRY"]

REGISTRY = {
    "shopify": shopify.CONNECTOR,
    "woocommerce": woocommerce.CONNECTOR,
    "hubspot": hubspot.CONNECTOR,
}
