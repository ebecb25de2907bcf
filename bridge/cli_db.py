"""`replyflow db prune`: drop handled webhook copies and ended inbox sessions once they are of no use
(core/store/retention.py)."""

from __future__ import annotations

import click

from bridge.cli import db

__all__ = ["prune"]


@db.command("prune")
@click.option("--older-than", "older_than", default="30d", show_default=True,
              help="Keep copies received (and sessions ended) more recently than this (at least 7d).")
@click.option("--dry-run", is_flag=True, help="Only say how many would go.")
def prune(older_than: str, dry_run: bool) -> None:
    """Delete the raw copies of webhooks that were handled (and status webhooks for messages that
    were never ours) received before the cut-off; pending and failed ones stay, and so does every
    conversation. Inbox sessions that ended before the cut-off go too. Safe to run from cron while
    the bridge runs."""
    from core.flows.model import parse_duration
    from core.store.retention import RetentionError, count_prunable, count_prunable_sessions
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
    elif dry_run:
        click.echo(f"{total:,} handled webhook copies received before {cutoff} would be deleted")
    else:
        _delete_copies(rt, now, age, total, cutoff)
    sessions = count_prunable_sessions(rt.db.engine, now, age)
    if sessions:
        _sessions(rt, now, age, sessions, cutoff, dry_run)


def _delete_copies(rt, now, age, total: int, cutoff: str) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from core.store.retention import prune_inbound

    done = 0
    with Progress(TextColumn("deleting webhook copies"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=True) as bar:
        task = bar.add_task("prune", total=total)
        for count in prune_inbound(rt.db.engine, now, age):
            done += count
            bar.update(task, completed=min(done, total))
    click.echo(f"deleted {done:,} handled webhook copies received before {cutoff} (pending and failed ones kept)")


def _sessions(rt, now, age, count: int, cutoff: str, dry_run: bool) -> None:
    from core.store.retention import prune_sessions

    if dry_run:
        click.echo(f"{count:,} inbox sessions that ended before {cutoff} would be deleted")
        return
    click.echo(f"deleted {prune_sessions(rt.db.engine, now, age):,} inbox sessions that ended before {cutoff}")
