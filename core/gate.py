"""The outbound policy gate: every send is asked here first, and only here.

``decide`` answers allowed / needs an approved template / deferred until T / blocked(reason)
from plain values, so it is tested exactly with an injected ``now``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from core.consent import ConsentState
from core.session import Session, SendMode, choose_send_mode

__all__ = ["Verdict", "Decision", "Outgoing", "decide"]


class Verdict(str, enum.Enum):
    ALLOWED = "allowed"
    NEEDS_TEMPLATE = "needs_template"
    DEFERRED = "deferred"
    BLOCKED = "blocked"


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    verdict: Verdict
    reason: str = ""
    until: datetime | None = None

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOWED


@dataclass(frozen=True, slots=True, kw_only=True)
class Outgoing:
    """What is about to be sent, reduced to what the policy needs to know."""

    template_category: str | None = None  # MARKETING / UTILITY / AUTHENTICATION; None = free-form
    template_status: str | None = None  # the template's approval status, for templates


def decide(
    outgoing: Outgoing,
    *,
    consent: ConsentState,
    session: Session,
    now: datetime,
    deliverability: str | None = None,
) -> Decision:
    if deliverability:
        return Decision(verdict=Verdict.BLOCKED, reason=f"number not deliverable: {deliverability}")
    if consent.all_opt_out:
        return Decision(verdict=Verdict.BLOCKED, reason="contact opted out of all messages")
    if outgoing.template_category is None:
        if choose_send_mode(session, now) is SendMode.TEMPLATE:
            return Decision(
                verdict=Verdict.NEEDS_TEMPLATE,
                reason="the 24-hour window is closed: only an approved template may be sent",
            )
        return Decision(verdict=Verdict.ALLOWED)
    if outgoing.template_status not in (None, "APPROVED"):
        return Decision(verdict=Verdict.BLOCKED, reason=f"template is {outgoing.template_status}, not APPROVED")
    if outgoing.template_category == "MARKETING":
        if consent.marketing_opt_out:
            return Decision(verdict=Verdict.BLOCKED, reason="contact opted out of marketing")
        if not consent.marketing_opt_in:
            return Decision(verdict=Verdict.BLOCKED, reason="no marketing opt-in on record")
    return Decision(verdict=Verdict.ALLOWED)
