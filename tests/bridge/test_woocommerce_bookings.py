"""WooCommerce Bookings: a new booking is fetched through the API, found again when it is about to
start (the appointment reminder), and the customer's Confirm / Reschedule update it in the store."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from bridge.woocommerce_connect import connect
from core.store.models import ActionTask, FlowRun, InboundEvent
from tests.conftest import FIXTURES
from tests.emulators.woocommerce import WooStore
from tests.harness import Harness

START = datetime(2025, 11, 4, 12, 0, tzinfo=timezone.utc)  # two days before the booking
BOOKED = datetime(2025, 11, 6, 16, 0, tzinfo=timezone.utc)  # the fixture's start
WA_ID = "15550007777"


def _fixture(name: str) -> dict:
    return json.loads((FIXTURES / "woocommerce" / name).read_bytes())


@pytest.fixture
def shop(tmp_path):
    h = Harness(tmp_path, start=START)
    h.rt.settings = replace(h.rt.settings, public_url=h.server.url)
    store = WooStore(h.clock, keys={"ck_test": "cs_test"})
    connect(h.rt, store.url, "ck_test", "cs_test", bookings=True)
    booking = _fixture("booking_get_response.json")
    store.bookings[7781] = booking
    paid = _fixture("order_updated.json")
    paid.update(id=5140, number="5140", billing={**paid["billing"], "first_name": "Ana", "phone": "+1 555 000 7777"},
                line_items=[{**paid["line_items"][0], "id": 1260, "product_id": 640, "name": "Wheel-throwing class"}])
    store.put_order(paid, topic=None)
    yield h, store
    store.close()
    h.close()


def _remind(h: Harness, store: WooStore) -> dict:
    assert "action.woocommerce_new_booking" in {w["topic"] for w in store.webhooks.values()}
    store.deliver("action.woocommerce_new_booking", _fixture("action_new_booking.json") | {})
    h.settle()
    with h.session() as s:
        event = s.scalar(select(InboundEvent).where(InboundEvent.kind == "action.woocommerce_new_booking"))
        assert event.status == "done" and event.error is None  # fetched: booking_created, no flow listens
    h.at(BOOKED - timedelta(hours=25))
    assert h.sandbox.sent == []  # not yet within a day of the start
    h.at(BOOKED - timedelta(hours=23, minutes=50))
    [sent] = [m.body for m in h.sandbox.sent]
    return sent


def test_a_booking_is_reminded_a_day_before_and_confirm_confirms_it_in_the_shop(shop):
    h, store = shop
    sent = _remind(h, store)
    assert sent["to"] == f"+{WA_ID}" and sent["template"]["name"] == "appointment_reminder"
    params = {p["parameter_name"]: p["text"] for p in sent["template"]["components"][0]["parameters"]}
    assert params == {"first_name": "Ana", "service": "Wheel-throwing class", "starts_at": "Thu 6 Nov, 10:00"}
    h.sandbox.customer_sends(WA_ID, "Ana", button=("booking_confirm", "Confirm"))
    h.settle()
    assert store.bookings[7781]["status"] == "confirmed"
    with h.session() as s:
        task = s.scalar(select(ActionTask))
        assert (task.name, task.status, task.result) == ("woocommerce.confirm_booking", "done",
                                                         "booking 7781 is confirmed")
    h.at(h.clock.now() + timedelta(hours=1))  # found again by the next reconciliation: no second reminder
    assert len([m for m in h.sandbox.sent if m.body["type"] == "template"]) == 1


def test_reschedule_puts_the_booking_back_to_pending_confirmation_with_a_note(shop):
    h, store = shop
    _remind(h, store)
    h.sandbox.customer_sends(WA_ID, "Ana", button=("booking_reschedule", "Reschedule"))
    h.settle()
    h.sandbox.customer_sends(WA_ID, "Ana", button=("slot_1", "Tomorrow 09:30"))
    h.settle()
    assert store.bookings[7781]["status"] == "pending-confirmation"
    assert any("asked to move booking #7781" in n for n in store.private_notes(5140))
    with h.session() as s:
        assert s.scalar(select(FlowRun).where(FlowRun.flow_name == "appointment_reminder")).vars[
            "booking_status"] == "reschedule_requested"


def test_a_booking_from_the_trigger_api_skips_the_woocommerce_action(tmp_path):
    h = Harness(tmp_path)
    try:
        h.trigger("booking_upcoming", "booking:9", data={"service": "tasting", "starts_at": "Tue"})
        h.sandbox.customer_sends("15550002222", "Maya", button=("booking_confirm", "Confirm"))
        h.settle()
        with h.session() as s:
            task = s.scalar(select(ActionTask))
            assert (task.status, task.result) == ("done", "skipped: not a WooCommerce booking")
    finally:
        h.close()
