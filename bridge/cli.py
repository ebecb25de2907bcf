"""The `replyflow` command."""

from __future__ import annotations

import logging
import sys
import threading
import time

import click
from rich.console import Console

__all__ = ["main"]


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log debugging detail.")
def main(verbose: bool) -> None:
    """replyflow: two-way WhatsApp conversations for shops and CRMs."""
    _logging(verbose)


@main.command()
def demo() -> None:
    """Play the abandoned-cart story end to end on this machine (nothing to install or configure)."""
    from bridge.demo import DemoFailed, run_demo

    console = Console()
    try:
        run_demo(console)
    except DemoFailed as exc:
        console.print(f"[red]demo failed: {exc}[/red]")
        sys.exit(1)


def _sweeper(interval: float) -> None:
    from bridge import jobs

    def loop() -> None:
        while True:
            try:
                jobs.sweep()
            except Exception:  # keep sweeping; the error is in the log
                logging.getLogger("replyflow.sweeper").exception("sweep failed")
            time.sleep(interval)

    threading.Thread(target=loop, name="replyflow-sweeper", daemon=True).start()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Run the bridge (webhooks and agent API). Configured by environment variables (see README)."""
    from werkzeug.serving import run_simple

    from bridge.app import create_app
    from bridge.config import Settings
    from bridge.runtime import build_runtime

    settings = Settings.from_env()
    sandbox_url = None
    if settings.sandbox and not settings.whatsapp_api_base:
        settings, sandbox_url = _start_sandbox(settings, f"http://{host}:{port}")
    runtime = build_runtime(settings)
    app = create_app(runtime)
    if not settings.redis_url:
        _sweeper(5.0)  # embedded mode: timers and retries are swept in this process
    mode = "RQ on " + settings.redis_url if settings.redis_url else "in-process jobs"
    click.echo(f"replyflow bridge on http://{host}:{port} ({mode}; database {settings.database_url.split('@')[-1]})")
    if sandbox_url:
        click.echo(f"WhatsApp: no WHATSAPP_ACCESS_TOKEN set, so messages go to the built-in sandbox at {sandbox_url}")
        click.echo(f"  play a customer: curl -X POST {sandbox_url}/_sandbox/customers/15550002222/messages "
                   "-H 'Content-Type: application/json' -d '{\"text\": \"hello\"}'")
    run_simple(host, port, app, threaded=True, use_reloader=False)


def _start_sandbox(settings, bridge_url: str):
    """The built-in WhatsApp sandbox on a loopback port, wired to this bridge."""
    from dataclasses import replace

    from core.clock import SystemClock
    from bridge.sandbox import Sandbox, create_sandbox_app
    from bridge.servers import ServerThread

    sandbox = Sandbox(clock=SystemClock(), app_secret=settings.whatsapp_app_secrets[0],
                      access_token=settings.whatsapp_access_token, phone_number_id=settings.whatsapp_phone_number_id,
                      display_phone=settings.whatsapp_display_phone, waba_id=settings.whatsapp_waba_id,
                      webhook_url=f"{bridge_url.replace('0.0.0.0', '127.0.0.1')}/webhooks/whatsapp")
    server = ServerThread(create_sandbox_app(sandbox))
    return replace(settings, whatsapp_api_base=server.url), server.url


@main.command()
@click.option("--sweep-every", default=5.0, show_default=True, help="Seconds between sweeps of due work.")
def worker(sweep_every: float) -> None:
    """Run an RQ worker for all replyflow queues (needs REDIS_URL), with the sweeper."""
    from rq import Worker
    from rq.serializers import JSONSerializer

    from bridge.runtime import get_runtime

    runtime = get_runtime()
    if not runtime.settings.redis_url:
        raise click.UsageError("set REDIS_URL to run a worker; without it, `replyflow serve` runs jobs itself")
    _sweeper(sweep_every)
    queues = list(runtime.queue.queues.values())
    Worker(queues, connection=runtime.queue.redis, serializer=JSONSerializer).work(with_scheduler=True)


@main.group()
def agent() -> None:
    """Act as an agent from the terminal."""


@agent.command("reply")
@click.argument("conversation_id", type=int)
@click.argument("text")
@click.option("--name", default="agent", show_default=True, help="The agent's name in the history.")
def agent_reply(conversation_id: int, text: str, name: str) -> None:
    """Send TEXT to a conversation (inside the 24-hour window)."""
    from core import handoff
    from core.store import session_scope
    from core.store.models import Conversation
    from bridge.runtime import get_runtime

    rt = get_runtime()
    with session_scope(rt.db) as s:
        conv = s.get(Conversation, conversation_id)
        if conv is None:
            raise click.ClickException(f"no conversation {conversation_id}")
        msg, decision = handoff.agent_reply(s, conv, name, text, rt.catalogue, rt.clock.now())
        message_id, status = msg.id, msg.status
    if status != "queued":
        raise click.ClickException(f"not sent: {decision.reason}")
    rt.queue.enqueue("send_message", message_id)
    if hasattr(rt.queue, "drain"):
        rt.queue.drain()
    click.echo(f"message {message_id} queued")


# ---------------------------------------------------------------- contacts: consent proof and privacy by hand

_COUNTRY_HELP = "Country (ISO code, e.g. US) that gives a national number its meaning."


@main.group()
def contacts() -> None:
    """Look up, export or erase one contact by phone number."""


def _find_contact(s, workspace: str, phone: str, country: str | None):
    from sqlalchemy import select

    from core import privacy
    from core.errors import PhoneError
    from core.store.models import Workspace

    ws = s.scalar(select(Workspace).where(Workspace.slug == workspace))
    if ws is None:
        raise click.ClickException(f"no workspace {workspace!r}")
    try:
        contact = privacy.find_contact(s, ws.id, phone, country)
    except PhoneError as exc:
        raise click.ClickException(f"not a phone number: {exc}") from None
    if contact is None:
        raise click.ClickException("no contact with that phone number")
    return contact


def _export(phone: str, country: str | None, workspace: str) -> dict:
    from core import privacy
    from core.store import session_scope
    from bridge.runtime import get_runtime

    rt = get_runtime()
    with session_scope(rt.db) as s:
        data = privacy.export_contact(s, _find_contact(s, workspace, phone, country).id)
    data["generated_at"] = rt.clock.now().isoformat()
    return data


def _consent_line(current: dict) -> str:
    if current["all_opt_out"]:
        state = "opted out of all messages"
    elif current["marketing_opt_in"]:
        state = "marketing: opted in"
    elif current["marketing_opt_out"]:
        state = "marketing: opted out"
    else:
        return "marketing: no consent recorded"
    if current["marketing_source"]:
        state += f" (last marketing entry: {current['marketing_source']} at {current['marketing_at']})"
    return state


def _print_contact(console: Console, data: dict) -> None:
    from rich.table import Table
    from rich.text import Text

    c = data["contact"]
    name = " ".join(p for p in (c["first_name"], c["last_name"]) if p) or c["profile_name"] or "-"
    console.print(Text(f"contact #{c['id']}: {name}", style="bold"))
    for label, key in (("phone", "phone_e164"), ("WhatsApp id", "wa_id"), ("user id", "user_id"),
                       ("email", "email"), ("created", "created_at")):
        console.print(Text(f"  {label}: {c[key] or '-'}"))
    console.print(Text("  links: " + (", ".join(f"{x['platform']}:{x['external_id']}" for x in data["links"]) or "-")))
    console.print(Text(f"  {len(data['conversations'])} conversation(s), {len(data['messages'])} message(s), "
                       f"{len(data['carts'])} cart(s), {len(data['flow_runs'])} flow run(s)"))
    console.print(Text("consent now: " + _consent_line(data["consent"]["current"]), style="bold"))
    table = Table(title="consent ledger", title_justify="left")
    for column in ("time", "purpose", "action", "source"):
        table.add_column(column, no_wrap=True)
    table.add_column("evidence", overflow="fold")
    for e in data["consent"]["ledger"]:
        table.add_row(*(Text(str(e[k])) for k in ("at", "purpose", "action", "source", "evidence")))
    console.print(table if data["consent"]["ledger"] else Text("consent ledger: empty"))


@contacts.command("show")
@click.argument("phone")
@click.option("--country", help=_COUNTRY_HELP)
@click.option("--workspace", default="default", show_default=True, help="Workspace slug.")
def contacts_show(phone: str, country: str | None, workspace: str) -> None:
    """Show a contact, its consent state and the whole consent ledger (when and how it opted in or out)."""
    _print_contact(Console(), _export(phone, country, workspace))


@contacts.command("export")
@click.argument("phone")
@click.option("--country", help=_COUNTRY_HELP)
@click.option("--out", type=click.Path(dir_okay=False), help="Write the JSON here instead of standard output.")
@click.option("--workspace", default="default", show_default=True, help="Workspace slug.")
def contacts_export(phone: str, country: str | None, out: str | None, workspace: str) -> None:
    """Export everything held about a contact as JSON."""
    import json

    from core import privacy

    data = _export(phone, country, workspace)
    if out is None:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True))
        return
    privacy.write_export(out, data)
    click.echo(f"export of contact #{data['contact']['id']} written to {out}")


@contacts.command("erase")
@click.argument("phone")
@click.option("--country", help=_COUNTRY_HELP)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--workspace", default="default", show_default=True, help="Workspace slug.")
def contacts_erase(phone: str, country: str | None, yes: bool, workspace: str) -> None:
    """Erase a contact: personal fields, message texts and consent evidence go; counts stay."""
    from core import phones, privacy
    from core.store import session_scope
    from bridge.runtime import get_runtime

    rt = get_runtime()
    with session_scope(rt.db) as s:
        contact = _find_contact(s, workspace, phone, country)
        contact_id, masked = contact.id, phones.mask(contact.phone_e164 or "")
    if not yes:
        click.confirm(f"Erase contact #{contact_id} ({masked})? This cannot be undone", abort=True)
    with session_scope(rt.db) as s:
        privacy.erase_contact(s, contact_id, rt.clock.now(), salt=rt.settings.erase_salt)
    click.echo(f"contact #{contact_id} ({masked}) erased")


# ---------------------------------------------------------------- flows: check a flow file, play a run

@main.group()
def flows() -> None:
    """Check flow files and play a flow run in the terminal."""


@flows.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def flows_validate(files: tuple[str, ...]) -> None:
    """Check flow FILEs: the flow language, and each template's name and parameters against the catalogue."""
    from bridge.flowsim import check_file

    failed = 0
    for path in files:
        flow, problems = check_file(path)
        if flow is not None:
            click.echo(f"ok: {path} ({len(flow.steps)} steps)")
        for problem in problems:
            click.echo(problem, err=True)
        failed += bool(problems)
    if failed:
        click.echo(f"{failed} of {len(files)} file(s) failed", err=True)
        sys.exit(1)


_SIM_STYLES = (("gate:", "yellow"), ("📤", "bold green"), ("→ agent", "bold magenta"), ("💬", "bold cyan"),
               ("⏩", "cyan"), ("  ·", "dim"), ("■", "bold"), ("⚠", "yellow"), ("✗", "red"), ("consent:", "yellow"))


def _sim_echo(console: Console):
    from rich.text import Text

    def echo(line: str) -> None:
        style = next((s for prefix, s in _SIM_STYLES if line.startswith(prefix)), "")
        console.print(Text(line, style=style), soft_wrap=True)

    return echo


@flows.command("simulate")
@click.argument("flow")
@click.option("--event", "event_ref", required=True, metavar="FILE",
              help="The triggering event (YAML or JSON: contact, cart, settings), or an example's name "
                   "such as cart_abandoned.")
@click.option("--replies", "replies_ref", metavar="FILE",
              help="The customer's replies, a YAML list of: button: ID | text: TEXT | wait: true | after: 30m. "
                   "Without it you answer at the prompt.")
@click.option("--at", "at", metavar="ISO", help="When the event happens (ISO 8601; UTC unless it has an offset). "
                                                "Default 2026-01-05T10:00:00Z.")
def flows_simulate(flow: str, event_ref: str, replies_ref: str | None, at: str | None) -> None:
    """Play a run of FLOW (a shipped flow's name or a flow file) with its own clock, the real engine and
    the real policy gate. Nothing is stored or sent. Exits 1 if the run fails."""
    from datetime import datetime, timezone

    from bridge.flowsim import DEFAULT_START, SimulationError, load_event, load_flow_ref, load_replies, simulate
    from core.errors import FlowDefinitionError

    try:
        start = datetime.fromisoformat(at) if at else DEFAULT_START
    except ValueError:
        raise click.BadParameter(f"not an ISO 8601 time: {at!r}", param_hint="--at") from None
    start = start if start.tzinfo else start.replace(tzinfo=timezone.utc)
    try:
        the_flow, event = load_flow_ref(flow), load_event(event_ref)
        replies = load_replies(replies_ref) if replies_ref else None
        ask = None if replies_ref else (lambda prompt: click.prompt(prompt))
        state = simulate(the_flow, event, replies, start, _sim_echo(Console(highlight=False)), ask)
    except (SimulationError, FlowDefinitionError) as exc:
        raise click.ClickException(str(exc)) from None
    if state.status == "failed":
        sys.exit(1)


# ---------------------------------------------------------------- jobs: failed RQ jobs, listed and retried

@main.group()
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

    if bool(job_ids) == retry_all:
        raise click.UsageError("give one or more JOB_IDs, or --all")
    if (runner := _rq_runner()) is None:
        return
    requeued = retry(runner, None if retry_all else job_ids)
    missing = [j for j in job_ids if j not in requeued]
    for job_id in requeued:
        click.echo(f"requeued {job_id}")
    for job_id in missing:
        click.echo(f"not requeued {job_id}: in no failed job registry", err=True)
    click.echo(f"{len(requeued)} job(s) requeued")
    sys.exit(1 if missing else 0)
