"""The customer's side of `replyflow flows simulate`: the next reply, from the scripted replies or
typed at the prompt (a button number, text, /wait, /after 30m), and what it becomes for the run
(a Reply, a Cancel on opt-out, or the step's timeout)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bridge.flowsim_contact import SimulatedContact
from bridge.flowsim_inputs import SimulationError, input_duration
from core.consent import message_intent
from core.flows import engine
from core.flows.expressions import normalise_words

__all__ = ["reply_event"]


def _parse_answer(answer: str, choices: list[tuple[str, str]]) -> dict[str, Any]:
    """What the interactive user typed: a button number, /wait, /after 30m, or text."""
    answer = answer.strip()
    if answer.isdigit() and choices:
        if not 1 <= int(answer) <= len(choices):
            raise SimulationError(f"pick a button between 1 and {len(choices)}")
        return {"button": choices[int(answer) - 1][0]}
    if answer.startswith("/after"):
        return {"after": answer[6:].strip()} if input_duration(answer[6:].strip(), "/after") else {"wait": False}
    return {"wait": True} if answer == "/wait" else {"text": answer}


def _next_entry(sim: SimulatedContact) -> dict[str, Any]:
    if sim.replies:
        return sim.replies.popleft()
    if sim.replies is not None or sim.ask is None:
        sim.echo(f"({sim.name} does not reply)")
        return {"wait": True}
    while True:
        prompt = f"{sim.name} replies ({'a button number, ' if sim.choices else ''}text, /wait or /after 30m)"
        try:
            return _parse_answer(sim.ask(prompt), sim.choices)
        except SimulationError as exc:
            sim.echo(f"  {exc}")


def _customer_says(sim: SimulatedContact, entry: dict[str, Any]) -> Any:
    """The event a reply becomes: a Reply for the run, a Cancel (opt-out), or None (opt-in, not for the run)."""
    sim.session = replace(sim.session, last_inbound_at=sim.clock)
    if "button" in entry:
        button = str(entry["button"])
        if button not in sim.titles:
            raise SimulationError(f"{entry.get('where', 'reply')}: button {button!r} was not offered "
                                  f"({', '.join(sim.titles) or 'no buttons yet'})")
        sim.echo(f"💬 {sim.name}: [{sim.titles[button]}] (button {button})")
        return engine.Reply(reply_id=button, text=sim.titles[button])
    text = str(entry.get("text") or "")
    sim.echo(f"💬 {sim.name}: {text}")
    intent = message_intent(text)
    if intent is None:  # a button's title typed out means the button, as in the bridge (core.flows.runs)
        typed = normalise_words(text)
        button = next((b for b, title in reversed(sim.titles.items()) if typed and normalise_words(title) == typed),
                      None)
        return engine.Reply(reply_id=button, text=text)
    out = intent != "opt_in"  # STOP / STOP ALL / START are handled before any flow sees the message
    sim.consent = replace(sim.consent, marketing_opt_in=not out, marketing_opt_out=out,
                          all_opt_out=out and (sim.consent.all_opt_out or intent == "opt_out_all"))
    sim.echo(f"consent: {intent.replace('_', ' ')} by message; " + ("the run is cancelled" if out else
                                                                   "the run keeps waiting"))
    return engine.Cancel(reason="contact opted out") if out else None


def reply_event(sim: SimulatedContact, state: Any) -> Any:
    """The next event for a run waiting for a reply: the customer's reply, or the timeout."""
    while True:
        entry = _next_entry(sim)
        later = sim.clock + input_duration(entry.get("after", "0s"), "after")
        if entry.get("wait") or later >= state.wake_at:
            if sim.replies is not None and entry.keys() & {"button", "text"}:  # it comes after the timeout
                sim.replies.appendleft({**entry, "after": f"{int((later - state.wake_at).total_seconds())}s"})
            sim.jump(state.wake_at, ": no reply in time")
            return engine.Wake(step=state.step)
        if later > sim.clock:
            sim.jump(later)
        event = _customer_says(sim, entry) if entry.keys() & {"button", "text"} else None
        if event is not None:
            return event


