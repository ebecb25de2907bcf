"""Connecting a store: the ``/wc-auth/v1/authorize`` key exchange (or keys made by hand), then the
webhooks replyflow needs, registered through the REST API with a secret generated here.

WooCommerce's authorize endpoint asks the store admin to approve ``app_name`` with a scope, then
POSTs ``{key_id, user_id, consumer_key, consumer_secret, key_permissions}`` as JSON to
``callback_url`` and sends the browser to ``return_url``. ``user_id`` is echoed back untouched, so
it carries a signed state naming the store the flow was started for; a callback whose state does
not verify is refused.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import urlencode, urlsplit

from connectors.woocommerce.client import WooClient
from connectors.woocommerce.notes import WRITE_KINDS
from core import jsonwire
from core.errors import PayloadError

__all__ = ["TOPICS", "BOOKING_TOPIC", "Keys", "store_address", "authorize_url", "parse_callback",
           "new_webhook_secret", "register_webhooks", "installation_config"]

TOPICS = ("order.created", "order.updated", "customer.created", "customer.updated")
BOOKING_TOPIC = "action.woocommerce_new_booking"  # connectors.woocommerce.NEW_BOOKING
APP_NAME = "replyflow"


@dataclass(frozen=True, slots=True, kw_only=True)
class Keys:
    consumer_key: str
    consumer_secret: str
    key_permissions: str
    state: str


def store_address(text: str) -> str:
    """A store's home address as given by its admin, without the trailing slash; ``PayloadError``
    unless it is an http(s) URL with a host."""
    url = text.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PayloadError(f"{text.strip()[:80]!r} is not a store address: give it like https://shop.example")
    return url


def authorize_url(store_url: str, *, callback_url: str, return_url: str, state: str,
                  scope: str = "read_write") -> str:
    query = urlencode({"app_name": APP_NAME, "scope": scope, "user_id": state, "return_url": return_url,
                       "callback_url": callback_url})
    return f"{store_url.rstrip('/')}/wc-auth/v1/authorize?{query}"


def parse_callback(raw_body: bytes) -> Keys:
    body = jsonwire.loads(raw_body, expect=dict)
    missing = [k for k in ("consumer_key", "consumer_secret", "user_id") if not isinstance(body.get(k), str)
               or not body[k]]
    if missing:
        raise PayloadError(f"missing {', '.join(missing)}")
    if body.get("key_permissions") not in ("read_write", "write"):
        raise PayloadError("key_permissions: replyflow needs read_write (notes, webhooks, bookings)")
    return Keys(consumer_key=body["consumer_key"], consumer_secret=body["consumer_secret"],
                key_permissions=body["key_permissions"], state=str(body["user_id"]))


def new_webhook_secret() -> str:
    return secrets.token_urlsafe(32)


def register_webhooks(client: WooClient, delivery_url: str, secret: str, *,
                      bookings: bool = False) -> dict[str, int]:
    """Make sure one active webhook per topic delivers to ``delivery_url`` signed with ``secret``:
    ours from an earlier connect are updated (new secret, re-activated if WooCommerce disabled them),
    missing ones created (WooCommerce pings each new one). Returns topic -> webhook id."""
    topics = TOPICS + ((BOOKING_TOPIC,) if bookings else ())
    existing = {h["topic"]: h for h in client.webhooks() if h.get("delivery_url") == delivery_url}
    ids: dict[str, int] = {}
    for topic in topics:
        hook = existing.get(topic)
        if hook is not None:
            client.update_webhook(int(hook["id"]), secret=secret, status="active")
            ids[topic] = int(hook["id"])
        else:
            ids[topic] = int(client.create_webhook(f"replyflow {topic}", topic, delivery_url, secret)["id"])
    return ids


def installation_config(store_url: str, webhook_ids: Mapping[str, int], **extra: Any) -> dict[str, Any]:
    """What the installation keeps in the clear (credentials and webhook secret are sealed apart)."""
    return {"url": store_url.rstrip("/"), "api_version": "wc/v3", "webhooks": dict(webhook_ids),
            "write_kinds": list(WRITE_KINDS), "write_all_contacts": False, **extra}
