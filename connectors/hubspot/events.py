"""HubSpot webhooks: the v3 signature, and the batched event array parsed into frozen events.

v3: ``X-HubSpot-Signature-v3`` = base64(HMAC-SHA256(client secret, method + URI + body +
timestamp)), ``X-HubSpot-Request-Timestamp`` in milliseconds, refused when older than 5 minutes.
The URI is the one HubSpot called: behind a proxy we rebuild it from the public URL. One POST
carries many events (of any subscription type, retried ones included); each has its ``eventId``,
the key that de-duplicates it, and ``occurredAt``, the only order there is.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping, Sequence
from urllib.parse import unquote

from connectors._signing import header, same, secret_list
from core import jsonwire
from core.errors import PayloadError, SignatureError

__all__ = ["HubSpotEvent", "verify", "sign", "parse", "parse_event", "MAX_AGE", "SIGNATURE", "TIMESTAMP"]

SIGNATURE = "X-HubSpot-Signature-v3"
TIMESTAMP = "X-HubSpot-Request-Timestamp"
MAX_AGE = timedelta(minutes=5)
_RAW = dict(repr=False, compare=False, hash=False)
# HubSpot's v3 rule: these URL-encoded characters are decoded before hashing
_DECODED = ("%3A", "%2F", "%3F", "%40", "%21", "%24", "%27", "%28", "%29", "%2A", "%2C", "%3B")


def _canonical_uri(uri: str) -> str:
    for code in _DECODED:
        uri = uri.replace(code, unquote(code)).replace(code.lower(), unquote(code))
    return uri


def sign(raw_body: bytes, secret: str, *, method: str, uri: str, timestamp: str) -> str:
    message = method.upper().encode() + _canonical_uri(uri).encode() + raw_body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def verify(raw_body: bytes, headers: Mapping[str, str], secrets: Sequence[str] | str, *, method: str, uri: str,
           now: datetime) -> None:
    """``SignatureError`` unless one of ``secrets`` (the app's client secret; several during a
    rotation) signed this request for ``uri`` less than 5 minutes before ``now``."""
    keys = secret_list(secrets, "HubSpot client secret")
    given, stamp = header(headers, SIGNATURE), header(headers, TIMESTAMP)
    if not given or not stamp:
        raise SignatureError(f"{SIGNATURE} or {TIMESTAMP} header is missing", missing=True)
    try:
        sent_at = datetime.fromtimestamp(int(stamp) / 1000, tz=timezone.utc)
    except (ValueError, OverflowError):
        raise SignatureError(f"{TIMESTAMP} is not a time in milliseconds") from None
    if now - sent_at > MAX_AGE:
        raise SignatureError(f"request is older than 5 minutes (sent {sent_at.isoformat()}): refused as a replay")
    if sent_at - now > MAX_AGE:
        raise SignatureError(f"request is dated {sent_at.isoformat()}, more than 5 minutes ahead")
    if not any(same(given, sign(raw_body, key, method=method, uri=uri, timestamp=stamp))
               for key in keys):
        raise SignatureError(f"{SIGNATURE} does not match (is the URL {uri}?)")


@dataclass(frozen=True, slots=True, kw_only=True)
class HubSpotEvent:
    """One event of a webhook batch."""

    event_id: str
    subscription_type: str  # contact.creation, contact.propertyChange, deal.propertyChange, object.creation...
    portal_id: str
    object_id: str
    occurred_at: datetime
    attempt_number: int = 0
    object_type_id: str | None = None  # generic subscriptions: 0-1 contact, 0-3 deal, 0-47 meeting...
    property_name: str | None = None
    property_value: str | None = None
    change_source: str | None = None
    change_flag: str | None = None
    source_id: str | None = None
    app_id: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, **_RAW)

    @property
    def kind(self) -> str:
        """The subscription type, with the object type for generic subscriptions (object.creation:0-47)."""
        return f"{self.subscription_type}:{self.object_type_id}" if self.object_type_id else self.subscription_type

    @classmethod
    def from_payload(cls, data: Any) -> "HubSpotEvent":
        if not isinstance(data, dict):
            raise PayloadError("each event must be a JSON object")
        missing = [k for k in ("eventId", "subscriptionType", "portalId", "objectId", "occurredAt") if data.get(k) is None]
        if missing:
            raise PayloadError(f"event {data.get('eventId', '?')}: missing {', '.join(missing)}")
        try:
            occurred = datetime.fromtimestamp(int(data["occurredAt"]) / 1000, tz=timezone.utc)
            attempt = int(data.get("attemptNumber") or 0)
        except (TypeError, ValueError, OverflowError):
            raise PayloadError(f"event {data['eventId']}: occurredAt/attemptNumber are not numbers") from None

        def text(key: str) -> str | None:
            value = data.get(key)
            return None if value is None else str(value)

        return cls(event_id=str(data["eventId"]), subscription_type=str(data["subscriptionType"]),
                   portal_id=str(data["portalId"]), object_id=str(data["objectId"]), occurred_at=occurred,
                   attempt_number=attempt, object_type_id=text("objectTypeId"), property_name=text("propertyName"),
                   property_value=text("propertyValue"), change_source=text("changeSource"),
                   change_flag=text("changeFlag"), source_id=text("sourceId"), app_id=text("appId"), raw=data)


def parse(raw_body: bytes) -> tuple[HubSpotEvent, ...]:
    """A webhook body: a JSON array of events (``PayloadError`` with the reason otherwise)."""
    data = jsonwire.loads(raw_body, expect=list)
    return tuple(HubSpotEvent.from_payload(item) for item in data)


def parse_event(raw_event: bytes) -> HubSpotEvent:
    """One stored event (the bridge records each event of a batch on its own)."""
    return HubSpotEvent.from_payload(jsonwire.loads(raw_event, what="event"))
