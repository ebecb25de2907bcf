"""The customer-service window, the outbound policy gate and the consent ledger, at exact instants."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest

from core.consent import ConsentState, derive
from core.gate import Decision, Outgoing, Verdict, decide
from core.session import (
    ENTRY_POINT_WINDOW,
    WINDOW,
    SendMode,
    Session,
    choose_send_mode,
    closes_at,
    is_open,
)

T = datetime(2024, 3, 10, 12, 0, 0, tzinfo=timezone.utc)
SEC = timedelta(seconds=1)
H = timedelta(hours=1)


def test_window_constants():
    assert WINDOW == timedelta(hours=24)
    assert ENTRY_POINT_WINDOW == timedelta(hours=72)


# --------------------------------------------------------------------------- session window

WINDOW_CASES = [
    # (session, now, expected_open)
    pytest.param(Session(), T, False, id="never-opened"),
    pytest.param(Session(last_inbound_at=T), T, True, id="inbound-at-now"),
    pytest.param(Session(last_inbound_at=T), T + timedelta(hours=23, minutes=59, seconds=59), True,
                 id="inbound-T+23:59:59-open"),
    pytest.param(Session(last_inbound_at=T), T + timedelta(hours=24), False, id="inbound-T+24h-exactly-closed"),
    pytest.param(Session(last_inbound_at=T), T + timedelta(hours=24) + SEC, False, id="inbound-T+24h+1s-closed"),
    pytest.param(Session(last_inbound_at=T), T - SEC, True, id="inbound-just-after-now-open"),
    pytest.param(Session(entry_point_at=T), T + timedelta(hours=71, minutes=59, seconds=59), True,
                 id="entry-point-T+71:59:59-open"),
    pytest.param(Session(entry_point_at=T), T + timedelta(hours=72), False, id="entry-point-T+72h-exactly-closed"),
    pytest.param(Session(entry_point_at=T), T + timedelta(hours=30), True, id="entry-point-outlives-24h"),
    pytest.param(Session(last_inbound_at=T, entry_point_at=T), T + timedelta(hours=48), True,
                 id="both-entry-point-wins"),
    pytest.param(Session(last_inbound_at=T + 60 * H, entry_point_at=T), T + 80 * H, True,
                 id="later-inbound-extends-past-entry-point"),
    pytest.param(Session(last_inbound_at=T + 60 * H, entry_point_at=T), T + 84 * H, False,
                 id="later-inbound-closes-at-its-24h"),
    pytest.param(Session(last_inbound_at=T + 10 * H, entry_point_at=T), T + 71 * H, True,
                 id="earlier-inbound-entry-point-still-open"),
]


@pytest.mark.parametrize("session, now, expected", WINDOW_CASES)
def test_is_open(session, now, expected):
    assert is_open(session, now) is expected


@pytest.mark.parametrize("session, now, expected", WINDOW_CASES)
def test_choose_send_mode(session, now, expected):
    assert choose_send_mode(session, now) is (SendMode.FREEFORM if expected else SendMode.TEMPLATE)


@pytest.mark.parametrize(
    "session, expected",
    [
        pytest.param(Session(), None, id="never-opened"),
        pytest.param(Session(last_inbound_at=T), T + 24 * H, id="inbound-only"),
        pytest.param(Session(entry_point_at=T), T + 72 * H, id="entry-point-only"),
        pytest.param(Session(last_inbound_at=T, entry_point_at=T), T + 72 * H, id="both-same-instant"),
        pytest.param(Session(last_inbound_at=T + 60 * H, entry_point_at=T), T + 84 * H, id="inbound-later"),
        pytest.param(Session(last_inbound_at=T + 47 * H, entry_point_at=T), T + 72 * H, id="inbound-ties-under"),
    ],
)
def test_closes_at(session, expected):
    assert closes_at(session) == expected


def test_closes_at_is_exclusive():
    session = Session(last_inbound_at=T)
    end = closes_at(session)
    assert is_open(session, end - SEC)
    assert not is_open(session, end)


# --------------------------------------------------------------------------- consent ledger


@dataclass(frozen=True)
class Entry:
    purpose: str
    action: str
    at: datetime
    source: str = "test"


OPT_IN = ConsentState(marketing_opt_in=True)


@pytest.mark.parametrize(
    "entries, expected",
    [
        pytest.param([], ConsentState(), id="empty"),
        pytest.param(
            [Entry("marketing", "opt_in", T, "shopify.checkout")],
            ConsentState(marketing_opt_in=True, marketing_source="shopify.checkout", marketing_at=T),
            id="single-opt-in",
        ),
        pytest.param(
            [Entry("marketing", "opt_out", T + H, "keyword"), Entry("marketing", "opt_in", T, "shopify.checkout")],
            ConsentState(marketing_opt_out=True, marketing_source="keyword", marketing_at=T + H),
            id="given-out-of-order-later-opt-out-wins",
        ),
        pytest.param(
            [Entry("marketing", "opt_in", T + H, "whatsapp.user_preferences"), Entry("marketing", "opt_out", T, "kw")],
            ConsentState(marketing_opt_in=True, marketing_source="whatsapp.user_preferences", marketing_at=T + H),
            id="given-out-of-order-later-opt-in-wins",
        ),
        pytest.param(
            [Entry("marketing", "opt_out", T, "keyword"), Entry("marketing", "opt_in", T, "shopify.checkout")],
            ConsentState(marketing_opt_out=True, marketing_source="keyword", marketing_at=T),
            id="same-instant-opt-out-wins-out-listed-first",
        ),
        pytest.param(
            [Entry("marketing", "opt_in", T, "shopify.checkout"), Entry("marketing", "opt_out", T, "keyword")],
            ConsentState(marketing_opt_out=True, marketing_source="keyword", marketing_at=T),
            id="same-instant-opt-out-wins-in-listed-first",
        ),
        pytest.param(
            [Entry("utility", "opt_out", T, "whatsapp.user_preferences")],
            ConsentState(all_opt_out=True),
            id="utility-opt-out-sets-all-opt-out",
        ),
        pytest.param(
            [Entry("utility", "opt_in", T + H), Entry("utility", "opt_out", T)],
            ConsentState(),
            id="utility-opt-in-after-opt-out-clears",
        ),
        pytest.param(
            [Entry("marketing", "opt_in", T, "shopify.checkout"), Entry("utility", "opt_out", T + H)],
            ConsentState(marketing_opt_in=True, all_opt_out=True, marketing_source="shopify.checkout",
                         marketing_at=T),
            id="utility-does-not-touch-marketing-fields",
        ),
        pytest.param(
            [Entry("marketing", "opt_in", T + 2 * H, "b"), Entry("marketing", "opt_in", T, "a")],
            ConsentState(marketing_opt_in=True, marketing_source="b", marketing_at=T + 2 * H),
            id="source-and-at-from-latest-entry",
        ),
    ],
)
def test_derive(entries, expected):
    assert derive(entries) == expected


def test_derive_accepts_any_iterable():
    assert derive(iter([Entry("marketing", "opt_in", T)])).marketing_opt_in is True


# --------------------------------------------------------------------------- gate

OPEN = Session(last_inbound_at=T - H)  # open at T
CLOSED = Session(last_inbound_at=T - 24 * H)  # closed at exactly T
NEVER = Session()

NO_CONSENT = ConsentState()
FREEFORM = Outgoing()
MARKETING = Outgoing(template_category="MARKETING", template_status="APPROVED")
UTILITY = Outgoing(template_category="UTILITY", template_status="APPROVED")


def _consent(*entries: Entry) -> ConsentState:
    return derive(entries)


OPTED_IN = _consent(Entry("marketing", "opt_in", T - 10 * H))
LATER_OPT_OUT = _consent(Entry("marketing", "opt_in", T - 10 * H), Entry("marketing", "opt_out", T - 5 * H))
OUT_THEN_IN = _consent(Entry("marketing", "opt_out", T - 10 * H), Entry("marketing", "opt_in", T - 5 * H))
ALL_OUT = _consent(Entry("marketing", "opt_in", T - 10 * H), Entry("utility", "opt_out", T - 5 * H))


@pytest.mark.parametrize(
    "outgoing, consent, session, deliverability, verdict, reason_has",
    [
        pytest.param(FREEFORM, NO_CONSENT, OPEN, None, Verdict.ALLOWED, None, id="freeform-inside-window"),
        pytest.param(FREEFORM, NO_CONSENT, CLOSED, None, Verdict.NEEDS_TEMPLATE, "window",
                     id="freeform-window-closed-at-24h"),
        pytest.param(FREEFORM, NO_CONSENT, NEVER, None, Verdict.NEEDS_TEMPLATE, "template",
                     id="freeform-never-opened"),
        pytest.param(FREEFORM, NO_CONSENT, Session(entry_point_at=T - 48 * H), None, Verdict.ALLOWED, None,
                     id="freeform-inside-entry-point-window"),
        pytest.param(FREEFORM, LATER_OPT_OUT, OPEN, None, Verdict.ALLOWED, None,
                     id="freeform-in-window-marketing-opt-out-irrelevant"),
        pytest.param(MARKETING, OPTED_IN, CLOSED, None, Verdict.ALLOWED, None, id="marketing-opted-in"),
        pytest.param(MARKETING, NO_CONSENT, CLOSED, None, Verdict.BLOCKED, "opt-in", id="marketing-no-consent"),
        pytest.param(MARKETING, NO_CONSENT, OPEN, None, Verdict.BLOCKED, "opt-in",
                     id="marketing-no-consent-even-in-window"),
        pytest.param(MARKETING, LATER_OPT_OUT, CLOSED, None, Verdict.BLOCKED, "opted out of marketing",
                     id="marketing-later-opt-out"),
        pytest.param(MARKETING, OUT_THEN_IN, CLOSED, None, Verdict.ALLOWED, None,
                     id="marketing-opt-out-then-opt-in"),
        pytest.param(UTILITY, NO_CONSENT, CLOSED, None, Verdict.ALLOWED, None, id="utility-without-marketing"),
        pytest.param(UTILITY, LATER_OPT_OUT, CLOSED, None, Verdict.ALLOWED, None,
                     id="utility-after-marketing-opt-out"),
        pytest.param(FREEFORM, ALL_OUT, OPEN, None, Verdict.BLOCKED, "all messages", id="all-out-freeform"),
        pytest.param(UTILITY, ALL_OUT, CLOSED, None, Verdict.BLOCKED, "all messages", id="all-out-utility"),
        pytest.param(MARKETING, ALL_OUT, CLOSED, None, Verdict.BLOCKED, "all messages", id="all-out-marketing"),
        pytest.param(Outgoing(template_category="UTILITY", template_status="PAUSED"), NO_CONSENT, CLOSED, None,
                     Verdict.BLOCKED, "PAUSED", id="template-paused"),
        pytest.param(Outgoing(template_category="MARKETING", template_status="REJECTED"), OPTED_IN, CLOSED, None,
                     Verdict.BLOCKED, "REJECTED", id="template-rejected"),
        pytest.param(Outgoing(template_category="UTILITY", template_status="PENDING"), NO_CONSENT, OPEN, None,
                     Verdict.BLOCKED, "PENDING", id="template-pending-even-in-window"),
        pytest.param(UTILITY, NO_CONSENT, OPEN, "invalid number", Verdict.BLOCKED, "invalid number",
                     id="undeliverable-template"),
        pytest.param(FREEFORM, OPTED_IN, OPEN, "not on WhatsApp", Verdict.BLOCKED, "not deliverable",
                     id="undeliverable-freeform"),
    ],
)
def test_decide(outgoing, consent, session, deliverability, verdict, reason_has):
    decision = decide(outgoing, consent=consent, session=session, now=T, deliverability=deliverability)
    assert decision.verdict is verdict
    assert decision.allowed is (verdict is Verdict.ALLOWED)
    if reason_has is None:
        assert decision.reason == ""
    else:
        assert reason_has in decision.reason
    assert decision.until is None


def test_decide_window_edge_for_freeform():
    session = Session(last_inbound_at=T)
    inside = decide(FREEFORM, consent=NO_CONSENT, session=session, now=T + 24 * H - SEC)
    at_edge = decide(FREEFORM, consent=NO_CONSENT, session=session, now=T + 24 * H)
    assert inside == Decision(verdict=Verdict.ALLOWED)
    assert at_edge.verdict is Verdict.NEEDS_TEMPLATE and at_edge.reason


def test_decide_marketing_blocked_reasons_differ():
    never = decide(MARKETING, consent=NO_CONSENT, session=CLOSED, now=T)
    out = decide(MARKETING, consent=LATER_OPT_OUT, session=CLOSED, now=T)
    assert never.reason != out.reason

