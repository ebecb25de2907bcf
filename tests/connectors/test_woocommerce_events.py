"""WooCommerce deliveries at the edge: the ping, signatures over the fixtures' exact bytes, typed
payloads, de-duplication on what a delivery is about, and the status -> trigger table."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from connectors.woocommerce import CONNECTOR, events, mapper
from core.errors import PayloadError, SignatureError
from core.events import TriggerKind
from tests.conftest import FIXTURES

SECRET = "test-woo-webhook-secret"
DIR = FIXTURES / "woocommerce"


def fixture(name: str) -> tuple[bytes, dict[str, str]]:
    body = (DIR / (f"{name}.txt" if name == "webhook_ping" else f"{name}.json")).read_bytes()
    return body, json.loads((DIR / f"{name}.headers.json").read_text())


def with_status(name: str, status: str, **changes) -> tuple[bytes, dict[str, str]]:
    body, headers = fixture(name)
    obj = {**json.loads(body), "status": status, **changes}
    raw = json.dumps(obj).encode()
    return raw, {**headers, "X-WC-Webhook-Signature": events.sign(raw, SECRET)}


@pytest.mark.parametrize("name", ["order_created", "order_updated", "order_checkout_draft", "customer_created",
                                  "action_new_booking"])
def test_the_fixtures_signatures_verify_over_the_raw_bytes(name):
    body, headers = fixture(name)
    CONNECTOR.verify(body, headers, [SECRET])
    with pytest.raises(SignatureError):
        CONNECTOR.verify(body, headers, ["another-secret"])
    reserialised = json.dumps(json.loads(body)).encode()  # Python's encoding is not PHP's: \/ and \u00e9
    if reserialised != body:
        with pytest.raises(SignatureError):
            CONNECTOR.verify(reserialised, headers, [SECRET])


def test_a_missing_signature_is_a_missing_one_and_html_escaped_secrets_are_decoded():
    body, headers = fixture("order_created")
    with pytest.raises(SignatureError) as exc:
        CONNECTOR.verify(body, {k: v for k, v in headers.items() if k != "X-WC-Webhook-Signature"}, [SECRET])
    assert exc.value.missing
    signed = {**headers, "X-WC-Webhook-Signature": events.sign(body, "a&b")}
    CONNECTOR.verify(body, signed, ["a&amp;b"])  # WordPress stored it escaped; WooCommerce signs decoded


def test_the_ping_is_recognised_only_unsigned_and_form_shaped():
    body, headers = fixture("webhook_ping")
    assert body == b"webhook_id=42" and CONNECTOR.is_ping(body, headers)
    assert not CONNECTOR.is_ping(body, {**headers, "X-WC-Webhook-Signature": "x"})
    assert not CONNECTOR.is_ping(b"webhook_id=42&x=1", headers)
    assert not CONNECTOR.is_ping(fixture("order_created")[0], {})


def test_orders_parse_into_typed_values_with_gmt_times():
    body, headers = fixture("order_checkout_draft")
    order = events.parse("order.updated", body)
    assert isinstance(order, events.WooOrder)
    assert (order.id, order.status, order.total, order.currency, order.customer_id) == (
        "5124", "checkout-draft", Decimal("23.00"), "USD", None)
    assert order.modified_at.isoformat() == "2025-11-03T15:03:31+00:00"  # the _gmt field, not site time
    assert order.billing.first_name == "José" and order.billing.phone == "+15550006666"
    assert order.line_items[0].name == "Handmade Ceramic Mug - Sage"


@pytest.mark.parametrize("body, reason", [
    (b"[1]", "expected a JSON object"), (b"{", "not JSON"),
    (b'{"id": "x", "status": "pending", "date_modified_gmt": "2025-11-03T15:03:31"}', "numeric id"),
    (b'{"id": 5, "status": "pending"}', "date_modified_gmt"),
    (b'{"id": 5, "status": "pending", "date_modified_gmt": "2025-11-03T15:03:31", "total": "12,50"}', "amount"),
])
def test_a_malformed_order_is_refused_with_a_reason(body, reason):
    with pytest.raises(PayloadError, match=reason):
        events.parse("order.updated", body)


def test_the_dedupe_key_is_about_the_change_not_the_delivery():
    body, headers = fixture("order_created")
    first = CONNECTOR.delivery(body, headers)
    again = CONNECTOR.delivery(body, {**headers, "X-WC-Webhook-Delivery-ID": "f" * 32})
    assert first.dedupe_key == again.dedupe_key  # a new delivery id for the same change: one record
    assert first.dedupe_key == "woocommerce:shop.example.test:order:5123:2025-11-03T14:15:43+00:00:pending"
    paid = CONNECTOR.delivery(*fixture("order_updated"))
    assert paid.dedupe_key != first.dedupe_key and paid.account == "shop.example.test" and paid.subject == "5123"
    assert first.headers["X-WC-Webhook-Delivery-ID"] == "8c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f"


def test_unpaid_orders_are_carts_paid_and_on_hold_orders_close_them_others_start_nothing():
    draft = CONNECTOR.trigger(*fixture("order_checkout_draft"))
    assert draft.kind is TriggerKind.CART_ABANDONED and draft.subject == "5124"
    assert draft.cart.token == "5124" and draft.cart.total == Decimal("23.00") and not draft.cart.completed
    assert draft.cart.recovery_url.endswith("order-pay/5124/?pay_for_order=true&key=wc_order_N4vB8cR2mWq1Y")
    assert draft.contact.external_id == "order:5124"  # a guest is linked by the order
    assert [(p.raw, p.country) for p in draft.contact.phones] == [("+15550006666", "US")]
    pending = CONNECTOR.trigger(*fixture("order_created"))
    assert pending.kind is TriggerKind.CART_ABANDONED and pending.contact.external_id == "88"
    for status in ("processing", "completed", "on-hold"):
        paid = CONNECTOR.trigger(*with_status("order_updated", status))
        assert paid.kind is TriggerKind.ORDER_CREATED
        assert (paid.order.order_id, paid.order.checkout_token, paid.order.name) == ("5123", "5123", "#5123")
    failed = CONNECTOR.trigger(*with_status("order_updated", "failed"))  # can be paid again: still a cart
    assert failed.kind is TriggerKind.CART_ABANDONED and not failed.cart.completed
    for status in ("cancelled", "refunded", "trash"):  # the same cart, closed
        closed = CONNECTOR.trigger(*with_status("order_updated", status))
        assert closed.kind is TriggerKind.CART_ABANDONED and closed.cart.completed
    assert CONNECTOR.trigger(*with_status("order_created", "pending", created_via="admin")) is None
    customer = CONNECTOR.trigger(*fixture("customer_created"))
    assert customer.kind is TriggerKind.CONTACT_CHANGED and customer.contact.external_id == "88"
    assert CONNECTOR.trigger(*fixture("action_new_booking")) is None


def test_a_phone_is_read_with_the_billing_country_and_a_hopeless_one_is_named_not_guessed():
    national, _ = with_status("order_checkout_draft", "pending",
                              billing={**json.loads(fixture("order_checkout_draft")[0])["billing"],
                                       "phone": "(555) 000-6666", "country": "US"})
    order = events.parse("order.updated", national)
    assert mapper.phone_problem(order) is None
    assert mapper.phone_candidates(order)[0].country == "US"
    broken, _ = with_status("order_checkout_draft", "pending",
                            billing={**json.loads(fixture("order_checkout_draft")[0])["billing"], "phone": "12"})
    problem = mapper.phone_problem(events.parse("order.updated", broken))
    assert problem and "billing.phone (US)" in problem and "12" not in problem.replace("billing", "")


def test_consent_comes_from_a_checkout_checkbox_saved_as_order_meta():
    body, _ = with_status("order_checkout_draft", "checkout-draft",
                          meta_data=[{"id": 1, "key": "whatsapp_opt_in", "value": "yes"}])
    order = events.parse("order.updated", body)
    [signal] = mapper.consent(order, order.modified_at)
    assert signal.source == "woocommerce.checkout" and signal.action.value == "opt_in"
    assert mapper.consent(events.parse("order.updated", fixture("order_checkout_draft")[0]), order.modified_at) == ()


@pytest.mark.parametrize("topic, body", [
    ("booking.created", b'{"booking": {"id": 7781, "start": 1762444800}}'),
    ("product.updated", b'{"id": 310, "name": "Mug"}'),
    ("order.deleted", b'{"id": 5124}'),
    ("action.woocommerce_new_booking", b'{"action": "woocommerce_new_booking", "arg": 7781}'),
])
def test_every_topic_gives_a_delivery_record_and_no_crash(topic, body):
    headers = {"X-WC-Webhook-Topic": topic, "X-WC-Webhook-Source": "https://shop.example.test/",
               "X-WC-Webhook-ID": "45"}
    delivery = CONNECTOR.delivery(body, headers)
    assert delivery.kind == topic and delivery.account == "shop.example.test" and delivery.subject
    assert CONNECTOR.trigger(body, headers) is None or topic == "booking.created"
