"""Shopify webhook deliveries at the edge: signature, headers and typed payloads.

Pure (stdlib + ``core``). ``verify`` the raw body first, then ``parse_headers`` and
``parse(topic, body)``; nothing past this module indexes into Shopify's JSON. Ids are kept as
decimal strings, money as ``Decimal``, timestamps as aware UTC datetimes. Every payload keeps
the decoded body in ``raw`` (excluded from ``repr`` and comparisons).

This module holds the signature, the delivery headers and the topic -> parser table; the
payloads live beside it and are exported from here: customers, addresses and SMS consent in
``_customers``, checkouts and orders in ``_orders``, privacy requests and app/uninstalled in
``_compliance``, and the checked JSON reader they share in ``_reader``.
"""

from __future__ import annotations

__all__ = [
    "MAX_BODY_BYTES", "sign", "verify", "WebhookHeaders", "parse_headers",
    "ShopifyAddress", "ShopifySmsConsent", "ShopifyCustomer", "ShopifyLineItem", "ShopifyCheckout",
    "ShopifyOrder", "ShopifyPrivacyRequest", "ShopifyShop", "ShopifyUnknown", "ShopifyPayload", "parse",
]  # fmt: skip

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Mapping, Sequence

from connectors._signing import header as _header, secret_list
from connectors.shopify._compliance import ShopifyPrivacyRequest, ShopifyShop, parse_shop, privacy_parser
from connectors.shopify._customers import ShopifyAddress, ShopifyCustomer, ShopifySmsConsent, parse_customer
from connectors.shopify._orders import ShopifyCheckout, ShopifyLineItem, ShopifyOrder, parse_checkout, parse_order
from connectors.shopify._reader import RAW, Obj, timestamp
from core import jsonwire
from core.errors import PayloadError, SignatureError

MAX_BODY_BYTES = 5 * 1024 * 1024
_HMAC_HEADER = "X-Shopify-Hmac-Sha256"
_SHOP_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")


# ---------------------------------------------------------------- signature


def sign(body: bytes, secret: str) -> str:
    """The ``X-Shopify-Hmac-Sha256`` value for ``body``: base64(HMAC-SHA256(secret, body))."""
    digest = hmac.new(secret.encode("utf-8"), bytes(body), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify(raw_body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> None:
    """Raise ``SignatureError`` unless one of ``secrets`` signed ``raw_body``.

    Several secrets are accepted because after a client-secret rotation Shopify may keep
    signing with the old one for up to an hour. ``ValueError`` when no secret is configured.
    """
    keys = secret_list(secrets, "Shopify client secret")
    value = _header(headers, _HMAC_HEADER) or ""
    if not value:
        raise SignatureError(f"{_HMAC_HEADER} header is missing", missing=True)
    try:
        given = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{_HMAC_HEADER} is not base64") from None
    body = bytes(raw_body)
    matches = [
        hmac.compare_digest(given, hmac.new(k.encode("utf-8"), body, hashlib.sha256).digest())
        for k in keys
    ]
    if not any(matches):
        raise SignatureError(f"{_HMAC_HEADER} does not match the body")


# ---------------------------------------------------------------- headers


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookHeaders:
    topic: str  # e.g. "checkouts/update", lower-case
    shop_domain: str  # "{shop}.myshopify.com"
    webhook_id: str  # delivery id: the idempotency key
    event_id: str | None = None  # same value on several deliveries = one underlying event
    triggered_at: datetime | None = None  # aware UTC, truncated to microseconds
    api_version: str | None = None


def parse_headers(headers: Mapping[str, str]) -> WebhookHeaders:
    """Read the ``X-Shopify-*`` delivery headers; ``PayloadError`` names what is missing."""

    def required(name: str) -> str:
        value = _header(headers, name)
        if not value:
            raise PayloadError(f"{name} header is missing")
        return value

    topic = required("X-Shopify-Topic").lower()
    shop = required("X-Shopify-Shop-Domain").lower()
    if not _SHOP_DOMAIN.match(shop):
        raise PayloadError(f"X-Shopify-Shop-Domain {shop!r} is not a *.myshopify.com domain")
    webhook_id = required("X-Shopify-Webhook-Id")
    triggered = _header(headers, "X-Shopify-Triggered-At") or None
    return WebhookHeaders(
        topic=topic,
        shop_domain=shop,
        webhook_id=webhook_id,
        event_id=_header(headers, "X-Shopify-Event-Id") or None,
        triggered_at=timestamp(triggered, "X-Shopify-Triggered-At") if triggered else None,
        api_version=_header(headers, "X-Shopify-API-Version") or None,
    )


# ---------------------------------------------------------------- payloads and parsers


@dataclass(frozen=True, slots=True, kw_only=True)
class ShopifyUnknown:
    """A topic we do not handle; acknowledged and recorded, never processed."""

    topic: str
    raw: Mapping[str, Any] | None = field(default=None, **RAW)


ShopifyPayload = (
    ShopifyCheckout | ShopifyOrder | ShopifyCustomer | ShopifyPrivacyRequest | ShopifyShop | ShopifyUnknown
)


_PARSERS: dict[str, Callable[[Obj], ShopifyPayload]] = {
    "checkouts/create": parse_checkout,
    "checkouts/update": parse_checkout,
    "orders/create": parse_order,
    "orders/paid": parse_order,
    "customers/create": parse_customer,
    "customers/update": parse_customer,
    "customers/data_request": privacy_parser("customers/data_request"),
    "customers/redact": privacy_parser("customers/redact"),
    "shop/redact": privacy_parser("shop/redact"),
    "app/uninstalled": parse_shop,
}


def _decode(raw_body: bytes) -> Any:
    return jsonwire.loads(raw_body)


def parse(topic: str, raw_body: bytes) -> ShopifyPayload:
    """Parse a delivery body for ``topic``. Malformed bodies raise ``PayloadError`` only.

    A topic we do not handle gives ``ShopifyUnknown``; its body is kept when it is a JSON
    object and is otherwise not rejected (an error would only make Shopify retry it).
    """
    body = bytes(raw_body)
    if len(body) > MAX_BODY_BYTES:
        raise PayloadError(f"body is {len(body)} bytes, over the {MAX_BODY_BYTES} byte limit")
    key = topic.strip().lower()
    parser = _PARSERS.get(key)
    if parser is None:
        try:
            data = _decode(body)
        except PayloadError:
            data = None
        return ShopifyUnknown(topic=key, raw=data if isinstance(data, dict) else None)
    return parser(Obj(_decode(body), "body"))
