"""WooCommerce: unpaid orders become cart triggers, paid ones recoveries; conversations are written
back as private order notes."""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping, Sequence

from connectors._signing import header
from connectors.base import Delivery, Writer
from connectors.woocommerce import events, triggers
from core.errors import PayloadError
from core.events import PrivacyRequest, Trigger
from core.installations import InstallationInfo

__all__ = ["WooCommerceConnector", "CONNECTOR", "NEW_BOOKING", "client_for"]

NEW_BOOKING = "action.woocommerce_new_booking"


def client_for(info: InstallationInfo):
    """The REST client for an installation (its keys opened, its store URL from the config)."""
    from connectors.woocommerce.client import WooClient

    return WooClient(info.config.get("url") or f"https://{info.account}", info.credentials["consumer_key"],
                     info.credentials["consumer_secret"])

_KEPT_HEADERS = ("X-WC-Webhook-Topic", "X-WC-Webhook-Source", "X-WC-Webhook-ID", "X-WC-Webhook-Delivery-ID",
                 "X-WC-Delivery-ID", "X-WC-Webhook-Resource", "X-WC-Webhook-Event", "X-Replyflow-Source")


def _subject(payload: events.WooPayload) -> str | None:
    if isinstance(payload, events.WooAction):
        return payload.arg or None
    return payload.id or None


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

    def expand(self, raw_body: bytes, headers: Mapping[str, Any],
               installation: Callable[[], InstallationInfo]) -> tuple[bytes, Mapping[str, Any]]:
        """A thin delivery completed through the REST API before it becomes a trigger: a new booking
        (its action webhook carries only the id) is fetched with its order, as ``booking.created``.
        Anything else is returned as it is, without a call."""
        if (header(headers, "X-WC-Webhook-Topic") or "").lower() != NEW_BOOKING:
            return raw_body, headers
        payload = events.parse(NEW_BOOKING, raw_body)
        client = client_for(installation())
        try:
            body = client.booking_with_buyer(payload.arg)
        finally:
            client.close()
        return json.dumps(body).encode(), {**headers, "X-WC-Webhook-Topic": "booking.created"}

    def trigger(self, raw_body: bytes, headers: Mapping[str, Any]) -> Trigger | None:
        parsed = events.parse_headers(headers)
        return triggers.to_trigger(parsed, events.parse(parsed.topic, raw_body))

    def privacy_request(self, raw_body: bytes, headers: Mapping[str, Any]) -> PrivacyRequest | None:
        return None  # WooCommerce sends no privacy webhooks (erasure is WordPress's own tool)

    def writer(self, installation: InstallationInfo) -> Writer | None:
        from connectors.woocommerce.notes import OrderNotes

        return OrderNotes(client_for(installation))


CONNECTOR = WooCommerceConnector()
