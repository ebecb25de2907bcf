"""Shopify deliveries through the real endpoint: consent from the shop, protected customer data,
app/uninstalled, and shop/redact scoped to the shop that left."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from core.store.models import Cart, ConsentEvent, Contact, ContactLink, FlowRun, InboundEvent, Installation, Message
from tests.harness import Harness, shopify_fixture, triggered_at
from tests.shopify_env import SHOP

REMINDER_AT = triggered_at("checkouts_create") + timedelta(hours=1)


def _ledger(h: Harness) -> list[tuple[str, str, dict]]:
    with h.session() as s:
        return [(e.source, e.action, json.loads(e.evidence))
                for e in s.scalars(select(ConsentEvent).order_by(ConsentEvent.at, ConsentEvent.id))]


def _failed(h: Harness) -> list[str]:
    with h.session() as s:
        return [e.error for e in s.scalars(select(InboundEvent).where(InboundEvent.status == "failed"))]


# ---------------------------------------------------------------- consent from the shop


def test_checkout_sms_box_and_customer_consent_become_ledger_entries_with_evidence(bridge: Harness):
    assert bridge.shopify("checkouts_create").status_code == 200
    ledger = _ledger(bridge)
    assert {(src, action) for src, action, _ in ledger} == {("shopify.checkout", "opt_in"),
                                                            ("shopify.customer", "opt_in")}
    checkout = next(ev for src, _, ev in ledger if src == "shopify.checkout")
    assert checkout == {"buyer_accepts_sms_marketing": True, "sms_marketing_phone": "+15550002222",
                        "token": "7d0c3b5e2a914f6c8e1d9b4a6f2c0e85"}
    customer = next(ev for src, _, ev in ledger if src == "shopify.customer")
    assert customer["state"] == "subscribed" and customer["consent_collected_from"] == "SHOPIFY"
    assert customer["customer_id"] == "7700000000101"


def test_an_unsubscribe_in_the_shop_admin_stops_the_reminder(bridge: Harness):
    bridge.shopify("checkouts_create")
    bridge.clock.set(REMINDER_AT - timedelta(minutes=20))
    changed = REMINDER_AT - timedelta(minutes=20)
    body = json.loads(shopify_fixture("customers_update")[0])
    body["sms_marketing_consent"]["consent_updated_at"] = changed.isoformat()
    headers = {"X-Shopify-Triggered-At": changed.strftime("%Y-%m-%dT%H:%M:%S.000000000Z")}
    assert bridge.shopify("customers_update", body=json.dumps(body).encode(), headers=headers).status_code == 200
    assert _failed(bridge) == []
    assert [(src, action) for src, action, _ in _ledger(bridge)][-1] == ("shopify.customer", "opt_out")
    bridge.at(REMINDER_AT + timedelta(minutes=1))
    assert bridge.sandbox.sent == []
    with bridge.session() as s:
        assert "opted out of marketing" in s.scalars(select(FlowRun)).one().outcome


def test_a_stop_on_whatsapp_is_not_undone_by_the_shop_repeating_older_consent(bridge: Harness):
    bridge.shopify("checkouts_create")
    bridge.at(REMINDER_AT)
    assert len(bridge.sandbox.sent) == 1
    bridge.clock.advance(timedelta(minutes=5))
    bridge.sandbox.customer_sends("15550002222", "Maya", text="STOP")
    bridge.settle()
    sent = len(bridge.sandbox.sent)  # the reminder and the opt-out confirmation
    # later the shop repeats the ticked box (the same checkout, updated) and Maya's consent given in
    # June (a customer update): neither is a new opt-in
    bridge.clock.advance(timedelta(minutes=30))
    stamp = bridge.clock.now().strftime("%Y-%m-%dT%H:%M:%S.000000000Z")
    bridge.shopify("checkouts_update", headers={"X-Shopify-Triggered-At": stamp})
    bridge.clock.advance(timedelta(hours=1))
    body = json.loads(shopify_fixture("customers_update")[0])
    body["sms_marketing_consent"] = dict(body["sms_marketing_consent"], state="subscribed",
                                         consent_updated_at="2025-06-14T12:20:41-04:00")
    stamp = bridge.clock.now().strftime("%Y-%m-%dT%H:%M:%S.000000000Z")
    bridge.shopify("customers_update", body=json.dumps(body).encode(), headers={"X-Shopify-Triggered-At": stamp})
    bridge.at(REMINDER_AT + timedelta(days=2))
    assert len(bridge.sandbox.sent) == sent  # no second reminder
    with bridge.session() as s:
        from core import consent as rules

        entries = s.scalars(select(ConsentEvent)).all()
        assert rules.derive(entries).marketing_opt_out


def test_a_new_subscribed_customer_is_a_contact_with_an_opt_in_and_nothing_is_sent(bridge: Harness):
    assert bridge.shopify("customers_create_subscribed").status_code == 200
    with bridge.session() as s:
        noor = s.scalars(select(Contact)).one()
        assert (noor.phone_e164, noor.first_name) == ("+15550006666", "Noor")
        links = {link.external_id for link in s.scalars(select(ContactLink).where(ContactLink.platform == "shopify"))}
        assert links == {f"{SHOP}:7700000000303"}
        assert s.scalars(select(Message)).all() == [] and s.scalars(select(FlowRun)).all() == []
    [(source, action, evidence)] = _ledger(bridge)
    assert (source, action, evidence["state"]) == ("shopify.customer", "opt_in", "subscribed")


def test_without_consent_the_cart_is_recorded_and_no_reminder_goes_out(bridge: Harness):
    bridge.clock.set(triggered_at("checkouts_update_phone_in_shipping_only"))
    bridge.shopify("checkouts_update_phone_in_shipping_only")
    bridge.at(bridge.clock.now() + timedelta(hours=2))
    assert bridge.sandbox.sent == [] and _ledger(bridge) == []
    with bridge.session() as s:
        cart = s.scalars(select(Cart)).one()
        assert (cart.token, str(cart.total), cart.contact_id is not None) == ("a41f09c7d3e24b18b6e5c2f0d9a87e13",
                                                                               "46.28", True)


# ---------------------------------------------------------------- protected customer data


def test_a_checkout_with_protected_data_withheld_is_recorded_as_not_contactable(bridge: Harness):
    assert bridge.shopify("checkouts_create_protected_data_withheld").status_code == 200
    assert _failed(bridge) == []
    with bridge.session() as s:
        cart = s.scalars(select(Cart)).one()
        assert (cart.status, cart.contact_id, str(cart.total)) == ("not_contactable", None, "82.00")
        assert "withheld" in cart.problem
        assert s.scalars(select(FlowRun)).all() == [] and s.scalars(select(Contact)).all() == []
        assert s.scalar(select(InboundEvent.status)) == "done"
    bridge.at(REMINDER_AT + timedelta(hours=1))
    assert bridge.sandbox.sent == []


# ---------------------------------------------------------------- app/uninstalled


def test_app_uninstalled_stops_the_shops_flows_and_forgets_its_token(bridge: Harness):
    from core.installations import install
    from core.store.models import Workspace

    with bridge.session() as s:
        install(s, s.scalar(select(Workspace)), "shopify", SHOP, {"access_token": "shpat_x"},
                {"api_version": "2025-10"}, bridge.rt.sealer, bridge.clock.now())
    bridge.shopify("checkouts_create")
    bridge.clock.set(REMINDER_AT - timedelta(minutes=5))
    assert bridge.shopify("app_uninstalled").status_code == 200
    assert _failed(bridge) == []
    with bridge.session() as s:
        inst = s.scalar(select(Installation))
        assert (inst.status, inst.credentials) == ("uninstalled", None)
        run = s.scalars(select(FlowRun)).one()
        assert (run.status, run.active_key) == ("cancelled", None) and SHOP in run.outcome
    bridge.at(REMINDER_AT + timedelta(hours=3))
    assert bridge.sandbox.sent == []
    # a late delivery from the shop that left starts nothing
    late = bridge.shopify("checkouts_update", headers={"X-Shopify-Webhook-Id": "after-uninstall-1"})
    assert late.status_code == 200
    with bridge.session() as s:
        assert [r.status for r in s.scalars(select(FlowRun))] == ["cancelled"]
        event = s.scalar(select(InboundEvent).where(InboundEvent.dedupe_key == "shopify:after-uninstall-1"))
        assert event.status == "ignored" and "uninstalled" in event.error


@pytest.mark.parametrize("topic", ["app_uninstalled", "customers_redact", "shop_redact", "customers_data_request"])
def test_bad_signature_is_401_and_changes_nothing(bridge: Harness, topic):
    bridge.shopify("checkouts_create")
    assert bridge.shopify(topic, secret="not-the-secret").status_code == 401
    assert bridge.shopify(topic, secret=None).status_code == 401
    with bridge.session() as s:
        assert s.scalars(select(FlowRun)).one().status == "waiting"
        assert s.scalar(select(Installation)).status == "active"


# ---------------------------------------------------------------- shop/redact, scoped to the shop


OTHER = "harbor-goods.myshopify.com"


def _other_shops_checkout(h: Harness) -> None:
    """Checkout B (Theo, guest: no customer id) delivered by another shop in the same workspace."""
    h.clock.set(triggered_at("checkouts_update_phone_in_shipping_only"))
    assert h.shopify("checkouts_update_phone_in_shipping_only", headers={"X-Shopify-Shop-Domain": OTHER}).status_code == 200


def test_shop_redact_erases_only_that_shops_contacts(bridge: Harness):
    bridge.shopify("checkouts_create")  # Maya, customer of lumen-tea-co
    _other_shops_checkout(bridge)
    guest_body, _ = shopify_fixture("checkouts_update_phone_in_shipping_only")
    guest = json.loads(guest_body)
    guest.update(token="b" * 32, email="ines.guest@example.net",
                 shipping_address=dict(guest["shipping_address"], phone="(555) 000-7777", first_name="Ines"))
    bridge.shopify("checkouts_update_phone_in_shipping_only", body=json.dumps(guest).encode(),
                   headers={"X-Shopify-Webhook-Id": "guest-of-lumen-1"})  # a guest of lumen-tea-co
    assert bridge.shopify("shop_redact").status_code == 200
    assert _failed(bridge) == []
    with bridge.session() as s:
        people = {c.email: c for c in s.scalars(select(Contact))}
        assert set(people) == {None, "theo.okafor@example.net"}  # Maya and the guest Ines are erased
        assert people["theo.okafor@example.net"].phone_e164 == "+15550004444"
        assert {i.account: i.status for i in s.scalars(select(Installation))} == {SHOP: "erased", OTHER: "active"}
        bodies = {e.account: e.body for e in s.scalars(select(InboundEvent).where(InboundEvent.kind != "shop/redact"))}
        assert bodies[SHOP] == "{}" and "Theo" in bodies[OTHER]
        carts = {c.token: c for c in s.scalars(select(Cart))}
        assert carts["7d0c3b5e2a914f6c8e1d9b4a6f2c0e85"].recovery_url is None
        assert carts["a41f09c7d3e24b18b6e5c2f0d9a87e13"].recovery_url


def test_a_customer_of_two_shops_only_loses_the_links_of_the_shop_that_left(bridge: Harness):
    bridge.shopify("checkouts_create")
    body, _ = shopify_fixture("checkouts_create")
    other = json.loads(body)
    other.update(token="c" * 32, customer=dict(other["customer"], id=8800000000202))
    bridge.shopify("checkouts_create", body=json.dumps(other).encode(),
                   headers={"X-Shopify-Shop-Domain": OTHER, "X-Shopify-Webhook-Id": "other-shop-maya-1"})
    bridge.shopify("shop_redact")
    with bridge.session() as s:
        maya = s.scalars(select(Contact)).one()
        assert maya.phone_e164 == "+15550002222"
        links = {link.external_id for link in s.scalars(select(ContactLink).where(ContactLink.platform == "shopify"))}
        assert links == {f"{OTHER}:8800000000202"}


def test_a_shop_connected_by_webhook_secret_only_queues_no_write_backs(bridge: Harness):
    from core.store.models import WritebackTask

    bridge.shopify("checkouts_create")
    bridge.at(REMINDER_AT)
    bridge.sandbox.customer_sends("15550002222", "Maya", button=("cart_help", "I need help"))
    bridge.settle()
    with bridge.session() as s:
        assert s.scalar(select(Installation)).credentials is None
        assert s.scalars(select(WritebackTask)).all() == []  # nothing to write with, nothing queued to fail
