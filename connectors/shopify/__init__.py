"""Shopify: checkout, order and customer webhooks become triggers; app/uninstalled and the compliance
topics are handled by the bridge; handoffs and recovered orders are written back to the admin."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from connectors.base import Delivery, Writer
from connectors.shopify import events, mapper, notes, triggers
from connectors.shopify.client import ShopifyClient
from core.events import PrivacyRequest, Trigger
from core.installations import InstallationInfo

__all__ = ["ShopifyConnector", "CONNECTOR"]

_KEPT_HEADERS = ("X-Shopify-Topic", "X-Shopify-Shop-Domain", "X-Shopify-Webhook-Id", "X-Shopify-Event-Id",
                 "X-Shopify-Triggered-At", "X-Shopify-API-Version")


def _subject(payload: events.ShopifyPayload) -> str | None:
    if isinstance(payload, events.ShopifyCheckout):
        return payload.token
    if isinstance(payload, events.ShopifyOrder):
        return payload.id
    return None


class ShopifyConnector:
    name = "shopify"
    secret_setting = "SHOPIFY_WEBHOOK_SECRET"

    def verify(self, raw_body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> None:
        events.verify(raw_body, headers, secrets)

    def delivery(self, raw_body: bytes, headers: Mapping[str, str]) -> Delivery:
        parsed = events.parse_headers(headers)
        payload = events.parse(parsed.topic, raw_body)
        kept = {name: headers.get(name) for name in _KEPT_HEADERS if headers.get(name)}
        return Delivery(dedupe_key=f"shopify:{parsed.webhook_id}", kind=parsed.topic, account=parsed.shop_domain,
                        subject=_subject(payload), headers=kept)

    def trigger(self, raw_body: bytes, headers: Mapping[str, Any]) -> Trigger | None:
        parsed = events.parse_headers(headers)
        return triggers.to_trigger(parsed, events.parse(parsed.topic, raw_body))

    def privacy_request(self, raw_body: bytes, headers: Mapping[str, Any]) -> PrivacyRequest | None:
        parsed = events.parse_headers(headers)
        payload = events.parse(parsed.topic, raw_body)
        return mapper.privacy_request(payload) if isinstance(payload, events.ShopifyPrivacyRequest) else None

    def uninstalled(self, raw_body: bytes, headers: Mapping[str, Any]) -> str | None:
        """The shop that removed the app, for an app/uninstalled delivery; None otherwise."""
        parsed = events.parse_headers(headers)
        return parsed.shop_domain if parsed.topic == "app/uninstalled" else None

    def writer(self, installation: InstallationInfo) -> Writer | None:
        token, version = installation.credentials.get("access_token"), installation.config.get("api_version")
        if not token or not version:
            return None
        # max_wait=0: a worker never sleeps on throttling; the outbox retries when the cost says
        client = ShopifyClient(shop=installation.account, token=token, max_wait=0,
                               api_version=version,
                               base_url=installation.config.get("api_base"))
        return notes.ShopifyWriter(client, installation.account)


CONNECTOR = ShopifyConnector()
