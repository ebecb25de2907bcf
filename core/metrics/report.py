"""Everything ``replyflow report`` and the inbox's admin view show, in one value."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from core.metrics.experiments import HoldoutComparison, VariantFigures, holdouts, variants
from core.metrics.figures import DEFAULT_WINDOW, Attribution, Figures, attribute, by_flow, by_step, by_template
from core.metrics.history import History, load_history

__all__ = ["Day", "Report", "build_report", "report"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Day:
    day: date
    sent: int = 0  # sends made that day
    replied: int = 0  # of those, replied within the window
    runs: int = 0  # runs started that day (hold-out excluded)
    converted: int = 0  # of those, converted within the window


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    window: timedelta
    flows: tuple[Figures, ...]
    templates: tuple[Figures, ...]
    steps: tuple[Figures, ...]
    holdouts: tuple[HoldoutComparison, ...]
    variants: tuple[VariantFigures, ...]
    days: tuple[Day, ...]


def _days(att: Attribution) -> tuple[Day, ...]:
    counts: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for o in att.outcomes.values():
        if o.run.holdout:
            continue
        start = counts[o.run.started_at.date()]
        start["runs"] += 1
        start["converted"] += o.converted
        for m in o.sends:
            counts[m.created_at.date()]["sent"] += 1
            counts[m.created_at.date()]["replied"] += m.id in att.replies
    return tuple(Day(day=d, **dict(c)) for d, c in sorted(counts.items()))


def build_report(history: History, window: timedelta = DEFAULT_WINDOW) -> Report:
    att = attribute(history, window)
    return Report(window=window, flows=tuple(by_flow(history, att)), templates=tuple(by_template(history, att)),
                  steps=tuple(by_step(history, att)), holdouts=tuple(holdouts(history, att)),
                  variants=tuple(variants(history, att)), days=_days(att))


def report(s: Session, workspace_id: int, *, since: datetime | None = None, until: datetime | None = None,
           window: timedelta = DEFAULT_WINDOW) -> Report:
    """The report of the runs started in [since, until), from the records."""
    return build_report(load_history(s, workspace_id, since=since, until=until), window)
