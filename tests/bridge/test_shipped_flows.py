"""The three shipped flows end to end through the bridge: the trigger API and WhatsApp webhooks in,
the sandbox Cloud API out."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from core.store.models import Contact, Conversation, FlowRun
from tests.harness import Harness

WA = "15550002222"


def _run(h: Harness, flow: str) -> FlowRun:
    with h.session() as s:
        return s.scalars(select(FlowRun).where(FlowRun.flow_name == flow).order_by(FlowRun.id.desc())).first()


def _last(h: Harness) -> dict:
    return h.sandbox.sent[-1].body


def test_welcome_demo_path_books_a_demo(bridge: Harness):
    assert bridge.trigger("contact_opted_in", "signup:1", consent="opt_in").status_code == 202
    assert _last(bridge)["template"]["name"] == "welcome_optin"
    bridge.sandbox.customer_sends(WA, "Maya", button=("topic_demo", "Demo"))
    bridge.settle()
    assert _last(bridge)["interactive"]["type"] == "list"
    rows = [r["id"] for sec in _last(bridge)["interactive"]["action"]["sections"] for r in sec["rows"]]
    assert rows == ["demo_tue_10", "demo_wed_15", "demo_thu_11"]
    bridge.sandbox.customer_sends(WA, "Maya", choice=("demo_wed_15", "Wednesday 15:00"))
    bridge.settle()
    assert "Booked!" in _last(bridge)["text"]["body"]
    with bridge.session() as s:
        assert s.scalars(select(Contact.properties)).one() == {"interest": "demo", "demo_requested": "yes"}
    assert _run(bridge, "welcome").status == "completed"


def test_welcome_without_consent_sends_nothing(bridge: Harness):
    bridge.trigger("contact_opted_in", "signup:2")
    assert bridge.sandbox.sent == []
    assert "no marketing opt-in" in _run(bridge, "welcome").outcome


def test_welcome_reasks_once_then_hands_off_and_times_back_to_the_bot(bridge: Harness):
    bridge.trigger("contact_opted_in", "signup:3", consent="opt_in")
    bridge.sandbox.customer_sends(WA, "Maya", text="what do you sell?")
    bridge.settle()
    assert "Please tap Pricing, Demo or Support" in _last(bridge)["text"]["body"]
    bridge.sandbox.customer_sends(WA, "Maya", text="I said: what do you sell?")
    bridge.settle()
    with bridge.session() as s:
        assert s.scalars(select(Conversation.mode)).one() == "agent"
    assert _run(bridge, "welcome").status == "handed_off"
    bridge.at(bridge.clock.now() + timedelta(hours=4))  # nobody took it
    with bridge.session() as s:
        assert s.scalars(select(Conversation.mode)).one() == "bot"
    assert _run(bridge, "welcome").status == "completed"


def test_a_taken_handoff_does_not_time_out(bridge: Harness):
    bridge.trigger("contact_opted_in", "signup:4", consent="opt_in")
    bridge.sandbox.customer_sends(WA, "Maya", button=("topic_support", "Support"))
    bridge.settle()
    bridge.sandbox.customer_sends(WA, "Maya", choice=("faq_human", "Talk to a person"))
    bridge.settle()
    with bridge.session() as s:
        conv_id = s.scalars(select(Conversation.id)).one()
    assert bridge.api("POST", f"/conversations/{conv_id}/take", json={"agent": "sam"}).status_code == 200
    bridge.at(bridge.clock.now() + timedelta(hours=5))
    with bridge.session() as s:
        assert s.scalars(select(Conversation.mode)).one() == "agent"


def test_appointment_confirm(bridge: Harness):
    data = {"service": "tea tasting", "starts_at": "Tuesday 10:00"}
    assert bridge.trigger("booking_upcoming", "booking:4711", data=data).status_code == 202  # utility: no opt-in needed
    template = _last(bridge)["template"]
    assert template["name"] == "appointment_reminder"
    params = {p["parameter_name"]: p["text"] for p in template["components"][0]["parameters"]}
    assert params == {"first_name": "Maya", "service": "tea tasting", "starts_at": "Tuesday 10:00"}
    bridge.sandbox.customer_sends(WA, "Maya", button=("booking_confirm", "Confirm"))
    bridge.settle()
    assert _last(bridge)["text"]["body"] == "Thank you, Maya: your tea tasting is confirmed."
    run = _run(bridge, "appointment_reminder")
    assert run.status == "completed" and run.vars["booking_status"] == "confirmed"


def test_appointment_reschedule_hands_off_and_release_ends_the_run(bridge: Harness):
    bridge.trigger("booking_upcoming", "booking:4712", data={"service": "tasting", "starts_at": "Tue 10:00"})
    bridge.sandbox.customer_sends(WA, "Maya", button=("booking_reschedule", "Reschedule"))
    bridge.settle()
    bridge.sandbox.customer_sends(WA, "Maya", choice=("slot_other", "None of these"))
    bridge.settle()
    assert _run(bridge, "appointment_reminder").status == "handed_off"
    with bridge.session() as s:
        conv_id = s.scalars(select(Conversation.id)).one()
    assert bridge.api("POST", f"/conversations/{conv_id}/messages", json={"text": "Friday 9:00?"}).status_code == 202
    bridge.settle()
    assert bridge.api("POST", f"/conversations/{conv_id}/release", json={"agent": "sam"}).json() == {"mode": "bot"}
    run = _run(bridge, "appointment_reminder")
    assert run.status == "completed"


def test_booking_cancelled_cancels_the_reminder_run(bridge: Harness):
    bridge.trigger("booking_upcoming", "booking:4713", data={"service": "tasting", "starts_at": "Tue"})
    bridge.trigger("booking_cancelled", "booking:4713")
    run = _run(bridge, "appointment_reminder")
    assert (run.status, run.outcome) == ("cancelled", "booking_cancelled")


def test_higher_priority_flow_replaces_a_lower_one(bridge: Harness):
    bridge.shopify("checkouts_create")  # cart_recovery (priority 0) starts for Maya
    bridge.trigger("booking_upcoming", "booking:4714", data={"service": "tasting", "starts_at": "Tue"})
    assert _run(bridge, "cart_recovery").outcome == "replaced by appointment_reminder (higher priority)"
    assert _run(bridge, "appointment_reminder").status == "waiting"
    bridge.trigger("contact_opted_in", "signup:5", consent="opt_in")  # welcome (priority 1) may not interrupt
    assert _run(bridge, "welcome") is None


def test_trigger_api_refuses_bad_input_with_a_reason(bridge: Harness):
    bad = bridge.api("POST", "/triggers", json={"event": "Booking Upcoming", "subject": "x",
                                                "contact": {"phone": "+15550002222"}})
    assert bad.status_code == 400 and "event" in bad.json()["error"]
    no_phone = bridge.api("POST", "/triggers", json={"event": "booking_upcoming", "subject": "x", "contact": {}})
    assert no_phone.status_code == 400 and "contact.phone" in no_phone.json()["error"]
    assert bridge.http.post("/api/triggers", json={}).status_code == 401
