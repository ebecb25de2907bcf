"""Carries out what core decided: sends outbox rows through the Cloud API and records the outcome.

The row moves queued → sending (committed before the HTTP call) → accepted, or failed with
the API's error, or back to queued for a retry when the request never left, or to unknown
when it may have arrived (a later status webhook reconciles it; it is never re-sent blindly).
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update

from connectors.whatsapp.client import OutcomeUnknown
from connectors.whatsapp.errors import PermanentWhatsAppError, Reaction, WhatsAppApiError, classify
from connectors.whatsapp.events import parse_webhook
from connectors.whatsapp.mapper import message_body, recipient
from core.conversations import apply_status, callback_data_for
from core.errors import RetryableError
from core.events import DeliveryStatus
from core.feedback import apply_send_error
from core.gate import Verdict
from core.outbox import recheck
from core.store import session_scope
from core.store.models import Contact, InboundEvent, Message, Workspace
from core.writeback import message_changed
from bridge.health import missing_row
from bridge.runtime import Runtime

__all__ = ["send_outbox_message", "reconcile_orphans", "learn_from_status", "record_failure"]

_log = logging.getLogger(__name__)


def _claim(rt: Runtime, message_id: int) -> dict | None:
    """Move a queued row to sending (or explain why not); returns the request body to send."""
    now = rt.clock.now()
    with session_scope(rt.db) as s:
        msg = s.get(Message, message_id)
        if msg is None:
            _log.warning(missing_row("message", message_id, rt.settings.database_url))
            return None
        if msg.direction != "out":
            return None
        if msg.status == "sending":  # a worker died mid-call: the outcome is unknown, do not re-send
            msg.status, msg.status_at, msg.error_details = "unknown", now, "sender stopped during the API call"
            message_changed(s, msg, now)
            return None
        if msg.status != "queued":
            return None
        if msg.not_before is not None and msg.not_before > now:
            return None  # the sweeper brings it back when it is due
        ws = s.get(Workspace, msg.workspace_id)
        decision = recheck(s, msg, rt.catalogue, now, rt.flow_context(ws).policy)
        if decision.verdict is Verdict.DEFERRED and decision.until is not None:
            msg.not_before, msg.error_details = decision.until, f"deferred: {decision.reason}"
            return None
        if not decision.allowed:
            msg.status, msg.status_at, msg.error_details = "blocked", now, decision.reason
            message_changed(s, msg, now)
            return None
        contact = s.get(Contact, msg.contact_id)
        try:
            to = recipient(contact.phone_e164, contact.user_id)
        except ValueError as exc:  # nobody to address (an odd wa_id): fails once, not retried on every sweep
            msg.status, msg.status_at, msg.error_details = "failed", now, str(exc)
            message_changed(s, msg, now)
            return None
        body = message_body(msg.request, to=to, callback_data=callback_data_for(msg.id))
        # the claim is one conditional UPDATE, so two workers holding the same id cannot both send
        claimed = s.execute(update(Message).where(Message.id == msg.id, Message.status == "queued")
                            .values(status="sending", status_at=now)).rowcount
        return body if claimed == 1 else None


def _record_failure(rt: Runtime, message_id: int, exc: WhatsAppApiError) -> None:
    with session_scope(rt.db) as s:
        record_failure(s, s.get(Message, message_id), exc, rt.clock.now())


def record_failure(s, msg: Message, exc: WhatsAppApiError, now) -> None:
    """A permanent API error: the row fails with the API's reason, and the contact or channel learns from it."""
    msg.status, msg.status_at = "failed", now
    msg.error_code, msg.error_title, msg.error_details = exc.code, exc.title, exc.details
    if exc.reaction is Reaction.NEEDS_TEMPLATE:
        msg.error_details = f"{exc.details} (the 24-hour window is closed: send an approved template)"
    s.flush()
    message_changed(s, msg, now)
    apply_send_error(s, msg, exc.reaction.value, exc.code, exc.title, now)


def learn_from_status(s, msg: Message, status: DeliveryStatus, now) -> None:
    """A failed status webhook teaches the same lessons as a synchronous error."""
    if msg.status != "failed" or not status.errors:
        return
    error = status.errors[0]
    apply_send_error(s, msg, classify(error.code).value, error.code, error.title, now)


def send_outbox_message(rt: Runtime, message_id: int) -> None:
    client = rt.whatsapp  # before the claim: a process that cannot send (SettingsError) leaves the row queued
    body = _claim(rt, message_id)
    if body is None:
        return
    try:
        rt.limiter.acquire(f"wa:{rt.settings.whatsapp_phone_number_id}", rt.settings.whatsapp_messages_per_second)
        result = client.send(body)
    except OutcomeUnknown as exc:
        _set_status(rt, message_id, "unknown", str(exc))
        return
    except PermanentWhatsAppError as exc:
        _record_failure(rt, message_id, exc)
        return
    except RetryableError:
        _set_status(rt, message_id, "queued", None)  # never reached WhatsApp, or WhatsApp asked us to wait
        raise
    with session_scope(rt.db) as s:
        msg = s.get(Message, message_id)
        msg.wamid, msg.status, msg.status_at = result.wamid, "accepted", rt.clock.now()
        message_changed(s, msg, msg.status_at)
    reconcile_orphans(rt, result.wamid)


def _set_status(rt: Runtime, message_id: int, status: str, details: str | None) -> None:
    with session_scope(rt.db) as s:
        msg = s.get(Message, message_id)
        msg.status, msg.status_at, msg.error_details = status, rt.clock.now(), details
        if status != "queued":
            message_changed(s, msg, msg.status_at)


def reconcile_orphans(rt: Runtime, *wamids: str) -> None:
    """Statuses that arrived before we knew the wamids are applied now (one query for all)."""
    if not wamids:
        return
    with session_scope(rt.db) as s:
        orphans = s.scalars(select(InboundEvent).where(InboundEvent.platform == "whatsapp",
                                                       InboundEvent.subject.in_(wamids),
                                                       InboundEvent.status == "orphan")).all()
        for event in orphans:
            for update in parse_webhook(event.body.encode()):
                msg, moved = apply_status(s, update.event)
                if msg is not None and moved:
                    learn_from_status(s, msg, update.event, rt.clock.now())
            event.status, event.processed_at = "done", rt.clock.now()
