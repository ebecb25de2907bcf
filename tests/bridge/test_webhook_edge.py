"""The edge: signatures, malformed input, duplicates (also concurrent), and what is recorded."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from core.store.models import Cart, FlowRun, InboundEvent, Message
from tests.harness import Harness, shopify_fixture, triggered_at

WA_FIXTURES = "tests/fixtures/whatsapp"


def _count(h: Harness, model) -> int:
    with h.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def _wa(name: str) -> bytes:
    with open(f"{WA_FIXTURES}/{name}", "rb") as f:
        return f.read()


# ------------------------------------------------------------------ signatures


@pytest.mark.parametrize("secret, expected", [("test-shopify-client-secret", 200), ("wrong-secret", 401), (None, 401)],
                         ids=["good", "wrong", "missing"])
def test_shopify_signature(bridge: Harness, secret, expected):
    response = bridge.shopify("checkouts_create", secret=secret)
    assert response.status_code == expected, response.text
    assert _count(bridge, InboundEvent) == (1 if expected == 200 else 0)
    if expected != 200:
        assert "signature" in response.json()["error"].lower() or "hmac" in response.json()["error"].lower()


def test_shopify_fixture_signature_verifies_with_fixture_secret(bridge: Harness):
    body, headers = shopify_fixture("checkouts_create")
    response = bridge.http.post("/webhooks/shopify", content=body, headers=headers)
    assert response.status_code == 200  # the fixture's own header, computed by Shopify's rule


@pytest.mark.parametrize("signature, expected", [("sign", 200), ("sha256=" + "0" * 64, 403), (None, 401),
                                                 ("md5=abc", 403)], ids=["good", "wrong", "missing", "malformed"])
def test_whatsapp_signature(bridge: Harness, signature, expected):
    response = bridge.whatsapp(_wa("inbound_text.json"), signature=signature)
    assert response.status_code == expected, response.text
    assert _count(bridge, InboundEvent) == (1 if expected == 200 else 0)


def test_whatsapp_handshake(bridge: Harness):
    token = bridge.rt.settings.whatsapp_verify_token
    ok = bridge.http.get("/webhooks/whatsapp", params={"hub.mode": "subscribe", "hub.verify_token": token,
                                                        "hub.challenge": "1158201444"})
    assert (ok.status_code, ok.text) == (200, "1158201444")
    bad = bridge.http.get("/webhooks/whatsapp", params={"hub.mode": "subscribe", "hub.verify_token": "nope",
                                                         "hub.challenge": "1"})
    assert bad.status_code == 403


# ------------------------------------------------------------------ malformed input


@pytest.mark.parametrize("body, reason", [
    (b"not json", "json"),
    (b'{"object": "page", "entry": []}', "whatsapp_business_account"),
    (b'{"object": "whatsapp_business_account", "entry": "x"}', "entry"),
], ids=["not-json", "wrong-object", "entry-not-list"])
def test_whatsapp_malformed_is_400_with_reason(bridge: Harness, body, reason):
    response = bridge.whatsapp(body)
    assert response.status_code == 400
    assert reason in response.json()["error"].lower()
    assert _count(bridge, InboundEvent) == 0


def test_shopify_malformed_is_400_with_reason(bridge: Harness):
    body = json.dumps({"id": 1, "total_price": "12.00", "currency": "USD"}).encode()  # a checkout without token
    response = bridge.shopify("checkouts_create", body=body)
    assert response.status_code == 400 and "token" in response.json()["error"]
    missing_topic = bridge.shopify("checkouts_create", headers={"X-Shopify-Topic": ""})
    assert missing_topic.status_code == 400 and "topic" in missing_topic.json()["error"].lower()
    assert _count(bridge, InboundEvent) == 0


def test_oversized_body_is_413(bridge: Harness):
    response = bridge.whatsapp(b"{" + b" " * (7 * 1024 * 1024) + b"}", signature="sha256=" + "0" * 64)
    assert response.status_code == 413


def test_unknown_platform_and_unconfigured_connector(bridge: Harness):
    assert bridge.http.post("/webhooks/nowhere", content=b"{}").status_code == 404
    from dataclasses import replace

    bridge.rt.settings = replace(bridge.rt.settings, shopify_webhook_secrets=())
    response = bridge.shopify("checkouts_create")
    assert response.status_code == 503 and "SHOPIFY_WEBHOOK_SECRET" in response.json()["error"]


def test_unknown_whatsapp_fields_are_acknowledged_not_processed(bridge: Harness):
    body = _wa("template_status_update.json").replace(b'"message_template_status_update"', b'"account_update"')
    response = bridge.whatsapp(body)
    assert response.status_code == 200
    with bridge.session() as s:
        assert [e.status for e in s.scalars(select(InboundEvent))] == ["ignored"]


def test_template_status_webhooks_are_processed(bridge: Harness):
    assert bridge.whatsapp(_wa("template_status_update.json")).status_code == 200
    with bridge.session() as s:
        assert [e.status for e in s.scalars(select(InboundEvent))] == ["done"]


# ------------------------------------------------------------------ duplicates


def test_duplicate_shopify_delivery_is_acknowledged_and_dropped(bridge: Harness):
    first, second = bridge.shopify("checkouts_create"), bridge.shopify("checkouts_create")
    assert first.status_code == second.status_code == 200
    assert (first.json()["new"], second.json()["new"]) == (1, 0)
    assert _count(bridge, InboundEvent) == 1 and _count(bridge, Cart) == 1 and _count(bridge, FlowRun) == 1


def test_duplicate_whatsapp_message_creates_one_message(bridge: Harness):
    body = _wa("inbound_text.json")
    assert bridge.whatsapp(body).json()["new"] == 1
    assert bridge.whatsapp(body).json()["new"] == 0
    with bridge.session() as s:
        assert s.scalar(select(func.count()).select_from(Message).where(Message.direction == "in")) == 1


def test_concurrent_duplicate_deliveries_create_one_message(bridge: Harness):
    body = _wa("inbound_text.json")
    barrier, results = threading.Barrier(4), []

    def post():
        barrier.wait()
        results.append(bridge.whatsapp(body, settle=False))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bridge.settle()
    assert [r.status_code for r in results] == [200] * 4
    assert sum(r.json()["new"] for r in results) == 1
    with bridge.session() as s:
        assert s.scalar(select(func.count()).select_from(Message).where(Message.direction == "in")) == 1


def test_batched_webhook_records_each_update(bridge: Harness):
    response = bridge.whatsapp(_wa("inbound_multiple_messages_batched.json"))
    assert response.json() == {"received": 3, "new": 3}
    with bridge.session() as s:
        assert s.scalar(select(func.count()).select_from(Message).where(Message.direction == "in")) == 2


# ------------------------------------------------------------------ cart rules


def test_order_before_reminder_cancels_it(bridge: Harness):
    bridge.shopify("checkouts_create")
    bridge.clock.set(triggered_at("checkouts_update"))
    bridge.shopify("checkouts_update")
    bridge.clock.set(triggered_at("checkouts_update") + timedelta(minutes=30))
    bridge.shopify("orders_create")
    bridge.at(triggered_at("checkouts_update") + timedelta(hours=2))
    assert bridge.sandbox.sent == []
    with bridge.session() as s:
        run = s.scalars(select(FlowRun)).one()
        cart = s.scalars(select(Cart)).one()
        assert run.status == "cancelled" and "#1051" in run.outcome
        assert cart.status == "ordered"  # bought without a reminder: not counted as recovered revenue


def test_checkout_update_after_order_does_not_restart_the_cart(bridge: Harness):
    bridge.shopify("checkouts_create")
    bridge.shopify("orders_create")
    bridge.clock.advance(timedelta(minutes=5))
    late = bridge.shopify("checkouts_update", headers={"X-Shopify-Webhook-Id": "late-delivery-1"})
    assert late.status_code == 200
    bridge.at(bridge.clock.now() + timedelta(hours=3))
    assert bridge.sandbox.sent == []
    with bridge.session() as s:
        assert [r.status for r in s.scalars(select(FlowRun))] == ["cancelled"]
        assert s.scalars(select(Cart)).one().status == "ordered"


def test_cart_without_marketing_consent_sends_nothing_and_says_why(bridge: Harness):
    bridge.clock.set(triggered_at("checkouts_update_phone_in_shipping_only"))
    assert bridge.shopify("checkouts_update_phone_in_shipping_only").status_code == 200
    bridge.at(bridge.clock.now() + timedelta(hours=1, minutes=1))
    assert bridge.sandbox.sent == []
    with bridge.session() as s:
        run = s.scalars(select(FlowRun)).one()
        assert run.status == "completed" and "no marketing opt-in" in run.outcome
        assert s.scalars(select(Message)).all() == []  # refused by the gate before any outbox row


def test_agent_reply_outside_the_window_is_refused_with_the_reason(bridge: Harness):
    bridge.whatsapp(_wa("inbound_text.json"))
    with bridge.session() as s:
        conv_id = s.scalar(select(Message.conversation_id))
        last = s.scalar(select(Message.status_at))
    bridge.clock.set(last + timedelta(hours=24))
    response = bridge.api("POST", f"/conversations/{conv_id}/messages", json={"text": "hello?"})
    assert response.status_code == 409 and "24-hour window" in response.json()["error"]
    assert bridge.sandbox.sent == []


def test_agent_api_needs_the_token(bridge: Harness):
    assert bridge.http.get("/api/conversations").status_code == 401
    assert bridge.api("GET", "/conversations").status_code == 200
