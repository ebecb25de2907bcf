"""The `replyflow` command."""

from __future__ import annotations

import logging
import sys

import click
from rich.console import Console

# `agent reply` warns as `serve` does; mode_lines is still importable from here
from bridge.cli_run import _warn_about_jobs, mode_lines

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
    from bridge.cli_run import serve, worker
    from bridge.cli_settings import settings
    from bridge.cli_templates import templates
    from bridge.cli_woocommerce import woocommerce
    from bridge import cli_connect_hubspot  # noqa: F401  (adds `connect hubspot`)
    from bridge import cli_db  # noqa: F401  (adds `db prune`)

    for command in (serve, worker):  # the long-running commands
        main.add_command(command)
    for group in (contacts, flows, jobs, campaign, templates, report, agents, connect, woocommerce,
                  settings):
        main.add_command(group)


_register()
