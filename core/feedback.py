"""What a send error teaches us, so the same mistake is not repeated.

Only the explicit marketing refusal (131050) changes consent. The per-user marketing limit
(131049) is not an opt-out: marketing to the contact waits a day; a message outside a flow is
retried once at that time (for a flow, its own next step, e.g. the second reminder, is the retry). An
undeliverable number (131026) is marked on the contact — unless many contacts fail with the same
code at once, which is an incident of the provider or the account, reported once and applied to
no one. A closed window (131047) closes our record of it too.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.conversations import note
from core.events import ConsentAction, ConsentPurpose, ConsentSignal
from core.outbox import record_consent
from core.template_status import STATUS_OF_ERROR, learn_from_send_error
from core.store.models import Contact, Conversation, Incident, Message

__all__ = ["apply_send_error", "PER_USER_LIMIT_WAIT", "INCIDENT_THRESHOLD", "INCIDENT_WINDOW"]

_log = logging.getLogger(__name__)
PER_USER_LIMIT_WAIT = timedelta(hours=24)
INCIDENT_THRESHOLD = 20  # distinct contacts failing with one code ...
INCIDENT_WINDOW = timedelta(minutes=10)  # ... within this long


def _window_closed(s: Session, msg: Message, now: datetime) -> str:
    conv = s.get(Conversation, msg.conversation_id)
    conv.window_closed_at = now
    return "customer-service window marked closed"


def _opted_out(s: Session, msg: Message, now: datetime) -> str:
    contact = s.get(Contact, msg.contact_id)
    record_consent(s, contact, ConsentSignal(
        purpose=ConsentPurpose.MARKETING, action=ConsentAction.OPT_OUT, source="whatsapp.error_131050",
        evidence=f"message {msg.id}: recipient stopped marketing messages", at=now), now)
    return "marketing opt-out recorded (131050)"


def _per_user_limit(s: Session, msg: Message, now: datetime) -> str:
    contact = s.get(Contact, msg.contact_id)
    contact.marketing_retry_after = now + PER_USER_LIMIT_WAIT
    if msg.flow_run_id is not None:  # the flow's own next step is the retry; the gate holds it back a day
        return "per-user marketing limit: the next marketing message waits a day"
    key = f"retry-131049:{msg.id}"
    if msg.idempotency_key and msg.idempotency_key.startswith("retry-131049:"):
        return "per-user marketing limit again: no further retry"
    if s.scalar(select(Message.id).where(Message.idempotency_key == key)) is None:
        s.add(Message(workspace_id=msg.workspace_id, conversation_id=msg.conversation_id, contact_id=msg.contact_id,
                      direction="out", author=msg.author, kind=msg.kind, body=msg.body,
                      template_name=msg.template_name, template_category=msg.template_category, request=msg.request,
                      idempotency_key=key, status="queued", status_at=now, flow_run_id=msg.flow_run_id,
                      not_before=now + PER_USER_LIMIT_WAIT, created_at=now))
    return "per-user marketing limit: one retry queued for a day later"


def _undeliverable(s: Session, msg: Message, now: datetime, code: int, title: str) -> str:
    since = now - INCIDENT_WINDOW
    failing = s.scalar(select(func.count(func.distinct(Message.contact_id))).where(
        Message.workspace_id == msg.workspace_id, Message.error_code == code, Message.status == "failed",
        Message.status_at >= since))
    if failing >= INCIDENT_THRESHOLD:
        incident = s.scalar(select(Incident).where(Incident.workspace_id == msg.workspace_id, Incident.code == code,
                                                   Incident.last_seen_at >= since))
        if incident is None:
            incident = Incident(workspace_id=msg.workspace_id, code=code, title=title, contacts=0, started_at=now,
                                last_seen_at=now)
            s.add(incident)
            _log.error("incident: %d contacts failed with %s in %s", failing, code, INCIDENT_WINDOW)
        incident.contacts, incident.last_seen_at = failing, now
        return f"incident: {failing} contacts failing with {code}; not applied to the contact"
    s.get(Contact, msg.contact_id).deliverability = f"{code}: {title or 'undeliverable'}"
    return "number marked undeliverable"


def apply_send_error(s: Session, msg: Message, reaction: str, code: int | None, title: str, now: datetime) -> str:
    """React to a failed send; returns what was done (also written to the conversation's history)."""
    if reaction == "needs_template":
        done = _window_closed(s, msg, now)
    elif reaction == "opted_out":
        done = _opted_out(s, msg, now)
    elif reaction == "per_user_limit":
        done = _per_user_limit(s, msg, now)
    elif reaction == "undeliverable" and code is not None:
        done = _undeliverable(s, msg, now, code, title)
    elif code in STATUS_OF_ERROR and msg.template_name:
        done = learn_from_send_error(s, msg.workspace_id, msg.template_name, (msg.request or {}).get("language", ""),
                                     msg.template_category, code, now) or ""
    else:
        return ""
    note(s, s.get(Conversation, msg.conversation_id), f"Send failed ({code}): {done}", now, kind="error")
    s.flush()
    return done
