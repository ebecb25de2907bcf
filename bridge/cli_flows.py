"""The `replyflow flows` commands: validate and simulate flows."""

from __future__ import annotations

import sys

import click
from rich.console import Console

__all__ = ["flows"]

@click.group()
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
