"""Shopify edge: signatures, delivery headers, payload parsing, and a mutation sweep."""

from __future__ import annotations

import copy
import json
import random
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from connectors.shopify import events as ev
from connectors.shopify.triggers import to_trigger
from core.errors import PayloadError, SignatureError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "shopify"
SECRET = "test-shopify-client-secret"
NAMES = sorted(p.name[: -len(".headers.json")] for p in FIXTURES.glob("*.headers.json"))


def load(name: str) -> tuple[bytes, dict[str, str]]:
    body = (FIXTURES / f"{name}.json").read_bytes()
    headers = json.loads((FIXTURES / f"{name}.headers.json").read_text())
    return body, headers


def test_all_twelve_fixtures_are_found():
    """The nine shared ones and replyflow's three variants (make_variants.py)."""
    assert len(NAMES) == 12


# ---------------------------------------------------------------- signature


@pytest.mark.parametrize("name", NAMES)
def test_fixture_signature_verifies_and_recomputes(name):
    body, headers = load(name)
    assert ev.sign(body, SECRET) == headers["X-Shopify-Hmac-Sha256"]
    ev.verify(body, headers, [SECRET])


def test_wrong_secret_is_a_mismatch_not_missing():
    body, headers = load("checkouts_create")
    with pytest.raises(SignatureError, match="does not match") as info:
        ev.verify(body, headers, ["another-secret"])
    assert info.value.missing is False


def test_tampered_body_fails():
    body, headers = load("checkouts_create")
    with pytest.raises(SignatureError, match="does not match"):
        ev.verify(body.replace(b"82.00", b"1.00"), headers, [SECRET])


@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_or_empty_header_is_missing(value):
    body, headers = load("orders_create")
    del headers["X-Shopify-Hmac-Sha256"]
    if value is not None:
        headers["X-Shopify-Hmac-Sha256"] = value
    with pytest.raises(SignatureError, match="missing") as info:
        ev.verify(body, headers, [SECRET])
    assert info.value.missing is True


def test_not_base64_has_its_own_message():
    body, headers = load("orders_create")
    headers["X-Shopify-Hmac-Sha256"] = "not base64 at all!"
    with pytest.raises(SignatureError, match="not base64") as info:
        ev.verify(body, headers, [SECRET])
    assert info.value.missing is False


def test_rotation_accepts_old_and_new_secret_in_any_order():
    body, headers = load("shop_redact")
    ev.verify(body, headers, ["new-secret", SECRET])
    ev.verify(body, headers, [SECRET, "new-secret"])
    headers["X-Shopify-Hmac-Sha256"] = ev.sign(body, "new-secret")
    ev.verify(body, headers, ["new-secret", SECRET])
    with pytest.raises(SignatureError):
        ev.verify(body, headers, [SECRET])


def test_header_lookup_is_case_insensitive():
    body, headers = load("shop_redact")
    lower = {k.lower(): v for k, v in headers.items()}
    ev.verify(body, lower, [SECRET])
    assert ev.parse_headers(lower).topic == "shop/redact"


@pytest.mark.parametrize("secrets", [[], [""], ""])
def test_no_secret_configured_is_a_value_error(secrets):
    body, headers = load("shop_redact")
    with pytest.raises(ValueError):
        ev.verify(body, headers, secrets)


def test_single_string_secret_is_not_split_into_characters():
    body, headers = load("shop_redact")
    ev.verify(body, headers, SECRET)


# ---------------------------------------------------------------- headers


def test_headers_parse():
    _, headers = load("checkouts_create")
    h = ev.parse_headers(headers)
    assert h.topic == "checkouts/create"
    assert h.shop_domain == "lumen-tea-co.myshopify.com"
    assert h.webhook_id == "5f3c1a9e-2b7d-4c6e-9a10-3d8e7f6a5b41"
    assert h.event_id == "c2e9a4b1-7f3d-4e52-8b6a-0f1d2c3b4a51"
    assert h.api_version == "2025-10"
    assert h.triggered_at == datetime(2025, 11, 3, 14, 2, 11, 482913, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "header", ["X-Shopify-Topic", "X-Shopify-Shop-Domain", "X-Shopify-Webhook-Id"]
)
def test_required_header_missing_is_named(header):
    _, headers = load("checkouts_create")
    del headers[header]
    with pytest.raises(PayloadError, match=header):
        ev.parse_headers(headers)


def test_optional_headers_may_be_absent():
    _, headers = load("checkouts_create")
    for name in ("X-Shopify-Event-Id", "X-Shopify-Triggered-At", "X-Shopify-API-Version"):
        del headers[name]
    h = ev.parse_headers(headers)
    assert (h.event_id, h.triggered_at, h.api_version) == (None, None, None)


@pytest.mark.parametrize(
    "domain", ["lumen.example.com", "evil.com/.myshopify.com", "myshopify.com", ".myshopify.com"]
)
def test_shop_domain_must_be_myshopify(domain):
    _, headers = load("checkouts_create")
    headers["X-Shopify-Shop-Domain"] = domain
    with pytest.raises(PayloadError, match="myshopify"):
        ev.parse_headers(headers)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-11-03T14:02:11Z", datetime(2025, 11, 3, 14, 2, 11, tzinfo=timezone.utc)),
        ("2025-11-03T14:02:11.1Z", datetime(2025, 11, 3, 14, 2, 11, 100000, tzinfo=timezone.utc)),
        ("2025-11-03T09:02:11.000000999-05:00", datetime(2025, 11, 3, 14, 2, 11, tzinfo=timezone.utc)),
    ],
)
def test_triggered_at_formats(text, expected):
    _, headers = load("checkouts_create")
    headers["X-Shopify-Triggered-At"] = text
    assert ev.parse_headers(headers).triggered_at == expected


@pytest.mark.parametrize("text", ["yesterday", "2025-13-03T00:00:00Z", "9999-12-31T23:59:59-05:00"])
def test_bad_triggered_at_is_a_payload_error(text):
    _, headers = load("checkouts_create")
    headers["X-Shopify-Triggered-At"] = text
    with pytest.raises(PayloadError, match="Triggered-At"):
        ev.parse_headers(headers)


# ---------------------------------------------------------------- payloads


EXPECTED_TYPES = {
    "app_uninstalled": ev.ShopifyShop,
    "checkouts_create": ev.ShopifyCheckout,
    "checkouts_update": ev.ShopifyCheckout,
    "checkouts_update_phone_in_shipping_only": ev.ShopifyCheckout,
    "checkouts_create_protected_data_withheld": ev.ShopifyCheckout,
    "customers_create_subscribed": ev.ShopifyCustomer,
    "customers_update": ev.ShopifyCustomer,
    "customers_data_request": ev.ShopifyPrivacyRequest,
    "customers_redact": ev.ShopifyPrivacyRequest,
    "orders_create": ev.ShopifyOrder,
    "orders_create_phone_in_shipping_only": ev.ShopifyOrder,
    "shop_redact": ev.ShopifyPrivacyRequest,
}


@pytest.mark.parametrize("name", NAMES)
def test_every_fixture_parses(name):
    body, headers = load(name)
    payload = ev.parse(ev.parse_headers(headers).topic, body)
    assert type(payload) is EXPECTED_TYPES[name]
    assert payload.raw == json.loads(body)
    assert "raw" not in repr(payload)


def test_checkout_fields():
    body, _ = load("checkouts_update")
    c = ev.parse("checkouts/update", body)
    assert c.token == "7d0c3b5e2a914f6c8e1d9b4a6f2c0e85" and c.id == "35012345678901"
    assert c.total_price == Decimal("112.00") and c.currency == c.presentment_currency == "USD"
    assert [(i.title, i.quantity, i.price) for i in c.line_items] == [
        ("Sencha First Flush", 2, Decimal("24.00")),
        ("Ceramic Kyusu Teapot", 1, Decimal("58.00")),
    ]
    assert c.customer.sms_marketing_consent.state == "subscribed"
    assert c.customer.default_address.country_code == "US"
    assert c.completed_at is None and c.updated_at.tzinfo is not None


def test_raw_is_excluded_from_comparison():
    body, _ = load("checkouts_create")
    a = ev.parse("checkouts/create", body)
    data = json.loads(body)
    data["landing_site"] = "/elsewhere"
    assert ev.parse("checkouts/create", json.dumps(data).encode()) == a


def test_privacy_topics():
    dr = ev.parse("customers/data_request", load("customers_data_request")[0])
    assert (dr.shop_id, dr.customer_id, dr.data_request_id) == ("64012345678", "7700000000101", "88001")
    assert dr.orders == ("6100000000044", "6100000000051")
    red = ev.parse("customers/redact", load("customers_redact")[0])
    assert red.orders == ("6100000000044",) and red.customer_phone == "+15550002222"
    shop = ev.parse("shop/redact", load("shop_redact")[0])
    assert shop.shop_domain == "lumen-tea-co.myshopify.com" and shop.customer_id is None


def test_customers_redact_without_customer_is_rejected():
    with pytest.raises(PayloadError, match="customer"):
        ev.parse("customers/redact", b'{"shop_id": 1, "shop_domain": "a.myshopify.com"}')


def test_app_uninstalled():
    shop = ev.parse("app/uninstalled", load("app_uninstalled")[0])
    assert shop.id == "64012345678" and shop.myshopify_domain == "lumen-tea-co.myshopify.com"


def test_unknown_topic():
    payload = ev.parse("products/update", b'{"id": 1}')
    assert payload == ev.ShopifyUnknown(topic="products/update")
    assert payload.raw == {"id": 1}
    assert ev.parse("products/update", b"not json").raw is None


def test_empty_list_addresses_and_null_customer_are_absent():
    data = json.loads(load("checkouts_update_phone_in_shipping_only")[0])
    data.update(shipping_address=[], billing_address=[], customer=None)
    c = ev.parse("checkouts/update", json.dumps(data).encode())
    assert (c.shipping_address, c.billing_address, c.customer) == (None, None, None)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "not JSON"),
        (b"{", "not JSON"),
        (b"\xff\xfe\x00", "not JSON"),
        (b'{"total_price": NaN}', "not JSON"),
        (b"[" * 100_000, "not JSON"),
        (b"[]", "expected an object"),
        (b"null", "expected an object"),
        (b'{"total_price": "1.00", "currency": "USD"}', "token: missing"),
        (b'{"token": "", "total_price": "1.00", "currency": "USD"}', "token: empty"),
        (b'{"token": 5, "total_price": "1.00", "currency": "USD"}', "token: expected a string"),
        (b'{"token": "t", "total_price": "abc", "currency": "USD"}', "not a decimal"),
        (b'{"token": "t", "total_price": "Infinity", "currency": "USD"}', "not a decimal"),
        (b'{"token": "t", "total_price": "1_000", "currency": "USD"}', "not a decimal"),
        (b'{"token": "t", "total_price": 1e400, "currency": "USD"}', "not a finite"),
        (b'{"token": "t", "total_price": "1", "currency": "USD", "line_items": {}}', "expected a list"),
        (b'{"token": "t", "total_price": "1", "currency": "USD", "customer": [1]}', "expected an object"),
        (b'{"token": "t", "total_price": "1", "currency": "USD", "buyer_accepts_sms_marketing": "yes"}', "true/false"),
        (b'{"token": "t", "total_price": "1", "currency": "USD", "line_items": [{"price": "1"}]}', "quantity"),
    ],
)
def test_malformed_checkout_bodies(body, reason):
    with pytest.raises(PayloadError, match=reason):
        ev.parse("checkouts/create", body)


def test_body_over_five_megabytes():
    body = b'{"token": "t", "pad": "' + b"x" * ev.MAX_BODY_BYTES + b'"}'
    with pytest.raises(PayloadError, match="limit"):
        ev.parse("checkouts/create", body)
    with pytest.raises(PayloadError, match="limit"):
        ev.parse("products/update", body)


# ---------------------------------------------------------------- mutation sweep

ODD_VALUES = [None, [], {}, "", "x", "12.5", 0, -1, 1.5, True, [1], [{}], {"a": 1}, "NaN", 10**30]


def _paths(data):
    """Top-level keys, keys of nested objects, and keys of the first object in each list."""
    for key, value in data.items():
        yield (key,)
        if isinstance(value, dict):
            yield from ((key, sub) for sub in value)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            yield from ((key, 0, sub) for sub in value[0])


def _mutants(data):
    for path in _paths(data):
        for value in [*ODD_VALUES, ...]:  # ... = delete the key
            mutant = copy.deepcopy(data)
            parent = mutant
            for step in path[:-1]:
                parent = parent[step]
            if value is ...:
                del parent[path[-1]]
            else:
                parent[path[-1]] = value
            yield json.dumps(mutant).encode()


def _byte_mutants(body, rng):
    for cut in range(0, len(body), max(1, len(body) // 20)):
        yield body[:cut]
    for _ in range(150):
        pos = rng.randrange(len(body))
        yield body[:pos] + bytes([rng.randrange(256)]) + body[pos + 1 :]


def _exercise(headers, body):
    try:
        payload = ev.parse(headers.topic, body)
        to_trigger(headers, payload)
    except PayloadError:
        pass


@pytest.mark.parametrize("name", NAMES)
def test_mutations_only_succeed_or_raise_payload_error(name):
    body, raw_headers = load(name)
    headers = ev.parse_headers(raw_headers)
    rng = random.Random(f"shopify-{name}")
    count = 0
    for mutant in [*_mutants(json.loads(body)), *_byte_mutants(body, rng)]:
        _exercise(headers, mutant)
        count += 1
    assert count > 100
