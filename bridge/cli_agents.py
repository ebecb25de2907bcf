"""The `replyflow agents` commands: inbox accounts from the terminal (the first admin starts here)."""

from __future__ import annotations

import os
from collections.abc import Callable

import click

__all__ = ["agents"]


@click.group()
def agents() -> None:
    """Agent accounts for the inbox."""


@agents.command("add")
@click.argument("email")
@click.option("--role", type=click.Choice(["agent", "admin"]), default="agent", show_default=True)
@click.option("--name", default=None, help="Shown in the inbox (default: the part of the email before @).")
@click.password_option(envvar="REPLYFLOW_AGENT_PASSWORD", help="Asked for when not given (at least 10 characters).")
def add(email: str, role: str, name: str | None, password: str) -> None:
    """Add an agent (or, with --role admin, an admin who can add the others in the inbox)."""
    from bridge.inbox.accounts import AccountError, create_agent
    from bridge.runtime import get_runtime
    from core.store import session_scope

    rt = get_runtime()
    try:
        with session_scope(rt.db) as s:
            agent = create_agent(s, email=email, password=password, role=role, name=name, now=rt.clock.now())
            line = f"{agent.email} added ({agent.role})"
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(line)
    hint = "" if os.environ.get("REPLYFLOW_PUBLIC_URL") else " (set REPLYFLOW_PUBLIC_URL to the address your agents use)"
    click.echo(f"sign in at {rt.settings.public_url}/inbox/login{hint}")


@agents.command("list")
def list_agents() -> None:
    """Every agent: email, role, active."""
    from sqlalchemy import select

    from bridge.runtime import get_runtime
    from core.store import session_scope
    from core.store.models import Agent

    with session_scope(get_runtime().db) as s:
        for a in s.scalars(select(Agent).order_by(Agent.email)):
            click.echo(f"{a.email}\t{a.role}\t{'active' if a.active else 'inactive'}")


def _change_agent(email: str, change: Callable) -> None:
    """``change(session, agent, now)`` on the agent ``email`` names, in one transaction; the line it
    returns is printed once that is committed. An AccountError (no such agent, the last active
    admin...) is the command's error, printed as ``Error: ...`` with exit status 1."""
    from bridge.inbox.accounts import AccountError, agent_by_email
    from bridge.runtime import get_runtime
    from core.store import session_scope

    rt = get_runtime()
    try:
        with session_scope(rt.db) as s:
            line = change(s, agent_by_email(s, email), rt.clock.now())
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(line)


@agents.command("deactivate")
@click.argument("email")
def deactivate_agent(email: str) -> None:
    """Stop an agent: no sign-in, their sessions end, their conversations go back to the queue."""
    from bridge.inbox.accounts import deactivate

    def change(s, agent, now) -> str:
        moved = deactivate(s, agent, now)
        return f"{agent.email} deactivated; {moved} conversation(s) back in the queue"

    _change_agent(email, change)


@agents.command("activate")
@click.argument("email")
def activate_agent(email: str) -> None:
    """Let a deactivated agent sign in again (with the password they had)."""
    from bridge.inbox.accounts import activate

    def change(s, agent, now) -> str:
        activate(agent)
        return f"{agent.email} activated"

    _change_agent(email, change)


@agents.command("set-password")
@click.argument("email")
@click.password_option(envvar="REPLYFLOW_AGENT_PASSWORD", help="Asked for when not given (at least 10 characters).")
def set_password_cmd(email: str, password: str) -> None:
    """Give an agent a new password: their sessions are signed out and a sign-in lockout is lifted."""
    from bridge.inbox import throttle
    from bridge.inbox.accounts import set_password

    def change(s, agent, now) -> str:
        set_password(s, agent, password, now)
        throttle.clear(s, agent.email)
        line = f"{agent.email} has a new password; their sessions are signed out"
        if not agent.active:
            line += f" (deactivated: replyflow agents activate {agent.email} lets them sign in)"
        return line

    _change_agent(email, change)


@agents.command("sign-out")
@click.argument("email")
def sign_out_agent(email: str) -> None:
    """Sign an agent out everywhere (a lost phone, a shop computer left signed in); the password and
    the account stay as they are."""
    from bridge.inbox.sessions import end_all

    def change(s, agent, now) -> str:
        return f"{agent.email} signed out everywhere: {end_all(s, agent.id, now)} session(s) ended"

    _change_agent(email, change)
