"""``POST /api/triggers``: any system (a booking tool, a CRM workflow, a signup form) can start or
cancel flows with a platform-neutral event. Parsed at the edge into a frozen value; the job
resolves the contact, records consent evidence, and hands the event to the flows.

    {"event": "booking_upcoming", "subject": "booking:4711",
     "contact": {"phone": "+15550002222", "country": "US", "first_name": "Maya"},
     "consent": {"marketing": "opt_in", "evidence": "ticked the box on the booking form"},
     "data": {"service": "Tea tasting", "starts_at": "2026-01-06T10:00:00Z"}}
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from core import jsonwire, phones
from core.clock import utc
from core.errors import PayloadError, PhoneError

__all__ = ["ApiTrigger", "parse_trigger"]

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_CONTACT_FIELDS = {"phone", "country", "first_name", "last_name", "email", "locale", "external_id"}


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiTrigger:
    event: str
    subject: str
    occurred_at: datetime | None
    contact: Mapping[str, str]
    consent: str | None  # "opt_in" | "opt_out" | None (marketing)
    evidence: str
    data: Mapping[str, Any] = field(default_factory=dict)
    dedupe_key: str = ""


def _text(value: Any, where: str, limit: int = 255) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise PayloadError(f"{where}: expected a non-empty string of at most {limit} characters")
    return value.strip()


def _contact(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise PayloadError("contact: expected an object with at least a phone")
    unknown = sorted(set(raw) - _CONTACT_FIELDS)
    if unknown:
        raise PayloadError(f"contact: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_CONTACT_FIELDS))}")
    contact = {k: _text(v, f"contact.{k}") for k, v in raw.items() if v is not None}
    if "phone" not in contact:
        raise PayloadError("contact.phone: required")
    try:  # the job normalises it the same way; refuse now what it would refuse later
        phones.normalize(contact["phone"], contact.get("country"))
    except PhoneError as exc:
        raise PayloadError(f"contact.phone: {exc}") from None
    return contact


def _consent(raw: Any) -> tuple[str | None, str]:
    if raw is None:
        return None, ""
    if not isinstance(raw, dict) or raw.get("marketing") not in ("opt_in", "opt_out"):
        raise PayloadError('consent: expected {"marketing": "opt_in" | "opt_out", "evidence": "..."}')
    return raw["marketing"], _text(raw.get("evidence"), "consent.evidence", 2000)


def parse_trigger(raw_body: bytes, idempotency_key: str | None) -> ApiTrigger:
    body = jsonwire.loads(raw_body, expect=dict)
    event = body.get("event")
    if not isinstance(event, str) or not _NAME.match(event):
        raise PayloadError("event: expected a lower-case name such as booking_upcoming")
    occurred = body.get("occurred_at")
    try:
        occurred_at = utc(datetime.fromisoformat(occurred.replace("Z", "+00:00"))) if occurred else None
    except (AttributeError, ValueError):
        raise PayloadError("occurred_at: expected an ISO 8601 time such as 2026-01-06T10:00:00Z") from None
    data = body.get("data") or {}
    if not isinstance(data, dict):
        raise PayloadError("data: expected an object")
    consent, evidence = _consent(body.get("consent"))
    key = idempotency_key or hashlib.sha256(raw_body).hexdigest()
    return ApiTrigger(event=event, subject=_text(body.get("subject"), "subject"), occurred_at=occurred_at,
                      contact=_contact(body.get("contact")), consent=consent, evidence=evidence, data=data,
                      dedupe_key=f"api:{_text(key, 'Idempotency-Key', 200)}")
