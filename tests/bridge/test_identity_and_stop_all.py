"""One person, one contact — whatever form the phone takes — and STOP ALL silences everything."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from core.store.models import ConsentEvent, Contact, Conversation
from tests.harness import Harness, shopify_fixture, triggered_at


def _contacts(h: Harness) -> int:
    with h.session() as s:
        return s.scalar(select(func.count()).select_from(Contact))


def _checkout(token: str, phone: str, country: str, *, webhook_id: str) -> tuple[bytes, dict]:
    body = {"token": token, "total_price": "10.00", "currency": "USD", "buyer_accepts_sms_marketing": True,
            "abandoned_checkout_url": f"https://lumen-tea-co.myshopify.com/r/{token}",
            "shipping_address": {"first_name": "Ana", "phone": phone, "country_code": country}}
    _, headers = shopify_fixture("checkouts_create")
    return json.dumps(body).encode(), {**headers, "X-Shopify-Webhook-Id": webhook_id}


@pytest.mark.parametrize("shop_phone, country, wa_id", [
    ("(555) 000-4444", "US", "15550004444"),  # national format, country from the address
    ("+55 11 98765-4321", "BR", "551187654321"),  # WhatsApp id without Brazil's ninth digit
    ("+52 55 1234 5678", "MX", "5215512345678"),  # WhatsApp id with Mexico's old mobile "1"
    ("+54 9 11 2345-6789", "AR", "541123456789"),  # WhatsApp id without Argentina's mobile "9"
    ("0044 20 7946 0958", "GB", "442079460958"),  # 00 international prefix
], ids=["us-national", "br-ninth-digit", "mx-521", "ar-549", "gb-00"])
def test_a_reply_finds_the_shop_contact(bridge: Harness, shop_phone, country, wa_id):
    body, headers = _checkout("tok-" + wa_id, shop_phone, country, webhook_id="w-" + wa_id)
    assert bridge.shopify("checkouts_create", body=body, headers=headers).status_code == 200
    assert _contacts(bridge) == 1
    bridge.sandbox.customer_sends(wa_id, "Ana", text="hello")
    bridge.settle()
    assert _contacts(bridge) == 1
    with bridge.session() as s:
        assert s.scalars(select(Contact.wa_id)).one() == wa_id


def test_username_only_user_is_one_contact(bridge: Harness):
    with open("tests/fixtures/whatsapp/inbound_text_bsuid_username.json", "rb") as f:
        raw = f.read()
    bridge.whatsapp(raw)
    second = json.loads(raw)
    second["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = "wamid.SECOND"
    bridge.whatsapp(json.dumps(second).encode())
    with bridge.session() as s:
        contact = s.scalars(select(Contact)).one()
        assert (contact.wa_id, contact.user_id) == (None, "PT.30218877465501932211")


def test_stop_from_an_unknown_contact_is_recorded(bridge: Harness):
    bridge.sandbox.customer_sends("15550009999", "Stranger", text="STOP")
    bridge.settle()
    with bridge.session() as s:
        assert s.scalars(select(ConsentEvent.action)).all() == ["opt_out"]
    assert "not receive marketing" in bridge.sandbox.sent[0].body["text"]["body"]


def test_stop_all_blocks_utility_too_and_start_lifts_it(bridge: Harness):
    bridge.shopify("checkouts_create")
    bridge.at(triggered_at("checkouts_create") + timedelta(hours=1))
    bridge.sandbox.customer_sends("15550002222", "Maya", text="Stop all")
    bridge.settle()
    assert "any more messages" in bridge.sandbox.sent[-1].body["text"]["body"]  # the one confirmation
    with bridge.session() as s:
        conv_id = s.scalar(select(Conversation.id))
    refused = bridge.api("POST", f"/conversations/{conv_id}/messages", json={"text": "hello?"})
    assert refused.status_code == 409 and "all messages" in refused.json()["error"]
    bridge.clock.advance(timedelta(minutes=5))
    bridge.sandbox.customer_sends("15550002222", "Maya", text="START")
    bridge.settle()
    assert "Welcome back" in bridge.sandbox.sent[-1].body["text"]["body"]
    assert bridge.api("POST", f"/conversations/{conv_id}/messages", json={"text": "hi"}).status_code == 202


def test_start_from_someone_who_never_left_is_thanked_not_welcomed_back(bridge: Harness):
    bridge.sandbox.customer_sends("15550002233", "Noor", text="START")
    bridge.settle()
    confirmation = bridge.sandbox.sent[-1].body["text"]["body"]
    assert confirmation.startswith("Thank you: you will receive our offers") and "back" not in confirmation
