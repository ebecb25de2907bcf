"""The report as text: each figure written one way for every place that shows it (the terminal
tables of ``replyflow report``, the inbox's metrics page, the demo), and the period it covers read
from what a person typed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from core.metrics.experiments import HoldoutComparison, VariantFigures
from core.metrics.figures import Figures
from core.metrics.stats import Rate

__all__ = ["Column", "FIGURE_COLUMNS", "HOLDOUT_COLUMNS", "VARIANT_COLUMNS", "figure_cells", "holdout_cells",
           "variant_cells", "pct", "ci", "revenue", "period_bound"]


def pct(rate: Rate) -> str:
    return "–" if rate.value is None else f"{rate.value:.1%}"


def ci(rate: Rate) -> str:
    return "–" if rate.value is None else f"{rate.value:.1%} [{rate.low:.1%}–{rate.high:.1%}]"


def _num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _median(f: Figures) -> str:
    return "–" if f.median_reply_seconds is None else f"{f.median_reply_seconds / 60:.1f} min"


def revenue(f: Figures) -> str:
    return ", ".join(f"{amount} {currency}" for currency, amount in f.revenue.items()) or "–"


@dataclass(frozen=True, slots=True)
class Column:
    head: str  # the tables' header
    label: str  # what the figure is, in words (the page's header tooltip, the demo's rows)
    cell: Callable[[Figures], str]


FIGURE_COLUMNS = (
    Column("runs", "flow runs", lambda f: str(f.runs)),
    Column("sent", "messages sent", lambda f: str(f.sent)),
    Column("deliv.", "delivered", lambda f: str(f.delivered)),
    Column("read", "read", lambda f: str(f.read)),
    Column("replied", "replied", lambda f: str(f.replied)),
    Column("reply rate", "reply rate (replied / sent)", lambda f: pct(f.reply_rate)),
    Column("median reply", "median time to reply", _median),
    Column("msgs", "conversation length (messages)", lambda f: _num(f.mean_messages)),
    Column("minutes", "conversation length (minutes)", lambda f: _num(f.mean_minutes)),
    Column("handoff", "handoff rate", lambda f: pct(f.handoff_rate)),
    Column("opt-out", "opt-out rate", lambda f: pct(f.opt_out_rate)),
    Column("converted", "conversion rate", lambda f: pct(f.conversion_rate)),
    Column("carts", "carts recovered", lambda f: str(f.carts_recovered)),
    Column("bookings", "bookings confirmed", lambda f: str(f.bookings_confirmed)),
    Column("orders", "orders", lambda f: str(f.orders)),
    Column("revenue", "recovered revenue", revenue),
)
HOLDOUT_COLUMNS = ("flow", "with messages", "hold-out (none)", "lift")
VARIANT_COLUMNS = ("flow/step", "variant", "template", "runs", "sent", "reply", "handoff", "conversion")


def figure_cells(f: Figures) -> tuple[str, ...]:
    """The group's key, then one cell per FIGURE_COLUMNS."""
    return (f.key, *(c.cell(f) for c in FIGURE_COLUMNS))


def holdout_cells(h: HoldoutComparison) -> tuple[str, ...]:
    lift = "–" if h.lift is None else f"{h.lift * 100:+.1f} pts"
    return h.flow, f"{ci(h.treated)} n={h.treated.n}", f"{ci(h.control)} n={h.control.n}", lift


def variant_cells(v: VariantFigures) -> tuple[str, ...]:
    return (f"{v.flow}/{v.step}", v.variant, v.template or "–", str(v.runs), str(v.sent), ci(v.reply), ci(v.handoff),
            ci(v.conversion))


def period_bound(value: str | None) -> datetime | None:
    """An ISO date or time (UTC unless it says otherwise) bounding the runs' start; empty: no bound.
    Raises ValueError for anything else."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not an ISO date: {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
