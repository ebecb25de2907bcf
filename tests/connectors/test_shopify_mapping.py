"""Shopify payloads -> core values and triggers, over the fixture stories."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from connectors.shopify import events as ev
from connectors.shopify import mapper
from connectors.shopify.triggers import to_trigger
from core.events import ConsentAction, ConsentPurpose, PhoneCandidate, TriggerKind

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "shopify"
TOKEN_A = "7d0c3b5e2a914f6c8e1d9b4a6f2c0e85"
TOKEN_B = "a41f09c7d3e24b18b6e5c2f0d9a87e13"
AT = datetime(2025, 11, 3, 14, 2, 11, tzinfo=timezone.utc)


def delivery(name: str, **changes):
    """(headers, payload) for a fixture; ``changes`` edit the decoded body first."""
    body = (FIXTURES / f"{name}.json").read_bytes()
    headers = ev.parse_headers(json.loads((FIXTURES / f"{name}.headers.json").read_text()))
    if changes:
        data = json.loads(body)
        data.update(changes)
        body = json.dumps(data).encode()
    return headers, ev.parse(headers.topic, body)


def trigger(name: str, **changes):
    return to_trigger(*delivery(name, **changes))


# ---------------------------------------------------------------- story A


def test_checkout_a_create_and_update_share_the_subject():
    created, updated = trigger("checkouts_create"), trigger("checkouts_update")
    assert created.kind == updated.kind == TriggerKind.CART_ABANDONED
    assert created.subject == updated.subject == TOKEN_A
    assert created.account == updated.account == "lumen-tea-co.myshopify.com"
    assert created.platform == "shopify"
    assert created.occurred_at == datetime(2025, 11, 3, 14, 2, 11, 482913, tzinfo=timezone.utc)
    assert updated.occurred_at > created.occurred_at
    assert (created.cart.total, created.cart.currency) == (Decimal("82.00"), "USD")
    assert (updated.cart.total, updated.cart.currency) == (Decimal("112.00"), "USD")
    assert updated.raw["token"] == TOKEN_A


def test_checkout_a_cart():
    cart = trigger("checkouts_update").cart
    assert cart.token == TOKEN_A
    assert cart.recovery_url.startswith("https://lumen-tea-co.myshopify.com/64012345678/checkouts/")
    assert [(line.title, line.quantity, line.price) for line in cart.lines] == [
        ("Sencha First Flush", 2, Decimal("24.00")),
        ("Ceramic Kyusu Teapot", 1, Decimal("58.00")),
    ]
    assert cart.completed is False


def test_checkout_a_contact():
    contact = trigger("checkouts_create").contact
    assert contact.platform == "shopify"
    assert contact.external_id == "lumen-tea-co.myshopify.com:7700000000101"
    assert (contact.first_name, contact.last_name) == ("Maya", "Lindqvist")
    assert contact.email == "maya.lindqvist@example.com"
    assert contact.locale == "en-US"
    # the same number everywhere: one candidate, from the field that carries the opt-in
    assert contact.phones == (
        PhoneCandidate(raw="+15550002222", source="checkout.sms_marketing_phone", country="US"),
    )


def test_phone_preference_order_and_sources():
    data = json.loads((FIXTURES / "checkouts_create.json").read_bytes())
    data.update(
        sms_marketing_phone="+15550000001",
        phone="+15550000002",
        billing_address={"phone": "+15550000005", "country_code": "ca"},
        shipping_address={"phone": " +15550000005 ", "country_code": "US"},
    )
    data["customer"]["phone"] = "+15550000003"
    data["customer"]["default_address"].update(phone="+15550000004", country_code="GB")
    c = ev.parse("checkouts/create", json.dumps(data).encode())
    assert [(p.raw, p.source, p.country) for p in mapper.phone_candidates(c)] == [
        ("+15550000001", "checkout.sms_marketing_phone", "CA"),
        ("+15550000002", "checkout.phone", "CA"),
        ("+15550000003", "customer.phone", "CA"),
        ("+15550000004", "customer.default_address.phone", "GB"),
        ("+15550000005", "billing_address.phone", "CA"),
    ]  # the shipping phone repeats the billing one once stripped


def test_checkout_a_consent_from_checkout_and_customer():
    signals = trigger("checkouts_create").consent
    assert [(s.purpose, s.action, s.source) for s in signals] == [
        (ConsentPurpose.MARKETING, ConsentAction.OPT_IN, "shopify.checkout"),
        (ConsentPurpose.MARKETING, ConsentAction.OPT_IN, "shopify.customer"),
    ]
    checkout, customer = (json.loads(s.evidence) for s in signals)
    assert checkout["buyer_accepts_sms_marketing"] is True
    assert checkout["sms_marketing_phone"] == "+15550002222"
    assert customer["opt_in_level"] == "single_opt_in"
    assert customer["consent_collected_from"] == "SHOPIFY"
    assert customer["consent_updated_at"].startswith("2025-06-14T16:20:41")
    assert signals[0].at == datetime(2025, 11, 3, 14, 1, 58, tzinfo=timezone.utc)  # the checkout's start
    assert signals[1].at == datetime(2025, 6, 14, 16, 20, 41, tzinfo=timezone.utc)  # given back in June


def test_consent_is_dated_when_it_was_given_else_when_we_learn_it():
    _, c = delivery("checkouts_create")
    june = datetime(2025, 6, 14, 16, 20, 41, tzinfo=timezone.utc)
    assert [s.at for s in mapper.consent(c, AT)] == [datetime(2025, 11, 3, 14, 1, 58, tzinfo=timezone.utc), june]
    customer = dict(c.customer.raw)
    customer["sms_marketing_consent"] = dict(customer["sms_marketing_consent"], consent_updated_at=None)
    _, c = delivery("checkouts_create", customer=customer, created_at=None)
    assert {s.at for s in mapper.consent(c, AT)} == {AT}  # no dates given: when Shopify tells us


@pytest.mark.parametrize(
    ("state", "expected"),
    [("unsubscribed", [ConsentAction.OPT_OUT]), ("not_subscribed", []), ("pending", []),
     ("SUBSCRIBED", [ConsentAction.OPT_IN]), (None, [])],
)
def test_customer_sms_states(state, expected):
    _, c = delivery("checkouts_create", buyer_accepts_sms_marketing=False)
    customer = dict(c.customer.raw)
    customer["sms_marketing_consent"] = dict(customer["sms_marketing_consent"], state=state)
    _, c = delivery("checkouts_create", buyer_accepts_sms_marketing=False, customer=customer)
    assert [s.action for s in mapper.consent(c, AT)] == expected


def test_checkout_box_without_sms_phone_is_no_signal():
    _, c = delivery("checkouts_create", sms_marketing_phone=None, customer=None)
    assert mapper.consent(c, AT) == ()


def test_orders_create_recovers_checkout_a():
    t = trigger("orders_create")
    assert t.kind == TriggerKind.ORDER_CREATED
    assert t.subject == "6100000000051"
    assert t.order.checkout_token == TOKEN_A
    assert (t.order.order_id, t.order.name) == ("6100000000051", "#1051")
    assert (t.order.total, t.order.currency) == (Decimal("112.00"), "USD")
    assert t.cart is None
    assert t.contact.phones[0] == PhoneCandidate(raw="+15550002222", source="order.phone", country="US")
    assert [s.source for s in t.consent] == ["shopify.customer"]


def test_orders_paid_maps_like_orders_create():
    headers, payload = delivery("orders_create")
    paid = to_trigger(ev.WebhookHeaders(**{**_fields(headers), "topic": "orders/paid"}), payload)
    assert paid.kind == TriggerKind.ORDER_CREATED and paid.subject == "6100000000051"


def _fields(headers):
    return {name: getattr(headers, name) for name in headers.__dataclass_fields__}


# ---------------------------------------------------------------- story B and edge cases


def test_checkout_b_phone_only_in_shipping_address():
    t = trigger("checkouts_update_phone_in_shipping_only")
    assert t.subject == TOKEN_B
    assert t.contact.phones == (
        PhoneCandidate(raw="(555) 000-4444", source="shipping_address.phone", country="US"),
    )
    assert t.contact.external_id is None
    assert t.contact.email == "theo.okafor@example.net"
    assert (t.contact.first_name, t.contact.last_name) == ("Theo", "Okafor")
    assert t.consent == ()
    assert t.cart.total == Decimal("46.28")


def test_order_b_finds_the_phone_on_the_default_address_first():
    t = trigger("orders_create_phone_in_shipping_only")
    assert t.order.checkout_token == TOKEN_B
    assert t.contact.phones == (
        PhoneCandidate(raw="(555) 000-4444", source="customer.default_address.phone", country="US"),
    )
    assert t.consent == ()


def test_empty_list_shipping_address():
    t = trigger("checkouts_update_phone_in_shipping_only", shipping_address=[])
    assert t.contact.phones == ()
    assert t.cart.token == TOKEN_B


def test_checkout_without_any_contact_details_still_maps():
    t = trigger(
        "checkouts_create",
        email=None, phone=None, sms_marketing_phone=None, customer=None,
        shipping_address=None, billing_address=None,
    )  # fmt: skip
    assert t.kind == TriggerKind.CART_ABANDONED
    assert t.contact.phones == () and t.contact.email is None
    assert t.consent == ()


def test_national_phone_without_address_country_borrows_another_address_country():
    t = trigger(
        "checkouts_update_phone_in_shipping_only",
        phone="(555) 000-9999",
        shipping_address={"phone": "(555) 000-4444"},
    )
    assert [(p.raw, p.country) for p in t.contact.phones] == [
        ("(555) 000-9999", "US"),
        ("(555) 000-4444", "US"),
    ]


def test_completed_checkout_still_maps():
    t = trigger("checkouts_update", completed_at="2025-11-03T10:12:05-05:00")
    assert t.kind == TriggerKind.CART_ABANDONED and t.cart.completed is True


def test_occurred_at_falls_back_to_the_body_without_triggered_at():
    headers, payload = delivery("checkouts_update")
    t = to_trigger(ev.WebhookHeaders(**{**_fields(headers), "triggered_at": None}), payload)
    assert t.occurred_at == datetime(2025, 11, 3, 14, 6, 40, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "name", ["customers_data_request", "customers_redact", "shop_redact", "app_uninstalled"]
)
def test_non_flow_topics_give_no_trigger(name):
    assert trigger(name) is None


def test_unknown_topic_gives_no_trigger():
    headers, _ = delivery("checkouts_create")
    headers = ev.WebhookHeaders(**{**_fields(headers), "topic": "products/update"})
    payload = ev.parse(headers.topic, b'{"id": 1}')
    assert isinstance(payload, ev.ShopifyUnknown)
    assert to_trigger(headers, payload) is None


def test_payload_for_another_topic_is_a_caller_bug():
    headers, _ = delivery("checkouts_create")
    _, order_payload = delivery("orders_create")
    with pytest.raises(TypeError):
        to_trigger(headers, order_payload)


# ---------------------------------------------------------------- customers and the shop's key


def test_customer_update_is_a_contact_change_with_the_consent_it_reports():
    t = trigger("customers_update")
    assert t.kind == TriggerKind.CONTACT_CHANGED and t.subject == "customer:7700000000101"
    assert t.contact.external_id == "lumen-tea-co.myshopify.com:7700000000101"
    assert [p.raw for p in t.contact.phones] == ["+15550002222"]
    [signal] = t.consent
    assert (signal.action, signal.source) == (ConsentAction.OPT_OUT, "shopify.customer")
    assert signal.at == datetime(2025, 11, 4, 13, 15, tzinfo=timezone.utc)  # consent_updated_at
    assert json.loads(signal.evidence)["state"] == "unsubscribed"


def test_withheld_protected_data_leaves_no_way_to_reach_the_buyer():
    t = trigger("checkouts_create_protected_data_withheld")
    assert t.contact.phones == () and t.contact.email is None and t.contact.first_name is None
    assert t.contact.external_id == "lumen-tea-co.myshopify.com:7700000000101"
    assert [s.source for s in t.consent] == ["shopify.customer"]  # no sms_marketing_phone: no checkout opt-in


def test_privacy_requests_name_the_customer_by_the_shops_key():
    headers, payload = delivery("customers_redact")
    request = mapper.privacy_request(payload)
    assert request.customer_external_id == "lumen-tea-co.myshopify.com:7700000000101"
