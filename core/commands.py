"""What core asks the outside world to do. Only the bridge carries these out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

__all__ = ["SendTemplate", "SendText", "SendList", "SkipTemplate", "HandOff", "SetContact", "ResumeBot", "CallAction", "Command", "Send"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SendTemplate:
    template: str
    params: Mapping[str, str] = field(default_factory=dict)
    language: str | None = None
    step: str | None = field(default=None, compare=False)  # the flow step that sends it (for metrics)


@dataclass(frozen=True, slots=True, kw_only=True)
class SendText:
    text: str
    buttons: tuple[tuple[str, str], ...] = ()  # (id, title) reply buttons; empty = plain text
    compliance: bool = False  # the one confirmation of an opt-out: allowed even after "STOP ALL"
    step: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class HandOff:
    reason: str




@dataclass(frozen=True, slots=True, kw_only=True)
class SendList:
    text: str
    button: str
    sections: tuple[tuple[str, tuple[tuple[str, str, str], ...]], ...]  # (title, ((id, title, description)...))
    step: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class SkipTemplate:
    """A template the flow did not send, and why (paused, rejected, missing): recorded in the history."""

    template: str
    language: str | None
    reason: str
    step: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SetContact:
    properties: Mapping[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class ResumeBot:
    """Nobody took a handoff in time: the conversation goes back to the bot."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallAction:
    """Ask the outside world to do something (notify a booking system, tag a CRM record)."""

    name: str
    params: Mapping[str, str] = field(default_factory=dict)


Send = SendTemplate | SendText | SendList
Command = SendTemplate | SendText | SendList | HandOff | SetContact | ResumeBot | CallAction | SkipTemplate
