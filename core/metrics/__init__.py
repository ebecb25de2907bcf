"""Figures computed from the records (messages, runs, carts), never from counters that drift.

``report(session, workspace_id, since=, until=, window=)`` (core/metrics/report.py) gives every
figure per flow, template and step, the hold-out comparisons, the A/B variants and a daily series;
``build_report(history)`` is the same from a ``History`` built by hand. ``flow_figures`` below is the
first, simpler summary the demo prints.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.store.models import Cart, Conversation, FlowRun, Message
from core.metrics.report import Report, build_report, report

__all__ = ["FlowFigures", "flow_figures", "Report", "build_report", "report"]

SENT = ("accepted", "sent", "delivered", "read", "played")


@dataclass
class FlowFigures:
    flow: str
    runs: int = 0
    templates_sent: int = 0
    delivered: int = 0  # delivered or read
    read: int = 0
    replied: int = 0  # runs whose contact wrote back after the first message of the run
    handoffs: int = 0
    carts_recovered: int = 0
    recovered_revenue: dict[str, Decimal] = field(default_factory=dict)
    messages: int = 0  # WhatsApp messages in the runs' conversations, both ways
    opt_outs: int = 0  # runs that ended because the contact opted out

    @property
    def reply_rate(self) -> float | None:
        contacted = self.templates_sent and self.runs
        return self.replied / self.runs if contacted else None

    @property
    def handoff_rate(self) -> float | None:
        return self.handoffs / self.runs if self.runs else None


def _run_figures(s: Session, run: FlowRun, figures: FlowFigures) -> None:
    out = s.scalars(select(Message).where(Message.flow_run_id == run.id, Message.direction == "out")).all()
    sent = [m for m in out if m.status in SENT]
    figures.templates_sent += sum(1 for m in sent if m.kind == "template")
    figures.delivered += sum(1 for m in sent if m.status in ("delivered", "read", "played"))
    figures.read += sum(1 for m in sent if m.status in ("read", "played"))
    if sent:
        first = min(m.created_at for m in sent)
        reply = s.scalar(select(Message.id).where(Message.contact_id == run.contact_id, Message.direction == "in",
                                                  Message.created_at >= first))
        figures.replied += reply is not None
    conv = s.scalar(select(Conversation).where(Conversation.contact_id == run.contact_id))
    if conv is not None and conv.handed_off_at is not None and conv.handed_off_at >= run.started_at:
        figures.handoffs += 1
    if conv is not None:
        figures.messages += len(s.scalars(select(Message.id).where(
            Message.conversation_id == conv.id, Message.direction.in_(("in", "out")),
            Message.created_at >= run.started_at)).all())


def flow_figures(s: Session, workspace_id: int) -> list[FlowFigures]:
    by_flow: dict[str, FlowFigures] = {}
    for run in s.scalars(select(FlowRun).where(FlowRun.workspace_id == workspace_id).order_by(FlowRun.id)):
        figures = by_flow.setdefault(run.flow_name, FlowFigures(flow=run.flow_name))
        figures.runs += 1
        figures.opt_outs += run.outcome == "contact opted out"
        _run_figures(s, run, figures)
        if run.subject.startswith("cart:"):
            cart = s.scalar(select(Cart).where(Cart.workspace_id == workspace_id,
                                               Cart.token == run.subject.removeprefix("cart:")))
            if cart is not None and cart.status == "recovered":
                figures.carts_recovered += 1
                revenue = defaultdict(Decimal, figures.recovered_revenue)
                revenue[cart.order_currency] += cart.order_total
                figures.recovered_revenue = dict(revenue)
    return list(by_flow.values())
