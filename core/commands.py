"""What core asks the outside world to do. Only the bridge carries these out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

__all__ = ["SendTemplate", "SendText", "HandOff", "Command", "Send"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SendTemplate:
    template: str
    params: Mapping[str, str] = field(default_factory=dict)
    language: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SendText:
    text: str
    buttons: tuple[tuple[str, str], ...] = ()  # (id, title) reply buttons; empty = plain text
    compliance: bool = False  # the one confirmation of an opt-out: allowed even after "STOP ALL"


@dataclass(frozen=True, slots=True, kw_only=True)
class HandOff:
    reason: str


Send = SendTemplate | SendText
Command = SendTemplate | SendText | HandOff
