"""STOP in the middle of the cart flow: the run stops at once, one confirmation, no reminder after."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from core.consent import message_intent
from core.store.models import ConsentEvent, FlowRun, Message
from tests.harness import Harness, triggered_at

WA_ID, NAME = "15550002222", "Maya Lindqvist"


def _reminded(h: Harness) -> None:
    h.shopify("checkouts_create")
    h.at(triggered_at("checkouts_create") + timedelta(hours=1))
    assert len(h.sandbox.sent) == 1  # the reminder template


@pytest.mark.parametrize("text", ["STOP", "  stop! ", "Arrêt", "ABMELDEN", "baja."])
def test_stop_mid_flow_cancels_the_run_and_confirms_once(bridge: Harness, text):
    _reminded(bridge)
    bridge.clock.advance(timedelta(minutes=3))
    bridge.sandbox.customer_sends(WA_ID, NAME, text=text)
    bridge.settle()
    assert len(bridge.sandbox.sent) == 2
    assert "not receive marketing" in bridge.sandbox.sent[1].body["text"]["body"]
    with bridge.session() as s:
        run = s.scalars(select(FlowRun)).one()
        assert (run.status, run.outcome) == ("cancelled", "contact opted out")
        ledger = s.scalars(select(ConsentEvent).order_by(ConsentEvent.at)).all()
        assert [(e.action, e.source) for e in ledger][-1] == ("opt_out", "whatsapp.keyword")
    # a second STOP is not confirmed again; nothing more is sent, however long we wait
    bridge.sandbox.customer_sends(WA_ID, NAME, text="stop")
    bridge.settle()
    bridge.at(bridge.clock.now() + timedelta(days=2))
    assert len(bridge.sandbox.sent) == 2


def test_opt_out_button_and_a_later_cart_is_not_reminded(bridge: Harness):
    _reminded(bridge)
    bridge.sandbox.customer_sends(WA_ID, NAME, button=("optout:marketing", "Stop promotions"))
    bridge.settle()
    bridge.shopify("orders_create")  # the first cart ends
    new_checkout = triggered_at("checkouts_create") + timedelta(days=3)
    bridge.clock.set(new_checkout)
    body = bridge.shopify("checkouts_create", settle=False, headers={"X-Shopify-Webhook-Id": "second-cart"},
                          body=(b'{"token":"b2c3","total_price":"20.00","currency":"USD",'
                                b'"sms_marketing_phone":"+15550002222","phone":"+15550002222",'
                                b'"abandoned_checkout_url":"https://lumen-tea-co.myshopify.com/r/b2c3"}'))
    assert body.status_code == 200
    bridge.settle()
    bridge.at(new_checkout + timedelta(hours=2))
    with bridge.session() as s:
        runs = s.scalars(select(FlowRun).order_by(FlowRun.id)).all()
        assert runs[-1].status == "completed" and "opted out of marketing" in runs[-1].outcome
        assert s.scalar(select(ConsentEvent.source).order_by(ConsentEvent.id.desc())) == "whatsapp.button"
    assert [m.body.get("type") for m in bridge.sandbox.sent] == ["template", "text"]  # reminder + confirmation


def test_agent_owned_conversation_still_honours_stop(bridge: Harness):
    _reminded(bridge)
    bridge.sandbox.customer_sends(WA_ID, NAME, button=("cart_help", "I need help"))
    bridge.settle()
    bridge.sandbox.customer_sends(WA_ID, NAME, text="STOP")
    bridge.settle()
    with bridge.session() as s:
        assert s.scalar(select(ConsentEvent.action).order_by(ConsentEvent.id.desc())) == "opt_out"
        assert s.scalars(select(FlowRun)).one().status == "cancelled"
        assert s.scalar(select(Message.body).where(Message.author == "bot:consent")) is not None


@pytest.mark.parametrize("text, reply_id, expected", [
    ("STOP", None, "opt_out"), ("Stop.", None, "opt_out"), ("ARRÊT", None, "opt_out"), ("sair", None, "opt_out"),
    ("Cancella", None, "opt_out"), ("afmelden", None, "opt_out"), ("unsubscribe", None, "opt_out"),
    ("start", None, "opt_in"), ("Démarrer", None, "opt_in"),
    ("please don't stop my order", None, None), ("stop sending", None, None), ("hello", None, None),
    ("Stop promotions", "optout:marketing", "opt_out"), (None, None, None),
])
def test_message_intent_rule(text, reply_id, expected):
    assert message_intent(text, reply_id) == expected
