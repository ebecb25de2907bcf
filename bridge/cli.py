"""The `replyflow` command."""

from __future__ import annotations

import logging
import sys
import threading
import time

import click
from rich.console import Console

__all__ = ["main", "note_new_database", "mode_lines"]


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


class _Main(click.Group):
    """The `replyflow` group: a failure is one line on stderr and exit code 1, never a traceback
    (``--debug`` or ``REPLYFLOW_DEBUG=1`` shows it)."""

    def invoke(self, ctx: click.Context):
        from bridge.cli_errors import debug_from_env, one_line

        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            if ctx.params.get("debug") or debug_from_env():
                raise
            message = one_line(exc) or (f"unexpected {type(exc).__name__}: {str(exc).strip()[:200]} "
                                        "(a bug: run `replyflow --debug ...` for the traceback and report it)")
            raise click.ClickException(message) from None


@click.group(cls=_Main)
@click.option("-v", "--verbose", is_flag=True, help="Log debugging detail.")
@click.option("--debug", is_flag=True, help="Show the Python traceback when a command fails (or REPLYFLOW_DEBUG=1).")
@click.pass_context
def main(ctx: click.Context, verbose: bool, debug: bool) -> None:
    """replyflow: two-way WhatsApp conversations for shops and CRMs."""
    _logging(verbose)
    if ctx.invoked_subcommand not in (None, "serve", "demo", "db", "worker"):
        from bridge import runtime

        runtime.before_build = note_new_database  # when the command opens the database, not for --help
        ctx.call_on_close(lambda: setattr(runtime, "before_build", None))


def note_new_database(settings) -> None:
    """A command run from another folder than the bridge's would start a new, empty SQLite file
    (the default is relative to the current folder): say so before it does."""
    import os

    from core.store.db import sqlite_file

    database = sqlite_file(settings.database_url)
    if database is not None and not os.path.exists(database):
        click.echo(f"note: no database at {os.path.abspath(database)} yet, so this command starts a new "
                   "one; if your bridge runs from another folder, run it there or set DATABASE_URL", err=True)


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
@click.option("--workers", type=int, default=None,
              help="Under gunicorn (REDIS_URL set, not the built-in sandbox): sync worker processes "
                   "(default: 4 per core, at most 16).")
@click.option("--sandbox-port", type=int, default=None,
              help="Sandbox mode: the built-in WhatsApp sandbox's port (default: --port + 1; 0 = any free port).")
def serve(host: str, port: int, workers: int | None, sandbox_port: int | None) -> None:
    """Run the bridge (webhooks, inbox and APIs). Configured by environment variables (see README).

    Without REDIS_URL: one process that also runs the jobs (the embedded default). With REDIS_URL:
    gunicorn sync workers that only answer requests; run `replyflow worker` for the jobs. The
    built-in sandbox (no WHATSAPP_ACCESS_TOKEN nor WHATSAPP_API_BASE) always runs as one process."""
    from werkzeug.serving import run_simple

    from bridge.app import create_app
    from bridge.config import Settings
    from bridge.runtime import build_runtime

    settings = Settings.from_env()
    _check_port(host, port)
    if settings.redis_url and not (settings.sandbox and not settings.whatsapp_api_base):
        _serve_production(settings, host, port, workers)  # the sandbox is a one-process development mode
        return
    sandbox_url = sandbox = None
    if settings.sandbox and not settings.whatsapp_api_base:
        settings, sandbox = _start_sandbox(settings, f"http://{host}:{port}", sandbox_port, port + 1)
        sandbox_url = settings.whatsapp_api_base
    runtime = build_runtime(settings)
    if sandbox is not None:
        _sandbox_remembers(sandbox, runtime)
    app = create_app(runtime)
    if not settings.redis_url:
        _sweeper(5.0)  # embedded mode: timers and retries are swept in this process
    mode = "RQ on " + settings.redis_url if settings.redis_url else "in-process jobs"
    click.echo(f"replyflow bridge on http://{host}:{port} ({mode}; database {settings.database_url.split('@')[-1]})")
    for line in mode_lines(settings, gunicorn=False, sandboxed=sandbox is not None):
        click.echo(line)
    _warn_about_jobs(settings)
    if sandbox_url:
        click.echo(f"WhatsApp: no WHATSAPP_ACCESS_TOKEN set, so messages go to the built-in sandbox at {sandbox_url}")
        click.echo(f"  play a customer: curl -X POST {sandbox_url}/_sandbox/customers/15550002222/messages "
                   "-H 'Content-Type: application/json' -d '{\"text\": \"hello\"}'")
        click.echo("  other processes that call WhatsApp (worker, templates submit/sync; campaign send and agent reply "
                   f"without REDIS_URL) need: export WHATSAPP_API_BASE={sandbox_url}")
    run_simple(host, port, app, threaded=True, use_reloader=False)


def _check_port(host: str, port: int) -> None:
    """Refuse a --port the bridge cannot listen on before anything starts, naming it (and saying
    so when it is a replyflow already running there)."""
    import errno

    from bridge.servers import bind_error

    exc = bind_error(host, port)
    if exc is None:
        return
    if _replyflow_answers(host, port):
        raise click.ClickException(f"replyflow is already running on port {port} (its /healthz answers): stop it "
                                   "first, or start this one with another --port")
    if exc.errno == errno.EADDRINUSE:
        raise click.ClickException(f"port {port} is in use by another program: stop it, or choose another with --port")
    raise click.ClickException(f"the bridge cannot listen on {host}:{port} ({exc.strerror or exc}): "
                               "check --host and --port")


def _replyflow_answers(host: str, port: int) -> bool:
    import httpx

    probe = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, f"[{host}]" if ":" in host else host)
    try:
        answer = httpx.get(f"http://{probe}:{port}/healthz", timeout=1.0)
        return "status" in answer.json() and answer.status_code in (200, 503)  # replyflow's /healthz body
    except (httpx.HTTPError, ValueError):
        return False


def _warn_about_jobs(settings) -> None:
    """Say so when queued work will not run: Redis unreachable, or no `replyflow worker`."""
    from bridge.health import jobs_warning

    if (warning := jobs_warning(settings)) is not None:
        click.echo(f"warning: {warning}", err=True)


def _serve_production(settings, host: str, port: int, workers: int | None) -> None:
    import importlib.util

    from bridge import gunicorn_serve
    from bridge.runtime import build_runtime

    if importlib.util.find_spec("gunicorn") is None:
        raise click.ClickException("REDIS_URL is set, so the bridge runs under gunicorn, which is not installed: "
                                   "pip install 'replyflow[production]'")

    build_runtime(settings).close()  # migrate once, here, before the workers start
    n = workers or gunicorn_serve.default_workers()
    click.echo(f"replyflow bridge on http://{host}:{port} (gunicorn, {n} sync workers; jobs on RQ at "
               f"{settings.redis_url}: run `replyflow worker`; database {settings.database_url.split('@')[-1]})")
    for line in mode_lines(settings, gunicorn=True, sandboxed=False):
        click.echo(line)
    _warn_about_jobs(settings)
    gunicorn_serve.serve(host, port, n)


def mode_lines(settings, *, gunicorn: bool, sandboxed: bool) -> list[str]:
    """What `serve` says about how it runs: the ingest mode (with REDIS_URL), and why it is the
    built-in development server in one process rather than gunicorn (the rule in ``serve``)."""
    lines = []
    if settings.redis_url:
        lines.append("ingest: deferred (REPLYFLOW_INGEST): webhooks are only recorded; the dispatcher in "
                     "`replyflow worker` enqueues them" if settings.ingest == "deferred" else
                     "ingest: direct: each webhook enqueues its job on RQ (REPLYFLOW_INGEST=deferred leaves that "
                     "to `replyflow worker`)")
    if gunicorn:
        return lines
    if sandboxed:
        lines.append("sandbox mode: one process with the built-in development server, not gunicorn (gunicorn runs "
                     "when REDIS_URL is set and so is WHATSAPP_ACCESS_TOKEN, or WHATSAPP_API_BASE)")
    else:
        lines.append("no REDIS_URL: one process with the built-in development server that runs the jobs too "
                     "(gunicorn runs when REDIS_URL is set)")
    return lines


def _start_sandbox(settings, bridge_url: str, port: int | None, default_port: int):
    """The built-in WhatsApp sandbox on a loopback port (the same one each start, so an exported
    WHATSAPP_API_BASE stays right), wired to this bridge; it reports sent/delivered/read for what
    it accepted every couple of seconds, as WhatsApp does."""
    import threading
    from dataclasses import replace

    from core.clock import SystemClock
    from bridge.sandbox import Sandbox, create_sandbox_app
    from bridge.servers import ServerThread

    sandbox = Sandbox(clock=SystemClock(), app_secret=settings.whatsapp_app_secrets[0],
                      access_token=settings.whatsapp_access_token, phone_number_id=settings.whatsapp_phone_number_id,
                      display_phone=settings.whatsapp_display_phone, waba_id=settings.whatsapp_waba_id,
                      webhook_url=f"{bridge_url.replace('0.0.0.0', '127.0.0.1')}/webhooks/whatsapp")
    try:
        server = ServerThread(create_sandbox_app(sandbox), port=default_port if port is None else port)
    except OSError as exc:
        which = f"{default_port} (--port + 1)" if port is None else str(port)
        raise click.ClickException(f"the built-in WhatsApp sandbox cannot listen on its port {which} ({exc.strerror}): "
                                   "choose another with --sandbox-port (0 = any free port)") from None

    def report_statuses() -> None:
        while True:
            time.sleep(2.0)
            try:
                sandbox.deliver_statuses("read")
            except Exception:  # noqa: BLE001 - the bridge may be starting or stopping; next round
                logging.getLogger(__name__).debug("sandbox statuses not delivered", exc_info=True)

    threading.Thread(target=report_statuses, name="sandbox-statuses", daemon=True).start()
    return replace(settings, whatsapp_api_base=server.url), sandbox


def _sandbox_remembers(sandbox, runtime) -> None:
    """The sandbox starts empty; WhatsApp does not forget open 24-hour windows when the bridge
    restarts, so seed them from the customers' last messages on record."""
    from datetime import timedelta

    from sqlalchemy import func, select

    from core.store import session_scope
    from core.store.models import Contact, Message

    since = runtime.clock.now() - timedelta(hours=24)
    with session_scope(runtime.db) as s:
        rows = s.execute(select(Contact.wa_id, func.max(Message.created_at)).join(Message, Message.contact_id == Contact.id)
                         .where(Message.direction == "in", Message.created_at > since, Contact.wa_id.is_not(None))
                         .group_by(Contact.wa_id)).all()
    for wa_id, last in rows:
        sandbox.last_inbound[wa_id] = last


@main.command()
@click.option("--sweep-every", default=5.0, show_default=True, help="Seconds between sweeps of due work.")
def worker(sweep_every: float) -> None:
    """Run an RQ worker for all replyflow queues (needs REDIS_URL), with the sweeper."""
    from rq import Worker
    from rq.serializers import JSONSerializer

    from bridge.health import check_worker_database, describe_url
    from bridge.queue import freeze_heap
    from bridge.runtime import get_runtime, graph_base

    runtime = get_runtime()
    if not runtime.settings.redis_url:
        raise click.UsageError("set REDIS_URL to run a worker; without it, `replyflow serve` runs jobs itself")
    graph_base(runtime.settings)  # where its sends go, checked before it takes any job
    click.echo(f"replyflow worker: database {describe_url(runtime.settings.database_url)}, Redis "
               f"{describe_url(runtime.settings.redis_url)}, queues {', '.join(runtime.queue.queues)}")
    click.echo(check_worker_database(runtime.db, runtime.queue.redis))  # refuses another database than the bridge's
    _sweeper(sweep_every)
    if runtime.settings.ingest == "deferred":
        from bridge.dispatch import start_dispatcher

        start_dispatcher(runtime)
    queues = list(runtime.queue.queues.values())
    freeze_heap()
    Worker(queues, connection=runtime.queue.redis, serializer=JSONSerializer).work(with_scheduler=True)


@main.group()
def agent() -> None:
    """Act as an agent from the terminal."""


@agent.command("reply")
@click.argument("conversation_id", type=int)
@click.argument("text")
@click.option("--name", default="agent", show_default=True, help="The agent's name in the history.")
def agent_reply(conversation_id: int, text: str, name: str) -> None:
    """Send TEXT to a conversation (inside the 24-hour window).

    Exits 0 once the reply is saved: "queued", or "saved, not yet queued" when Redis cannot be
    reached (a worker's sweeper queues it once it can reach Redis: do not send it again); exits 1
    when the reply is refused and nothing was saved."""
    from core import handoff
    from core.errors import PayloadError
    from core.store import session_scope
    from core.store.models import Conversation
    from bridge.runtime import get_runtime, graph_base

    rt = get_runtime()
    if not rt.settings.redis_url:
        graph_base(rt.settings)  # this process sends it: refuse before recording a message it cannot send
    with session_scope(rt.db) as s:
        conv = s.get(Conversation, conversation_id)
        if conv is None:
            raise click.ClickException(f"no conversation {conversation_id}")
        try:
            msg, decision = handoff.agent_reply(s, conv, name, text, rt.catalogue, rt.clock.now())
        except PayloadError as exc:
            raise click.ClickException(str(exc)) from None
        message_id, status = msg.id, msg.status
    if status != "queued":
        raise click.ClickException(f"not sent: {decision.reason}")
    if not _enqueue_saved_reply(rt, message_id):
        return
    if hasattr(rt.queue, "drain"):
        rt.queue.drain()
    click.echo(f"message {message_id} queued")
    _warn_about_jobs(rt.settings)


def _enqueue_saved_reply(rt, message_id: int) -> bool:
    """Queue the saved reply; when Redis cannot be reached, say that it is saved and will go out
    anyway, so that nobody sends it twice (False)."""
    from redis.exceptions import ConnectionError as RedisConnectionError, TimeoutError as RedisTimeout

    from bridge.health import describe_url

    try:
        rt.queue.enqueue("send_message", message_id)
        return True
    except (RedisConnectionError, RedisTimeout) as exc:
        cause = str(exc).strip().split("\n")[0] or type(exc).__name__
        click.echo(f"message {message_id} saved, not yet queued: cannot reach Redis at "
                   f"{describe_url(rt.settings.redis_url)} ({cause}). It goes out when a "
                   "`replyflow worker` can reach Redis (its sweeper queues saved replies): do not send it again")
        return False


# ---------------------------------------------------------------- contacts: consent proof and privacy by hand

@main.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Bring the database at DATABASE_URL to the newest schema (also done on every start)."""
    from bridge.config import Settings
    from core.store import Database
    from core.store.migrate import current, upgrade

    settings = Settings.from_env()
    database = Database(settings.database_url)
    before = current(database.engine)
    upgrade(database.engine)
    click.echo(f"database {settings.database_url.split('@')[-1]}: {before or 'empty'} → {current(database.engine)}")
    database.dispose()


def _register() -> None:
    from bridge import cli_connect_shopify  # noqa: F401  (adds `connect shopify`)
    from bridge.cli_agents import agents
    from bridge.cli_connect import connect
    from bridge.cli_contacts import contacts
    from bridge.cli_flows import flows
    from bridge.cli_ops import campaign, jobs
    from bridge.cli_report import report
    from bridge.cli_settings import settings
    from bridge.cli_templates import templates
    from bridge.cli_woocommerce import woocommerce
    from bridge import cli_connect_hubspot  # noqa: F401  (adds `connect hubspot`)
    from bridge import cli_db  # noqa: F401  (adds `db prune`)

    for group in (contacts, flows, jobs, campaign, templates, report, agents, connect, woocommerce,
                  settings):
        main.add_command(group)


_register()
