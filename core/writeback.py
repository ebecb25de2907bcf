"""The write-back outbox: conversation events queued for the shops and CRMs that know the contact.

Every line of a conversation is a ``Message`` row (customer, bot, agent, and the ``sys`` lines:
handoff, release, outcome, consent). When one is recorded or changes (sent, delivered, read,
failed), ``message_changed`` queues one task per connected platform that wants that kind of line,
keyed by the message, so a later change updates the same task (and, through ``external_id``, the
same record on the platform) instead of adding another. After the unit of work commits, the
bridge is asked (``session.info["after_commit"]``) to flush that installation's tasks; the sweeper
finds them in the table if that request is lost.

Which platforms: an installation's ``config["write_kinds"]`` lists the kinds it shows (all when
absent); ``config["write_all_contacts"]`` (a CRM that finds or creates the contact by phone)
includes contacts it has no link for, otherwise only contacts linked to that platform are written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.store.models import Cart, ContactLink, Installation, Message, WritebackTask

__all__ = ["message_changed", "has_writebacks", "queue", "payload_of", "transcript", "task_kind"]

_CACHE = "writeback_installations"


def task_kind(msg: Message) -> str:
    return "message" if msg.direction in ("in", "out") else msg.kind


def _installations(s: Session, workspace_id: int) -> list[tuple[str, str, Mapping[str, Any]]]:
    cache = s.info.setdefault(_CACHE, {})
    if workspace_id not in cache:
        rows = s.execute(select(Installation.platform, Installation.account, Installation.config).where(
            Installation.workspace_id == workspace_id, Installation.status == "active")).all()
        cache[workspace_id] = [(p, a, c or {}) for p, a, c in rows]
    return cache[workspace_id]


def has_writebacks(s: Session, workspace_id: int) -> bool:
    """Whether ``message_changed`` can queue anything for the workspace (an active installation)."""
    return bool(_installations(s, workspace_id))


def payload_of(s: Session, msg: Message, platform: str, data: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Platform-neutral facts about one line of the conversation (what the connector renders)."""
    cart = s.scalar(select(Cart).where(Cart.contact_id == msg.contact_id, Cart.platform == platform)
                    .order_by(Cart.last_event_at.desc(), Cart.id.desc()).limit(1))
    return {
        "message_id": msg.id, "wamid": msg.wamid, "direction": msg.direction, "author": msg.author,
        "kind": msg.kind, "text": msg.body, "template": msg.template_name, "status": msg.status,
        "error": {"code": msg.error_code, "title": msg.error_title, "details": msg.error_details}
        if msg.error_code or msg.status in ("failed", "unknown", "blocked") else None,
        "at": msg.created_at.isoformat(), "status_at": msg.status_at.isoformat() if msg.status_at else None,
        "conversation_id": msg.conversation_id, "contact_id": msg.contact_id, "flow_run_id": msg.flow_run_id,
        "cart": None if cart is None else {
            "token": cart.token, "status": cart.status, "total": str(cart.total), "currency": cart.currency,
            "order_id": cart.order_id, "order_total": None if cart.order_total is None else str(cart.order_total),
            "recovery_url": cart.recovery_url},
        "data": dict(data or {}),
    }


def queue(s: Session, *, workspace_id: int, platform: str, account: str, kind: str, key: str,
          payload: Mapping[str, Any], now: datetime, contact_id: int | None = None,
          conversation_id: int | None = None) -> None:
    """Insert or update the task for ``key``; a finished task goes back to pending (an update)."""
    values = dict(kind=kind, payload=dict(payload), status="pending", attempts=0, updated_at=now, result=None)
    done = update(WritebackTask).where(WritebackTask.platform == platform, WritebackTask.account == account,
                                       WritebackTask.key == key)
    if s.execute(done.values(**values)).rowcount == 0:
        try:
            with s.begin_nested():
                s.add(WritebackTask(workspace_id=workspace_id, platform=platform, account=account, key=key,
                                    contact_id=contact_id, conversation_id=conversation_id, created_at=now,
                                    **values))
        except IntegrityError:  # queued concurrently: update that one
            s.execute(done.values(**values))
    s.info.setdefault("after_commit", set()).add(("flush_writebacks", platform, account))


def message_changed(s: Session, msg: Message, now: datetime, *, data: Mapping[str, Any] | None = None) -> None:
    """Queue the write-back of a recorded or changed line of a conversation."""
    installs = _installations(s, msg.workspace_id)
    if not installs:
        return
    kind = task_kind(msg)
    linked: set[str] | None = None
    for platform, account, config in installs:
        kinds = config.get("write_kinds")
        if kinds is not None and kind not in kinds:
            continue
        if not config.get("write_all_contacts"):
            if linked is None:
                linked = set(s.scalars(select(ContactLink.platform).where(ContactLink.contact_id == msg.contact_id)))
            if platform not in linked:
                continue
        queue(s, workspace_id=msg.workspace_id, platform=platform, account=account, kind=kind,
              key=f"message:{msg.id}", payload=payload_of(s, msg, platform, data), now=now,
              contact_id=msg.contact_id, conversation_id=msg.conversation_id)


def transcript(s: Session, conversation_id: int, upto_id: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The last ``limit`` lines of a conversation up to a message, oldest first (for handoff tasks)."""
    q = select(Message).where(Message.conversation_id == conversation_id)
    if upto_id is not None:
        q = q.where(Message.id <= upto_id)
    rows = list(s.scalars(q.order_by(Message.id.desc()).limit(limit)))
    return [{"at": m.created_at.isoformat(), "direction": m.direction, "author": m.author, "kind": m.kind,
             "text": m.body, "template": m.template_name, "status": m.status} for m in reversed(rows)]
