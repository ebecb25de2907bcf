"""WooCommerce webhook deliveries at the edge: the ping, the signature, headers and typed payloads.

Pure (stdlib + ``core``). ``is_ping`` first (WooCommerce's ping is unsigned), then ``verify`` on the
raw bytes, then ``parse_headers`` and ``parse(topic, body)``; nothing past this module indexes into
WooCommerce's JSON. Ids are decimal strings, money ``Decimal``, times aware UTC (from the ``*_gmt``
fields: the others are in the site's timezone). Payloads keep the decoded body in ``raw``.
"""

from __future__ import annotations

__all__ = [
    "sign", "verify", "is_ping", "WebhookHeaders", "parse_headers", "account_of", "WooAddress", "WooLineItem",
    "WooOrder", "WooCustomer", "WooAction", "WooDeleted", "WooBooking", "WooPayload", "parse", "parse_order",
    "parse_booking", "dedupe_key",
]  # fmt: skip

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping, Sequence
from urllib.parse import urlsplit

from connectors._signing import header as _header, secret_list
from core import jsonwire
from core.errors import PayloadError, SignatureError

_RAW = dict(repr=False, compare=False, hash=False)
_SIG = "X-WC-Webhook-Signature"
_PING = re.compile(rb"^webhook_id=(\d+)$")
_HTML = (("&amp;", "&"), ("&quot;", '"'), ("&#039;", "'"), ("&lt;", "<"), ("&gt;", ">"))


# ---------------------------------------------------------------- ping and signature


def is_ping(raw_body: bytes, headers: Mapping[str, str]) -> bool:
    """WooCommerce's ping when a webhook is created: form body ``webhook_id=N``, no signature."""
    return not _header(headers, _SIG) and _PING.match(bytes(raw_body).strip()) is not None


def sign(body: bytes, secret: str) -> str:
    """``X-WC-Webhook-Signature``: base64(HMAC-SHA256(secret, body)) over the exact body bytes."""
    return base64.b64encode(hmac.new(secret.encode("utf-8"), bytes(body), hashlib.sha256).digest()).decode("ascii")


def _decoded(secret: str) -> str:
    """WooCommerce signs with ``wp_specialchars_decode(secret, ENT_QUOTES)``."""
    for escaped, plain in _HTML:
        secret = secret.replace(escaped, plain)
    return secret


def verify(raw_body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> None:
    """Raise ``SignatureError`` unless one of ``secrets`` signed ``raw_body``."""
    keys = secret_list(secrets, "WooCommerce webhook secret")
    value = _header(headers, _SIG) or ""
    if not value:
        raise SignatureError(f"{_SIG} header is missing", missing=True)
    try:
        given = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{_SIG} is not base64") from None
    body = bytes(raw_body)
    if not any(hmac.compare_digest(given, hmac.new(_decoded(k).encode("utf-8"), body, hashlib.sha256).digest())
               for k in keys):
        raise SignatureError(f"{_SIG} does not match the body")


# ---------------------------------------------------------------- headers


def account_of(source: str) -> str:
    """The store as replyflow names it: host[:port][/path] of its home URL, lower-case."""
    parts = urlsplit(source.strip() if "://" in source else f"https://{source.strip()}")
    if not parts.netloc:
        raise PayloadError(f"{source!r:.80} is not a store URL")
    return (parts.netloc + parts.path.rstrip("/")).lower()


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookHeaders:
    topic: str  # "order.updated", "action.woocommerce_new_booking"
    account: str  # from X-WC-Webhook-Source
    webhook_id: str | None
    delivery_id: str | None  # new on every send: kept for tracing, not for de-duplication


def parse_headers(headers: Mapping[str, str]) -> WebhookHeaders:
    topic = (_header(headers, "X-WC-Webhook-Topic") or "").lower()
    if not topic:
        raise PayloadError("X-WC-Webhook-Topic header is missing")
    source = _header(headers, "X-WC-Webhook-Source") or ""
    if not source:
        raise PayloadError("X-WC-Webhook-Source header is missing")
    return WebhookHeaders(topic=topic, account=account_of(source),
                          webhook_id=_header(headers, "X-WC-Webhook-ID") or None,
                          delivery_id=_header(headers, "X-WC-Webhook-Delivery-ID")
                          or _header(headers, "X-WC-Delivery-ID") or None)


# ---------------------------------------------------------------- payloads


def _text(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise PayloadError(f"{where}.{key}: expected text, got {type(value).__name__}")
    return str(value).strip()


def _id(obj: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> str | None:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit():
        if required:
            raise PayloadError(f"{where}.{key}: expected a numeric id, got {value!r:.40}")
        return None
    return str(int(value))


def _money(obj: Mapping[str, Any], key: str, where: str) -> Decimal:
    try:
        return Decimal(str(obj.get(key) if obj.get(key) not in (None, "") else "0"))
    except InvalidOperation:
        raise PayloadError(f"{where}.{key}: {obj.get(key)!r:.40} is not an amount") from None


def _gmt(obj: Mapping[str, Any], key: str, where: str) -> datetime | None:
    value = obj.get(key)
    if value in (None, ""):
        return None
    try:
        return datetime.fromisoformat(str(value)[:19]).replace(tzinfo=timezone.utc)
    except ValueError:
        raise PayloadError(f"{where}.{key}: {value!r:.40} is not a date") from None


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PayloadError(f"{where}: expected an object, got {type(value).__name__}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class WooAddress:
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    phone: str = ""  # free text, in the address's country
    country: str = ""  # ISO 3166-1 alpha-2


def _address(value: Any, where: str) -> WooAddress:
    obj = _object(value, where)
    return WooAddress(**{k: _text(obj, k, where) for k in ("first_name", "last_name", "email", "phone", "country")})


@dataclass(frozen=True, slots=True, kw_only=True)
class WooLineItem:
    name: str
    quantity: int
    price: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class WooOrder:
    id: str
    number: str
    status: str  # pending, checkout-draft, processing, on-hold, completed, cancelled, refunded, failed...
    currency: str
    total: Decimal
    customer_id: str | None  # None for a guest (customer_id 0)
    billing: WooAddress
    shipping: WooAddress
    created_via: str
    payment_url: str | None
    modified_at: datetime  # date_modified_gmt
    created_at: datetime | None
    line_items: tuple[WooLineItem, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, **_RAW)


@dataclass(frozen=True, slots=True, kw_only=True)
class WooCustomer:
    id: str
    email: str
    first_name: str
    last_name: str
    billing: WooAddress
    modified_at: datetime | None
    raw: Mapping[str, Any] = field(default_factory=dict, **_RAW)


@dataclass(frozen=True, slots=True, kw_only=True)
class WooAction:
    """A custom ``action.<hook>`` topic: the hook's name and its first argument (e.g. a booking id)."""

    action: str
    arg: str
    raw: Mapping[str, Any] = field(default_factory=dict, **_RAW)


@dataclass(frozen=True, slots=True, kw_only=True)
class WooDeleted:
    resource: str
    id: str
    raw: Mapping[str, Any] = field(default_factory=dict, **_RAW)


@dataclass(frozen=True, slots=True, kw_only=True)
class WooBooking:
    """A WooCommerce Bookings booking with the order that paid for it (``booking.created`` /
    ``booking.upcoming``: replyflow's own topics for a booking fetched after ``woocommerce_new_booking``
    or found starting soon)."""

    id: str
    status: str  # unpaid, pending-confirmation, confirmed, paid, complete, cancelled...
    start: datetime  # the API's Unix timestamps, as UTC
    end: datetime | None
    customer_id: str | None
    product_id: str | None
    local_timezone: str | None
    order: WooOrder | None  # billing phone and names, the booked product's line item
    customer: WooCustomer | None = None  # when there is no order to read them from
    raw: Mapping[str, Any] = field(default_factory=dict, **_RAW)


WooPayload = WooOrder | WooCustomer | WooAction | WooDeleted | WooBooking


def _unix(obj: Mapping[str, Any], key: str, where: str) -> datetime | None:
    value = obj.get(key)
    if value in (None, "", 0):
        return None
    try:
        return datetime.fromtimestamp(int(value), tz=timezone.utc)
    except (TypeError, ValueError, OverflowError):
        raise PayloadError(f"{where}.{key}: {value!r:.40} is not a Unix time") from None


def parse_booking(obj: Mapping[str, Any], order: Mapping[str, Any] | None = None,
                  customer: Mapping[str, Any] | None = None) -> WooBooking:
    obj = _object(obj, "booking")
    start = _unix(obj, "start", "booking")
    if start is None:
        raise PayloadError("booking.start is missing")
    customer_id = _id(obj, "customer_id", "booking", required=False)
    return WooBooking(id=_id(obj, "id", "booking"), status=_text(obj, "status", "booking").lower(), start=start,
                      end=_unix(obj, "end", "booking"), customer_id=None if customer_id in (None, "0") else customer_id,
                      product_id=_id(obj, "product_id", "booking", required=False),
                      local_timezone=_text(obj, "local_timezone", "booking") or None,
                      order=parse_order(order, "order") if order else None,
                      customer=_customer(_object(customer, "customer")) if customer else None, raw=obj)


def parse_order(obj: Mapping[str, Any], where: str = "order") -> WooOrder:
    obj = _object(obj, where)
    modified = _gmt(obj, "date_modified_gmt", where) or _gmt(obj, "date_created_gmt", where)
    if modified is None:
        raise PayloadError(f"{where}.date_modified_gmt is missing")
    items, lines = [], obj.get("line_items") or []
    if not isinstance(lines, list):
        raise PayloadError(f"{where}.line_items is not a list")
    for i, item in enumerate(lines):
        item = _object(item, f"{where}.line_items[{i}]")
        try:
            quantity = int(item.get("quantity") or 0)
        except (TypeError, ValueError):
            raise PayloadError(f"{where}.line_items[{i}].quantity is not a number") from None
        items.append(WooLineItem(name=_text(item, "name", f"{where}.line_items[{i}]"), quantity=quantity,
                                 price=_money(item, "price", f"{where}.line_items[{i}]")))
    customer = _id(obj, "customer_id", where, required=False)
    status = _text(obj, "status", where).lower()
    if not status:
        raise PayloadError(f"{where}.status is missing")
    order_id = _id(obj, "id", where)
    return WooOrder(
        id=order_id, number=_text(obj, "number", where) or order_id, status=status,
        currency=_text(obj, "currency", where).upper() or "USD", total=_money(obj, "total", where),
        customer_id=None if customer in (None, "0") else customer,
        billing=_address(obj.get("billing"), f"{where}.billing"),
        shipping=_address(obj.get("shipping"), f"{where}.shipping"),
        created_via=_text(obj, "created_via", where), payment_url=_text(obj, "payment_url", where) or None,
        modified_at=modified, created_at=_gmt(obj, "date_created_gmt", where), line_items=tuple(items), raw=obj)


def _customer(obj: Mapping[str, Any]) -> WooCustomer:
    return WooCustomer(id=_id(obj, "id", "customer"), email=_text(obj, "email", "customer"),
                       first_name=_text(obj, "first_name", "customer"), last_name=_text(obj, "last_name", "customer"),
                       billing=_address(obj.get("billing"), "customer.billing"),
                       modified_at=_gmt(obj, "date_modified_gmt", "customer"), raw=obj)


def parse(topic: str, raw_body: bytes) -> WooPayload:
    """The typed payload of a delivery; ``PayloadError`` says what is wrong with a malformed one."""
    obj = jsonwire.loads(raw_body, expect=dict)
    resource, _, event = topic.partition(".")
    if resource == "booking":
        return parse_booking(obj.get("booking"), obj.get("order"), obj.get("customer"))
    if resource == "action":
        action = _text(obj, "action", "body")
        if not action:
            raise PayloadError("body.action is missing")
        return WooAction(action=action, arg=_text(obj, "arg", "body"), raw=obj)
    if event == "deleted" or set(obj) == {"id"}:
        return WooDeleted(resource=resource, id=_id(obj, "id", "body"), raw=obj)
    if resource == "order":
        return parse_order(obj)
    if resource == "customer":
        return _customer(obj)
    return WooDeleted(resource=resource, id=_id(obj, "id", "body", required=False) or "", raw=obj)


def dedupe_key(account: str, topic: str, payload: WooPayload) -> str:
    """What the delivery is about, not its delivery id (new on every send): the resource, its id,
    its modification time (and an order's status). The same change sent twice by two hooks, or
    found again by the reconciliation, is recorded once."""
    if isinstance(payload, WooOrder):
        return f"woocommerce:{account}:order:{payload.id}:{payload.modified_at.isoformat()}:{payload.status}"
    if isinstance(payload, WooCustomer):
        at = payload.modified_at.isoformat() if payload.modified_at else "-"
        return f"woocommerce:{account}:customer:{payload.id}:{at}"
    if isinstance(payload, WooAction):
        return f"woocommerce:{account}:action:{payload.action}:{payload.arg}"
    if isinstance(payload, WooBooking):
        return f"woocommerce:{account}:{topic}:{payload.id}:{payload.start.isoformat()}"
    return f"woocommerce:{account}:{topic}:{payload.id}"
