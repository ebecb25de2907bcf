"""The admins' metrics page: per-flow figures (core.metrics) and a chart of the last days (inline SVG)."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta
from decimal import Decimal

from flask import g, render_template
from sqlalchemy import select

from core.metrics import flow_figures
from core.store import session_scope
from core.store.models import Cart, FlowRun, Message
from bridge.inbox import bp
from bridge.inbox.security import admin_required
from bridge.inbox.util import rt

__all__ = ["metrics", "daily_series", "chart_svg"]

DAYS = 14
SERIES = (("runs", "flow runs started", "#0b7a5a"), ("replies", "customer messages", "#2563eb"),
          ("handoffs", "handoffs", "#c2410c"))


def daily_series(s, workspace_id: int, today, days: int = DAYS) -> list[dict]:
    """One row a day: runs started, customer messages, handoffs, recovered revenue (by currency)."""
    start = today - timedelta(days=days - 1)
    since = start.replace(hour=0, minute=0, second=0, microsecond=0)
    runs = Counter(r.date() for r in s.scalars(select(FlowRun.started_at).where(
        FlowRun.workspace_id == workspace_id, FlowRun.started_at >= since)))
    replies = Counter(m.date() for m in s.scalars(select(Message.created_at).where(
        Message.workspace_id == workspace_id, Message.direction == "in", Message.created_at >= since)))
    handoffs = Counter(m.date() for m in s.scalars(select(Message.created_at).where(
        Message.workspace_id == workspace_id, Message.kind == "handoff", Message.body.like("Handed off%"),
        Message.created_at >= since)))
    revenue: dict = defaultdict(lambda: defaultdict(Decimal))
    for at, total, currency in s.execute(select(Cart.recovered_at, Cart.order_total, Cart.order_currency).where(
            Cart.workspace_id == workspace_id, Cart.status == "recovered", Cart.recovered_at >= since)):
        revenue[at.date()][currency or ""] += total or 0
    rows = []
    for i in range(days):
        day = (start + timedelta(days=i)).date()
        rows.append({"day": day, "runs": runs[day], "replies": replies[day], "handoffs": handoffs[day],
                     "revenue": ", ".join(f"{v:,.2f} {c}" for c, v in sorted(revenue[day].items())) or "–"})
    return rows


def chart_svg(rows: list[dict], width: int = 720, height: int = 220) -> str:
    """Grouped bars a day for each series; plain SVG, no script."""
    top = max([1] + [r[key] for r in rows for key, _l, _c in SERIES])
    pad, base = 30, height - 30
    slot = (width - pad) / max(len(rows), 1)
    bar = slot / (len(SERIES) + 1)
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
             f'aria-label="flow runs, customer messages and handoffs per day">',
             f'<line x1="{pad}" y1="{base}" x2="{width}" y2="{base}" stroke="#999"/>',
             f'<text x="2" y="14" font-size="11">{top}</text><text x="2" y="{base}" font-size="11">0</text>']
    for i, r in enumerate(rows):
        x0 = pad + i * slot
        for j, (key, label, colour) in enumerate(SERIES):
            h = (base - 20) * r[key] / top
            parts.append(f'<rect x="{x0 + j * bar:.1f}" y="{base - h:.1f}" width="{bar - 1:.1f}" height="{h:.1f}" '
                         f'fill="{colour}"><title>{r["day"]:%d %b}: {r[key]} {label}</title></rect>')
        parts.append(f'<text x="{x0:.1f}" y="{height - 12}" font-size="10">{r["day"]:%d %b}</text>')
    for j, (_key, label, colour) in enumerate(SERIES):
        parts.append(f'<rect x="{pad + 10 + j * 160}" y="4" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{pad + 24 + j * 160}" y="13" font-size="11">{label}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _pct(value) -> str:
    return "–" if value is None else f"{value:.0%}"


@bp.get("/admin/metrics")
@admin_required
def metrics():
    runtime = rt()
    with session_scope(runtime.db) as s:
        figures = flow_figures(s, g.agent.workspace_id)
        rows = daily_series(s, g.agent.workspace_id, runtime.clock.now())
    table = [{"flow": f.flow, "runs": f.runs, "reply_rate": _pct(f.reply_rate), "handoff_rate": _pct(f.handoff_rate),
              "conversion": _pct(f.carts_recovered / f.runs if f.runs else None),
              "recovered": ", ".join(f"{v:,.2f} {c}" for c, v in sorted(f.recovered_revenue.items())) or "–"}
             for f in figures]
    return render_template("inbox/metrics.html", table=table, days=rows, chart=chart_svg(rows))
