"""The long-running commands: `replyflow serve` (the bridge: one process with the built-in
development server, or gunicorn workers when REDIS_URL is set) and `replyflow worker` (RQ jobs),
with the sweeper loop they share, the port check, the built-in sandbox's start-up and the
warnings they print. Registered on the `replyflow` group by ``bridge.cli``."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable

import click

__all__ = ["serve", "worker", "mode_lines"]


def _show_flow_notes() -> None:
    """Show what the flows decide (`flows: ...` at INFO on bridge.jobs: why a flow did not start, a
    send deferred by quiet hours) in a process that runs jobs; the README sends admins there. The
    rest stays at warnings (``-v`` shows everything)."""
    flows_log = logging.getLogger("bridge.jobs")
    if not flows_log.isEnabledFor(logging.INFO):
        flows_log.setLevel(logging.INFO)


def _sweeper(interval: float, go_on: Callable[[], bool] | None = None) -> None:
    """Sweep every ``interval`` s in a daemon thread; ``go_on``, when given, is asked first each
    round and ends the loop when it says False."""
    from bridge import jobs

    def loop() -> None:
        while go_on is None or go_on():
            try:
                jobs.sweep()
            except Exception:  # keep sweeping; the error is in the log
                logging.getLogger("replyflow.sweeper").exception("sweep failed")
            time.sleep(interval)

    threading.Thread(target=loop, name="replyflow-sweeper", daemon=True).start()


@click.command()
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
    from bridge.health import describe_url
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
    if settings.inbox_stream_seconds is None:  # a thread per open inbox page: its stream may stay open
        from bridge.inbox.views import LONG_STREAM

        app.config["INBOX_SSE_MAX"] = LONG_STREAM
    if not settings.redis_url:
        _show_flow_notes()  # this process runs the jobs
        _sweeper(5.0)  # embedded mode: timers and retries are swept in this process
    mode = "RQ on " + describe_url(settings.redis_url) if settings.redis_url else "in-process jobs"
    click.echo(f"replyflow bridge on http://{host}:{port} ({mode}; database {describe_url(settings.database_url)})")
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
    from bridge.health import describe_url
    from bridge.runtime import build_runtime

    if importlib.util.find_spec("gunicorn") is None:
        raise click.ClickException("REDIS_URL is set, so the bridge runs under gunicorn, which is not installed: "
                                   "pip install 'replyflow[production]'")

    build_runtime(settings).close()  # migrate once, here, before the workers start
    n = workers or gunicorn_serve.default_workers()
    click.echo(f"replyflow bridge on http://{host}:{port} (gunicorn, {n} sync workers; jobs on RQ at "
               f"{describe_url(settings.redis_url)}: run `replyflow worker`; "
               f"database {describe_url(settings.database_url)})")
    for line in mode_lines(settings, gunicorn=True, sandboxed=False):
        click.echo(line)
    _warn_about_jobs(settings)
    if settings.sandbox:  # beside a sandbox another `serve` runs: say so, or it looks like a real number
        click.echo("WhatsApp: no WHATSAPP_ACCESS_TOKEN set (sandbox values), so messages go to the sandbox at "
                   f"WHATSAPP_API_BASE={settings.whatsapp_api_base}")
    if settings.inbox_stream_seconds:  # set by hand: 0 (the default under gunicorn) is None or 0.0 here
        click.echo(f"warning: REPLYFLOW_INBOX_STREAM_SECONDS={settings.inbox_stream_seconds:g}: each open inbox page "
                   f"holds one of the {n} sync workers that answer webhooks for that long (past gunicorn's 30 s "
                   "timeout the worker is killed); keep it 0 under `replyflow serve`", err=True)
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


@click.command()
@click.option("--sweep-every", default=5.0, show_default=True, help="Seconds between sweeps of due work.")
def worker(sweep_every: float) -> None:
    """Run an RQ worker for all replyflow queues (needs REDIS_URL), with the sweeper."""
    from rq import Worker
    from rq.serializers import JSONSerializer

    from redis.exceptions import RedisError

    from bridge.health import check_worker_database, database_moved, describe_url, worker_options
    from bridge.queue import freeze_heap
    from bridge.runtime import get_runtime, graph_base
    from core.store.identity import database_id

    runtime = get_runtime()
    if not runtime.settings.redis_url:
        raise click.UsageError("set REDIS_URL to run a worker; without it, `replyflow serve` runs jobs itself")
    graph_base(runtime.settings)  # where its sends go, checked before it takes any job
    click.echo(f"replyflow worker: database {describe_url(runtime.settings.database_url)}, Redis "
               f"{describe_url(runtime.settings.redis_url)}, queues {', '.join(runtime.queue.queues)}")
    click.echo(check_worker_database(runtime.db, runtime.queue.redis))  # refuses another database than the bridge's
    own_id, moved = database_id(runtime.db), threading.Event()

    def same_database() -> bool:
        """Each sweep round: has the bridge since recorded another database (restarted on another
        DATABASE_URL, or this REDIS_URL now reaches another bridge's Redis)?"""
        try:
            error = database_moved(runtime.queue.redis, own_id, runtime.settings.database_url)
        except RedisError:
            return True  # RQ's own loop reports an unreachable Redis; asked again next round
        if error is None:
            return True
        logging.getLogger("replyflow.worker").error(error)
        moved.set()  # the dispatcher stops too
        os.kill(os.getpid(), signal.SIGTERM)  # RQ's warm shutdown: takes no other job
        return False

    _show_flow_notes()
    _sweeper(sweep_every, go_on=same_database)
    if runtime.settings.ingest == "deferred":
        from bridge.dispatch import start_dispatcher

        start_dispatcher(runtime, stop=moved)
    queues = list(runtime.queue.queues.values())
    freeze_heap()
    Worker(queues, connection=runtime.queue.redis, serializer=JSONSerializer,
           **worker_options()).work(with_scheduler=True)  # beats often enough for /healthz
    if moved.is_set():
        raise SystemExit(3)  # not a clean stop: a supervisor should not take it for one
