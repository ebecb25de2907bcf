"""What the inbox shows, read from the records: the conversation list and one thread's context."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from core.carts import display_total
from core.conversations import window_of
from core.outbox import consent_of
from core.session import closes_at, is_open
from core.store.models import AgentRead, Cart, Contact, Conversation, FlowRun, Message

__all__ = ["FILTERS", "Row", "conversation_rows", "written_since_closed", "unread_counts", "mark_read", "context_of", "queue_rank"]

FILTERS = ("all", "waiting", "mine", "bot", "closed")


@dataclass(frozen=True, slots=True)
class Row:
    id: int
    name: str
    phone: str
    mode: str
    assignee: str | None
    reason: str | None
    last: str
    updated_at: datetime
    unread: int
    waiting: bool


def written_since_closed(s: Session, conv: Conversation) -> bool:
    """A closed conversation the customer wrote to again: the bot stays quiet, so it needs an agent."""
    if conv.mode != "closed":
        return False
    closed = s.scalar(select(func.max(Message.id)).where(Message.conversation_id == conv.id, Message.kind == "close"))
    return s.scalar(select(Message.id).where(Message.conversation_id == conv.id, Message.direction == "in",
                                             Message.id > (closed or 0)).limit(1)) is not None


def queue_rank(conv: Conversation, me: str, reopened: bool = False) -> int:
    """The handoff queue first (waiting for an agent, or written to after closing), then mine, then the rest."""
    if (conv.mode == "agent" and not conv.assignee) or reopened:
        return 0
    if conv.mode == "agent" and conv.assignee == me:
        return 1
    return 2


def unread_counts(s: Session, agent_id: int, conv_ids: list[int]) -> dict[int, int]:
    if not conv_ids:
        return {}
    read = select(AgentRead.conversation_id, AgentRead.last_message_id).where(
        AgentRead.agent_id == agent_id).subquery()
    rows = s.execute(
        select(Message.conversation_id, func.count(Message.id))
        .outerjoin(read, read.c.conversation_id == Message.conversation_id)
        .where(Message.conversation_id.in_(conv_ids), Message.direction == "in",
               Message.id > func.coalesce(read.c.last_message_id, 0))
        .group_by(Message.conversation_id))
    return {conv_id: count for conv_id, count in rows}


def conversation_rows(s: Session, *, workspace_id: int, agent_id: int, me: str, kind: str = "all",
                      search: str = "", limit: int = 200) -> list[Row]:
    query = select(Conversation, Contact).join(Contact, Contact.id == Conversation.contact_id).where(
        Conversation.workspace_id == workspace_id)
    if kind == "waiting":
        query = query.where(or_(Conversation.mode == "closed",
                                (Conversation.mode == "agent") & Conversation.assignee.is_(None)))
    elif kind == "mine":
        query = query.where(Conversation.mode == "agent", Conversation.assignee == me)
    elif kind in ("bot", "closed"):
        query = query.where(Conversation.mode == kind)
    search = search.strip()
    if search:
        like = f"%{search.lower()}%"
        digits = "".join(ch for ch in search if ch.isdigit())
        terms = [func.lower(Contact.first_name).like(like), func.lower(Contact.last_name).like(like),
                 func.lower(Contact.profile_name).like(like)]
        if digits:
            terms.append(Contact.phone_e164.like(f"%{digits}%"))
        query = query.where(or_(*terms))
    pairs = s.execute(query.order_by(Conversation.updated_at.desc()).limit(limit)).all()
    unread = unread_counts(s, agent_id, [c.id for c, _ in pairs])
    reopened = {c.id for c, _ in pairs if written_since_closed(s, c)}
    if kind == "waiting":
        pairs = [(c, contact) for c, contact in pairs if c.mode == "agent" or c.id in reopened]
    rows = []
    for conv, contact in pairs:
        last = s.scalar(select(Message.body).where(Message.conversation_id == conv.id, Message.direction != "sys")
                        .order_by(Message.id.desc()).limit(1))
        name = " ".join(p for p in (contact.first_name, contact.last_name) if p) or contact.profile_name or "—"
        rows.append(Row(id=conv.id, name=name, phone=contact.phone_e164 or "", mode=conv.mode,
                        assignee=conv.assignee, reason=conv.handoff_reason, last=(last or "")[:90],
                        updated_at=conv.updated_at, unread=unread.get(conv.id, 0),
                        waiting=(conv.mode == "agent" and not conv.assignee) or conv.id in reopened))
    order = {c.id: queue_rank(c, me, c.id in reopened) for c, _ in pairs}
    return sorted(rows, key=lambda r: order[r.id])  # stable: newest first within each rank


def mark_read(s: Session, agent_id: int, conv_id: int) -> None:
    last = s.scalar(select(func.max(Message.id)).where(Message.conversation_id == conv_id)) or 0
    mark = s.scalar(select(AgentRead).where(AgentRead.agent_id == agent_id, AgentRead.conversation_id == conv_id))
    if mark is None:
        s.add(AgentRead(agent_id=agent_id, conversation_id=conv_id, last_message_id=last))
    elif last > mark.last_message_id:
        mark.last_message_id = last


def context_of(s: Session, conv: Conversation, now: datetime) -> dict:
    """The contact's context beside the thread: consent, carts, the run that handed off, the window."""
    contact = s.get(Contact, conv.contact_id)
    consent = consent_of(s, contact.id)
    window = window_of(conv)
    ends = closes_at(window)
    carts = s.scalars(select(Cart).where(Cart.contact_id == contact.id).order_by(Cart.id.desc()).limit(3)).all()
    run = s.scalar(select(FlowRun).where(FlowRun.contact_id == contact.id)
                   .order_by((FlowRun.status == "handed_off").desc(), FlowRun.id.desc()).limit(1))
    if consent.all_opt_out:
        consent_text = "opted out of all messages"
    elif consent.marketing_opt_out:
        consent_text = "opted out of marketing"
    elif consent.marketing_opt_in:
        consent_text = f"marketing opt-in ({consent.marketing_source or 'source unknown'})"
    else:
        consent_text = "no marketing opt-in (service messages only)"
    return {
        "contact": contact,
        "name": " ".join(p for p in (contact.first_name, contact.last_name) if p) or contact.profile_name or "—",
        "consent": consent_text,
        "deliverability": contact.deliverability,
        "carts": [{"total": display_total(c.total, c.currency), "status": c.status, "url": c.recovery_url,
                   "platform": c.platform, "order": c.order_id,
                   "order_total": display_total(c.order_total, c.order_currency) if c.order_total is not None else None}
                  for c in carts],
        "properties": contact.properties or {},
        "prefill": {**{k: str(v) for k, v in (contact.properties or {}).items()},
                    "first_name": contact.first_name or contact.profile_name or "",
                    **({"cart_total": display_total(carts[0].total, carts[0].currency),
                        "recovery_link": carts[0].recovery_url or ""} if carts else {})},
        "run": None if run is None else {"flow": run.flow_name, "step": run.step, "status": run.status,
                                         "outcome": run.outcome,
                                         "vars": {k: v for k, v in (run.vars or {}).items() if not k.startswith("_")}},
        "reason": conv.handoff_reason,
        "window_open": is_open(window, now),
        "window_ends": ends,
        "window_left": (ends - now).total_seconds() if ends and ends > now else 0,
    }
