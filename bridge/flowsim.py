"""`replyflow flows validate|simulate`: check flow files, and play a flow run in the terminal.

The simulation drives the real engine with its own clock and one contact, and asks the real
policy gate before every send: it prints what the bridge would do. Nothing is stored or sent.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from bridge.flowsim_checks import check_file, template_problems, validate_files
from bridge.flowsim_contact import Echo, SimulatedContact, instant
from bridge.flowsim_inputs import (SimulationError, build_context, example_names, load_event, load_flow_ref,
                                   load_replies)
from bridge.flowsim_replies import reply_event
from core.flows import engine, runs
from core.flows.definition import Flow

__all__ = ["DEFAULT_START", "SimulationError", "check_file", "validate_files", "template_problems", "load_flow_ref",
           "load_event", "load_replies", "build_context", "example_names", "simulate"]

DEFAULT_START = datetime(2026, 1, 5, 10, 0, tzinfo=timezone.utc)
MAX_EVENTS = 200  # a simulation that has not ended after this many events is stopped


def _next_event(sim: SimulatedContact, state: Any) -> Any:
    if state.wake_at is None:
        sim.echo(f"the run waits at step '{state.step}' with no time to wake: nothing more happens")
        return None
    if state.waiting_for == "reply":
        return reply_event(sim, state)
    sim.jump(max(state.wake_at, sim.clock))
    return engine.Wake(step=state.step)


def _intro(sim: SimulatedContact, flow: Flow, event: Mapping[str, Any]) -> None:
    trigger = event.get("event")
    if trigger and trigger != flow.trigger.event:  # the flow still runs: the event file may be reused
        sim.echo(f"⚠ the event is {trigger!r}, but {flow.name} starts on {flow.trigger.event!r}")
    for problem in template_problems(flow.name, flow, sim.catalogue):
        sim.echo(f"⚠ {problem}")
    c, p = sim.consent, sim.policy
    consent = ("opted out of all" if c.all_opt_out else "opted out" if c.marketing_opt_out
               else "yes" if c.marketing_opt_in else "none on record")
    quiet = f"{p.quiet_start:%H:%M}-{p.quiet_end:%H:%M}" if p.quiet_start and p.quiet_end else "off"
    cap = f"{p.marketing_cap}/{p.cap_window.days}d" if p.marketing_cap is not None else "off"
    filters, passes = getattr(flow.trigger, "filters", ()), getattr(runs, "_passes", None)  # live: runs applies them
    if filters and (passes is None or not passes(flow, sim.ctx)):
        sim.echo(f"⚠ trigger filters {', '.join(f'{f.field} {f.op} {f.value}' for f in filters)} "
                 + ("not checked" if passes is None else "do not hold: live, this flow would not start"))
    sim.echo(f"▶ simulating {flow.name} v{flow.version} from {sim.when(sim.clock)}")
    sim.echo(f"  contact {sim.name}: marketing consent {consent}; time zone {sim.zone_name}; "
             f"quiet hours {quiet}; marketing cap {cap}")


def simulate(flow: Flow, event: Mapping[str, Any], replies: list | None, start: datetime, echo: Echo,
             ask: Callable[[str], str] | None = None) -> Any:
    """Play one run of ``flow`` for the contact in ``event``; returns the final ``RunState``.
    ``replies`` (see ``load_replies``) answer for the customer; without them ``ask`` does,
    and with neither the customer never replies."""
    sim = SimulatedContact(flow, event, replies, instant(start), echo, ask)
    _intro(sim, flow, event)
    state = sim.show(engine.start(flow=flow, ctx=sim.ctx, now=sim.clock, check=sim.check))
    for _ in range(MAX_EVENTS):
        next_event = _next_event(sim, state) if state.status == "waiting" else None
        if next_event is None:
            break
        try:
            adv = engine.advance(flow=flow, state=state, event=next_event, ctx=sim.ctx, now=sim.clock,
                                 check=sim.check)
        except engine.TransitionNotAllowed as exc:
            echo(f"engine refused {type(next_event).__name__}: {exc}")
            break
        state = sim.show(adv)
    status = state.status.replace("_", " ")
    outcome = f" ({state.outcome})" if state.outcome and state.outcome != status else ""
    echo(f"■ end: {status}{outcome} at step '{state.step or 'end'}', {sim.when(sim.clock)}")
    if state.status == "handed_off" and state.wake_at is not None:
        echo(f"  if no agent takes it by {sim.when(state.wake_at)}, the bot takes the conversation back")
    return state
