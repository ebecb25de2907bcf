"""`replyflow db prune`: drop handled webhook copies once they are of no use (core/store/retention.py)."""

from __future__ import annotations

import click

from bridge.cli import db

__all__ = ["prune"]


@db.command("prune")
@click.option("--older-than", "older_than", default="30d", show_default=True,
              help="Keep copies received more recently than this (at least 7d).")
@click.option("--dry-run", is_flag=True, help="Only say how many would go.")
def prune(older_than: str, dry_run: bool) -> None:
    """Delete the raw copies of webhooks that were handled (and status webhooks for messages that
    were never ours) received before the cut-off; pending and failed ones stay, and so does every
    conversation. Safe to run from cron while the bridge runs."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from core.flows.model import parse_duration
    from core.store.retention import RetentionError, count_prunable, prune_inbound
    from bridge.runtime import get_runtime

    try:
        age = parse_duration(older_than)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None
    rt = get_runtime()
    now = rt.clock.now()
    try:
        total = count_prunable(rt.db.engine, now, age)
    except RetentionError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None
    cutoff = (now - age).strftime("%Y-%m-%d %H:%M UTC")
    if total == 0:
        click.echo(f"nothing to delete: no handled webhook copy was received before {cutoff}")
        return
    if dry_run:
        click.echo(f"{total:,} handled webhook copies received before {cutoff} would be deleted")
        return
    done = 0
    with Progress(TextColumn("deleting webhook copies"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=True) as bar:
        task = bar.add_task("prune", total=total)
        for count in prune_inbound(rt.db.engine, now, age):
            done += count
            bar.update(task, completed=min(done, total))
    click.echo(f"deleted {done:,} handled webhook copies received before {cutoff} (pending and failed ones kept)")
