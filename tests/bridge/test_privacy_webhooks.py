"""Shopify's mandatory compliance webhooks through the real endpoint: export, erase a customer,
erase a shop; and a bad signature on any of them is a 401, as Shopify requires."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from core import phones, privacy
from core.store.models import (
    Cart, ConsentEvent, Contact, ContactLink, FlowRun, InboundEvent, Installation, Message, Workspace,
)
from tests.harness import Harness, triggered_at

SHOP = "lumen-tea-co.myshopify.com"
PHONE = "+15550002222"
REMINDER_AT = triggered_at("checkouts_create") + timedelta(hours=1)


@pytest.fixture
def exports(bridge: Harness, tmp_path):
    folder = tmp_path / "exports"
    bridge.rt.settings = dataclasses.replace(bridge.rt.settings, export_dir=str(folder))
    return folder


def _reminded(h: Harness) -> None:
    assert h.shopify("checkouts_create").status_code == 200
    h.at(REMINDER_AT)
    assert len(h.sandbox.sent) == 1 and h.sandbox.sent[0].body["template"]["name"] == "cart_reminder"


def _failed_events(h: Harness) -> list[str]:
    with h.session() as s:
        return [e.error for e in s.scalars(select(InboundEvent).where(InboundEvent.status == "failed"))]


def test_data_request_writes_an_export_with_the_reminder(bridge: Harness, exports):
    _reminded(bridge)
    assert bridge.shopify("customers_data_request").status_code == 200
    assert _failed_events(bridge) == []
    path = exports / f"shopify-{SHOP}-88001.json"
    data = json.loads(path.read_text())
    assert data["found"] is True and data["contact"]["phone_e164"] == PHONE
    assert data["contact"]["first_name"] == "Maya"
    assert ("shopify", "lumen-tea-co.myshopify.com:7700000000101") in {(link["platform"], link["external_id"]) for link in data["links"]}
    [reminder] = [m for m in data["messages"] if m["direction"] == "out"]
    assert reminder["template_name"] == "cart_reminder" and "Maya" in reminder["body"]
    assert reminder["status"] == "accepted" and reminder["wamid"]
    assert [e["action"] for e in data["consent"]["ledger"]] and data["consent"]["current"]["marketing_opt_in"]
    assert (data["carts"][0]["total"], data["carts"][0]["currency"]) == ("82.00", "USD")
    assert data["flow_runs"][0]["flow_name"] == "cart_recovery"
    assert data["request"]["orders"] == ["6100000000044", "6100000000051"]


def test_data_request_for_an_unknown_customer_still_answers(bridge: Harness, exports):
    assert bridge.shopify("customers_data_request").status_code == 200
    data = json.loads((exports / f"shopify-{SHOP}-88001.json").read_text())
    assert data["found"] is False and data["request"]["customer_external_id"] == "lumen-tea-co.myshopify.com:7700000000101"


def test_customers_redact_erases_and_nothing_more_is_sent(bridge: Harness, exports):
    _reminded(bridge)
    assert bridge.shopify("customers_redact").status_code == 200
    assert _failed_events(bridge) == []
    with bridge.session() as s:
        contact = s.scalars(select(Contact)).one()
        assert (contact.phone_e164, contact.first_name, contact.email, contact.wa_id) == (None, None, None, None)
        assert s.scalars(select(ContactLink)).all() == []
        [reminder] = s.scalars(select(Message)).all()
        assert (reminder.body, reminder.request, reminder.kind, reminder.status) == (None, None, "template", "accepted")
        run = s.scalars(select(FlowRun)).one()
        assert (run.status, run.active_key, run.outcome) == ("cancelled", None, "contact erased")
        cart = s.scalars(select(Cart)).one()
        assert (cart.contact_id, cart.recovery_url) == (None, None)
        assert {e.evidence for e in s.scalars(select(ConsentEvent))} == {privacy.REDACTED}
        checkout = s.scalar(select(InboundEvent).where(InboundEvent.kind.like("checkouts%")))
        assert PHONE not in checkout.body and "Maya" not in checkout.body
        ws = s.scalars(select(Workspace)).one()
        keys = phones.match_keys(phones.normalize("(555) 000-2222", "US").e164)
        assert privacy.was_erased(s, ws.id, keys, bridge.rt.settings.erase_salt)
    bridge.at(REMINDER_AT + timedelta(days=3))
    assert len(bridge.sandbox.sent) == 1
    assert not exports.exists()  # an erasure writes no file


def test_control_without_erasure_the_second_reminder_goes_out(bridge: Harness, exports):
    """So that "nothing more is sent" above means something."""
    _reminded(bridge)
    bridge.at(REMINDER_AT + timedelta(days=3))
    assert len(bridge.sandbox.sent) == 2


def test_customers_redact_before_the_reminder_stops_it(bridge: Harness, exports):
    bridge.shopify("checkouts_create")
    bridge.clock.set(REMINDER_AT - timedelta(minutes=10))
    assert bridge.shopify("customers_redact").status_code == 200
    bridge.at(REMINDER_AT + timedelta(hours=1))
    assert bridge.sandbox.sent == []
    with bridge.session() as s:
        assert s.scalars(select(FlowRun)).one().status == "cancelled"


def test_customers_redact_twice_is_harmless(bridge: Harness, exports):
    _reminded(bridge)
    bridge.shopify("customers_redact")
    response = bridge.shopify("customers_redact", headers={"X-Shopify-Webhook-Id": "redelivered-as-new"})
    assert response.status_code == 200
    assert _failed_events(bridge) == []


def test_shop_redact_erases_the_installation(bridge: Harness, exports):
    _reminded(bridge)
    assert bridge.shopify("shop_redact").status_code == 200
    assert _failed_events(bridge) == []
    with bridge.session() as s:
        inst = s.scalar(select(Installation).where(Installation.platform == "shopify", Installation.account == SHOP))
        assert inst.status == "erased"
        contact = s.scalars(select(Contact)).one()
        assert contact.phone_e164 is None and contact.first_name is None
        assert s.scalars(select(FlowRun)).one().status == "cancelled"
    bridge.at(REMINDER_AT + timedelta(days=3))
    assert len(bridge.sandbox.sent) == 1


@pytest.mark.parametrize("topic", ["customers_data_request", "customers_redact", "shop_redact"])
@pytest.mark.parametrize("secret", ["not-the-secret", None], ids=["wrong", "missing"])
def test_bad_signature_on_a_compliance_topic_is_401(bridge: Harness, exports, topic, secret):
    _reminded(bridge)
    assert bridge.shopify(topic, secret=secret).status_code == 401
    with bridge.session() as s:
        assert s.scalars(select(Contact)).one().phone_e164 == PHONE
        assert s.scalar(select(Installation)).status == "active"
    assert not exports.exists()
