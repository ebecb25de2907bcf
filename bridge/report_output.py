"""The report's three outputs: rich tables for the terminal, a CSV file, a PNG chart over time."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable

from rich.console import Console
from rich.table import Table

from core.metrics.figures import Figures
from core.metrics.report import Report
from core.metrics.stats import Rate

__all__ = ["print_report", "write_csv", "write_png", "CSV_COLUMNS"]

CSV_COLUMNS = ["group", "key", "runs", "contacted", "sent", "delivered", "read", "replied", "reply_rate",
               "reply_rate_low", "reply_rate_high", "median_reply_seconds", "mean_messages", "mean_minutes",
               "handoffs", "handoff_rate", "opt_outs", "opt_out_rate", "converted", "conversion_rate",
               "conversion_rate_low", "conversion_rate_high", "carts_recovered", "bookings_confirmed", "orders",
               "revenue"]


def _pct(rate: Rate) -> str:
    return "–" if rate.value is None else f"{rate.value:.1%}"


def _ci(rate: Rate) -> str:
    return "–" if rate.value is None else f"{rate.value:.1%} [{rate.low:.1%}–{rate.high:.1%}]"


def _num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _revenue(f: Figures) -> str:
    return ", ".join(f"{amount} {currency}" for currency, amount in f.revenue.items()) or "–"


def _figures_table(title: str, rows: Iterable[Figures]) -> Table:
    table = Table(title=title, title_justify="left")
    for name in ("", "runs", "sent", "deliv.", "read", "replied", "reply rate", "median reply", "msgs",
                 "minutes", "handoff", "opt-out", "converted", "carts", "bookings", "orders", "revenue"):
        table.add_column(name, justify="left" if name in ("", "revenue") else "right")
    for f in rows:
        median = "–" if f.median_reply_seconds is None else f"{f.median_reply_seconds / 60:.1f} min"
        table.add_row(f.key, str(f.runs), str(f.sent), str(f.delivered), str(f.read), str(f.replied),
                      _pct(f.reply_rate), median, _num(f.mean_messages), _num(f.mean_minutes),
                      _pct(f.handoff_rate), _pct(f.opt_out_rate), _pct(f.conversion_rate), str(f.carts_recovered),
                      str(f.bookings_confirmed), str(f.orders), _revenue(f))
    return table


def print_report(report: Report, console: Console) -> None:
    days = report.window.total_seconds() / 86400
    console.print(f"Attribution window: {days:g} day(s). Rates with [95 % Wilson interval] where groups are compared.")
    for title, rows in (("Flows", report.flows), ("Templates", report.templates), ("Flow steps", report.steps)):
        console.print(_figures_table(title, rows) if rows else f"{title}: no runs in this period")
    if report.holdouts:
        table = Table("flow", "with messages", "hold-out (none)", "lift", title="Hold-out: conversion",
                      title_justify="left")
        for h in report.holdouts:
            lift = "–" if h.lift is None else f"{h.lift * 100:+.1f} pts"
            table.add_row(h.flow, _ci(h.treated) + f" n={h.treated.n}", _ci(h.control) + f" n={h.control.n}", lift)
        console.print(table)
    if report.variants:
        table = Table("flow/step", "variant", "template", "runs", "sent", "reply", "handoff", "conversion",
                      title="A/B variants", title_justify="left")
        for v in report.variants:
            table.add_row(f"{v.flow}/{v.step}", v.variant, v.template or "–", str(v.runs), str(v.sent),
                          _ci(v.reply), _ci(v.handoff), _ci(v.conversion))
        console.print(table)


def _csv_row(group: str, f: Figures) -> list[object]:
    rr, cr = f.reply_rate, f.conversion_rate
    return [group, f.key, f.runs, f.contacted, f.sent, f.delivered, f.read, f.replied, rr.value, rr.low, rr.high,
            f.median_reply_seconds, f.mean_messages, f.mean_minutes, f.handoffs, f.handoff_rate.value, f.opt_outs,
            f.opt_out_rate.value, f.converted, cr.value, cr.low, cr.high, f.carts_recovered, f.bookings_confirmed,
            f.orders, ";".join(f"{c} {a}" for c, a in f.revenue.items())]


def write_csv(report: Report, path: str | Path) -> int:
    """One row per flow, template and step; returns the number of rows written."""
    rows = [_csv_row(group, f) for group, items in (("flow", report.flows), ("template", report.templates),
                                                    ("step", report.steps)) for f in items]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(["" if v is None else v for v in row] for row in rows)
    return len(rows)


def write_png(report: Report, path: str | Path) -> None:
    """Sends, replies, runs started and conversions per day."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    days = [d.day for d in report.days]
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=100)
    for label, values in (("sent", [d.sent for d in report.days]), ("replied", [d.replied for d in report.days]),
                          ("runs started", [d.runs for d in report.days]),
                          ("converted", [d.converted for d in report.days])):
        ax.plot(days, values, marker="o", label=label)
    ax.set_title("replyflow: messages and conversions per day")
    ax.set_ylabel("count")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
