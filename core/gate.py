"""The outbound policy gate: every send is asked here first, and only here.

``decide`` answers allowed / needs an approved template / deferred until T / blocked(reason)
from plain values, so it is tested exactly with an injected ``now``. The rules, in order:

1. an undeliverable number, or an opt-out of all messages, blocks everything;
2. free-form text needs the customer-service window (24 h from the last inbound message, 72 h
   from one that came through a click-to-WhatsApp ad); outside it, only an approved template;
3. a template must be APPROVED;
4. MARKETING templates need a marketing opt-in with no later opt-out, stay under the frequency
   cap (e.g. 2 per 7 days), wait out WhatsApp's per-user marketing limit (131049, one retry no
   sooner than a day later), and are deferred — not dropped — out of the recipient's quiet hours,
   computed in the recipient's time zone.
UTILITY and AUTHENTICATION templates need no marketing consent and ignore quiet hours.

A marketing template refused only for want of an opt-in (never after an opt-out) says so
(``missing_consent``), and says whether the workspace lets a flow send a plain UTILITY notice
instead (``utility_instead``: the ``cart_utility_without_consent`` setting, off by default).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from core.consent import ConsentState
from core.session import Session, SendMode, choose_send_mode
from core.zones import read_zone

__all__ = ["Verdict", "Decision", "Outgoing", "Policy", "decide", "quiet_until", "UTILITY_INSTEAD"]

UTILITY_INSTEAD = "cart_utility_without_consent"  # the workspace setting behind Decision.utility_instead


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
    template_problem: bool = False  # the template itself cannot go (missing, paused, rejected...): try a fallback
    missing_consent: bool = False  # marketing refused for want of an opt-in (not an opt-out)
    utility_instead: bool = False  # ... and the workspace allows a utility notice in its place

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOWED


@dataclass(frozen=True, slots=True, kw_only=True)
class Outgoing:
    """What is about to be sent, reduced to what the policy needs to know."""

    template_category: str | None = None  # MARKETING / UTILITY / AUTHENTICATION; None = free-form
    template_status: str | None = None  # the template's approval status, for templates
    compliance: bool = False  # confirming an opt-out: the one free-form reply allowed after "STOP ALL"


_QUIET = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_CAP = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*d\s*$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """A workspace's sending policy (its settings, with defaults that are safe)."""

    quiet_start: time | None = time(21, 0)  # local time; None = no quiet hours
    quiet_end: time | None = time(9, 0)
    marketing_cap: int | None = 2  # marketing templates per contact per cap_window; None = no cap
    cap_window: timedelta = timedelta(days=7)
    default_timezone: str = "UTC"  # for contacts whose zone is unknown
    template_languages: tuple[str, ...] = ()  # fallback order when the contact's language has no template
    utility_without_consent: bool = False  # a flow's utility notice may replace refused marketing (no opt-in)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> "Policy":
        """``quiet_hours: "21:00-09:00"`` (or "off"), ``marketing_cap: "2/7d"`` (or "off"), ``timezone``,
        ``template_languages``, ``cart_utility_without_consent: on`` (or "off", the default)."""
        policy = cls()
        quiet, cap = settings.get("quiet_hours"), settings.get("marketing_cap")
        kwargs: dict[str, Any] = {"default_timezone": settings.get("timezone") or policy.default_timezone,
                                  "utility_without_consent": _switch(settings, UTILITY_INSTEAD)}
        languages = settings.get("template_languages")
        if languages:
            items = languages.split(",") if isinstance(languages, str) else languages
            kwargs["template_languages"] = tuple(str(x).strip() for x in items if str(x).strip())
        if quiet == "off":
            kwargs.update(quiet_start=None, quiet_end=None)
        elif quiet:
            match = _QUIET.match(str(quiet))
            if match is None:
                raise ValueError(f"quiet_hours: expected HH:MM-HH:MM or 'off', got {quiet!r}")
            h1, m1, h2, m2 = map(int, match.groups())
            if max(h1, h2) > 23 or max(m1, m2) > 59:
                raise ValueError(f"quiet_hours: hours are 00-23 and minutes 00-59, got {quiet!r}")
            kwargs.update(quiet_start=time(h1, m1), quiet_end=time(h2, m2))
        if cap == "off":
            kwargs["marketing_cap"] = None
        elif cap:
            match = _CAP.match(str(cap))
            if match is None:
                raise ValueError(f"marketing_cap: expected N/Dd such as 2/7d, or 'off', got {cap!r}")
            kwargs.update(marketing_cap=int(match[1]), cap_window=timedelta(days=int(match[2])))
        return cls(**kwargs)


_ON, _OFF = ("on", "true", "yes"), ("off", "false", "no", "")


def _switch(settings: Mapping[str, Any], name: str) -> bool:
    """An on/off setting (YAML may have turned it into a boolean already); absent = off."""
    value = settings.get(name)
    if value is None or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().lower()
    if text not in _ON + _OFF:
        raise ValueError(f"{name}: expected 'on' or 'off', got {value!r}")
    return text in _ON


def _zone(name: str | None, fallback: str) -> ZoneInfo:
    return read_zone(name) or read_zone(fallback) or ZoneInfo("UTC")


def quiet_until(at: datetime, zone_name: str | None, policy: Policy) -> datetime | None:
    """The end of the quiet period ``at`` falls in (UTC), or None when ``at`` is not quiet."""
    start, end = policy.quiet_start, policy.quiet_end
    if start is None or end is None or start == end:
        return None
    zone = _zone(zone_name, policy.default_timezone)
    local = at.astimezone(zone)
    now_t = local.time()
    wraps = start > end  # e.g. 21:00-09:00 crosses midnight
    quiet = (now_t >= start or now_t < end) if wraps else (start <= now_t < end)
    if not quiet:
        return None
    day = local.date() + timedelta(days=1) if wraps and now_t >= start else local.date()
    return datetime.combine(day, end, tzinfo=zone).astimezone(timezone.utc)


def _marketing(consent: ConsentState, now: datetime, policy: Policy, zone: str | None,
               sent: tuple[datetime, ...], retry_after: datetime | None) -> Decision:
    if consent.marketing_opt_out:
        return Decision(verdict=Verdict.BLOCKED, reason="contact opted out of marketing")
    if not consent.marketing_opt_in:
        return Decision(verdict=Verdict.BLOCKED, reason="no marketing opt-in on record", missing_consent=True,
                        utility_instead=policy.utility_without_consent)
    if policy.marketing_cap is not None:
        recent = [t for t in sent if now - policy.cap_window < t <= now]
        if len(recent) >= policy.marketing_cap:
            days = policy.cap_window.days
            return Decision(verdict=Verdict.BLOCKED,
                            reason=f"frequency cap: {policy.marketing_cap} marketing messages in {days} days")
    at, reasons = now, []
    if retry_after is not None and retry_after > at:
        at = retry_after
        reasons.append("WhatsApp's per-user marketing limit (131049): one retry a day later")
    quiet_end = quiet_until(at, zone, policy)
    if quiet_end is not None:
        at = quiet_end
        reasons.append("quiet hours in the contact's time zone")
    if at != now:
        return Decision(verdict=Verdict.DEFERRED, reason="; ".join(reasons), until=at)
    return Decision(verdict=Verdict.ALLOWED)


def decide(
    outgoing: Outgoing,
    *,
    consent: ConsentState,
    session: Session,
    now: datetime,
    deliverability: str | None = None,
    timezone_name: str | None = None,
    marketing_sent: tuple[datetime, ...] = (),
    marketing_retry_after: datetime | None = None,
    policy: Policy = Policy(),
) -> Decision:
    if deliverability:
        return Decision(verdict=Verdict.BLOCKED, reason=f"number not deliverable: {deliverability}")
    if consent.all_opt_out and not outgoing.compliance:
        return Decision(verdict=Verdict.BLOCKED, reason="contact opted out of all messages")
    if outgoing.template_category is None:
        if choose_send_mode(session, now) is SendMode.TEMPLATE:
            return Decision(verdict=Verdict.NEEDS_TEMPLATE,
                            reason="the customer-service window is closed: only an approved template may be sent "
                                   "(24-hour window; 72 hours after a click-to-WhatsApp ad)")
        return Decision(verdict=Verdict.ALLOWED)
    if outgoing.template_status != "APPROVED":
        return Decision(verdict=Verdict.BLOCKED, reason=f"template is {outgoing.template_status}, not APPROVED",
                        template_problem=True)
    if outgoing.template_category == "MARKETING":
        return _marketing(consent, now, policy, timezone_name, marketing_sent, marketing_retry_after)
    return Decision(verdict=Verdict.ALLOWED)
