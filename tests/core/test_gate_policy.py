"""Quiet hours in the recipient's zone, the marketing cap, and the 131049 back-off — exact instants."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

import pytest

from core.consent import ConsentState
from core.gate import Outgoing, Policy, Verdict, decide, quiet_until
from core.session import Session

UTC = timezone.utc
MARKETING = Outgoing(template_category="MARKETING", template_status="APPROVED")
UTILITY = Outgoing(template_category="UTILITY", template_status="APPROVED")
OPTED_IN = ConsentState(marketing_opt_in=True)
POLICY = Policy()  # quiet 21:00-09:00 local, 2 marketing per 7 days


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.mark.parametrize("now, zone, expected_until", [
    # India, +05:30: 20:59 local is fine, 21:00 local is quiet until 09:00 next morning
    ("2026-03-10T15:29:00+00:00", "Asia/Kolkata", None),
    ("2026-03-10T15:30:00+00:00", "Asia/Kolkata", "2026-03-11T03:30:00+00:00"),
    ("2026-03-11T03:29:59+00:00", "Asia/Kolkata", "2026-03-11T03:30:00+00:00"),
    ("2026-03-11T03:30:00+00:00", "Asia/Kolkata", None),
    # Los Angeles, negative offset: 02:00 local (PST, -08:00) is quiet until 09:00 local the same day
    ("2026-01-15T10:00:00+00:00", "America/Los_Angeles", "2026-01-15T17:00:00+00:00"),
    # the night DST starts (2026-03-08 02:00 PST -> 03:00 PDT): 09:00 PDT is 16:00 UTC, not 17:00
    ("2026-03-08T07:00:00+00:00", "America/Los_Angeles", "2026-03-08T16:00:00+00:00"),
    # the night DST ends (2026-11-01): 09:00 PST is 17:00 UTC
    ("2026-11-01T08:30:00+00:00", "America/Los_Angeles", "2026-11-01T17:00:00+00:00"),
    # unknown zone falls back to the policy default (UTC)
    ("2026-01-15T22:00:00+00:00", None, "2026-01-16T09:00:00+00:00"),
    ("2026-01-15T22:00:00+00:00", "Not/AZone", "2026-01-16T09:00:00+00:00"),
], ids=["in-20:59", "in-21:00", "in-08:59:59", "in-09:00", "la-night", "la-dst-start", "la-dst-end",
        "no-zone", "bad-zone"])
def test_quiet_until(now, zone, expected_until):
    expected = at(expected_until) if expected_until else None
    assert quiet_until(at(now), zone, POLICY) == expected


def test_quiet_hours_defer_marketing_but_not_utility():
    night = at("2026-03-10T16:00:00+00:00")  # 21:30 in Kolkata
    deferred = decide(MARKETING, consent=OPTED_IN, session=Session(), now=night, timezone_name="Asia/Kolkata")
    assert deferred.verdict is Verdict.DEFERRED and deferred.until == at("2026-03-11T03:30:00+00:00")
    assert "quiet hours" in deferred.reason
    utility = decide(UTILITY, consent=ConsentState(), session=Session(), now=night, timezone_name="Asia/Kolkata")
    assert utility.verdict is Verdict.ALLOWED


def test_non_wrapping_quiet_hours_and_off():
    lunch = Policy(quiet_start=time(12, 0), quiet_end=time(13, 0))
    assert quiet_until(at("2026-01-01T12:30:00+00:00"), "UTC", lunch) == at("2026-01-01T13:00:00+00:00")
    assert quiet_until(at("2026-01-01T13:00:00+00:00"), "UTC", lunch) is None
    off = Policy.from_settings({"quiet_hours": "off"})
    assert quiet_until(at("2026-01-01T23:00:00+00:00"), "UTC", off) is None


@pytest.mark.parametrize("sent_ago, verdict", [
    ((), Verdict.ALLOWED),
    ((timedelta(days=1),), Verdict.ALLOWED),
    ((timedelta(days=1), timedelta(days=6, hours=23)), Verdict.BLOCKED),
    ((timedelta(days=1), timedelta(days=7)), Verdict.ALLOWED),  # exactly 7 days ago has left the window
], ids=["none", "one", "two-in-window", "second-just-outside"])
def test_marketing_cap(sent_ago, verdict):
    now = at("2026-01-15T12:00:00+00:00")
    decision = decide(MARKETING, consent=OPTED_IN, session=Session(), now=now,
                      marketing_sent=tuple(now - ago for ago in sent_ago))
    assert decision.verdict is verdict
    if verdict is Verdict.BLOCKED:
        assert "frequency cap: 2 marketing messages in 7 days" in decision.reason


def test_per_user_limit_defers_then_respects_quiet_hours():
    now = at("2026-01-15T12:00:00+00:00")
    retry = now + timedelta(hours=24)
    plain = decide(MARKETING, consent=OPTED_IN, session=Session(), now=now, marketing_retry_after=retry)
    assert (plain.verdict, plain.until) == (Verdict.DEFERRED, retry)
    late = at("2026-01-16T22:00:00+00:00")  # the retry time falls in quiet hours: pushed to 09:00
    pushed = decide(MARKETING, consent=OPTED_IN, session=Session(), now=now, marketing_retry_after=late)
    assert pushed.until == at("2026-01-17T09:00:00+00:00") and "131049" in pushed.reason


@pytest.mark.parametrize("settings, expected", [
    ({}, Policy()),
    ({"quiet_hours": "22:30-07:15", "marketing_cap": "3/14d", "timezone": "Europe/Berlin"},
     Policy(quiet_start=time(22, 30), quiet_end=time(7, 15), marketing_cap=3, cap_window=timedelta(days=14),
            default_timezone="Europe/Berlin")),
    ({"quiet_hours": "off", "marketing_cap": "off"}, Policy(quiet_start=None, quiet_end=None, marketing_cap=None)),
])
def test_policy_from_settings(settings, expected):
    assert Policy.from_settings(settings) == expected


@pytest.mark.parametrize("settings", [{"quiet_hours": "late"}, {"marketing_cap": "two a week"}])
def test_policy_settings_errors_name_the_setting(settings):
    with pytest.raises(ValueError, match=next(iter(settings))):
        Policy.from_settings(settings)
