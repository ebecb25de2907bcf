"""The HubSpot writer against the emulator, with the real hubspot-api-client: finding the contact by
phone, creating it, one batch call per batch, updates by external id, tasks, notes, and what 429s
and the request budget do to a batch (nothing lost: the rest waits as long as HubSpot asks)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from connectors.base import WriteTask
from connectors.hubspot.client import HubSpotClient
from connectors.hubspot.notes import HubSpotWriter, budget_for
from core.clock import ManualClock
from bridge.servers import ServerThread
from tests.emulators.hubspot import HubSpotEmulator, create_hubspot_app

NOW = datetime(2025, 11, 3, 14, 2, 11, tzinfo=timezone.utc)
TOKEN = "pat-test-token"
MAYA = "151000000101"


@pytest.fixture
def portal():
    emu = HubSpotEmulator(private_tokens={TOKEN})
    emu.add_contact(MAYA, firstname="Maya", mobilephone="(555) 000-2222", hubspot_owner_id="90000123")
    server = ServerThread(create_hubspot_app(emu))
    emu.url = server.url
    yield emu
    server.stop()


_ids = iter(range(1, 10**6))


def writer(portal, clock=None, account=None, **config) -> HubSpotWriter:
    account = account or f"portal-{next(_ids)}"  # a fresh request budget per test
    return HubSpotWriter(HubSpotClient(TOKEN, host=portal.url), {"time_zone": "US/Eastern", **config}, account,
                         clock=clock or ManualClock(NOW))


def message(n: int, *, phone="+15550002222", direction="out", text=None, external_id=None, contact_ref=None,
            status="sent", kind="message", data=None) -> WriteTask:
    payload = {"message_id": n, "direction": direction, "author": "flow", "kind": "text", "status": status,
               "text": text or f"line {n}", "template": None, "at": (NOW + timedelta(seconds=n)).isoformat(),
               "data": data or {}}
    return WriteTask(id=n, kind=kind, key=f"message:{n}", account="24681357", payload=payload,
                     contact_ref=contact_ref, external_id=external_id, conversation_url="https://rf.test/inbox/7",
                     contact={"phone": phone, "first_name": "Maya"})


def test_a_contact_whose_phone_is_stored_in_national_format_is_found_and_linked(portal):
    results = writer(portal).write([message(1), message(2, direction="in")])
    assert [r.outcome for r in results] == ["done", "done"]
    assert {r.contact_ref for r in results} == {MAYA}
    assert len(portal.contacts) == 1  # found, not created
    assert portal.calls("POST", "/crm/v3/objects/contacts/search") == 1  # once per phone per batch


def test_an_unknown_phone_creates_the_contact_unless_told_not_to(portal):
    new = writer(portal).write([message(1, phone="+15550009999")])
    assert new[0].outcome == "done" and new[0].contact_ref not in (None, MAYA)
    assert portal.contacts[new[0].contact_ref]["properties"]["phone"] == "+15550009999"
    refused = writer(portal, create_contacts=False).write([message(2, phone="+15550008888")])
    assert refused[0].outcome == "failed" and "creating contacts is off" in refused[0].detail


def test_a_hundred_lines_take_one_batch_call_and_a_retried_line_updates_its_communication(portal):
    tasks = [message(n, contact_ref=MAYA) for n in range(1, 101)]
    results = writer(portal).write(tasks)
    assert {r.outcome for r in results} == {"done"}
    assert portal.calls("POST", "/crm/v3/objects/communications/batch/create") == 1
    assert len({r.external_id for r in results}) == 100
    # results are mapped by trace id, whatever order HubSpot answers in (the emulator reverses it)
    first = portal.objects["communications"][results[0].external_id]["properties"]["hs_communication_body"]
    assert "line 1\n" in first
    again = writer(portal).write([message(1, contact_ref=MAYA, external_id=results[0].external_id, status="read")])
    assert again[0].outcome == "done" and again[0].external_id == results[0].external_id
    assert len(portal.objects["communications"]) == 100
    assert "Status: read" in portal.objects["communications"][results[0].external_id]["properties"][
        "hs_communication_body"]


def test_a_handoff_becomes_a_task_for_the_owner_and_a_release_a_note(portal):
    handoff = message(3, kind="handoff", text="Handed off to an agent: wants a person", direction="sys",
                      data={"reason": "wants a person"}, contact_ref=MAYA)
    handoff = WriteTask(**{**{f: getattr(handoff, f) for f in handoff.__slots__},
                           "transcript": ({"at": NOW.isoformat(), "direction": "in", "author": "customer",
                                           "text": "Can I talk to someone?"},)})
    release = message(4, kind="release", text="Released to the bot by ana", direction="sys", contact_ref=MAYA)
    results = writer(portal).write([handoff, release])
    assert [r.outcome for r in results] == ["done", "done"]
    task = portal.objects["tasks"][results[0].external_id]["properties"]
    assert task["hubspot_owner_id"] == "90000123" and task["hs_task_priority"] == "HIGH"
    assert "Can I talk to someone?" in task["hs_task_body"] and "https://rf.test/inbox/7" in task["hs_task_body"]
    note = portal.objects["notes"][results[1].external_id]["properties"]
    assert "Released to the bot by ana" in note["hs_note_body"]


@pytest.mark.parametrize("policy, retry_after, expected", [
    ("TEN_SECONDLY_ROLLING", None, 10.0),
    ("TEN_SECONDLY_ROLLING", 3, 3.0),
    ("SECONDLY", None, 1.0),
    # 14:02:11 UTC is 09:02:11 in New York: the daily limit resets at the portal's midnight
    ("DAILY", None, (timedelta(hours=14, minutes=57, seconds=49)).total_seconds()),
    ("DAILY", 5, (timedelta(hours=14, minutes=57, seconds=49)).total_seconds()),
])
def test_a_429_puts_the_batch_back_for_as_long_as_its_policy_says(portal, policy, retry_after, expected):
    portal.throttle(policy, retry_after=retry_after)
    results = writer(portal).write([message(1, contact_ref=MAYA), message(2, contact_ref=MAYA)])
    assert {r.outcome for r in results} == {"retry"}
    assert {r.retry_after for r in results} == {expected}
    assert policy in results[0].detail
    assert portal.objects["communications"] == {}


def test_the_request_budget_holds_back_what_does_not_fit_in_ten_seconds(portal):
    clock = ManualClock(NOW)
    w = writer(portal, clock, requests_per_10s=3)
    # 1 search + 1 batch create + 1 contact update = 3 requests: the budget is spent
    first = w.write([message(1), message(2, direction="in")])
    assert {r.outcome for r in first} == {"done"}
    clock.advance(timedelta(seconds=4))
    held = w.write([message(3, contact_ref=MAYA)])
    assert held[0].outcome == "retry" and held[0].retry_after == pytest.approx(6.0)
    assert portal.calls("POST", "/crm/v3/objects/communications/batch/create") == 1
    clock.advance(timedelta(seconds=6))
    assert w.write([message(3, contact_ref=MAYA)])[0].outcome == "done"


def test_a_budget_is_per_portal_and_shared_by_its_writers():
    assert budget_for("portal-a", 100) is budget_for("portal-a", 100)
    assert budget_for("portal-a", 100) is not budget_for("portal-b", 100)


def test_a_refused_line_fails_with_hubspots_reason_the_others_of_its_batch_are_written(portal):
    bad = message(2, contact_ref="999")  # a contact that does not exist: the association is refused
    results = writer(portal).write([message(1, contact_ref=MAYA), bad, message(3, contact_ref=MAYA)])
    assert [r.outcome for r in results] == ["done", "failed", "done"]
    assert "unknown contact" in results[1].detail
    assert len(portal.objects["communications"]) == 2


def test_an_outage_raises_for_the_whole_batch():
    from core.errors import RetryableError

    down = HubSpotWriter(HubSpotClient(TOKEN, host="http://127.0.0.1:9"), {}, "portal-down", clock=ManualClock(NOW))
    with pytest.raises(RetryableError):
        down.write([message(1, contact_ref=MAYA)])


def test_the_whatsapp_phone_property_is_searched_where_the_portal_has_it():
    from connectors.hubspot.install import phone_properties

    for has_it in (True, False):
        emu = HubSpotEmulator(private_tokens={TOKEN}, whatsapp_phone_property=has_it)
        if has_it:
            emu.add_contact("151000000105", hs_whatsapp_phone_number="15550004444")
        with ServerThread(create_hubspot_app(emu)) as server:
            client = HubSpotClient(TOKEN, host=server.url)
            searched = phone_properties(client)
            assert ("hs_whatsapp_phone_number" in searched) is has_it
            w = HubSpotWriter(client, {"phone_properties": searched}, f"portal-wa-{has_it}", clock=ManualClock(NOW))
            result = w.write([message(1, phone="+15550004444")])[0]
            assert result.outcome == "done"
            assert (result.contact_ref == "151000000105") is has_it  # found by the WhatsApp number, or created
            if not has_it:  # searching a property the portal lacks would have been refused
                with pytest.raises(Exception, match="does not exist"):
                    client.search_contacts({"hs_whatsapp_phone_number": ["1"]}, ["phone"])
