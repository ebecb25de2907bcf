"""How long the raw webhook copies are kept.

Every webhook is recorded in full at the edge (``inbound_event``): the proof of what arrived, and
its dedupe key. Once handled, a copy is needed only while the platform may still redeliver it
(WhatsApp retries for up to 7 days) and while someone may want to look at it; after that it is
personal data held for no purpose, and the largest table there is (every sent message comes back
as two or three status webhooks). ``prune_inbound`` deletes handled copies (``done``; ``ignored``,
deliveries that needed nothing, such as a topic no flow uses; and ``orphan`` statuses for messages
that were never ours) received before a cut-off, in small
transactions; pending and failed ones are kept whatever their age. The conversation itself lives
in ``message`` and is not touched.

Inbox sessions (``agent_session``) that ended (signed out, or past their age limits) before the
same cut-off go too (``prune_sessions``): they only said where an agent was once signed in.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Iterator

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.engine import Engine

from core.store.models import AgentSession, InboundEvent
from core.store.models.inbox import SESSION_IDLE, SESSION_MAX_AGE

__all__ = ["MIN_AGE", "PRUNABLE", "RetentionError", "count_prunable", "prune_inbound", "count_prunable_sessions",
           "prune_sessions"]

MIN_AGE = timedelta(days=7)  # WhatsApp redelivers for up to 7 days: the dedupe keys must outlive that
PRUNABLE = ("done", "ignored", "orphan")


class RetentionError(ValueError):
    pass


def _check(older_than: timedelta) -> None:
    if older_than < MIN_AGE:
        raise RetentionError(f"keep webhooks at least {MIN_AGE.days} days: WhatsApp redelivers for up to 7 days, "
                             "and a redelivery whose copy is gone would be handled twice")


def _prunable(before: datetime):
    return InboundEvent.status.in_(PRUNABLE), InboundEvent.received_at < before


def count_prunable(engine: Engine, now: datetime, older_than: timedelta) -> int:
    _check(older_than)
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(InboundEvent).where(*_prunable(now - older_than)))


def prune_inbound(engine: Engine, now: datetime, older_than: timedelta, batch: int = 5000) -> Iterator[int]:
    """Delete handled copies received more than ``older_than`` before ``now``, ``batch`` rows a
    transaction (short locks, a crash loses nothing but progress); yields each batch's count."""
    _check(older_than)
    before = now - older_than
    while True:
        with engine.begin() as conn:
            ids = conn.scalars(select(InboundEvent.id).where(*_prunable(before))
                               .order_by(InboundEvent.id).limit(batch)).all()
            if not ids:
                return
            conn.execute(delete(InboundEvent).where(InboundEvent.id.in_(ids)))
        yield len(ids)


def _ended_before(before: datetime):
    """Signed out before ``before``, or (never signed out) past an age limit before it."""
    return or_(AgentSession.ended_at < before,
               and_(AgentSession.ended_at.is_(None), or_(AgentSession.created_at < before - SESSION_MAX_AGE,
                                                         AgentSession.last_seen_at < before - SESSION_IDLE)))


def count_prunable_sessions(engine: Engine, now: datetime, older_than: timedelta) -> int:
    _check(older_than)
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(AgentSession).where(_ended_before(now - older_than)))


def prune_sessions(engine: Engine, now: datetime, older_than: timedelta) -> int:
    """Delete the inbox sessions that ended more than ``older_than`` before ``now`` (one small
    transaction: a few rows per agent sign-in); returns how many. Open sessions stay."""
    _check(older_than)
    with engine.begin() as conn:
        return conn.execute(delete(AgentSession).where(_ended_before(now - older_than))).rowcount
