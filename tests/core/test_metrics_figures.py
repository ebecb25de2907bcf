"""Every figure of a known history, checked exactly (core/metrics: pure functions of the records)."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from core.metrics import build_report
from core.metrics.figures import Figures
from core.metrics.history import CartRecord, ConsentRecord, History, MessageRecord, RunRecord
from core.metrics.stats import wilson

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=timezone.utc)
H, M, D = timedelta(hours=1), timedelta(minutes=1), timedelta(days=1)
_ids = iter(range(1, 1000))


def out(contact, run, at, status, template=None, step="remind", language="en_US"):
    return MessageRecord(id=next(_ids), contact_id=contact, direction="out", kind="template" if template else "text",
                         status=status, created_at=at, run_id=run, step=step, template=template,
                         language=language if template else None)


def inbound(contact, at):
    return MessageRecord(id=next(_ids), contact_id=contact, direction="in", kind="text", status="received", created_at=at)


def handoff(contact, run, at):
    return MessageRecord(id=next(_ids), contact_id=contact, direction="sys", kind="handoff", status="recorded",
                         created_at=at, run_id=run)


def run(id, contact, flow="cart_recovery", started=T0, **vars):
    subject = f"cart:c{contact}" if flow == "cart_recovery" else f"booking:b{contact}"
    return RunRecord(id=id, flow=flow, contact_id=contact, subject=subject, started_at=started, vars=vars)


M1 = out(1, 1, T0 + H, "read", "cart_reminder")
M3 = out(1, 1, T0 + H + 11 * M, "delivered", step="reply_help")
M5 = out(2, 2, T0 + H, "delivered", "cart_reminder")
M6 = out(2, 2, T0 + 25 * H, "sent", "cart_reminder_2", step="remind_again")
M9 = out(6, 6, T0 + H, "read", "cart_reminder", language="es")
HISTORY = History(
    runs=(run(1, 1), run(2, 2), run(3, 3, started=T0 + D), run(4, 4, _holdout=True), run(5, 5, _holdout=True),
          run(6, 6), run(7, 7, "appointment_reminder", booking_status="confirmed", _variants={"remind": "a"}),
          run(8, 8, "appointment_reminder", _variants={"remind": "b"})),
    messages=(
        M1, inbound(1, T0 + H + 10 * M), M3, inbound(1, T0 + H + 20 * M), handoff(1, 1, T0 + H + 21 * M),
        M5, M6, inbound(2, T0 + 25 * H + 30 * M),
        out(3, 3, T0 + D + H, "failed", "cart_reminder"), out(3, 3, T0 + D + H, "blocked", "cart_reminder"),
        M9, inbound(6, T0 + 8 * D + 2 * H),  # a reply after the 7-day window
        out(7, 7, T0, "read", "appointment_reminder"), inbound(7, T0 + 5 * M),
        out(8, 8, T0, "delivered", "appointment_short"),
    ),
    carts=(
        CartRecord(token="c1", contact_id=1, status="recovered", converted_at=T0 + 2 * H,
                   order_total=Decimal("84.90"), order_currency="EUR"),
        CartRecord(token="c2", contact_id=2, status="open"),
        CartRecord(token="c3", contact_id=3, status="ordered", converted_at=T0 + D + 3 * H,
                   order_total=Decimal("20.00"), order_currency="USD"),
        CartRecord(token="c4", contact_id=4, status="ordered", converted_at=T0 + 3 * D,
                   order_total=Decimal("50.00"), order_currency="EUR"),
        CartRecord(token="c5", contact_id=5, status="open"),
        CartRecord(token="c6", contact_id=6, status="recovered", converted_at=T0 + 2 * D,
                   order_total=Decimal("30.00"), order_currency="EUR"),
    ),
    consent=(ConsentRecord(contact_id=2, purpose="marketing", action="opt_out", at=T0 + 25 * H + 30 * M),
             ConsentRecord(contact_id=1, purpose="marketing", action="opt_in", at=T0 - D)),
)
REPORT = build_report(HISTORY, window=timedelta(days=7))


def _by_key(items) -> dict[str, Figures]:
    return {f.key: f for f in items}


def test_per_flow_figures():
    booking, cart = REPORT.flows  # by name
    assert cart == Figures(
        key="cart_recovery", runs=4, contacted=3, sent=5, delivered=4, read=2, replied=3,
        median_reply_seconds=600.0, mean_messages=8 / 3, mean_minutes=(20 + 1470 + 0) / 3, handoffs=1, opt_outs=1,
        converted=3, carts_recovered=2, bookings_confirmed=0, orders=3, revenue={"EUR": Decimal("114.90")})
    assert booking == Figures(
        key="appointment_reminder", runs=2, contacted=2, sent=2, delivered=2, read=1, replied=1,
        median_reply_seconds=300.0, mean_messages=1.5, mean_minutes=2.5, handoffs=0, opt_outs=0, converted=1,
        carts_recovered=0, bookings_confirmed=1, orders=0, revenue={})
    assert (cart.reply_rate.hits, cart.reply_rate.n) == (3, 5)
    assert (cart.handoff_rate.value, cart.opt_out_rate.value, cart.conversion_rate.value) == (1 / 3, 1 / 3, 3 / 4)


def test_each_handoff_belongs_to_its_own_run():
    """A contact's conversation outlives its runs: a handoff counts for the run that made it, whenever
    it happened, and an agent taking the conversation by hand is no flow's handoff. (The first
    summary counted the conversation's latest handoff for every run started before it: 3 here.)"""
    day = T0 + 30 * D
    first, second, third = (out(9, r, day + i * 2 * D + H, "read", "cart_reminder") for i, r in enumerate((91, 92, 93)))
    taken = MessageRecord(id=next(_ids), contact_id=9, direction="sys", kind="handoff", status="recorded",
                          created_at=day + 2 * D + 2 * H)  # an agent took it: no run
    history = History(runs=(run(91, 9, started=day), run(92, 9, started=day + 2 * D), run(93, 9, started=day + 4 * D)),
                      messages=(first, inbound(9, day + H + M), handoff(9, 91, day + H + 2 * M), second, taken,
                                third, inbound(9, day + 4 * D + H + M), handoff(9, 93, day + 4 * D + H + 2 * M)))
    [cart] = build_report(history).flows
    assert (cart.runs, cart.contacted, cart.handoffs, cart.handoff_rate.value) == (3, 3, 2, 2 / 3)
    [reminder] = build_report(history).templates
    assert (reminder.sent, reminder.replied, reminder.handoffs) == (3, 2, 2)


def test_template_figures():
    t = _by_key(REPORT.templates)
    assert sorted(t) == ["appointment_reminder [en_US]", "appointment_short [en_US]", "cart_reminder [en_US]",
                         "cart_reminder [es]", "cart_reminder_2 [en_US]"]
    assert t["cart_reminder [en_US]"] == Figures(
        key="cart_reminder [en_US]", runs=2, contacted=2, sent=2, delivered=2, read=1, replied=1,
        median_reply_seconds=600.0, mean_messages=3.5, mean_minutes=745.0, handoffs=1, opt_outs=1, converted=1,
        carts_recovered=1, bookings_confirmed=0, orders=1, revenue={"EUR": Decimal("84.90")})
    assert t["cart_reminder [es]"] == Figures(
        key="cart_reminder [es]", runs=1, contacted=1, sent=1, delivered=1, read=1, replied=0,
        median_reply_seconds=None, mean_messages=1.0, mean_minutes=0.0, handoffs=0, opt_outs=0, converted=1,
        carts_recovered=1, bookings_confirmed=0, orders=1, revenue={"EUR": Decimal("30.00")})
    assert t["cart_reminder_2 [en_US]"] == Figures(
        key="cart_reminder_2 [en_US]", runs=1, contacted=1, sent=1, delivered=0, read=0, replied=1,
        median_reply_seconds=1800.0, mean_messages=3.0, mean_minutes=1470.0, handoffs=0, opt_outs=1, converted=0,
        carts_recovered=0, bookings_confirmed=0, orders=0, revenue={})


def test_step_figures():
    s = _by_key(REPORT.steps)
    assert sorted(s) == ["appointment_reminder/remind", "cart_recovery/remind", "cart_recovery/remind_again",
                         "cart_recovery/reply_help"]
    remind = s["cart_recovery/remind"]
    assert (remind.runs, remind.sent, remind.delivered, remind.read, remind.replied) == (3, 3, 3, 2, 1)
    assert (remind.median_reply_seconds, remind.converted, remind.revenue) == (600.0, 2, {"EUR": Decimal("114.90")})
    help_ = s["cart_recovery/reply_help"]
    assert (help_.runs, help_.sent, help_.replied, help_.median_reply_seconds, help_.handoffs) == (1, 1, 1, 540.0, 1)


def test_holdout_and_variants():
    [lift] = REPORT.holdouts
    assert (lift.flow, lift.treated.hits, lift.treated.n, lift.control.hits, lift.control.n) == ("cart_recovery", 3, 4, 1, 2)
    assert lift.lift == pytest.approx(0.25, abs=0)
    a, b = REPORT.variants
    assert (a.variant, a.template, a.runs, a.sent, a.reply.hits, a.conversion.hits, a.handoff.hits) == (
        "a", "appointment_reminder", 1, 1, 1, 1, 0)
    assert (b.variant, b.template, b.runs, b.sent, b.reply.hits, b.conversion.hits) == ("b", "appointment_short", 1, 1, 0, 0)


def test_daily_series():
    assert [(d.day, d.sent, d.replied, d.runs, d.converted) for d in REPORT.days] == [
        (date(2026, 1, 5), 6, 3, 5, 3), (date(2026, 1, 6), 1, 1, 1, 1)]


def test_a_shorter_window_changes_what_counts():
    one_hour = build_report(HISTORY, window=timedelta(hours=1))
    cart = one_hour.flows[1]
    # the 30-minute reply to M6 still counts; the orders (2 h and more after the start) and the opt-out do not
    assert (cart.replied, cart.converted, cart.carts_recovered, cart.opt_outs) == (3, 0, 0, 0)
    assert (cart.mean_messages, cart.mean_minutes) == ((4 + 1 + 1) / 3, 20 / 3)


@pytest.mark.parametrize("hits, n, low, high", [
    (0, 10, 0.0, 0.2775), (5, 10, 0.2366, 0.7634), (10, 10, 0.7225, 1.0), (81, 263, 0.2553, 0.3662)])
def test_wilson_interval_matches_published_values(hits, n, low, high):
    rate = wilson(hits, n)
    assert (round(rate.low, 4), round(rate.high, 4)) == (low, high)
    assert math.isclose(rate.value, hits / n)


def test_wilson_of_nothing():
    assert wilson(0, 0).value is None and str(wilson(0, 0)) == "–"
    with pytest.raises(ValueError):
        wilson(3, 2)
