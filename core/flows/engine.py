"""The flow engine: ``start`` and ``advance`` are pure functions of (flow, state, event, now).

They return the new run state and the commands to carry out; nothing waits in memory. Every
send is shown to ``check`` (the policy gate, bound to the contact by the caller) before it
becomes a command, so a refused send follows the step's ``on_blocked`` path and a deferred one
waits on the same step until the gate's time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Callable, Mapping

from core.commands import Command, HandOff, Send, SendTemplate, SendText
from core.flows.definition import END, Flow, Step, parse_duration
from core.flows.expressions import MissingValue, normalise_words, render
from core.gate import Decision, Verdict

__all__ = ["RunState", "Start", "Wake", "Reply", "Cancel", "Advance", "start", "advance", "TransitionNotAllowed"]

MAX_STEPS_PER_ADVANCE = 100
Check = Callable[[Send], Decision]


class TransitionNotAllowed(Exception):
    """The event does not apply to the run in its current state (logged and dropped)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunState:
    step: str | None
    status: str  # waiting | handed_off | completed | cancelled | failed
    waiting_for: str | None = None  # timer | reply
    wake_at: datetime | None = None
    outcome: str | None = None

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


@dataclass(frozen=True, slots=True)
class Cancel:
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Advance:
    state: RunState
    commands: tuple[Command, ...] = ()
    notes: tuple[str, ...] = ()  # human-readable state changes, for transcripts and logs


class _Run:
    """Mutable scratchpad for one advance; the result is frozen again at the end."""

    def __init__(self, flow: Flow, ctx: Mapping[str, Any], now: datetime, check: Check) -> None:
        self.flow, self.ctx, self.now, self.check = flow, ctx, now, check
        self.commands: list[Command] = []
        self.notes: list[str] = []

    def finish(self, state: RunState) -> Advance:
        return Advance(state=state, commands=tuple(self.commands), notes=tuple(self.notes))

    def run_from(self, step_id: str) -> Advance:
        for _ in range(MAX_STEPS_PER_ADVANCE):
            if step_id == END:
                self.notes.append("flow ended")
                return self.finish(RunState(step=None, status="completed", outcome="completed"))
            step = self.flow.step(step_id)
            result = self._execute(step)
            if isinstance(result, RunState):
                return self.finish(result)
            step_id = result
        self.notes.append(f"stopped after {MAX_STEPS_PER_ADVANCE} steps without waiting: a loop in the flow")
        self.commands.clear()  # a looping flow must not flood the customer with what it queued
        return self.finish(RunState(step=step_id, status="failed", outcome="loop without a wait"))

    def _execute(self, step: Step) -> RunState | str:
        """Run one step; a RunState means "stop here", a string is the next step's id."""
        try:
            if step.kind == "wait":
                wake = self.now + parse_duration(render(step.duration or "", self.ctx))
                self.notes.append(f"{step.id}: waiting until {wake.isoformat()}")
                return RunState(step=step.id, status="waiting", waiting_for="timer", wake_at=wake)
            if step.kind == "wait_for_reply":
                wake = self.now + parse_duration(render(step.timeout or "", self.ctx))
                self.notes.append(f"{step.id}: waiting for a reply until {wake.isoformat()}")
                return RunState(step=step.id, status="waiting", waiting_for="reply", wake_at=wake)
            if step.kind == "handoff":
                self.commands.append(HandOff(reason=render(step.reason or "", self.ctx)))
                self.notes.append(f"{step.id}: handed off to an agent")
                return RunState(step=step.id, status="handed_off", outcome="handed off")
            return self._send(step)
        except (MissingValue, ValueError) as exc:
            self.notes.append(f"{step.id}: failed: {exc}")
            return RunState(step=step.id, status="failed", outcome=f"step '{step.id}': {exc}")

    def _send(self, step: Step) -> RunState | str:
        command: Send
        if step.kind == "send_template":
            params = {k: render(v, self.ctx) for k, v in step.params.items()}
            command = SendTemplate(template=step.template or "", params=params)
        else:
            command = SendText(text=render(step.text or "", self.ctx), buttons=step.buttons)
        decision = self.check(command)
        if decision.verdict is Verdict.ALLOWED:
            self.commands.append(command)
            self.notes.append(f"{step.id}: send {_describe(command)}")
            return self.flow.after(step)
        if decision.verdict is Verdict.DEFERRED and decision.until is not None:
            self.notes.append(f"{step.id}: deferred until {decision.until.isoformat()}: {decision.reason}")
            return RunState(step=step.id, status="waiting", waiting_for="timer", wake_at=decision.until)
        self.notes.append(f"{step.id}: not sent: {decision.reason}")
        if step.on_blocked == END:
            return RunState(step=step.id, status="completed", outcome=f"not sent: {decision.reason}")
        return step.on_blocked


def _describe(command: Send) -> str:
    return f"template {command.template}" if isinstance(command, SendTemplate) else "text"


def _route_reply(flow: Flow, step: Step, reply: Reply) -> tuple[str, str]:
    """The step a reply leads to, and why."""
    words = normalise_words(reply.text or "")
    for branch in step.branches:
        if branch.button and reply.reply_id == branch.button:
            return branch.goto, f"button {branch.button}"
        if branch.keywords and words in branch.keywords:
            return branch.goto, f"keyword '{words}'"
        if branch.any_text and reply.text:
            return branch.goto, "any text"
    if step.otherwise:
        return step.otherwise, "unrecognised reply"
    return "", "unrecognised reply"


def start(flow: Flow, ctx: Mapping[str, Any], now: datetime, check: Check) -> Advance:
    run = _Run(flow, ctx, now, check)
    run.notes.append(f"started {flow.name} v{flow.version}")
    return run.run_from(flow.steps[0].id)


def advance(flow: Flow, state: RunState, event: object, ctx: Mapping[str, Any], now: datetime, check: Check) -> Advance:
    if state.ended:
        raise TransitionNotAllowed(f"run already {state.status}")
    run = _Run(flow, ctx, now, check)
    if isinstance(event, Cancel):
        run.notes.append(f"cancelled: {event.reason}")
        return run.finish(replace(state, status="cancelled", waiting_for=None, wake_at=None, outcome=event.reason))
    if state.status == "handed_off":
        raise TransitionNotAllowed("an agent owns the conversation")
    step = flow.step(state.step) if state.step else None
    if step is None or state.status != "waiting":
        raise TransitionNotAllowed(f"run is {state.status}, not waiting")
    if isinstance(event, Start):
        if flow.trigger.reentry == "restart_wait" and step is flow.steps[0] and state.waiting_for == "timer":
            run.notes.append(f"{step.id}: restarted the wait")
            return run.run_from(step.id)
        raise TransitionNotAllowed("run already past its first wait")
    if isinstance(event, Wake):
        if event.step != step.id or state.waiting_for is None:
            raise TransitionNotAllowed(f"stale wake-up for step '{event.step}'")
        if state.waiting_for == "reply":
            run.notes.append(f"{step.id}: no reply in time")
            return run.run_from(step.on_timeout)
        if step.kind != "wait":  # a deferred send: try the same step again
            return run.run_from(step.id)
        return run.run_from(flow.after(step))
    if isinstance(event, Reply):
        if state.waiting_for != "reply":
            raise TransitionNotAllowed(f"step '{step.id}' is not waiting for a reply")
        target, why = _route_reply(flow, step, event)
        run.notes.append(f"{step.id}: reply matched {why}")
        if not target:
            run.commands.append(HandOff(reason="the bot did not understand the reply"))
            return run.finish(RunState(step=step.id, status="handed_off", outcome="handed off"))
        return run.run_from(target)
    raise TransitionNotAllowed(f"unknown event {event!r}")
