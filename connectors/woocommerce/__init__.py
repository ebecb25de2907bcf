"""WooCommerce: unpaid orders become cart triggers, paid ones recoveries; conversations are written
back as private order notes."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from connectors._signing import header
from connectors.base import Delivery, Writer
from connectors.woocommerce import events, triggers
from core.errors import PayloadError
from core.events import PrivacyRequest, Trigger
from core.installations import InstallationInfo

__all__ = ["WooCommerceConnector", "CONNECTOR"]

_KEPT_HEADERS = ("X-WC-Webhook-Topic", "X-WC-Webhook-Source", "X-WC-Webhook-ID", "X-WC-Webhook-Delivery-ID",
                 "X-WC-Delivery-ID", "X-WC-Webhook-Resource", "X-WC-Webhook-Event", "X-Replyflow-Source")


def _subject(payload: events.WooPayload) -> str | None:
    if isinstance(payload, (events.WooOrder, events.WooCustomer, events.WooDeleted)):
        return payload.id
    return payload.arg or None


class WooCommerceConnector:
    name = "woocommerce"
    secret_setting = "WOOCOMMERCE_WEBHOOK_SECRET"

    def is_ping(self, raw_body: bytes, headers: Mapping[str, str]) -> bool:
        """The unsigned ``webhook_id=N`` ping a new webhook sends: answered 200, nothing recorded."""
        return events.is_ping(raw_body, headers)

    def account_of(self, headers: Mapping[str, str]) -> str | None:
        """The store a delivery says it comes from (its installation holds the webhook secret)."""
        source = header(headers, "X-WC-Webhook-Source")
        try:
            return events.account_of(source) if source else None
        except PayloadError:  # refused later, with its reason
            return None

    def verify(self, raw_body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> None:
        events.verify(raw_body, headers, secrets)

    def delivery(self, raw_body: bytes, headers: Mapping[str, str]) -> Delivery:
        parsed = events.parse_headers(headers)
        payload = events.parse(parsed.topic, raw_body)
        kept = {name: header(headers, name) for name in _KEPT_HEADERS if header(headers, name)}
        return Delivery(dedupe_key=events.dedupe_key(parsed.account, parsed.topic, payload), kind=parsed.topic,
                        account=parsed.account, subject=_subject(payload), headers=kept)

    def trigger(self, raw_body: bytes, headers: Mapping[str, Any]) -> Trigger | None:
        parsed = events.parse_headers(headers)
        return triggers.to_trigger(parsed, events.parse(parsed.topic, raw_body))

    def privacy_request(self, raw_body: bytes, headers: Mapping[str, Any]) -> PrivacyRequest | None:
        return None  # WooCommerce sends no privacy webhooks (erasure is WordPress's own tool)

    def writer(self, installation: InstallationInfo) -> Writer | None:
        from connectors.woocommerce.notes import OrderNotes

        return OrderNotes.for_installation(installation)


CONNECTOR = WooCommerceConnector()
