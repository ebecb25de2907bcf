"""The admins' metrics page: ``replyflow report`` for a period (core.metrics.report, the same value and
the same cells as the terminal tables) and its daily series as a chart (inline SVG, no script)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask import g, render_template, request

from core.flows.definition import parse_duration
from core.metrics import report
from core.metrics.report import Day
from core.store import session_scope
from bridge.inbox import bp
from bridge.inbox.security import admin_required
from bridge.inbox.util import rt
from bridge.report_text import (FIGURE_COLUMNS, HOLDOUT_COLUMNS, VARIANT_COLUMNS, figure_cells, holdout_cells,
                                period_bound, variant_cells)

__all__ = ["metrics", "Period", "read_period", "calendar", "chart_svg"]

DAYS_SHOWN = 92  # the chart's longest span: the last days of the period
SERIES = (("sent", "messages sent", "#0b7a5a"), ("replied", "replied", "#2563eb"),
          ("runs", "runs started", "#7c3aed"), ("converted", "converted", "#c2410c"))
PRESETS = (("All time", None), ("Last 7 days", 7), ("Last 30 days", 30))


@dataclass(frozen=True, slots=True)
class Period:
    since: datetime | None  # runs started on or after
    until: datetime | None  # ... and before
    window: timedelta
    form: dict[str, str]  # what was typed, to show it again


def read_period(args) -> Period:
    """The page's query string, read as ``replyflow report`` reads --since, --until and --window."""
    form = {k: args.get(k, "").strip()[:40] for k in ("since", "until", "window")}
    form["window"] = form["window"] or "7d"
    since, until = period_bound(form["since"]), period_bound(form["until"])
    if since is not None and until is not None and until <= since:
        raise ValueError("the end of the period must come after its start")
    return Period(since=since, until=until, window=parse_duration(form["window"]), form=form)


def calendar(days: tuple[Day, ...], period: Period, today: date, limit: int = DAYS_SHOWN) -> list[Day]:
    """The report's days with the empty days between them, over the period (to today when it has no
    end), the last ``limit`` of them."""
    if not days and period.since is None:
        return []
    known = {d.day: d for d in days}
    first = min([d.day for d in days] + ([period.since.date()] if period.since else []))
    end = (period.until - timedelta(microseconds=1)).date() if period.until else today
    last = max([d.day for d in days] + [end])
    first = max(first, last - timedelta(days=limit - 1))
    return [known.get(first + timedelta(days=i), Day(day=first + timedelta(days=i)))
            for i in range((last - first).days + 1)]


def chart_svg(rows: list[Day], width: int = 720, height: int = 220) -> str:
    """Grouped bars a day for each series; plain SVG, no script."""
    top = max([1] + [getattr(r, key) for r in rows for key, _l, _c in SERIES])
    pad, base = 30, height - 30
    slot = (width - pad) / max(len(rows), 1)
    bar = slot / (len(SERIES) + 1)
    every = -(-len(rows) // 14)  # at most 14 day labels
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
             f'aria-label="messages sent, replied, runs started and converted per day">',
             f'<line x1="{pad}" y1="{base}" x2="{width}" y2="{base}" stroke="#999"/>',
             f'<text x="2" y="14" font-size="11">{top}</text><text x="2" y="{base}" font-size="11">0</text>']
    for i, r in enumerate(rows):
        x0 = pad + i * slot
        for j, (key, label, colour) in enumerate(SERIES):
            value = getattr(r, key)
            h = (base - 20) * value / top
            parts.append(f'<rect x="{x0 + j * bar:.1f}" y="{base - h:.1f}" width="{bar - 1:.1f}" height="{h:.1f}" '
                         f'fill="{colour}"><title>{r.day:%d %b}: {value} {label}</title></rect>')
        if i % every == 0:
            parts.append(f'<text x="{x0:.1f}" y="{height - 12}" font-size="10">{r.day:%d %b}</text>')
    for j, (_key, label, colour) in enumerate(SERIES):
        parts.append(f'<rect x="{pad + 10 + j * 150}" y="4" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{pad + 24 + j * 150}" y="13" font-size="11">{label}</text>')
    parts.append("</svg>")
    return "".join(parts)


@bp.get("/admin/metrics")
@admin_required
def metrics():
    runtime = rt()
    today = runtime.clock.now().date()
    presets = [(label, None if n is None else (today - timedelta(days=n - 1)).isoformat()) for label, n in PRESETS]
    try:
        period = read_period(request.args)
    except ValueError as exc:
        form = {k: request.args.get(k, "")[:40] for k in ("since", "until", "window")}
        return render_template("inbox/metrics.html", error=str(exc), form=form, presets=presets), 400
    with session_scope(runtime.db) as s:
        result = report(s, g.agent.workspace_id, since=period.since, until=period.until, window=period.window)
    days = calendar(result.days, period, today)
    groups = [("flow-figures", "Flows", result.flows), ("template-figures", "Templates", result.templates),
              ("step-figures", "Flow steps", result.steps)]
    return render_template(
        "inbox/metrics.html", error=None, form=period.form, presets=presets, columns=FIGURE_COLUMNS,
        groups=[(anchor, title, [figure_cells(f) for f in rows]) for anchor, title, rows in groups],
        holdout_columns=HOLDOUT_COLUMNS, holdouts=[holdout_cells(h) for h in result.holdouts],
        variant_columns=VARIANT_COLUMNS, variants=[variant_cells(v) for v in result.variants],
        window_days=f"{result.window.total_seconds() / 86400:g}", days=result.days,
        chart=chart_svg(days) if days else "")
