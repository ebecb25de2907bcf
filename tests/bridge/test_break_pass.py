"""Hostile or sloppy traffic found by a break pass: each case once crashed a request (500) or left
a job failing on every sweep. Signed correctly, malformed in one field."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from connectors.woocommerce.events import sign as woo_sign
from core.store.models import InboundEvent, Message
from tests.harness import API_TOKEN, Harness, shopify_fixture
from tests.inbox_support import add_agents, signed_in

FIXTURES = Path(__file__).parent.parent / "fixtures"
WOO_SECRET = "test-woo-secret"


def _wa(name: str) -> dict:
    return json.loads((FIXTURES / "whatsapp" / name).read_text())


@pytest.mark.parametrize("fixture", ["inbound_system_number_change.json", "inbound_text.json"])
def test_a_message_naming_no_sender_is_a_400_not_a_job_that_fails_forever(bridge: Harness, fixture):
    body = _wa(fixture)  # (text: the fast parser's shape; a system message: the general parser's)
    value = body["entry"][0]["changes"][0]["value"]
    value.pop("contacts", None)  # without contacts, "from" is all there is
    del value["messages"][0]["from"]
    response = bridge.whatsapp(json.dumps(body).encode())
    assert response.status_code == 400, response.text
    assert "no from" in response.json()["error"]
    with bridge.session() as s:
        assert s.scalars(select(InboundEvent)).all() == []


def test_a_reply_to_a_wa_id_that_is_no_phone_number_fails_once_instead_of_staying_queued(bridge: Harness):
    body = _wa("inbound_template_quick_reply_unsubscribe.json")  # the opt-out is confirmed with a reply
    value = body["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["wa_id"] = value["messages"][0]["from"] = "12"
    assert bridge.whatsapp(json.dumps(body).encode()).status_code == 200
    bridge.clock.advance(timedelta(minutes=5))
    bridge.sweep()  # the sweeper found it still queued and sent it to a crash every time
    with bridge.session() as s:
        reply = s.scalars(select(Message).where(Message.direction == "out")).one()
        assert (reply.status, reply.error_details) == ("failed", "contact has neither a phone number nor a "
                                                                  "WhatsApp user id")
        assert s.scalars(select(InboundEvent)).one().status == "done"


@pytest.fixture
def woo(tmp_path):
    harness = Harness(tmp_path, overrides=dict(woocommerce_webhook_secrets=(WOO_SECRET,)))
    yield harness
    harness.close()


@pytest.mark.parametrize("line_items", [-1, 1.5, True], ids=["number", "float", "boolean"])
def test_woocommerce_line_items_that_are_not_a_list_are_a_400(woo: Harness, line_items):
    order = {**json.loads((FIXTURES / "woocommerce" / "order_updated.json").read_text()), "line_items": line_items}
    body = json.dumps(order).encode()
    headers = {**json.loads((FIXTURES / "woocommerce" / "order_updated.headers.json").read_text()),
               "X-WC-Webhook-Signature": woo_sign(body, WOO_SECRET), "X-WC-Webhook-Delivery-ID": str(time.time_ns())}
    response = woo.http.post("/webhooks/woocommerce", content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert "line_items is not a list" in response.json()["error"]


def test_a_data_request_with_a_very_long_id_still_writes_its_export(bridge: Harness, tmp_path):
    bridge.rt.settings = dataclasses.replace(bridge.rt.settings, export_dir=str(tmp_path / "exports"))
    body, _ = shopify_fixture("customers_data_request")
    request = json.loads(body)
    request["data_request"]["id"] = "9" * 300  # a file name of 300+ bytes: OSError on every retry
    assert bridge.shopify("customers_data_request", body=json.dumps(request).encode()).status_code == 200
    with bridge.session() as s:
        assert [e.status for e in s.scalars(select(InboundEvent))] == ["done"]
    [export] = (tmp_path / "exports").iterdir()
    assert export.name.startswith("shopify-") and len(export.name) < 200
    assert json.loads(export.read_text())["request"]["request_id"] == "9" * 300


@pytest.fixture
def apps(tmp_path):
    harness = Harness(tmp_path, overrides=dict(hubspot_client_id="hub-app", hubspot_client_secrets=("hub-secret",),
                                               shopify_client_id="shop-app", public_url="https://bridge.example"))
    yield harness
    harness.close()


@pytest.mark.parametrize("request_kwargs, expected", [
    (dict(method="POST", url="/webhooks/hubspot", content=b"[]",
          headers={"X-HubSpot-Signature-v3": b"\xe9", "X-HubSpot-Request-Timestamp": "NOW"}), 401),
    (dict(method="GET", url="/hubspot/install", headers={"Authorization": b"Bearer \xe9"}), 401),
    (dict(method="GET", url="/hubspot/oauth/callback", params={"state": "\xe9", "code": "c"},
          headers={"Cookie": "replyflow_hubspot_state=abc"}), 400),
    (dict(method="GET", url="/hubspot/oauth/callback", params={"state": "a.1.\xe9", "code": "c"},
          headers={"Cookie": "replyflow_hubspot_state=a.1.%C3%A9"}), 400),
    (dict(method="GET", url="/shopify/install", params={"shop": "a.myshopify.com", "hmac": "\xe9", "timestamp": "1"}),
     401),
    (dict(method="GET", url="/shopify/callback", params={"shop": "a.myshopify.com", "hmac": "\xe9", "timestamp": "1",
                                                         "code": "c", "state": "s"}), 401),
], ids=["hubspot-webhook-signature", "hubspot-install-bearer", "hubspot-callback-state", "hubspot-callback-state-mac",
        "shopify-install-hmac", "shopify-callback-hmac"])
def test_one_non_ascii_character_in_a_signature_is_a_refusal_not_a_500(apps: Harness, request_kwargs, expected):
    """hmac.compare_digest raises TypeError on a non-ASCII str: unsigned traffic got a 500."""
    headers = dict(request_kwargs.pop("headers", {}))
    if headers.get("X-HubSpot-Request-Timestamp") == "NOW":
        headers["X-HubSpot-Request-Timestamp"] = str(int(apps.clock.now().timestamp() * 1000))
    response = apps.http.request(headers=headers, **request_kwargs)
    assert response.status_code == expected, response.text


@pytest.mark.parametrize("method, path", [("GET", "/api/conversations/{}"), ("POST", "/api/conversations/{}/take"),
                                          ("GET", "/inbox/conversations/{}")])
def test_an_id_too_big_for_the_database_is_a_404_not_an_overflow(bridge: Harness, method, path):
    if path.startswith("/inbox"):
        add_agents(bridge)
        response = signed_in(bridge).open(path.format(10**20), method=method)
        assert response.status_code == 404, response.data
        return
    response = bridge.http.request(method, path.format(10**20), headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert response.status_code == 404, response.text
