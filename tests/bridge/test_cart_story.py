"""The walking skeleton's story through the real HTTP endpoints, on each way of running jobs."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from core.metrics import report
from core.store.models import Cart, Conversation, FlowRun, InboundEvent, Message, Workspace
from tests.harness import Harness, triggered_at

WA_ID, NAME = "15550002222", "Maya Lindqvist"


@pytest.fixture(params=["inprocess", "rq", "postgres"])
def story_bridge(request, tmp_path):
    if request.param == "rq":
        harness = Harness(tmp_path, runner="rq", redis_url=request.getfixturevalue("redis_url"))
    elif request.param == "postgres":
        harness = Harness(tmp_path, database_url=request.getfixturevalue("postgres_url"))
    else:
        harness = Harness(tmp_path)
    yield harness
    harness.close()


def _outbound(h: Harness) -> list[Message]:
    with h.session() as s:
        return list(s.scalars(select(Message).where(Message.direction == "out").order_by(Message.id)))


def test_cart_recovery_story(story_bridge: Harness):
    h = story_bridge
    # 1. the checkout is created, then updated: one cart, one run, the update replaces
    assert h.shopify("checkouts_create").status_code == 200
    h.clock.set(triggered_at("checkouts_update"))
    assert h.shopify("checkouts_update").status_code == 200
    with h.session() as s:
        cart = s.scalars(select(Cart)).one()
        run = s.scalars(select(FlowRun)).one()
        assert (cart.total, cart.currency, cart.status) == (Decimal("112.00"), "USD", "open")
        assert run.step == "wait_for_abandonment" and run.status == "waiting"
        assert run.wake_at == triggered_at("checkouts_update") + timedelta(hours=1)
        wake_at = run.wake_at

    # 2. nothing before the delay; the reminder template exactly at it
    h.at(wake_at - timedelta(seconds=1))
    assert h.sandbox.sent == []
    h.at(wake_at)
    assert len(h.sandbox.sent) == 1
    sent = h.sandbox.sent[0].body
    assert sent["to"] == "+15550002222" and sent["type"] == "template"
    assert sent["template"]["name"] == "cart_reminder"
    body_params = {p["parameter_name"]: p["text"] for p in sent["template"]["components"][0]["parameters"]}
    assert body_params["first_name"] == "Maya" and body_params["cart_total"] == "112.00 USD"
    assert "/checkouts/7d0c3b5e2a914f6c8e1d9b4a6f2c0e85/recover" in body_params["recovery_link"]
    payloads = [c["parameters"][0]["payload"] for c in sent["template"]["components"] if c["type"] == "button"]
    assert payloads == ["cart_complete", "cart_help"]
    h.sandbox.deliver_statuses("delivered")
    h.settle()
    assert [m.status for m in _outbound(h)] == ["delivered"]

    # 3. "I need help": the window opens and an agent owns the conversation
    h.clock.advance(timedelta(minutes=2))
    assert h.sandbox.customer_sends(WA_ID, NAME, button=("cart_help", "I need help")).status_code == 200
    h.settle()
    with h.session() as s:
        conv = s.scalars(select(Conversation)).one()
        assert conv.mode == "agent" and conv.last_inbound_at == h.clock.now().replace(microsecond=0)
        assert s.scalars(select(FlowRun)).one().status == "handed_off"
        conv_id = conv.id

    # 4. the agent's free-form reply goes out inside the window; statuses move it forward
    h.clock.advance(timedelta(minutes=2))
    reply = h.api("POST", f"/conversations/{conv_id}/messages", json={"text": "Sam here, happy to help.", "agent": "sam"})
    assert reply.status_code == 202, reply.text
    h.settle()
    assert h.sandbox.sent[-1].body["text"]["body"] == "Sam here, happy to help."
    h.sandbox.deliver_statuses("read")
    h.settle()
    assert [m.status for m in _outbound(h)] == ["read", "read"]

    # the bot stays quiet while the agent owns the conversation, even long after
    h.at(h.clock.now() + timedelta(hours=30))
    assert len(h.sandbox.sent) == 2

    # 5. the order recovers the cart and records the revenue
    assert h.shopify("orders_create").status_code == 200
    with h.session() as s:
        cart = s.scalars(select(Cart)).one()
        assert (cart.status, cart.order_id, cart.order_total, cart.order_currency) == (
            "recovered", "6100000000051", Decimal("112.00"), "USD")
        run = s.scalars(select(FlowRun)).one()
        assert run.status == "cancelled" and run.active_key is None
        ws = s.scalars(select(Workspace)).one()
        result = report(s, ws.id)  # the numbers `replyflow report` and the inbox's metrics page show
        [flow], [template] = result.flows, result.templates
        assert (flow.key, flow.runs, flow.sent, flow.replied, flow.handoffs, flow.carts_recovered) == (
            "cart_recovery", 1, 1, 1, 1, 1)
        assert (template.key, template.sent, template.replied) == ("cart_reminder [en_US]", 1, 1)
        assert flow.revenue == template.revenue == {"USD": Decimal("112.00")}
        assert s.scalar(select(InboundEvent).where(InboundEvent.status == "failed")) is None


@pytest.mark.parametrize("typed, step, mode", [("Complete my order!", "send_link", "bot"),
                                                ("i need HELP", "hand_off", "agent"),
                                                ("complete", None, "bot")])  # not a title: re-asked
def test_typing_a_button_s_title_is_tapping_it(tmp_path, typed, step, mode):
    h = Harness(tmp_path)
    try:
        h.shopify("checkouts_create")
        with h.session() as s:
            wake_at = s.scalars(select(FlowRun)).one().wake_at
        h.at(wake_at)
        assert h.sandbox.sent[0].body["template"]["name"] == "cart_reminder"
        h.clock.advance(timedelta(minutes=2))
        assert h.sandbox.customer_sends(WA_ID, NAME, text=typed).status_code == 200
        h.settle()
        with h.session() as s:
            conv, run = s.scalars(select(Conversation)).one(), s.scalars(select(FlowRun)).one()
            assert conv.mode == mode
            if step is None:  # the bot asks again instead
                assert run.step == "await_reply" and run.status == "waiting"
                assert "recover" not in h.sandbox.sent[-1].body.get("text", {}).get("body", "")
            elif step == "send_link":
                assert "/recover" in h.sandbox.sent[-1].body["text"]["body"]
            else:
                assert run.status == "handed_off" and len(h.sandbox.sent) == 1  # no re-ask first
    finally:
        h.close()


def test_a_flow_that_does_not_start_says_why_in_the_log(tmp_path, caplog):
    import logging

    h = Harness(tmp_path)
    try:
        booked = h.api("POST", "/triggers", json={"event": "booking_upcoming", "subject": "booking:7",
                                                  "contact": {"phone": "+15550002222"},
                                                  "data": {"service": "tea tasting", "starts_at": "Tuesday 10:00"}})
        assert booked.status_code == 202
        h.settle()
        with caplog.at_level(logging.INFO, logger="bridge.jobs"):
            assert h.shopify("checkouts_create").status_code == 200
            h.settle()
        with h.session() as s:
            assert [r.flow_name for r in s.scalars(select(FlowRun))] == ["appointment_reminder"]
        assert any("[cart_recovery] not started: the contact is in appointment_reminder" in r.getMessage()
                   for r in caplog.records), [r.getMessage() for r in caplog.records]
    finally:
        h.close()


PROMO_FLOW = """
name: promo_question
version: 1
trigger:
  event: promo_question
steps:
  - id: ask
    send_text:
      text: "New teas are in. Want to hear about them?"
      buttons:
        - {id: promo_more, title: Tell me more}
        - {id: "optout:marketing", title: Stop promotions}
  - id: answer
    wait_for_reply:
      timeout: 1d
      replies:
        - {button: promo_more, goto: end}
      otherwise: end
"""


def test_typing_an_opt_out_button_s_title_opts_out_like_tapping_it(tmp_path):
    from core import consent as consent_rules
    from core.store.models import ConsentEvent, Contact

    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "promo_question.yaml").write_text(PROMO_FLOW)
    h = Harness(tmp_path, flows_dir=str(flows))
    try:
        assert h.sandbox.customer_sends(WA_ID, NAME, text="hello").status_code == 200  # the window opens
        h.settle()
        assert h.api("POST", "/triggers", json={"event": "promo_question", "subject": "promo:1",
                                                "contact": {"phone": "+15550002222"}}).status_code == 202
        h.settle()
        assert h.sandbox.sent[-1].body["interactive"]["action"]["buttons"][1]["reply"]["title"] == "Stop promotions"
        assert h.sandbox.customer_sends(WA_ID, NAME, text="stop promotions").status_code == 200
        h.settle()
        with h.session() as s:
            contact = s.scalars(select(Contact)).one()
            ledger = list(s.scalars(select(ConsentEvent).where(ConsentEvent.contact_id == contact.id)))
            assert consent_rules.derive(ledger).marketing_opt_out
        assert "You will not receive marketing messages" in h.sandbox.sent[-1].body["text"]["body"]
    finally:
        h.close()
