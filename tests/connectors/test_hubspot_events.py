"""HubSpot webhooks at the edge: the v3 signature of every fixture, replays and wrong URLs refused,
batches parsed into frozen events, and each event type mapped to its trigger."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from connectors.hubspot import CONNECTOR, events, triggers
from core.errors import PayloadError, SignatureError
from core.events import ConsentAction, ConsentPurpose, TriggerKind

FIXTURES = Path(__file__).parent.parent / "fixtures" / "hubspot"
SECRET = "test-hubspot-client-secret"
URI = "https://bridge.example.test/webhooks/hubspot"
SENT = datetime(2025, 11, 3, 14, 2, 11, tzinfo=timezone.utc)  # X-HubSpot-Request-Timestamp of every fixture
WEBHOOKS = ("contact_creation", "contact_propertyChange", "deal_propertyChange", "batch_mixed",
            "meeting_creation_generic")


def fixture(name: str) -> tuple[bytes, dict[str, str]]:
    return (FIXTURES / f"{name}.json").read_bytes(), json.loads((FIXTURES / f"{name}.headers.json").read_text())


def check(body: bytes, headers: dict, *, now: datetime = SENT, uri: str = URI, secrets=(SECRET,)) -> None:
    events.verify(body, headers, secrets, method="POST", uri=uri, now=now)


@pytest.mark.parametrize("name", WEBHOOKS)
def test_every_fixture_is_signed_v3_and_parses(name):
    body, headers = fixture(name)
    check(body, headers)
    parsed = events.parse(body)
    assert parsed and all(isinstance(e, events.HubSpotEvent) for e in parsed)
    assert {e.portal_id for e in parsed} == {"24681357"}


def test_the_signature_is_accepted_for_five_minutes_then_refused_as_a_replay():
    body, headers = fixture("contact_creation")
    check(body, headers, now=SENT + timedelta(minutes=4, seconds=59))
    with pytest.raises(SignatureError, match="older than 5 minutes"):
        check(body, headers, now=SENT + timedelta(minutes=5, seconds=1))
    with pytest.raises(SignatureError, match="ahead"):
        check(body, headers, now=SENT - timedelta(minutes=6))


@pytest.mark.parametrize("uri", ["http://bridge.example.test/webhooks/hubspot",
                                 "https://bridge.example.test/webhooks/hubspot?x=1",
                                 "https://127.0.0.1:8000/webhooks/hubspot"])
def test_a_signature_made_for_another_url_is_refused(uri):
    body, headers = fixture("contact_creation")
    with pytest.raises(SignatureError, match="does not match"):
        check(body, headers, uri=uri)


def test_missing_headers_a_v1_signature_alone_or_a_changed_body_are_refused():
    body, headers = fixture("deal_propertyChange")
    only_v1 = {k: v for k, v in headers.items() if k != "X-HubSpot-Signature-v3"}
    with pytest.raises(SignatureError) as missing:
        check(body, only_v1)
    assert missing.value.missing
    with pytest.raises(SignatureError, match="does not match"):
        check(body.replace(b"closedwon", b"closedlost"), headers)
    with pytest.raises(SignatureError, match="milliseconds"):
        check(body, {**headers, "X-HubSpot-Request-Timestamp": "yesterday"})


def test_during_a_secret_rotation_both_secrets_verify():
    body, headers = fixture("contact_creation")
    check(body, headers, secrets=("the-new-secret", SECRET))


def test_encoded_characters_in_the_url_are_decoded_before_hashing_as_hubspot_does():
    body = b"[]"
    sig = events.sign(body, SECRET, method="POST", uri="https://h.test/webhooks/hubspot?next=a:b", timestamp="1")
    assert sig == events.sign(body, SECRET, method="POST", uri="https://h.test/webhooks/hubspot?next=a%3Ab",
                              timestamp="1")


@pytest.mark.parametrize("body, reason", [
    (b"not json", "not JSON"), (b'{"eventId": 1}', "array"), (b"[1]", "object"),
    (b'[{"eventId": 1, "subscriptionType": "contact.creation", "portalId": 1, "objectId": 2}]', "occurredAt"),
    (b'[{"eventId": 1, "subscriptionType": "x", "portalId": 1, "objectId": 2, "occurredAt": "soon"}]', "numbers"),
])
def test_a_malformed_batch_is_refused_with_the_reason(body, reason):
    with pytest.raises(PayloadError, match=reason):
        events.parse(body)


def test_events_are_frozen_and_keep_their_wire_payload_out_of_repr():
    event = events.parse(fixture("batch_mixed")[0])[2]
    assert event.attempt_number == 2 and event.kind == "deal.propertyChange"
    assert "raw" not in repr(event) and event.raw["eventId"] == 4102938503
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.object_id = "1"  # type: ignore[misc]


def test_a_batch_becomes_one_delivery_per_event_keyed_by_event_id():
    body, headers = fixture("batch_mixed")
    deliveries = CONNECTOR.delivery(body, headers)
    assert [d.dedupe_key for d in deliveries] == ["hubspot:4102938501", "hubspot:4102938502", "hubspot:4102938503"]
    assert [json.loads(d.body)["eventId"] for d in deliveries] == [4102938501, 4102938502, 4102938503]
    doubled = json.dumps(json.loads(body) * 2).encode()  # the same event twice in one batch: recorded once
    assert len(CONNECTOR.delivery(doubled, headers)) == 3


def _trigger(name: str, index: int = 0):
    event = events.parse(fixture(name)[0])[index]
    return event, triggers.to_trigger(event)


def test_contact_creation_is_contact_created_about_that_contact():
    event, trigger = _trigger("contact_creation", 1)
    assert trigger.kind is TriggerKind.CONTACT_CREATED and trigger.subject == "hubspot:contact:151000000102"
    assert trigger.account == "24681357" and trigger.occurred_at == event.occurred_at


def test_the_opt_in_property_change_is_a_marketing_consent_from_hubspot_dated_when_it_happened():
    event, trigger = _trigger("contact_propertyChange")
    (signal,) = trigger.consent
    assert (signal.purpose, signal.action, signal.source) == (ConsentPurpose.MARKETING, ConsentAction.OPT_IN, "hubspot")
    assert signal.at == datetime(2025, 11, 3, 14, 2, 8, 500000, tzinfo=timezone.utc)
    assert json.loads(signal.evidence)["eventId"] == 4102938480
    off = dataclasses.replace(event, property_value="false")
    assert triggers.to_trigger(off).consent[0].action is ConsentAction.OPT_OUT


def test_deal_stage_and_meeting_creation_map_and_other_changes_start_nothing():
    _, deal = _trigger("deal_propertyChange")
    assert deal.kind is TriggerKind.DEAL_STAGE_CHANGED and deal.data["stage"] == "closedwon"
    _, meeting = _trigger("meeting_creation_generic")
    assert meeting.kind is TriggerKind.BOOKING_UPCOMING and meeting.subject == "hubspot:meeting:88000000901"
    _, phone_change = _trigger("batch_mixed", 1)  # mobilephone changed: nothing to start
    assert phone_change is None
