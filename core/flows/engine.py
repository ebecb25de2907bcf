"""The flow engine: ``start`` and ``advance`` are pure functions of (flow, state, event, now).

They return the new run state and the commands to carry out; nothing waits in memory. Every
send is shown to ``check`` (the policy gate, bound to the contact by the caller) before it
becomes a command, so a refused send follows the step's ``on_blocked`` path and a deferred one
waits on the same step until the gate's time. A reply the flow does not understand is re-asked
(``reask_limit`` times, default once), then handed off: never silence, never an endless loop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Callable, Mapping

from core.commands import (CallAction, Command, HandOff, ResumeBot, Send, SendList, SendTemplate, SendText, SetContact,
                           SkipTemplate)
from core.flows.definition import END, Flow, Step, parse_duration
from core.flows.expressions import MissingValue, normalise_words, render
from core.flows.template_steps import template_candidates, without_consent_command
from core.gate import UTILITY_INSTEAD, Decision, Verdict

__all__ = ["RunState", "Start", "Wake", "Reply", "Cancel", "Release", "Advance", "start", "advance",
           "TransitionNotAllowed", "MAX_STEPS_PER_ADVANCE", "DEFAULT_REASK"]

MAX_STEPS_PER_ADVANCE = 100
DEFAULT_REASK = "Sorry, I didn't catch that. Please choose one of the options above."
Check = Callable[[Send], Decision]


class TransitionNotAllowed(Exception):
    """The event does not apply to the run in its current state (logged and dropped)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunState:
    step: str | None
    status: str  # waiting | handed_off | completed | cancelled | failed
    waiting_for: str | None = None  # timer | reply | agent
    wake_at: datetime | None = None
    outcome: str | None = None
    vars: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ended(self) -> bool:
        return self.status in ("completed", "cancelled", "failed")


@dataclass(frozen=True, slots=True)
class Start:
    pass


@dataclass(frozen=True, slots=True)
class Wake:
    step: str  # the step whose timer fired (a stale wake-up for another step is refused)


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    reply_id: str | None = None
    text: str | None = None
    media: bool = False


@dataclass(frozen=True, slots=True)
class Cancel:
    reason: str


@dataclass(frozen=True, slots=True)
class Release:
    """The agent gives the conversation back; the flow resumes where its handoff step says."""

    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Advance:
    state: RunState
    commands: tuple[Command, ...] = ()
    notes: tuple[str, ...] = ()  # human-readable state changes, for transcripts and logs


class _Run:
    """Mutable scratchpad for one advance; the result is frozen again at the end."""

    def __init__(self, flow: Flow, ctx: Mapping[str, Any], now: datetime, check: Check,
                 vars: Mapping[str, Any]) -> None:
        self.flow, self.now, self.check = flow, now, check
        self.vars = dict(vars)
        self.base = ctx
        self.commands: list[Command] = []
        self.notes: list[str] = []

    @property
    def ctx(self) -> Mapping[str, Any]:
        return {**self.base, "vars": {**dict(self.base.get("vars") or {}), **self.vars}}

    def state(self, **kwargs: Any) -> RunState:
        return RunState(vars=dict(self.vars), **kwargs)

    def finish(self, state: RunState) -> Advance:
        return Advance(state=replace(state, vars=dict(self.vars)), commands=tuple(self.commands),
                       notes=tuple(self.notes))

    def run_from(self, step_id: str) -> Advance:
        for _ in range(MAX_STEPS_PER_ADVANCE):
            if step_id == END:
                self.notes.append("flow ended")
                return self.finish(self.state(step=None, status="completed", outcome="completed"))
            step = self.flow.step(step_id)
            result = self._execute(step)
            if isinstance(result, RunState):
                return self.finish(result)
            step_id = result
        self.notes.append(f"stopped after {MAX_STEPS_PER_ADVANCE} steps without waiting: a loop in the flow")
        self.commands.clear()  # a looping flow must not flood the customer with what it queued
        return self.finish(self.state(step=step_id, status="failed", outcome="loop without a wait"))

    def _execute(self, step: Step) -> RunState | str:
        """Run one step; a RunState means "stop here", a string is the next step's id."""
        try:
            return _KINDS[step.kind](self, step)
        except (MissingValue, ValueError) as exc:
            self.notes.append(f"{step.id}: failed: {exc}")
            return self.state(step=step.id, status="failed", outcome=f"step '{step.id}': {exc}")

    def send(self, step: Step, command: Send, decision: Decision | None = None) -> RunState | str:
        command = replace(command, step=step.id)
        decision = decision or self.check(command)
        if decision.verdict is Verdict.ALLOWED:
            self.commands.append(command)
            self.notes.append(f"{step.id}: send {_describe(command)}")
            return self.flow.after(step)
        if decision.verdict is Verdict.DEFERRED and decision.until is not None:
            self.notes.append(f"{step.id}: deferred until {decision.until.isoformat()}: {decision.reason}")
            return self.state(step=step.id, status="waiting", waiting_for="timer", wake_at=decision.until)
        self.notes.append(f"{step.id}: not sent: {decision.reason}")
        if step.on_blocked == END:
            return self.state(step=step.id, status="completed", outcome=f"not sent: {decision.reason}")
        return step.on_blocked


def _wait(run: _Run, step: Step) -> RunState:
    wake = run.now + parse_duration(render(step.duration or "", run.ctx))
    run.notes.append(f"{step.id}: waiting until {wake.isoformat()}")
    return run.state(step=step.id, status="waiting", waiting_for="timer", wake_at=wake)


def _wait_for_reply(run: _Run, step: Step) -> RunState:
    wake = run.now + parse_duration(render(step.timeout or "", run.ctx))
    run.notes.append(f"{step.id}: waiting for a reply until {wake.isoformat()}")
    return run.state(step=step.id, status="waiting", waiting_for="reply", wake_at=wake)


def _handoff(run: _Run, step: Step) -> RunState:
    run.commands.append(HandOff(reason=render(step.reason or "", run.ctx)))
    run.notes.append(f"{step.id}: handed off to an agent")
    wake = run.now + parse_duration(render(step.handoff_timeout, run.ctx)) if step.handoff_timeout else None
    return run.state(step=step.id, status="handed_off", waiting_for="agent" if wake else None, wake_at=wake,
                     outcome="handed off")


def _set(run: _Run, step: Step) -> str:
    run.vars.update({k: render(v, run.ctx) for k, v in step.sets_vars.items()})
    if step.sets_contact:
        run.commands.append(SetContact(properties={k: render(v, run.ctx) for k, v in step.sets_contact.items()}))
    run.notes.append(f"{step.id}: set {', '.join([*step.sets_vars, *step.sets_contact])}")
    return run.flow.after(step)


def _action(run: _Run, step: Step) -> str:
    run.commands.append(CallAction(name=step.action or "", params={k: render(v, run.ctx) for k, v in step.params.items()}))
    run.notes.append(f"{step.id}: action {step.action}")
    return run.flow.after(step)


def _send_template(run: _Run, step: Step) -> RunState | str:
    """Send the first candidate whose template can go; each one that cannot is recorded with why."""
    reasons = []
    for command in template_candidates(step, run.ctx, lambda text: render(text, run.ctx)):
        decision = run.check(command)
        if decision.missing_consent and step.without_consent is not None:
            return _without_consent(run, step, command, decision)
        if not decision.template_problem:
            return run.send(step, command, decision)
        _skip(run, step, command, decision.reason)
        reasons.append(decision.reason)
    final = step.fallbacks[-1] if step.fallbacks and step.fallbacks[-1].final else None
    if final is not None and final.handoff is not None:
        run.commands.append(HandOff(reason=render(final.handoff, run.ctx)))
        run.notes.append(f"{step.id}: no template could be sent; handed off to an agent")
        return run.state(step=step.id, status="handed_off", outcome="handed off: no template could be sent")
    if final is not None and final.goto is not None:
        run.notes.append(f"{step.id}: no template could be sent; going to {final.goto}")
        return final.goto
    if step.on_blocked == END:
        return run.state(step=step.id, status="completed", outcome=f"not sent: {reasons[-1]}")
    return step.on_blocked


def _skip(run: _Run, step: Step, command: SendTemplate, reason: str) -> None:
    """A template not sent, in the conversation's history (SkipTemplate) and the run's notes."""
    run.commands.append(SkipTemplate(template=command.template, language=command.language, reason=reason,
                                     step=step.id))
    label = command.template + (f" [{command.language}]" if command.language else "")
    run.notes.append(f"{step.id}: template {label} not sent: {reason}")


def _without_consent(run: _Run, step: Step, refused: SendTemplate, decision: Decision) -> RunState | str:
    """The marketing template was refused for want of an opt-in: when the workspace allows it, the
    step's utility notice goes instead (and the flow goes on at its ``goto``); otherwise nothing."""
    if not decision.utility_instead:
        run.notes.append(f"{step.id}: no utility notice instead: the workspace setting {UTILITY_INSTEAD} is off")
        return run.send(step, refused, decision)
    alternative = step.without_consent
    notice = without_consent_command(step, lambda text: render(text, run.ctx))
    _skip(run, step, refused, f"{decision.reason}; sending the utility notice {notice.template} instead "
                              f"({UTILITY_INSTEAD} is on)")
    checked = run.check(notice)
    if checked.template_problem or checked.missing_consent:  # not a utility template, or it cannot go
        _skip(run, step, notice, checked.reason)
        if step.on_blocked != END:
            return step.on_blocked
        return run.state(step=step.id, status="completed", outcome=f"not sent: {checked.reason}")
    result = run.send(step, notice, checked)
    return alternative.goto if checked.allowed and alternative.goto else result


def _send_text(run: _Run, step: Step) -> RunState | str:
    return run.send(step, SendText(text=render(step.text or "", run.ctx), buttons=step.buttons))


def _send_list(run: _Run, step: Step) -> RunState | str:
    return run.send(step, SendList(text=render(step.text or "", run.ctx), button=step.list_button or "",
                                   sections=step.sections))


_KINDS: dict[str, Callable[[_Run, Step], RunState | str]] = {
    "wait": _wait, "wait_for_reply": _wait_for_reply, "handoff": _handoff, "set": _set,
    "send_template": _send_template, "send_text": _send_text, "send_list": _send_list, "action": _action,
}


def _describe(command: Send) -> str:
    if isinstance(command, SendTemplate):
        return f"template {command.template}"
    return "list" if isinstance(command, SendList) else "text"


def _route_reply(step: Step, reply: Reply) -> tuple[str | None, str]:
    """The step a reply leads to (None: not understood), and why."""
    words = normalise_words(reply.text or "")
    for branch in step.branches:
        if branch.button and reply.reply_id == branch.button:
            return branch.goto, f"button {branch.button}"
        if branch.keywords and words in branch.keywords:
            return branch.goto, f"keyword '{words}'"
        if branch.regex and any(re.search(branch.regex, v, re.IGNORECASE) for v in (reply.text, reply.reply_id) if v):
            return branch.goto, "pattern"
        if branch.media and reply.media:
            return branch.goto, "media"
        if branch.any_text and reply.text and not reply.media:
            return branch.goto, "any text"
    return None, "unrecognised reply"


def _on_reply(run: _Run, step: Step, state: RunState, reply: Reply) -> Advance:
    target, why = _route_reply(step, reply)
    run.notes.append(f"{step.id}: reply matched {why}")
    if target is not None:
        run.vars.pop(f"_reasks:{step.id}", None)
        return run.run_from(target)
    asked = int(run.vars.get(f"_reasks:{step.id}", 0))
    if asked < step.reask_limit:
        reask = SendText(text=render(step.reask or DEFAULT_REASK, run.ctx), step=step.id)
        decision = run.check(reask)
        if decision.verdict is Verdict.ALLOWED:
            run.vars[f"_reasks:{step.id}"] = asked + 1
            run.commands.append(reask)
            run.notes.append(f"{step.id}: re-asked ({asked + 1} of {step.reask_limit})")
            return run.finish(replace(state, vars=dict(run.vars)))  # still waiting for the same reply
        run.notes.append(f"{step.id}: could not re-ask: {decision.reason}")
    if step.otherwise:
        return run.run_from(step.otherwise)
    run.commands.append(HandOff(reason="the bot did not understand the reply"))
    return run.finish(run.state(step=step.id, status="handed_off", outcome="handed off"))


def _on_handed_off(run: _Run, flow: Flow, state: RunState, event: object) -> Advance:
    step = flow.step(state.step) if state.step else None
    if isinstance(event, Release) and step is not None:
        run.notes.append(f"{step.id}: released by the agent{': ' + event.note if event.note else ''}")
        return run.run_from(step.on_release)
    if isinstance(event, Wake) and step is not None and event.step == step.id and state.waiting_for == "agent":
        run.notes.append(f"{step.id}: nobody took the handoff in time; back to the bot")
        run.commands.append(ResumeBot(reason="nobody took the handoff in time"))
        return run.run_from(step.on_timeout)
    raise TransitionNotAllowed("an agent owns the conversation")


def start(flow: Flow, ctx: Mapping[str, Any], now: datetime, check: Check) -> Advance:
    run = _Run(flow, ctx, now, check, {})
    run.notes.append(f"started {flow.name} v{flow.version}")
    return run.run_from(flow.steps[0].id)


def advance(flow: Flow, state: RunState, event: object, ctx: Mapping[str, Any], now: datetime, check: Check) -> Advance:
    if state.ended:
        raise TransitionNotAllowed(f"run already {state.status}")
    run = _Run(flow, ctx, now, check, state.vars)
    if isinstance(event, Cancel):
        run.notes.append(f"cancelled: {event.reason}")
        return run.finish(replace(state, status="cancelled", waiting_for=None, wake_at=None, outcome=event.reason))
    if state.status == "handed_off":
        return _on_handed_off(run, flow, state, event)
    step = flow.step(state.step) if state.step else None
    if step is None or state.status != "waiting":
        raise TransitionNotAllowed(f"run is {state.status}, not waiting")
    if isinstance(event, Start):
        if flow.trigger.reentry == "restart_wait" and step is flow.steps[0] and state.waiting_for == "timer":
            run.notes.append(f"{step.id}: restarted the wait")
            return run.run_from(step.id)
        raise TransitionNotAllowed(f"run already past its first wait (re-entry: {flow.trigger.reentry})")
    if isinstance(event, Wake):
        if event.step != step.id or state.waiting_for is None:
            raise TransitionNotAllowed(f"stale wake-up for step '{event.step}'")
        if state.waiting_for == "reply":
            run.notes.append(f"{step.id}: no reply in time")
            return run.run_from(step.on_timeout)
        return run.run_from(step.id if step.kind != "wait" else flow.after(step))  # a deferred send retries
    if isinstance(event, Reply):
        if state.waiting_for != "reply":
            raise TransitionNotAllowed(f"step '{step.id}' is not waiting for a reply")
        return _on_reply(run, step, state, event)
    raise TransitionNotAllowed(f"unknown event {event!r}")
