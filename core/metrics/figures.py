"""Conversation figures per flow, per template and per flow step: pure functions of a ``History``.

Definitions (``W`` is the attribution window, 7 days unless given):

- **sent**: outbound flow messages WhatsApp accepted (accepted, sent, delivered, read, played);
  **delivered** ⊂ sent (delivered, read, played); **read** ⊂ delivered (read, played).
- **replied**: a send is replied when the contact's next inbound message comes within ``W`` and no
  later send reached them first (a reply belongs to the latest send before it). **reply rate** =
  replied / sent; **median time to reply** over replied sends, in seconds.
- A run is **contacted** when at least one of its messages was sent. For a template or step group,
  the runs are those with a send of that template or at that step.
- **conversation length**: per contacted run, the messages both ways (sent or received) from its
  first send to first send + ``W``, and the minutes from the first send to the last of them; the
  mean over contacted runs.
- **handoff rate**: runs handed off by the flow (its handoff history note) / contacted runs.
  **opt-out rate**: contacted runs whose contact opted out (ledger) within ``W`` of the first send.
- **conversion** (from the run's start to start + ``W``): the run's cart ordered, the booking
  confirmed (the run's ``booking_status`` set to ``confirmed``), or any order of the contact
  (**orders**). **conversion rate** = converted runs / runs (hold-out runs are the control group,
  never counted here). **carts recovered**: the run's cart ordered after a reminder reached the
  contact (the cart's ``recovered`` status); its order total is the **recovered revenue**, by currency.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Callable, Iterable

from core.metrics.history import History, MessageRecord, RunRecord
from core.metrics.stats import Rate, mean_or_none, median_or_none, wilson

__all__ = ["SENT", "Figures", "Attribution", "attribute", "figures_for", "by_flow", "by_template", "by_step",
           "DEFAULT_WINDOW"]

SENT = ("accepted", "sent", "delivered", "read", "played")
DELIVERED = ("delivered", "read", "played")
READ = ("read", "played")
DEFAULT_WINDOW = timedelta(days=7)


@dataclass(frozen=True, slots=True, kw_only=True)
class Figures:
    key: str
    runs: int = 0
    contacted: int = 0
    sent: int = 0
    delivered: int = 0
    read: int = 0
    replied: int = 0
    median_reply_seconds: float | None = None
    mean_messages: float | None = None
    mean_minutes: float | None = None
    handoffs: int = 0
    opt_outs: int = 0
    converted: int = 0
    carts_recovered: int = 0
    bookings_confirmed: int = 0
    orders: int = 0
    revenue: dict[str, Decimal] = field(default_factory=dict)

    @property
    def reply_rate(self) -> Rate:
        return wilson(self.replied, self.sent)

    @property
    def handoff_rate(self) -> Rate:
        return wilson(self.handoffs, self.contacted)

    @property
    def opt_out_rate(self) -> Rate:
        return wilson(self.opt_outs, self.contacted)

    @property
    def conversion_rate(self) -> Rate:
        return wilson(self.converted, self.runs)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOutcome:
    """What became of one run, within the window."""

    run: RunRecord
    sends: tuple[MessageRecord, ...]
    handed_off: bool
    opted_out: bool
    messages: int
    minutes: float | None
    cart_converted: bool  # the run's cart was ordered in the window (with or without a reminder)
    cart_recovered: bool  # ... after a reminder reached the contact
    booking_confirmed: bool
    orders: int
    revenue: tuple[tuple[str, Decimal], ...]

    @property
    def converted(self) -> bool:
        return self.cart_converted or self.booking_confirmed or self.orders > 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Attribution:
    """Every send's reply (if any) and every run's outcome: what the figures are counted from."""

    window: timedelta
    replies: dict[int, float]  # send message id -> seconds to the reply
    outcomes: dict[int, RunOutcome]  # run id -> outcome


def _replies(history: History, window: timedelta) -> dict[int, float]:
    """Each inbound message answers the latest flow send to that contact before it (if within the window)."""
    timeline: dict[int, list[MessageRecord]] = defaultdict(list)
    for m in history.messages:
        if m.direction == "in" or (m.direction == "out" and m.run_id is not None and m.status in SENT):
            timeline[m.contact_id].append(m)
    replies: dict[int, float] = {}
    for items in timeline.values():
        last: MessageRecord | None = None
        # sends sort before a reply at the same instant only if strictly earlier: ties go to the send after
        for m in sorted(items, key=lambda x: (x.created_at, x.direction == "out", x.id)):
            if m.direction == "out":
                last = m
            elif last is not None and last.created_at < m.created_at and last.id not in replies:
                delay = m.created_at - last.created_at
                if delay <= window:
                    replies[last.id] = delay.total_seconds()
    return replies


@dataclass(frozen=True, slots=True)
class _Index:
    """The history grouped once (by run and by contact), so each run's outcome is a few lookups."""

    by_run: dict[int, list[MessageRecord]]
    by_contact: dict[int, list[MessageRecord]]
    consent: dict[int, list]
    carts: dict[int, list]

    @classmethod
    def of(cls, history: History) -> "_Index":
        by_run, by_contact, consent, carts = defaultdict(list), defaultdict(list), defaultdict(list), defaultdict(list)
        for m in history.messages:
            by_contact[m.contact_id].append(m)
            if m.run_id is not None:
                by_run[m.run_id].append(m)
        for c in history.consent:
            consent[c.contact_id].append(c)
        for cart in history.carts:
            carts[cart.contact_id].append(cart)
        return cls(by_run, by_contact, consent, carts)


def _outcome(ix: _Index, run: RunRecord, window: timedelta) -> RunOutcome:
    mine = ix.by_run.get(run.id, ())
    sends = tuple(m for m in mine if m.direction == "out" and m.status in SENT)
    first = min((m.created_at for m in sends), default=None)
    talk = [m for m in ix.by_contact.get(run.contact_id, ()) if first is not None
            and first <= m.created_at <= first + window
            and (m.direction == "in" or (m.direction == "out" and m.status in SENT))]
    opted_out = first is not None and any(c.action == "opt_out" and first <= c.at <= first + window
                                          for c in ix.consent.get(run.contact_id, ()))
    handed_off = any(m.direction == "sys" and m.kind == "handoff" for m in mine)
    end = run.started_at + window
    in_window = [c for c in ix.carts.get(run.contact_id, ()) if c.converted_at is not None
                 and run.started_at <= c.converted_at <= end and c.status in ("recovered", "ordered")]
    own = [c for c in in_window if run.subject == f"cart:{c.token}"]
    return RunOutcome(
        run=run, sends=sends, handed_off=handed_off, opted_out=opted_out, messages=len(talk),
        minutes=(max(m.created_at for m in talk) - first).total_seconds() / 60 if talk else None,
        cart_converted=bool(own), cart_recovered=any(c.status == "recovered" for c in own),
        booking_confirmed=run.vars.get("booking_status") == "confirmed", orders=len(in_window),
        revenue=tuple((c.order_currency, c.order_total) for c in own
                      if c.status == "recovered" and c.order_currency and c.order_total is not None))


def attribute(history: History, window: timedelta = DEFAULT_WINDOW) -> Attribution:
    ix = _Index.of(history)
    return Attribution(window=window, replies=_replies(history, window),
                       outcomes={r.id: _outcome(ix, r, window) for r in history.runs})


def _ALL(m: MessageRecord) -> bool:  # noqa: N802 - a sentinel: every send of the run counts
    return True


def figures_for(key: str, att: Attribution, runs: Iterable[RunRecord],
                include: Callable[[MessageRecord], bool] = _ALL) -> Figures:
    """The figures of ``runs`` (hold-out runs are left out), counting the sends ``include`` keeps."""
    outcomes = [att.outcomes[r.id] for r in runs if not r.holdout]
    sends = [m for o in outcomes for m in o.sends if include(m)]
    contacted = [o for o in outcomes if any(include(m) for m in o.sends)]
    if include is not _ALL:  # a template or step group: only the runs that sent it
        outcomes = contacted
    revenue: dict[str, Decimal] = defaultdict(Decimal)
    for o in outcomes:
        for currency, amount in o.revenue:
            revenue[currency] += amount
    replied = [att.replies[m.id] for m in sends if m.id in att.replies]
    return Figures(
        key=key, runs=len(outcomes), contacted=len(contacted), sent=len(sends),
        delivered=sum(m.status in DELIVERED for m in sends), read=sum(m.status in READ for m in sends),
        replied=len(replied), median_reply_seconds=median_or_none(replied),
        mean_messages=mean_or_none(o.messages for o in contacted),
        mean_minutes=mean_or_none(o.minutes for o in contacted if o.minutes is not None),
        handoffs=sum(o.handed_off for o in contacted), opt_outs=sum(o.opted_out for o in contacted),
        converted=sum(o.converted for o in outcomes), carts_recovered=sum(o.cart_recovered for o in outcomes),
        bookings_confirmed=sum(o.booking_confirmed for o in outcomes), orders=sum(o.orders for o in outcomes),
        revenue=dict(sorted(revenue.items())))


def by_flow(history: History, att: Attribution) -> list[Figures]:
    flows = sorted({r.flow for r in history.runs})
    return [figures_for(f, att, [r for r in history.runs if r.flow == f], _ALL) for f in flows]


def by_template(history: History, att: Attribution) -> list[Figures]:
    keys = sorted({(m.template, m.language or "") for o in att.outcomes.values() for m in o.sends if m.template})
    return [figures_for(f"{name} [{lang}]" if lang else name, att, history.runs,
                        lambda m, name=name, lang=lang: m.template == name and (m.language or "") == lang)
            for name, lang in keys]


def by_step(history: History, att: Attribution) -> list[Figures]:
    steps = sorted({(o.run.flow, m.step) for o in att.outcomes.values() for m in o.sends if m.step})
    return [figures_for(f"{flow}/{step}", att, [r for r in history.runs if r.flow == flow],
                        lambda m, step=step: m.step == step) for flow, step in steps]
