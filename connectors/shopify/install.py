"""Installing replyflow in a shop: the OAuth request checks, the authorize URL, and the webhook
subscriptions (registered through the GraphQL Admin API, checked and repaired on demand).

Install request (Shopify -> the app): ``GET /shopify/install?shop=...&timestamp=...&hmac=...``;
``hmac`` is hex HMAC-SHA256, keyed with the app's client secret, of the other query parameters
sorted by name and joined as ``k=v&k=v``. The callback carries ``code``, ``state`` and the same
kind of ``hmac``. Scopes: orders (checkout and order webhooks, tags and metafields on orders) and
customers (customer webhooks, tags on customers); nothing more.
"""

from __future__ import annotations

__all__ = [
    "SCOPES", "TOPICS", "WRITE_KINDS", "InstallError", "valid_shop", "sign_query", "verify_query",
    "authorize_url", "installation_config", "webhook_uri", "SubscriptionCheck", "check", "register",
]  # fmt: skip

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Mapping, Sequence
from urllib.parse import urlencode

from connectors._signing import same, secret_list
from connectors.shopify.client import ShopifyClient, Subscription, UserErrors, shop_base
from core.errors import PermanentError, SignatureError

SCOPES = ("read_orders", "write_orders", "read_customers", "write_customers")
# REST topic (X-Shopify-Topic) -> GraphQL WebhookSubscriptionTopic
TOPICS = {
    "checkouts/create": "CHECKOUTS_CREATE", "checkouts/update": "CHECKOUTS_UPDATE",
    "orders/create": "ORDERS_CREATE", "orders/paid": "ORDERS_PAID",
    "customers/create": "CUSTOMERS_CREATE", "customers/update": "CUSTOMERS_UPDATE",
    "app/uninstalled": "APP_UNINSTALLED",
}
WRITE_KINDS = ("handoff", "outcome")  # what the shop's admin shows: handoffs and recovered orders
MAX_REQUEST_AGE = 300  # seconds: an install/callback request older than this is refused (replay)
_SHOP = re.compile(r"\A[a-z0-9][a-z0-9-]{0,60}\.myshopify\.com\Z")


class InstallError(PermanentError):
    """An install or callback request that must be refused; the message says why."""


def valid_shop(shop: str | None) -> str:
    """``shop`` lower-cased if it is a ``*.myshopify.com`` hostname, else ``InstallError``."""
    value = (shop or "").lower()  # no stripping: the value is used exactly as given
    if not _SHOP.match(value):
        raise InstallError(f"shop {value[:80]!r} is not a *.myshopify.com domain")
    return value


def _escape(text: str, key: bool = False) -> str:
    """Shopify's escaping inside the signed message: ``%`` and ``&`` everywhere, ``=`` in keys."""
    text = text.replace("%", "%25").replace("&", "%26")
    return text.replace("=", "%3D") if key else text


def _message(params: Mapping[str, str]) -> bytes:
    pairs = sorted((_escape(k, key=True), _escape(v)) for k, v in params.items() if k not in ("hmac", "signature"))
    return "&".join(f"{k}={v}" for k, v in pairs).encode("utf-8")


def sign_query(params: Mapping[str, str], secret: str) -> str:
    """The ``hmac`` Shopify adds to ``params`` (hex HMAC-SHA256 of the sorted ``k=v`` pairs)."""
    return hmac.new(secret.encode("utf-8"), _message(params), hashlib.sha256).hexdigest()


def verify_query(params: Mapping[str, str], secrets: Sequence[str] | str, now: datetime) -> None:
    """``SignatureError`` unless one of ``secrets`` signed the query and it is recent."""
    keys = secret_list(secrets, "Shopify client secret")
    given = (params.get("hmac") or "").strip().lower()
    if not given:
        raise SignatureError("hmac parameter is missing", missing=True)
    expected = [sign_query(params, k) for k in keys]
    if not any(same(given, e) for e in expected):
        raise SignatureError("hmac does not match the query parameters")
    try:
        stamp = datetime.fromtimestamp(int(params.get("timestamp") or ""), tz=timezone.utc)
    except (ValueError, OverflowError):
        raise SignatureError("timestamp parameter is missing or not a number") from None
    if abs((now - stamp).total_seconds()) > MAX_REQUEST_AGE:
        raise SignatureError(f"request timestamp is more than {MAX_REQUEST_AGE} s away from now")


def authorize_url(shop: str, *, client_id: str, redirect_uri: str, state: str, base_url: str | None = None) -> str:
    """Where the merchant approves the scopes (an offline token: no per-user grant option)."""
    query = urlencode({"client_id": client_id, "scope": ",".join(SCOPES), "redirect_uri": redirect_uri,
                       "state": state})
    return f"{shop_base(shop, base_url)}/admin/oauth/authorize?{query}"


def installation_config(shop: str, *, api_version: str, base_url: str | None, scopes: str = "") -> dict:
    """What the installation keeps besides its sealed token."""
    return {"api_base": shop_base(shop, base_url), "api_version": api_version,
            "scopes": scopes or ",".join(SCOPES), "write_kinds": list(WRITE_KINDS), "write_all_contacts": False}


def webhook_uri(public_url: str) -> str:
    return f"{public_url.rstrip('/')}/webhooks/shopify"


@dataclass(frozen=True, slots=True)
class SubscriptionCheck:
    uri: str
    present: dict[str, Subscription]  # GraphQL topic -> subscription pointing at ``uri``
    missing: tuple[str, ...]  # GraphQL topics with no subscription to ``uri``
    elsewhere: tuple[Subscription, ...] = ()  # subscriptions of this app pointing at another address
    created: dict[str, Subscription] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # topic -> reason

    @property
    def complete(self) -> bool:
        return not self.missing or all(t in self.created for t in self.missing)


def check(client: ShopifyClient, uri: str) -> SubscriptionCheck:
    """Which of replyflow's topics have a subscription to ``uri`` (Shopify deletes Admin-API
    subscriptions after repeated delivery failures, so this can shrink)."""
    present: dict[str, Subscription] = {}
    elsewhere = []
    for sub in client.subscriptions():
        if sub.uri == uri:
            present.setdefault(sub.topic, sub)
        else:
            elsewhere.append(sub)
    missing = tuple(t for t in TOPICS.values() if t not in present)
    return SubscriptionCheck(uri=uri, present=present, missing=missing, elsewhere=tuple(elsewhere))


def register(client: ShopifyClient, uri: str) -> SubscriptionCheck:
    """Create every missing subscription; a topic Shopify refuses is reported, not raised."""
    found = check(client, uri)
    for topic in found.missing:
        try:
            found.created[topic] = client.subscribe(topic, uri)
        except UserErrors as exc:
            found.failed[topic] = str(exc)
    return found
