"""The `replyflow report` command: conversation metrics as tables, CSV and a PNG chart."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click
from rich.console import Console

__all__ = ["report"]


def _day(value: str | None, name: str) -> datetime | None:
    from bridge.report_text import period_bound

    try:
        return period_bound(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=name) from None


@click.command("report")
@click.option("--since", metavar="DATE", help="Runs started on or after DATE (ISO, UTC).")
@click.option("--until", metavar="DATE", help="Runs started before DATE (ISO, UTC).")
@click.option("--window", default="7d", show_default=True,
              help="Attribution window: a reply, opt-out or order counts within it (e.g. 24h, 7d).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Also write the figures to this CSV file.")
@click.option("--png", "png_path", type=click.Path(dir_okay=False), help="Also draw sends and conversions per day.")
def report(since: str | None, until: str | None, window: str, csv_path: str | None, png_path: str | None) -> None:
    """Per flow, template and step: sent, delivered, read, replies, conversation length, handoffs,
    opt-outs, conversions and recovered revenue; hold-out lift and A/B variants with confidence intervals."""
    from sqlalchemy import select

    from core.flows.definition import parse_duration
    from core.metrics import report as build
    from core.store import session_scope
    from core.store.models import Workspace
    from bridge.report_output import print_report, write_csv, write_png
    from bridge.runtime import get_runtime

    try:
        span = parse_duration(window)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--window") from None
    for path, hint in ((csv_path, "--csv"), (png_path, "--png")):  # refused before the work, not after
        folder = Path(path).absolute().parent if path else None
        if folder is not None and not folder.is_dir():
            raise click.BadParameter(f"the folder {folder} does not exist", param_hint=hint)
    rt = get_runtime()
    with session_scope(rt.db) as s:
        ws = s.scalar(select(Workspace).where(Workspace.slug == "default"))
        result = build(s, ws.id, since=_day(since, "--since"), until=_day(until, "--until"), window=span)
    console = Console()
    if not console.is_terminal:
        console.width = 220
    print_report(result, console)
    if csv_path:
        rows = write_csv(result, csv_path)
        click.echo(f"wrote {rows} row(s) to {csv_path}")
    if png_path:
        write_png(result, png_path)
        click.echo(f"wrote the chart to {png_path}")
