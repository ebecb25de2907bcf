"""Every route that reads a JSON body answers a malformed one with 400 and the reason, records
nothing and changes nothing: correctly signed webhooks, the agent API, the trigger API and the
sandbox's play-a-customer endpoint. Never a 500."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from sqlalchemy import func, select

from connectors.hubspot.events import sign as hubspot_sign
from connectors.shopify.events import sign as shopify_sign
from connectors.whatsapp.events import sign as whatsapp_sign
from connectors.woocommerce.events import sign as woo_sign
from core.store.models import Conversation, InboundEvent, Message
from tests.harness import APP_SECRET, API_TOKEN, SHOP_SECRET, Harness

WOO_SECRET = "test-woo-secret"
HUB_SECRET = "test-hubspot-secret"
PUBLIC = "https://bridge.example"

BAD = {
    "empty": (b"", "empty"),
    "not-json": (b"{not json", "not JSON"),
    "not-utf8": (b"\xff\xfe\x00", "not UTF-8"),
    "nan": (b'{"id": NaN}', "NaN"),
    "overflow": (b'{"id": 1e400}', "finite"),
    "lone-surrogate": (b'{"id": "\\ud800"}', "surrogate"),
    "deep-array": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "deep-object": (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "nested too deeply"),
    "wrong-top-level": (None, None),  # per route: a type it does not take, and the type it wants
}


def _webhook(path: str, sign):
    def post(h: Harness, body: bytes) -> httpx.Response:
        return h.http.post(path, content=body, headers={"Content-Type": "application/json", **sign(h, body)})
    return post


def _api(path: str):
    def post(h: Harness, body: bytes) -> httpx.Response:
        return h.http.post(f"/api{path}", content=body, headers={"Content-Type": "application/json",
                                                                 "Authorization": f"Bearer {API_TOKEN}"})
    return post


def _sandbox(h: Harness, body: bytes) -> httpx.Response:
    return httpx.post(f"{h.sandbox_server.url}/_sandbox/customers/15550002222/messages", content=body,
                      headers={"Content-Type": "application/json"}, timeout=10)


def _hubspot_headers(h: Harness, body: bytes) -> dict[str, str]:
    stamp = str(int(h.clock.now().timestamp() * 1000))
    return {"X-HubSpot-Request-Timestamp": stamp,
            "X-HubSpot-Signature-v3": hubspot_sign(body, HUB_SECRET, method="POST", uri=f"{PUBLIC}/webhooks/hubspot",
                                                   timestamp=stamp)}


ROUTES = {  # name: (post, a body of a top-level type the route does not take)
    "whatsapp": (_webhook("/webhooks/whatsapp", lambda h, b: {"X-Hub-Signature-256": whatsapp_sign(b, APP_SECRET)}),
                 b"[1]"),
    "shopify": (_webhook("/webhooks/shopify", lambda h, b: {
        "X-Shopify-Hmac-Sha256": shopify_sign(b, SHOP_SECRET), "X-Shopify-Topic": "checkouts/create",
        "X-Shopify-Shop-Domain": "tea-shop.myshopify.com", "X-Shopify-Webhook-Id": f"w-{time.time_ns()}"}), b"[1]"),
    "woocommerce": (_webhook("/webhooks/woocommerce", lambda h, b: {
        "X-WC-Webhook-Signature": woo_sign(b, WOO_SECRET), "X-WC-Webhook-Topic": "order.updated",
        "X-WC-Webhook-Source": "https://shop.example/", "X-WC-Webhook-Delivery-ID": str(time.time_ns())}), b"[1]"),
    "hubspot": (_webhook("/webhooks/hubspot", _hubspot_headers), b'{"eventId": 1}'),
    "api-triggers": (_api("/triggers"), b"[1]"),
    "api-reply": (_api("/conversations/1/messages"), b"[1]"),
    "api-take": (_api("/conversations/1/take"), b"[1]"),
    "api-release": (_api("/conversations/1/release"), b"[1]"),
    "sandbox-customer": (_sandbox, b"[1]"),
}
OPTIONAL_BODY = {"api-take", "api-release"}  # no body at all means "agent": the default


@pytest.fixture(scope="module")
def h(tmp_path_factory):
    harness = Harness(tmp_path_factory.mktemp("bad-bodies"),
                      overrides=dict(woocommerce_webhook_secrets=(WOO_SECRET,), hubspot_client_secrets=(HUB_SECRET,),
                                     public_url=PUBLIC))
    yield harness
    harness.close()


def _counts(h: Harness) -> tuple[int, int, int]:
    with h.session() as s:
        return tuple(s.scalar(select(func.count()).select_from(m)) for m in (InboundEvent, Message, Conversation))


@pytest.mark.parametrize("route, bad", [(r, b) for r in ROUTES for b in BAD
                                        if not (b == "empty" and r in OPTIONAL_BODY)])
def test_a_malformed_body_is_a_400_with_the_reason_and_nothing_is_recorded(h: Harness, route, bad):
    post, wrong_top_level = ROUTES[route]
    body, reason = BAD[bad]
    if body is None:
        body, reason = wrong_top_level, "array" if route == "hubspot" else "object"
    before = _counts(h)
    response = post(h, body)
    assert response.status_code == 400, response.text
    assert reason in response.json()["error"]
    assert _counts(h) == before


@pytest.mark.parametrize("route", ["api-take", "api-release"])
def test_the_agent_must_be_a_name(h: Harness, route):
    response = ROUTES[route][0](h, json.dumps({"agent": ["sam"]}).encode())
    assert response.status_code == 400
    assert response.json() == {"error": "agent: expected a name (a string)"}


@pytest.mark.parametrize("body, reason", [
    ({}, "exactly one of"), ({"text": "  "}, "exactly one of"), ({"text": "hi", "choice_id": "a"}, "exactly one of"),
    ({"text": 5}, "text: expected a string"), ({"text": "hi", "colour": "red"}, "unknown field 'colour'"),
], ids=["nothing", "blank-text", "two-kinds", "text-not-string", "unknown-field"])
def test_the_sandbox_customer_must_say_one_thing(h: Harness, body, reason):
    before = len(h.sandbox.last_inbound)
    response = _sandbox(h, json.dumps(body).encode())
    assert response.status_code == 400
    assert reason in response.json()["error"]
    assert len(h.sandbox.last_inbound) == before


def test_the_sandbox_customer_id_is_digits(h: Harness):
    response = httpx.post(f"{h.sandbox_server.url}/_sandbox/customers/+1555abc/messages", json={"text": "hi"})
    assert response.status_code == 400
    assert "not a WhatsApp id" in response.json()["error"]
