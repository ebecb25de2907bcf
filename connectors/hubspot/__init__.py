"""HubSpot: WhatsApp threads on the contact timeline, handoffs as tasks, CRM events as triggers.

Beyond the base ``Connector`` shape, HubSpot needs three things (optional hooks the bridge
uses when a connector has them):

- ``verify_request``: the v3 signature covers the method, the public URL and a timestamp;
- ``delivery`` returns one ``Delivery`` per event of the batch (each recorded and de-duplicated
  on its own ``eventId``);
- ``complete``: events carry object ids only, so the job reads the contact (and the meeting or
  deal) through the API; ``refresh`` renews an OAuth token before it expires (the bridge stores it).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Mapping, Sequence

from connectors.base import Delivery, Writer
from connectors.hubspot import events, install, triggers
from connectors.hubspot.client import API_BASE, HubSpotClient
from connectors.hubspot.notes import HubSpotWriter
from core.clock import Clock
from core.errors import SignatureError
from core.events import PrivacyRequest, Trigger
from core.installations import InstallationInfo

__all__ = ["HubSpotConnector", "CONNECTOR"]

_KEPT_HEADERS = (events.TIMESTAMP, "X-HubSpot-Signature-Version")


def _client_for(installation: InstallationInfo) -> HubSpotClient:
    return HubSpotClient(installation.credentials["access_token"],
                         host=installation.config.get("api_base") or API_BASE)


class HubSpotConnector:
    name = "hubspot"
    secret_setting = "HUBSPOT_CLIENT_SECRET"

    def __init__(self) -> None:
        self.clock: Clock | None = None  # the writers' clock (request budget, daily reset); None = system time

    def verify(self, raw_body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> None:
        raise SignatureError("HubSpot v3 signatures cover the URL and a timestamp: the bridge calls verify_request")

    def verify_request(self, raw_body: bytes, headers: Mapping[str, str], secrets: Sequence[str], *, method: str,
                       url: str, now: datetime) -> None:
        events.verify(raw_body, headers, secrets, method=method, uri=url, now=now)

    def delivery(self, raw_body: bytes, headers: Mapping[str, str]) -> list[Delivery]:
        kept = {name: headers.get(name) for name in _KEPT_HEADERS if headers.get(name)}
        return [Delivery(dedupe_key=f"hubspot:{e.event_id}", kind=e.kind, account=e.portal_id, subject=e.object_id,
                         headers=kept, body=json.dumps(e.raw, separators=(",", ":"), ensure_ascii=False))
                for e in {e.event_id: e for e in events.parse(raw_body)}.values()]

    def trigger(self, raw_body: bytes, headers: Mapping[str, Any]) -> Trigger | None:
        return triggers.to_trigger(events.parse_event(raw_body))

    def complete(self, trigger: Trigger, installation: InstallationInfo) -> Trigger:
        client = _client_for(installation)
        try:
            return triggers.complete(trigger, client, installation.config.get("default_country"))
        finally:
            client.close()

    def refresh(self, installation: InstallationInfo, *, now: datetime) -> Mapping[str, Any] | None:
        return install.refreshed(installation.credentials, installation.config, now=now)

    def privacy_request(self, raw_body: bytes, headers: Mapping[str, Any]) -> PrivacyRequest | None:
        return None  # contact.privacyDeletion is not subscribed yet

    def writer(self, installation: InstallationInfo) -> Writer | None:
        return HubSpotWriter(_client_for(installation), installation.config, installation.account, clock=self.clock)


CONNECTOR = HubSpotConnector()
