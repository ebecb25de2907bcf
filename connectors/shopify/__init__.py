"""Shopify: checkout and order webhooks become cart triggers."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from connectors.base import Delivery, Writer
from connectors.shopify import events, mapper, triggers
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

    def writer(self, installation: InstallationInfo) -> Writer | None:
        return None  # tags and notes on orders arrive with the Shopify install (issue 10)


CONNECTOR = ShopifyConnector()
