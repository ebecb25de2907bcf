"""A job never holds a database connection (an open transaction, on PostgreSQL a backend "idle in
transaction" with its row locks) while it waits for a shop or CRM: a slow platform would otherwise
use up the worker's pool and hold back vacuum for as long as its HTTP timeout.

The emulators call a probe (tests/tx_probe.py) while they answer each API call: it asks every pool
whether another thread (the job's) holds a connection at that moment, and on PostgreSQL also asks
``pg_stat_activity`` whether any of our backends sits idle in a transaction. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from connectors.hubspot.events import sign
from core.installations import install
from core.store.models import ActionTask, FlowRun, InboundEvent, Workspace
from bridge import jobs
from bridge.servers import ServerThread
from bridge.woocommerce_connect import connect
from tests.emulators.hubspot import HubSpotEmulator, create_hubspot_app
from tests.emulators.woocommerce import WooStore
from tests.harness import FIXTURES, Harness
from tests.tx_probe import Probe

SECRET = "test-hubspot-client-secret"
PUBLIC = "https://bridge.example.test"
CONTACT = "151000000101"
START = datetime(2025, 11, 4, 12, 0, tzinfo=timezone.utc)  # two days before the booking
BOOKED = datetime(2025, 11, 6, 16, 0, tzinfo=timezone.utc)  # the booking fixture's start


def _harness(request, tmp_path, **kwargs) -> tuple[Harness, str | None]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    return Harness(tmp_path, database_url=url, **kwargs), url


# ---------------------------------------------------------------- WooCommerce: a booking fetched, then confirmed


@pytest.fixture(params=["sqlite", "postgres"])
def woo(request, tmp_path):
    h, url = _harness(request, tmp_path, start=START)
    h.rt.settings = replace(h.rt.settings, public_url=h.server.url)
    store = WooStore(h.clock, keys={"ck_test": "cs_test"})
    connect(h.rt, store.url, "ck_test", "cs_test", bookings=True)
    store.bookings[7781] = json.loads((FIXTURES / "woocommerce" / "booking_get_response.json").read_bytes())
    paid = json.loads((FIXTURES / "woocommerce" / "order_updated.json").read_bytes())
    paid.update(id=5140, billing={**paid["billing"], "first_name": "Ana", "phone": "+1 555 000 7777"})
    store.put_order(paid, topic=None)
    probe = Probe(url)
    store.on_call.append(probe)
    yield h, store, probe
    probe.close()
    store.close()
    h.close()


def test_a_new_booking_is_fetched_with_no_transaction_open(woo):
    h, store, probe = woo
    store.deliver("action.woocommerce_new_booking", {"action": "woocommerce_new_booking", "arg": 7781})
    h.settle()
    with h.session() as s:
        event = s.scalar(select(InboundEvent).where(InboundEvent.kind == "action.woocommerce_new_booking"))
        assert (event.status, event.error) == ("done", None)
    assert probe.held_during("/wc-bookings/v1/bookings/7781") == []


def test_a_booking_the_store_does_not_have_fails_the_event_without_a_retry(woo):
    h, store, probe = woo
    store.deliver("action.woocommerce_new_booking", {"action": "woocommerce_new_booking", "arg": 4040})
    h.settle()
    with h.session() as s:
        event = s.scalar(select(InboundEvent).where(InboundEvent.kind == "action.woocommerce_new_booking"))
        assert (event.status, event.attempts) == ("failed", 1) and "404" in event.error
    assert [c[1] for c in probe.calls].count("/wp-json/wc-bookings/v1/bookings/4040") == 1


def test_a_booking_confirmed_on_whatsapp_is_updated_with_no_transaction_open(woo):
    h, store, probe = woo
    h.at(BOOKED - timedelta(hours=23, minutes=50))  # the reconciliation finds it: the reminder goes out
    assert [m.body["template"]["name"] for m in h.sandbox.sent] == ["appointment_reminder"]
    h.sandbox.customer_sends("15550007777", "Ana", button=("booking_confirm", "Confirm"))
    h.settle()
    assert store.bookings[7781]["status"] == "confirmed"
    with h.session() as s:
        assert s.scalar(select(ActionTask.status)) == "done"
    assert probe.held_during("/wc-bookings/v1/bookings/7781") == []  # read, then confirmed
    assert ("PUT", "/wp-json/wc-bookings/v1/bookings/7781") in [c[:2] for c in probe.calls]
    assert probe.held_during("/wp-json/") == []  # the reconciliations too


# ---------------------------------------------------------------- HubSpot: completing an event, renewing a token


@pytest.fixture
def portal():
    emu = HubSpotEmulator(private_tokens={"pat-test-token"}, owners={"90000123"})
    emu.add_contact(CONTACT, firstname="Maya", lastname="Lind", mobilephone="+1 555-000-2222",
                    hubspot_owner_id="90000123")
    emu.add_object("meetings", "88000000901", {"hs_meeting_title": "Tea tasting",
                                               "hs_meeting_start_time": "2025-11-04T10:00:00Z"}, (CONTACT,))
    server = ServerThread(create_hubspot_app(emu))
    emu.url = server.url
    yield emu
    server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def crm(request, tmp_path, portal):
    h, url = _harness(request, tmp_path, overrides=dict(hubspot_client_secrets=(SECRET,), public_url=PUBLIC,
                                                        hubspot_api_base=portal.url))
    probe = Probe(url)
    portal.on_call.append(probe)
    yield h, portal, probe
    probe.close()
    h.close()


def _meeting_booked(h: Harness) -> None:
    body = (FIXTURES / "hubspot" / "meeting_creation_generic.json").read_bytes()
    stamp = str(int(h.clock.now().timestamp() * 1000))
    headers = {"Content-Type": "application/json", "X-HubSpot-Request-Timestamp": stamp,
               "X-HubSpot-Signature-v3": sign(body, SECRET, method="POST", uri=f"{PUBLIC}/webhooks/hubspot",
                                              timestamp=stamp)}
    assert h.http.post("/webhooks/hubspot", content=body, headers=headers).status_code == 200
    h.settle()


def test_a_hubspot_event_is_completed_with_no_transaction_open(crm):
    h, portal, probe = crm
    with h.session() as s:
        install(s, s.scalar(select(Workspace)), "hubspot", str(portal.portal_id), {"access_token": "pat-test-token"},
                {"api_base": portal.url}, h.rt.sealer, h.clock.now())
    _meeting_booked(h)
    assert [m.body["template"]["name"] for m in h.sandbox.sent] == ["appointment_reminder"]
    assert probe.held_during("/crm/v3/objects/meetings/") == []
    assert probe.held_during("/crm/v3/objects/contacts/") == []
    assert probe.held_during("/crm/v3/objects/communications") == []  # the write-back of the reminder


def test_an_oauth_token_is_renewed_with_no_transaction_open(crm):
    h, portal, probe = crm
    portal.now = lambda: h.clock.now().timestamp()
    portal.private_tokens.clear()
    portal.refresh_tokens.add("rt-test")
    portal.oauth_tokens["oauth-old"] = (h.clock.now() + timedelta(minutes=2)).timestamp()
    with h.session() as s:
        install(s, s.scalar(select(Workspace)), "hubspot", str(portal.portal_id),
                {"access_token": "oauth-old", "refresh_token": "rt-test", "client_id": portal.client_id,
                 "client_secret": portal.client_secret,
                 "expires_at": (h.clock.now() + timedelta(minutes=2)).isoformat()},
                {"api_base": portal.url}, h.rt.sealer, h.clock.now())
    _meeting_booked(h)
    assert [m.body["template"]["name"] for m in h.sandbox.sent] == ["appointment_reminder"]
    h.clock.advance(timedelta(minutes=26))  # the renewed token expires soon: the write-back renews it again
    h.sandbox.customer_sends("15550002222", "Maya", text="Thanks, see you there")
    h.settle()
    assert [c[1] for c in probe.calls].count("/oauth/v1/token") == 2
    assert probe.held_during("/") == []  # the reads, the renewals, the write-backs


def test_a_second_run_while_the_crm_answers_records_the_event_once(crm):
    """The job runs again while the first run waits for the CRM (the queue delivered it twice, or a
    sweep found it still pending): one run records the event, the other finds it done; one reminder."""
    h, portal, probe = crm
    with h.session() as s:
        install(s, s.scalar(select(Workspace)), "hubspot", str(portal.portal_id), {"access_token": "pat-test-token"},
                {"api_base": portal.url}, h.rt.sealer, h.clock.now())
    second: list[int] = []

    def run_again(method: str, path: str) -> None:
        if "/meetings/" in path and not second:
            with h.session() as s:
                second.append(s.scalar(select(InboundEvent.id)))
            jobs.handle_event(second[0])  # the whole job, from the emulator's thread

    portal.on_call.append(run_again)
    _meeting_booked(h)
    assert second
    assert [m.body["template"]["name"] for m in h.sandbox.sent] == ["appointment_reminder"]
    with h.session() as s:
        event = s.get(InboundEvent, second[0])
        assert (event.status, event.attempts) == ("done", 1)
        assert s.scalar(select(func.count()).select_from(FlowRun)) == 1


def test_a_throttled_crm_is_asked_again_and_an_unknown_portal_is_ignored(crm):
    h, portal, probe = crm
    _meeting_booked(h)  # no installation of the portal: nothing to read it with
    with h.session() as s:
        event = s.scalar(select(InboundEvent))
        assert event.status == "ignored" and "not connected" in event.error
    with h.session() as s:
        install(s, s.scalar(select(Workspace)), "hubspot", str(portal.portal_id), {"access_token": "pat-test-token"},
                {"api_base": portal.url}, h.rt.sealer, h.clock.now())
        s.delete(s.scalar(select(InboundEvent)))  # the portal sends it again once connected
    portal.throttle(times=1)
    _meeting_booked(h)  # the first read is refused with 429: the job is retried, then handles it once
    assert [m.body["template"]["name"] for m in h.sandbox.sent] == ["appointment_reminder"]
    with h.session() as s:
        event = s.scalar(select(InboundEvent))
        assert (event.status, event.attempts) == ("done", 1)
    assert portal.calls("GET", "/crm/v3/objects/meetings/") == 2
