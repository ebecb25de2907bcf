"""The flow language's vocabulary: the frozen ``Flow`` with its steps (``Step``), reply branches
(``Branch``) and trigger (``TriggerSpec`` with its ``Filter`` list); the words a flow may use (step
kinds, filter operators, re-entry modes, ``END``); and ``parse_duration`` for its durations. Reading
YAML into these is core/flows/loader.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Mapping

from core.flows.template_steps import Fallback, Variant, WithoutConsent

__all__ = ["Branch", "Step", "Filter", "TriggerSpec", "Flow", "parse_duration", "END", "STEP_KINDS", "FILTER_OPS",
           "REENTRY"]

END = "end"
STEP_KINDS = ("wait", "send_template", "send_text", "send_list", "wait_for_reply", "handoff", "set", "action")
FILTER_OPS = ("at_least", "at_most", "equals", "one_of")
REENTRY = ("restart_wait", "restart", "ignore")
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Branch:
    goto: str
    button: str | None = None  # a reply/quick-reply id (or a list row id)
    keywords: tuple[str, ...] = ()  # whole-message keywords, case, accents and punctuation folded
    regex: str | None = None  # searched (case-insensitive) in the text and in a tapped button/row id
    any_text: bool = False
    media: bool = False  # an image, video, audio, document or sticker


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    id: str
    kind: str
    goto: str | None = None  # where to go after; None = the next step
    duration: str | None = None  # wait: literal ("1h") or an expression giving one
    template: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    text: str | None = None
    buttons: tuple[tuple[str, str], ...] = ()
    branches: tuple[Branch, ...] = ()
    timeout: str | None = None
    on_timeout: str = END
    otherwise: str | None = None  # unrecognised reply; None = hand off
    on_blocked: str = END  # where to go when the policy gate refuses a send
    reason: str | None = None  # handoff
    handoff_timeout: str | None = None  # handoff: nobody takes it within this long → on_timeout
    on_release: str = END  # handoff: where the bot resumes when the agent releases the conversation
    reask: str | None = None  # wait_for_reply: what to say to a reply the flow does not understand
    reask_limit: int = 1  # how many times to re-ask before ``otherwise`` (default: hand off)
    sets_vars: Mapping[str, str] = field(default_factory=dict)  # set: run variables
    sets_contact: Mapping[str, str] = field(default_factory=dict)  # set: contact properties
    action: str | None = None  # action: its name, e.g. "webhook" or "<connector>.<verb>"
    list_button: str | None = None  # send_list: the button that opens the list
    sections: tuple[tuple[str, tuple[tuple[str, str, str], ...]], ...] = ()  # (title, ((id, title, description)...))
    fallbacks: tuple[Fallback, ...] = ()  # send_template: when the template cannot be sent
    variants: tuple[Variant, ...] = ()  # send_template: A/B arms (the step's template is then the first arm's)
    without_consent: WithoutConsent | None = None  # send_template: the utility notice for a contact never opted in


@dataclass(frozen=True, slots=True, kw_only=True)
class Filter:
    field: str  # a context path, e.g. "cart.total"
    op: str  # at_least | at_most | equals | one_of
    value: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class TriggerSpec:
    event: str
    cancel_on: tuple[str, ...] = ()
    reentry: str = "restart_wait"  # restart_wait | restart | ignore
    filters: tuple[Filter, ...] = ()
    priority: int = 0  # when two flows want the same contact at once, the higher priority runs


@dataclass(frozen=True, slots=True, kw_only=True)
class Flow:
    name: str
    version: int
    trigger: TriggerSpec
    steps: tuple[Step, ...]
    description: str = ""
    holdout: float = 0.0  # share of contacts entering the flow who get no message (the control group)
    text: str = field(default="", repr=False, compare=False)  # the YAML it was loaded from

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def after(self, step: Step) -> str:
        """The id of the step that follows ``step`` (its goto, or the next in the list)."""
        if step.goto:
            return step.goto
        index = self.steps.index(step)
        return self.steps[index + 1].id if index + 1 < len(self.steps) else END


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip()) if text else None
    if not text or match is None or not any(match.groups()):
        raise ValueError(f"not a duration: {text!r} (use forms like 90s, 30m, 1h, 2d, 1h30m)")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)

