"""The `replyflow agents` commands: inbox accounts from the terminal (the first admin starts here)."""

from __future__ import annotations

import os

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
