"""The report's three outputs: rich tables for the terminal, a CSV file, a PNG chart over time.
Every cell of the tables is written by ``bridge.report_text``, as on the inbox's metrics page."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable

from rich.console import Console
from rich.table import Table
from rich.text import Text

from core.metrics.figures import Figures
from core.metrics.report import Report
from bridge.report_text import (FIGURE_COLUMNS, HOLDOUT_COLUMNS, VARIANT_COLUMNS, figure_cells, holdout_cells,
                                variant_cells)

__all__ = ["print_report", "write_csv", "write_png", "CSV_COLUMNS"]

CSV_COLUMNS = ["group", "key", "runs", "contacted", "sent", "delivered", "read", "replied", "reply_rate",
               "reply_rate_low", "reply_rate_high", "median_reply_seconds", "mean_messages", "mean_minutes",
               "handoffs", "handoff_rate", "opt_outs", "opt_out_rate", "converted", "conversion_rate",
               "conversion_rate_low", "conversion_rate_high", "carts_recovered", "bookings_confirmed", "orders",
               "revenue"]


def _table(title: str, heads: Iterable[str], rows: Iterable[tuple[str, ...]], left: int = 1) -> Table:
    """Cells are plain text, never markup: a template key such as ``cart_reminder [es]`` shows as it is."""
    heads = list(heads)
    table = Table(title=title, title_justify="left")
    for i, name in enumerate(heads):
        table.add_column(name, justify="left" if i < left or name == "revenue" else "right")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    return table


def print_report(report: Report, console: Console) -> None:
    days = report.window.total_seconds() / 86400
    console.print(f"Attribution window: {days:g} day(s). Rates with [95 % Wilson interval] where groups are compared.")
    heads = ["", *(c.head for c in FIGURE_COLUMNS)]
    for title, rows in (("Flows", report.flows), ("Templates", report.templates), ("Flow steps", report.steps)):
        console.print(_table(title, heads, map(figure_cells, rows)) if rows else f"{title}: no runs in this period")
    if report.holdouts:
        console.print(_table("Hold-out: conversion", HOLDOUT_COLUMNS, map(holdout_cells, report.holdouts),
                             left=len(HOLDOUT_COLUMNS)))
    if report.variants:
        console.print(_table("A/B variants", VARIANT_COLUMNS, map(variant_cells, report.variants),
                             left=len(VARIANT_COLUMNS)))


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
