"""Shopify webhook deliveries at the edge: signature, headers and typed payloads.

Pure (stdlib + ``core``). ``verify`` the raw body first, then ``parse_headers`` and
``parse(topic, body)``; nothing past this module indexes into Shopify's JSON. Ids are kept as
decimal strings, money as ``Decimal``, timestamps as aware UTC datetimes. Every payload keeps
the decoded body in ``raw`` (excluded from ``repr`` and comparisons).
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
from decimal import Decimal
from typing import Any, Callable, Mapping, Sequence

from connectors._signing import header as _header, secret_list
from core.clock import utc
from core import jsonwire
from core.errors import PayloadError, SignatureError

MAX_BODY_BYTES = 5 * 1024 * 1024
_RAW = dict(repr=False, compare=False, hash=False)
_HMAC_HEADER = "X-Shopify-Hmac-Sha256"
_SHOP_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")
_DECIMAL = re.compile(r"-?[0-9]{1,30}(?:\.[0-9]{1,30})?\Z")
_FRACTION = re.compile(r"(\.[0-9]{6})[0-9]+")


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
        triggered_at=_timestamp(triggered, "X-Shopify-Triggered-At") if triggered else None,
        api_version=_header(headers, "X-Shopify-API-Version") or None,
    )


def _timestamp(text: str, where: str) -> datetime:
    """RFC 3339 (Shopify sends nanoseconds; Python keeps microseconds) -> aware UTC."""
    try:
        return utc(datetime.fromisoformat(_FRACTION.sub(r"\1", text.strip())))
    except (ValueError, OverflowError):
        raise PayloadError(f"{where}: {text!r:.60} is not an RFC 3339 timestamp") from None


# ---------------------------------------------------------------- reading JSON objects


class _Obj:
    """A JSON object with typed getters; every failure is a ``PayloadError`` naming the path."""

    __slots__ = ("data", "where")

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise PayloadError(f"{where}: expected an object, got {type(data).__name__}")
        self.data: dict[str, Any] = data
        self.where = where

    def _fail(self, key: str, what: str) -> PayloadError:
        return PayloadError(f"{self.where}.{key}: {what}")

    def _get(self, key: str, types: tuple[type, ...], what: str, required: bool = False) -> Any:
        return self._check(key, self.data.get(key), types, what, required)

    def _check(self, key: str, value: Any, types: tuple[type, ...], what: str, required: bool) -> Any:
        if value is None:
            if required:
                raise self._fail(key, "missing")
        elif not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise self._fail(key, f"expected {what}, got {type(value).__name__}")
        if required and value == "":
            raise self._fail(key, "empty")
        return value

    def text(self, key: str, required: bool = False) -> str | None:
        return self._get(key, (str,), "a string", required)

    def texts(self, *keys: str) -> dict[str, str | None]:
        return {k: self.text(k) for k in keys}

    def ident(self, key: str, required: bool = False) -> str | None:
        value = self._get(key, (int, str), "an id", required)
        return None if value is None or value == "" else str(value)

    def idents(self, key: str) -> tuple[str, ...]:
        values = enumerate(self.array(key))
        return tuple(str(self._check(f"{key}[{i}]", v, (int, str), "an id", True)) for i, v in values)

    def flag(self, key: str) -> bool:
        return bool(self._get(key, (bool,), "true/false"))

    def count(self, key: str) -> int:
        value = self._get(key, (int,), "an integer", True)
        if value < 0:
            raise self._fail(key, f"{value} is negative")
        return value

    def money(self, key: str, required: bool = False) -> Decimal | None:
        """Shopify sends money as strings like ``"82.00"``; JSON numbers are tolerated."""
        value = self._get(key, (str, int, float), "a decimal string", required)
        if value is None:
            return None
        text = value.strip() if isinstance(value, str) else repr(value)
        if isinstance(value, str) and not _DECIMAL.match(text):
            raise self._fail(key, f"{value!r:.40} is not a decimal")
        amount = Decimal(text)
        if not amount.is_finite():
            raise self._fail(key, f"{value!r:.40} is not a finite decimal")
        return amount

    def time(self, key: str) -> datetime | None:
        value = self.text(key)
        return _timestamp(value, f"{self.where}.{key}") if value else None

    def obj(self, key: str) -> _Obj | None:
        """A nested object; ``null`` and ``[]`` (seen in public payloads) mean absent."""
        value = self.data.get(key)
        return None if value is None or value == [] else _Obj(value, f"{self.where}.{key}")

    def array(self, key: str) -> list[Any]:
        return self._get(key, (list,), "a list") or []


# ---------------------------------------------------------------- payload objects


@dataclass(frozen=True, slots=True, kw_only=True)
class ShopifyAddress:
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    city: str | None = None
    province_code: str | None = None
    zip: str | None = None
    country_code: str | None = None  # ISO 3166-1 alpha-2, upper-case
    phone: str | None = None
    raw: Mapping[str, Any] | None = field(default=None, **_RAW)


@dataclass(frozen=True, slots=True, kw_only=True)
class ShopifySmsConsent:
    state: str | None = None  # not_subscribed | pending | subscribed | unsubscribed | redacted
    opt_in_level: str | None = None  # single_opt_in | confirmed_opt_in | unknown
    consent_updated_at: datetime | None = None
    collected_from: str | None = None  # consent_collected_from, e.g. "SHOPIFY", "OTHER"
    raw: Mapping[str, Any] | None = field(default=None, **_RAW)


@dataclass(frozen=True, slots=True, kw_only=True)
class ShopifyCustomer:
    id: str
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    sms_marketing_consent: ShopifySmsConsent | None = None
    default_address: ShopifyAddress | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    raw: Mapping[str, Any] | None = field(default=None, **_RAW)


@dataclass(frozen=True, slots=True, kw_only=True)
class ShopifyLineItem:
    title: str
    quantity: int
    price: Decimal
    variant_title: str | None = None
    sku: str | None = None
    product_id: str | None = None
    variant_id: str | None = None
    raw: Mapping[str, Any] | None = field(default=None, **_RAW)


@dataclass(frozen=True, slots=True, kw_only=True)
class ShopifyCheckout:
    token: str  # the stable checkout key; orders carry it as checkout_token
    total_price: Decimal
    currency: str
    id: str | None = None
    cart_token: str | None = None
    email: str | None = None
    phone: str | None = None
    sms_marketing_phone: str | None = None
    buyer_accepts_marketing: bool = False
    buyer_accepts_sms_marketing: bool = False
    customer: ShopifyCustomer | None = None
    shipping_address: ShopifyAddress | None = None
    billing_address: ShopifyAddress | None = None
    line_items: tuple[ShopifyLineItem, ...] = ()
    presentment_currency: str | None = None
    abandoned_checkout_url: str | None = None
    completed_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    customer_locale: str | None = None
    raw: Mapping[str, Any] | None = field(default=None, **_RAW)


@dataclass(frozen=True, slots=True, kw_only=True)
class ShopifyOrder:
    id: str
    total_price: Decimal
    currency: str
    name: str | None = None  # "#1051"
    checkout_token: str | None = None  # null for POS/API orders: no checkout to cancel
    checkout_id: str | None = None
    cart_token: str | None = None
    email: str | None = None  # email, else contact_email
    phone: str | None = None
    buyer_accepts_marketing: bool = False
    customer: ShopifyCustomer | None = None
    shipping_address: ShopifyAddress | None = None
    billing_address: ShopifyAddress | None = None
    customer_locale: str | None = None
    financial_status: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    raw: Mapping[str, Any] | None = field(default=None, **_RAW)


@dataclass(frozen=True, slots=True, kw_only=True)
class ShopifyPrivacyRequest:
    """customers/data_request, customers/redact and shop/redact (mandatory compliance topics)."""

    topic: str
    shop_id: str
    shop_domain: str
    customer_id: str | None = None
    customer_email: str | None = None
    customer_phone: str | None = None
    orders: tuple[str, ...] = ()  # orders_requested or orders_to_redact
    data_request_id: str | None = None
    raw: Mapping[str, Any] | None = field(default=None, **_RAW)


@dataclass(frozen=True, slots=True, kw_only=True)
class ShopifyShop:
    """app/uninstalled: the body is the Shop resource."""

    id: str
    myshopify_domain: str | None = None
    domain: str | None = None
    name: str | None = None
    raw: Mapping[str, Any] | None = field(default=None, **_RAW)


@dataclass(frozen=True, slots=True, kw_only=True)
class ShopifyUnknown:
    """A topic we do not handle; acknowledged and recorded, never processed."""

    topic: str
    raw: Mapping[str, Any] | None = field(default=None, **_RAW)


ShopifyPayload = (
    ShopifyCheckout | ShopifyOrder | ShopifyCustomer | ShopifyPrivacyRequest | ShopifyShop | ShopifyUnknown
)


# ---------------------------------------------------------------- parsers


def _address(r: _Obj | None) -> ShopifyAddress | None:
    if r is None:
        return None
    values = r.texts(*(f for f in ShopifyAddress.__dataclass_fields__ if f != "raw"))
    values["country_code"] = (values["country_code"] or "").strip().upper() or None
    return ShopifyAddress(**values, raw=r.data)


def _sms_consent(r: _Obj | None) -> ShopifySmsConsent | None:
    if r is None:
        return None
    state, level = r.text("state"), r.text("opt_in_level")
    return ShopifySmsConsent(
        state=state.lower() if state else None,
        opt_in_level=level.lower() if level else None,
        consent_updated_at=r.time("consent_updated_at"),
        collected_from=r.text("consent_collected_from"),
        raw=r.data,
    )


def _customer(r: _Obj | None) -> ShopifyCustomer | None:
    if r is None:
        return None
    return ShopifyCustomer(
        id=r.ident("id", required=True),
        **r.texts("first_name", "last_name", "email", "phone"),
        sms_marketing_consent=_sms_consent(r.obj("sms_marketing_consent")),
        default_address=_address(r.obj("default_address")),
        created_at=r.time("created_at"),
        updated_at=r.time("updated_at"),
        raw=r.data,
    )


def _line_items(r: _Obj) -> tuple[ShopifyLineItem, ...]:
    items = []
    for i, value in enumerate(r.array("line_items")):
        item = _Obj(value, f"{r.where}.line_items[{i}]")
        items.append(
            ShopifyLineItem(
                title=item.text("title") or "",
                quantity=item.count("quantity"),
                price=item.money("price", required=True),
                **item.texts("variant_title", "sku"),
                product_id=item.ident("product_id"),
                variant_id=item.ident("variant_id"),
                raw=item.data,
            )
        )
    return tuple(items)


def _checkout(r: _Obj) -> ShopifyCheckout:
    return ShopifyCheckout(
        id=r.ident("id"),
        token=r.text("token", required=True),
        total_price=r.money("total_price", required=True),
        currency=r.text("currency", required=True),
        **r.texts("cart_token", "email", "phone", "sms_marketing_phone"),
        **r.texts("presentment_currency", "abandoned_checkout_url", "customer_locale"),
        buyer_accepts_marketing=r.flag("buyer_accepts_marketing"),
        buyer_accepts_sms_marketing=r.flag("buyer_accepts_sms_marketing"),
        customer=_customer(r.obj("customer")),
        shipping_address=_address(r.obj("shipping_address")),
        billing_address=_address(r.obj("billing_address")),
        line_items=_line_items(r),
        completed_at=r.time("completed_at"),
        created_at=r.time("created_at"),
        updated_at=r.time("updated_at"),
        raw=r.data,
    )


def _order(r: _Obj) -> ShopifyOrder:
    return ShopifyOrder(
        id=r.ident("id", required=True),
        total_price=r.money("total_price", required=True),
        currency=r.text("currency", required=True),
        **r.texts("name", "checkout_token", "cart_token", "phone"),
        **r.texts("customer_locale", "financial_status"),
        checkout_id=r.ident("checkout_id"),
        email=r.text("email") or r.text("contact_email"),
        buyer_accepts_marketing=r.flag("buyer_accepts_marketing"),
        customer=_customer(r.obj("customer")),
        shipping_address=_address(r.obj("shipping_address")),
        billing_address=_address(r.obj("billing_address")),
        created_at=r.time("created_at"),
        updated_at=r.time("updated_at"),
        raw=r.data,
    )


def _privacy(topic: str) -> Callable[[_Obj], ShopifyPrivacyRequest]:
    orders_key = "orders_to_redact" if topic == "customers/redact" else "orders_requested"

    def parse_privacy(r: _Obj) -> ShopifyPrivacyRequest:
        customer, request = r.obj("customer"), r.obj("data_request")
        if customer is None and topic.startswith("customers/"):
            raise PayloadError(f"{r.where}.customer: missing")
        return ShopifyPrivacyRequest(
            topic=topic,
            shop_id=r.ident("shop_id", required=True),
            shop_domain=r.text("shop_domain", required=True),
            customer_id=customer.ident("id") if customer else None,
            customer_email=customer.text("email") if customer else None,
            customer_phone=customer.text("phone") if customer else None,
            orders=r.idents(orders_key),
            data_request_id=request.ident("id") if request else None,
            raw=r.data,
        )

    return parse_privacy


def _shop(r: _Obj) -> ShopifyShop:
    return ShopifyShop(id=r.ident("id", required=True), **r.texts("myshopify_domain", "domain", "name"), raw=r.data)


_PARSERS: dict[str, Callable[[_Obj], ShopifyPayload]] = {
    "checkouts/create": _checkout,
    "checkouts/update": _checkout,
    "orders/create": _order,
    "orders/paid": _order,
    "customers/create": _customer,
    "customers/update": _customer,
    "customers/data_request": _privacy("customers/data_request"),
    "customers/redact": _privacy("customers/redact"),
    "shop/redact": _privacy("shop/redact"),
    "app/uninstalled": _shop,
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
    return parser(_Obj(_decode(body), "body"))
