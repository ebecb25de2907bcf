"""Shopify deliveries -> core ``Trigger``s, through a table keyed by topic.

Checkouts become ``CART_ABANDONED`` triggers whose subject is the checkout token, so
``checkouts/update`` replaces what ``checkouts/create`` started. A checkout with
``completed_at`` set still maps (core decides what it means); so does one with no phone and
no email (e.g. protected customer data withheld): its ``contact.phones`` is empty and core
records it as not contactable. Orders become ``ORDER_CREATED`` with the checkout token that
links them to the cart they recover. Customer records (customers/create, customers/update)
become ``CONTACT_CHANGED`` carrying the customer's SMS marketing consent. Any other topic gives
``None``.
"""

from __future__ import annotations

__all__ = ["to_trigger", "TOPICS"]

from datetime import datetime
from typing import Callable

from connectors.shopify import mapper
from connectors.shopify.events import ShopifyCheckout, ShopifyCustomer, ShopifyOrder, ShopifyPayload, WebhookHeaders
from core.errors import PayloadError
from core.events import Trigger, TriggerKind


def _occurred_at(headers: WebhookHeaders, payload: ShopifyCheckout | ShopifyOrder | ShopifyCustomer) -> datetime:
    """X-Shopify-Triggered-At; without it, the payload's own update/creation time."""
    at = headers.triggered_at or payload.updated_at or payload.created_at
    if at is None:
        raise PayloadError("no X-Shopify-Triggered-At header and no timestamp in the body")
    return at


def _expect(payload: ShopifyPayload, kind: type, topic: str) -> None:
    if not isinstance(payload, kind):
        raise TypeError(f"{topic} needs a {kind.__name__}, got {type(payload).__name__}")


def _checkout(headers: WebhookHeaders, payload: ShopifyPayload) -> Trigger:
    _expect(payload, ShopifyCheckout, headers.topic)
    at = _occurred_at(headers, payload)
    return Trigger(
        kind=TriggerKind.CART_ABANDONED,
        platform=mapper.PLATFORM,
        account=headers.shop_domain,
        subject=payload.token,
        occurred_at=at,
        contact=mapper.contact_ref(payload, headers.shop_domain),
        cart=mapper.cart(payload),
        consent=mapper.consent(payload, at),
        raw=payload.raw,
    )


def _order(headers: WebhookHeaders, payload: ShopifyPayload) -> Trigger:
    _expect(payload, ShopifyOrder, headers.topic)
    at = _occurred_at(headers, payload)
    return Trigger(
        kind=TriggerKind.ORDER_CREATED,
        platform=mapper.PLATFORM,
        account=headers.shop_domain,
        subject=payload.id,
        occurred_at=at,
        contact=mapper.contact_ref(payload, headers.shop_domain),
        order=mapper.order(payload),
        consent=mapper.consent(payload, at),
        raw=payload.raw,
    )


def _customer(headers: WebhookHeaders, payload: ShopifyPayload) -> Trigger:
    _expect(payload, ShopifyCustomer, headers.topic)
    at = _occurred_at(headers, payload)
    return Trigger(
        kind=TriggerKind.CONTACT_CHANGED,
        platform=mapper.PLATFORM,
        account=headers.shop_domain,
        subject=f"customer:{payload.id}",
        occurred_at=at,
        contact=mapper.customer_ref(payload, headers.shop_domain),
        consent=mapper.customer_consent(payload, at),
        raw=payload.raw,
    )


TOPICS: dict[str, Callable[[WebhookHeaders, ShopifyPayload], Trigger]] = {
    "checkouts/create": _checkout,
    "checkouts/update": _checkout,
    "orders/create": _order,
    "orders/paid": _order,
    "customers/create": _customer,
    "customers/update": _customer,
}


def to_trigger(headers: WebhookHeaders, payload: ShopifyPayload) -> Trigger | None:
    """The trigger for this delivery, or ``None`` for topics that start no flow
    (compliance topics, app/uninstalled, unknown topics: handled elsewhere or ignored).

    ``TypeError`` when ``payload`` was not parsed for ``headers.topic`` (a caller bug).
    """
    handler = TOPICS.get(headers.topic)
    return handler(headers, payload) if handler else None
