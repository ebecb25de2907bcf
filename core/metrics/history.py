"""The records the figures are computed from, read once into frozen plain values.

Only records: flow runs (and, as one run per recipient, each campaign send), messages (sends with their latest status, replies, history notes), carts
and the consent ledger. ``load_history`` is the one function that touches the database; every
figure is a pure function of the ``History`` it returns (so a test can build one by hand).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.store.models import Campaign, Cart, ConsentEvent, FlowRun, Message

__all__ = ["RunRecord", "MessageRecord", "CartRecord", "ConsentRecord", "History", "load_history"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord:
    id: int
    flow: str
    contact_id: int | None
    subject: str
    started_at: datetime
    ended_at: datetime | None = None
    status: str = "completed"
    outcome: str | None = None
    vars: Mapping[str, Any] = field(default_factory=dict)

    @property
    def holdout(self) -> bool:
        return bool(self.vars.get("_holdout"))

    def variant(self, step: str) -> str | None:
        return dict(self.vars.get("_variants") or {}).get(step)


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageRecord:
    id: int
    contact_id: int
    direction: str  # in | out | sys
    kind: str  # template, text ... ; for sys: handoff, template_skipped, ...
    status: str
    created_at: datetime
    run_id: int | None = None
    step: str | None = None
    template: str | None = None
    language: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CartRecord:
    token: str
    contact_id: int | None
    status: str  # open | recovered (a reminder went first) | ordered | ...
    converted_at: datetime | None = None
    order_total: Decimal | None = None
    order_currency: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentRecord:
    contact_id: int
    purpose: str
    action: str  # opt_in | opt_out
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class History:
    runs: tuple[RunRecord, ...] = ()
    messages: tuple[MessageRecord, ...] = ()
    carts: tuple[CartRecord, ...] = ()
    consent: tuple[ConsentRecord, ...] = ()


def load_history(s: Session, workspace_id: int, *, since: datetime | None = None,
                 until: datetime | None = None) -> History:
    """Runs started in [since, until) and every record about their contacts."""
    query = select(FlowRun).where(FlowRun.workspace_id == workspace_id)
    if since is not None:
        query = query.where(FlowRun.started_at >= since)
    if until is not None:
        query = query.where(FlowRun.started_at < until)
    runs = tuple(RunRecord(id=r.id, flow=r.flow_name, contact_id=r.contact_id, subject=r.subject,
                           started_at=r.started_at, ended_at=r.ended_at, status=r.status, outcome=r.outcome,
                           vars=dict(r.vars or {})) for r in s.scalars(query.order_by(FlowRun.id)))
    runs += _campaign_runs(s, workspace_id, since, until)
    contacts = sorted({r.contact_id for r in runs if r.contact_id is not None})
    if not contacts:
        return History(runs=runs)
    messages = tuple(MessageRecord(id=m.id, contact_id=m.contact_id, direction=m.direction, kind=m.kind,
                                   status=m.status, created_at=m.created_at, step=m.flow_step,
                                   run_id=-m.id if _is_campaign(m) else m.flow_run_id,
                                   template=m.template_name, language=(m.request or {}).get("language"))
                     for m in s.scalars(select(Message).where(Message.workspace_id == workspace_id,
                                                              Message.contact_id.in_(contacts)).order_by(Message.id)))
    carts = tuple(CartRecord(token=c.token, contact_id=c.contact_id, status=c.status, converted_at=c.recovered_at,
                             order_total=c.order_total, order_currency=c.order_currency)
                  for c in s.scalars(select(Cart).where(Cart.workspace_id == workspace_id, Cart.contact_id.in_(contacts))
                                     .order_by(Cart.id)))
    consent = tuple(ConsentRecord(contact_id=e.contact_id, purpose=e.purpose, action=e.action, at=e.at)
                    for e in s.scalars(select(ConsentEvent).where(ConsentEvent.contact_id.in_(contacts))
                                       .order_by(ConsentEvent.id)))
    return History(runs=runs, messages=messages, carts=carts, consent=consent)


def _is_campaign(m: Message) -> bool:
    return m.direction == "out" and m.flow_run_id is None and (m.idempotency_key or "").startswith("campaign:")


def _campaign_runs(s: Session, workspace_id: int, since: datetime | None,
                   until: datetime | None) -> tuple[RunRecord, ...]:
    """Each campaign send as a run of the flow ``campaign <name>`` (id: minus the message's id), so
    campaigns get the same figures as flows: reply rate, length, opt-outs, orders in the window."""
    names = {c.id: c.name for c in s.scalars(select(Campaign).where(Campaign.workspace_id == workspace_id))}
    if not names:
        return ()
    query = select(Message).where(Message.workspace_id == workspace_id, Message.direction == "out",
                                  Message.flow_run_id.is_(None), Message.idempotency_key.like("campaign:%"),
                                  Message.status != "blocked")  # the gate refused it: nobody was addressed
    if since is not None:
        query = query.where(Message.created_at >= since)
    if until is not None:
        query = query.where(Message.created_at < until)
    runs = []
    for m in s.scalars(query.order_by(Message.id)):
        campaign_id = m.idempotency_key.split(":", 2)[1]
        name = names.get(int(campaign_id)) if campaign_id.isdigit() else None
        runs.append(RunRecord(id=-m.id, flow=f"campaign {name or campaign_id}", contact_id=m.contact_id,
                              subject=f"campaign:{campaign_id}", started_at=m.created_at, status="completed"))
    return tuple(runs)
