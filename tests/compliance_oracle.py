"""An independent, deliberately naive model of the sending rules, for the compliance property test.

Written from the rules as stated (README / the brief), not from ``core.gate``: nothing here
imports or calls core's policy code. Instants are aware UTC datetimes.

- Free-form text: only while the customer-service window is open: from a customer's message
  until 24 h later (exclusive: exactly 24 h later is closed).
- Marketing templates: need an opt-in that no later opt-out cancels (same instant: the opt-out
  wins); never in the contact's local quiet hours (default 21:00-09:00); at most ``cap`` per
  rolling ``cap_days`` window (default 2 per 7 days).
- Utility templates: always (no consent, no quiet hours, no window).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class Rules:
    quiet: tuple[time, time] | None = (time(21, 0), time(9, 0))  # local [start, end); None = off
    cap: int | None = 2  # None = no cap
    cap_days: int = 7
    default_zone: str = "UTC"  # for contacts without a zone

    @property
    def cap_window(self) -> timedelta:
        return timedelta(days=self.cap_days)


@dataclass
class ContactModel:
    zone: str | None = None
    inbound: list[datetime] = field(default_factory=list)  # effective instants of customer messages
    consent: list[tuple[datetime, str]] = field(default_factory=list)  # (at, "opt_in" | "opt_out")
    marketing: list[datetime] = field(default_factory=list)  # marketing templates let through
    opt_out_changes: int = 0  # transitions into "opted out" caused by a STOP message
    opt_out_confirmations: int = 0  # opt-out confirmations the code queued

    # ------------------------------------------------------------------ window
    def last_inbound(self) -> datetime | None:
        return max(self.inbound) if self.inbound else None

    def window_open(self, now: datetime) -> bool:
        return any(t <= now < t + WINDOW for t in self.inbound)

    def window_open_at(self, at: datetime, known: list[datetime]) -> bool:
        return any(t <= at < t + WINDOW for t in known)

    # ------------------------------------------------------------------ consent
    def _latest(self, action: str) -> datetime | None:
        times = [at for at, a in self.consent if a == action]
        return max(times) if times else None

    def opted_in(self) -> bool:
        """An opt-in with no opt-out at the same instant or later."""
        latest_in, latest_out = self._latest("opt_in"), self._latest("opt_out")
        return latest_in is not None and (latest_out is None or latest_out < latest_in)

    def opted_out(self) -> bool:
        """An opt-out with no opt-in strictly later."""
        latest_in, latest_out = self._latest("opt_in"), self._latest("opt_out")
        return latest_out is not None and (latest_in is None or latest_in <= latest_out)

    # ------------------------------------------------------------------ quiet hours and cap
    def zone_name(self, rules: Rules) -> str:
        return self.zone or rules.default_zone

    def quiet(self, now: datetime, rules: Rules) -> bool:
        return is_quiet(now, self.zone_name(rules), rules)

    def under_cap(self, now: datetime, rules: Rules) -> bool:
        if rules.cap is None:
            return True
        recent = [t for t in self.marketing if now - rules.cap_window < t <= now]
        return len(recent) < rules.cap

    def marketing_allowed(self, now: datetime, rules: Rules) -> bool:
        return self.opted_in() and not self.quiet(now, rules) and self.under_cap(now, rules)


def is_quiet(now: datetime, zone: str, rules: Rules) -> bool:
    if rules.quiet is None:
        return False
    start, end = rules.quiet
    local = now.astimezone(ZoneInfo(zone)).time()
    if start < end:  # e.g. 12:00-14:00, within one day
        return start <= local < end
    return local >= start or local < end  # e.g. 21:00-09:00, over midnight


def max_in_any_window(times: list[datetime], window: timedelta) -> int:
    """The largest number of ``times`` inside any half-open window of length ``window``."""
    ordered = sorted(times)
    best = 0
    for i, t in enumerate(ordered):  # every maximal window can be slid to end at one of the times
        best = max(best, sum(1 for u in ordered[: i + 1] if t - window < u))
    return best


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=timezone.utc)
