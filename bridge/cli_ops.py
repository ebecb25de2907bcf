"""The `replyflow jobs / campaign` commands: failed jobs and campaigns."""

from __future__ import annotations

import sys

import click
from rich.console import Console

__all__ = ["jobs", "campaign"]

@click.group()
def jobs() -> None:
    """List and retry failed jobs (kept by RQ when REDIS_URL is set)."""


def _rq_runner():
    from bridge.failed_jobs import NOT_KEPT, keeps_failed_jobs
    from bridge.runtime import get_runtime

    runner = get_runtime().queue
    return runner if keeps_failed_jobs(runner) else click.echo(NOT_KEPT)  # None: nothing is kept


@jobs.command("failed")
@click.option("--queue", "queue_name", type=click.Choice(["inbound", "flows", "sends", "writebacks"]),
              help="Only this queue.")
def jobs_failed(queue_name: str | None) -> None:
    """List failed jobs: id, queue, when, function and arguments, and the exception's last line."""
    from bridge.failed_jobs import format_job, list_failed

    if (runner := _rq_runner()) is None:
        return
    failed = list_failed(runner, queue_name)
    for job in failed:
        click.echo(format_job(job))
    click.echo(f"{len(failed)} failed job(s)")


@jobs.command("retry")
@click.argument("job_ids", nargs=-1)
@click.option("--all", "retry_all", is_flag=True, help="Requeue every failed job.")
def jobs_retry(job_ids: tuple[str, ...], retry_all: bool) -> None:
    """Put failed JOB_IDS (or, with --all, every failed job) back on their queues; exits 1 if one was not found."""
    from bridge.failed_jobs import retry

    from bridge.failed_jobs import NOT_KEPT, keeps_failed_jobs
    from bridge.runtime import get_runtime

    if bool(job_ids) == retry_all:
        raise click.UsageError("give one or more JOB_IDs, or --all")
    runner = get_runtime().queue
    if not keeps_failed_jobs(runner):
        if job_ids:  # the jobs named cannot be found: exit 1, as for any job not found
            raise click.ClickException(NOT_KEPT)
        click.echo(NOT_KEPT)
        return
    requeued = retry(runner, None if retry_all else job_ids)
    missing = [j for j in job_ids if j not in requeued]
    for job_id in requeued:
        click.echo(f"requeued {job_id}")
    for job_id in missing:
        click.echo(f"not requeued {job_id}: in no failed job registry", err=True)
    click.echo(f"{len(requeued)} job(s) requeued")
    sys.exit(1 if missing else 0)



@click.group()
def campaign() -> None:
    """Send an approved template to a segment of contacts (a CSV file), resumably."""


@campaign.command("send")
@click.argument("template")
@click.option("--segment", required=True, metavar="FILE.csv",
              help="Contacts, one a row: a 'phone' column; optional country, first_name, last_name, and any "
                   "template parameter as a column (a column wins over --param).")
@click.option("--name", help="The campaign's name; run the same command again to resume it. "
                             "Default: TEMPLATE:FILE-NAME.")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="A parameter value for every row.")
@click.option("--language", help="The template's language, e.g. en_US (default: its first).")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1), help="Rows per transaction.")
@click.option("--workspace", default="default", show_default=True, help="Workspace slug.")
def campaign_send(template: str, segment: str, name: str | None, params: tuple[str, ...], language: str | None,
                  batch_size: int, workspace: str) -> None:
    """Send TEMPLATE to every contact in the segment, through the policy gate (consent, quiet hours, cap)."""
    from pathlib import Path

    from bridge.campaigns import CampaignError, CampaignSpec, ConsoleProgress, parse_params, print_report, send_campaign
    from redis.exceptions import ConnectionError as RedisConnectionError, TimeoutError as RedisTimeout

    from bridge.health import jobs_warning
    from bridge.queue import freeze_heap
    from bridge.runtime import get_runtime, graph_base

    path = Path(segment)
    console = Console(highlight=False)
    try:
        spec = CampaignSpec(name=name or f"{template}:{path.name}", template=template, segment=path,
                            params=parse_params(params), language=language, workspace=workspace)
        rt = get_runtime()
        if not rt.settings.redis_url:
            graph_base(rt.settings)  # this process sends: refuse before deciding a single row
        freeze_heap()
        shown = ConsoleProgress(console, spec.name)
        try:
            report = send_campaign(rt, spec, batch_size=batch_size, on_start=shown.on_start, on_batch=shown.on_batch)
        finally:
            shown.close()
    except CampaignError as exc:
        raise click.ClickException(str(exc)) from None
    except (RedisConnectionError, RedisTimeout) as exc:  # after a batch was saved: say what is saved
        raise click.ClickException(_stopped_without_redis(rt, spec, exc)) from None
    if hasattr(rt.queue, "drain"):  # embedded mode: this process sends what it queued
        rt.queue.drain(timeout=max(30.0, report.tally.queued * 0.5))
    print_report(console, report)
    if (report.tally.queued or report.tally.deferred) and (warning := jobs_warning(rt.settings)) is not None:
        click.echo(f"warning: {warning}", err=True)


def _stopped_without_redis(rt, spec, exc: Exception) -> str:
    """Redis went away after some batches were decided and saved: what is saved goes out anyway,
    and the same command continues the rest (nothing is queued twice)."""
    from bridge.campaigns import campaign_status
    from bridge.health import describe_url

    status = campaign_status(rt, spec.name, spec.workspace)
    cause = str(exc).strip().split("\n")[0] or type(exc).__name__
    return (f"campaign {spec.name} stopped after row {status['campaign']['last_row']}: cannot reach Redis at "
            f"{describe_url(rt.settings.redis_url)} ({cause}). Its {status['outbox'].get('queued', 0)} message(s) "
            "waiting to be sent are saved and go out when a `replyflow worker` can reach Redis, none twice; run the "
            "same command again once Redis is reachable to decide the remaining rows")


@campaign.command("status")
@click.argument("name")
@click.option("--workspace", default="default", show_default=True, help="Workspace slug.")
def campaign_status(name: str, workspace: str) -> None:
    """Show a campaign's counters and how its messages fared (sent, delivered, read, failed).
    NAME is its name or the number `campaign send` showed (#N)."""
    from bridge.campaigns import CampaignError, campaign_status as status_of, print_status
    from bridge.runtime import get_runtime

    try:
        status = status_of(get_runtime(), name, workspace)
    except CampaignError as exc:
        raise click.ClickException(str(exc)) from None
    print_status(Console(highlight=False), status)
