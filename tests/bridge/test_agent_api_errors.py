"""The agent API names what is missing and refuses what it cannot do, with a reason."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from core.store.models import Conversation, InboundEvent, Message

from tests.harness import Harness


@pytest.fixture
def h(tmp_path):
    harness = Harness(tmp_path)
    yield harness
    harness.close()


@pytest.mark.parametrize("method,path,body", [
    ("GET", "/conversations/999", None),
    ("POST", "/conversations/999/messages", {"text": "hi"}),
    ("POST", "/conversations/999/take", {"agent": "sam"}),
    ("POST", "/conversations/999/release", {"agent": "sam"}),
])
def test_an_unknown_conversation_is_a_404_with_its_id(h: Harness, method, path, body):
    response = h.api(method, path, json=body) if body is not None else h.api(method, path)
    assert response.status_code == 404
    assert response.json() == {"error": "no conversation 999"}


def test_without_the_token_every_call_is_refused(h: Harness):
    assert h.http.get("/api/conversations").status_code == 401


def test_an_unknown_mode_is_a_400_naming_the_modes(h: Harness):
    response = h.api("GET", "/conversations", params={"mode": "bogus"})
    assert response.status_code == 400
    assert response.json() == {"error": "mode: expected one of bot, agent, closed, got 'bogus'"}
    assert h.api("GET", "/conversations", params={"mode": "agent"}).json() == []


@pytest.mark.parametrize("text, reason", [("", "the reply is empty"), ("   ", "the reply is empty"),
                                          ("a" * 4097, "longer than WhatsApp's 4096")])
def test_an_empty_or_too_long_reply_is_refused_and_changes_nothing(h: Harness, text, reason):
    h.sandbox.customer_sends("15550002222", "Maya", text="hello")
    h.settle()
    with h.session() as s:
        conv_id, mode, messages = s.scalar(select(Conversation.id)), s.scalar(select(Conversation.mode)), \
            s.scalar(select(func.count()).select_from(Message))
    response = h.api("POST", f"/conversations/{conv_id}/messages", json={"text": text, "agent": "sam"})
    assert response.status_code == 400
    assert reason in response.json()["error"]
    with h.session() as s:  # not taken over by the agent, nothing queued
        assert s.scalar(select(Conversation.mode)) == mode == "bot"
        assert s.scalar(select(func.count()).select_from(Message)) == messages


@pytest.mark.parametrize("phone, reason", [("abc", "no digits"), ("+1 555", "too short"),
                                           ("5550002222", "national number without a country")])
def test_a_trigger_with_an_impossible_phone_is_a_400_and_not_recorded(h: Harness, phone, reason):
    response = h.api("POST", "/triggers", json={"event": "booking_upcoming", "subject": "booking:1",
                                                "contact": {"phone": phone}})
    assert response.status_code == 400
    assert response.json()["error"].startswith("contact.phone: ")
    assert reason in response.json()["error"]
    with h.session() as s:
        assert s.scalar(select(func.count()).select_from(InboundEvent)) == 0


def test_a_trigger_no_flow_listens_to_is_recorded_with_a_warning(h: Harness):
    heard = h.api("POST", "/triggers", json={"event": "booking_upcoming", "subject": "booking:1",
                                             "contact": {"phone": "+15550002222"}})
    assert heard.status_code == 202 and heard.json()["flows"] == ["appointment_reminder"]
    assert "warning" not in heard.json()
    typo = h.api("POST", "/triggers", json={"event": "booking_upcomming", "subject": "booking:2",
                                            "contact": {"phone": "+15550002222"}})
    assert typo.status_code == 202 and typo.json()["flows"] == [] and typo.json()["new"] == 1
    assert "no flow starts or is cancelled by 'booking_upcomming'" in typo.json()["warning"]
    assert "booking_upcoming" in typo.json()["warning"]  # the events flows do listen to


def test_an_idempotency_key_reused_for_another_request_is_a_422(h: Harness):
    first = {"event": "booking_upcoming", "subject": "booking:1", "contact": {"phone": "+15550002222"}}
    key = {"Idempotency-Key": "booking-1-reminder"}
    assert h.api("POST", "/triggers", json=first, headers=key).json()["new"] == 1
    again = h.api("POST", "/triggers", json=first, headers=key)  # a retry of the same request
    assert again.status_code == 202 and again.json()["new"] == 0
    other = h.api("POST", "/triggers", json={**first, "subject": "booking:2"}, headers=key)
    assert other.status_code == 422 and "already used for a different request" in other.json()["error"]
    with h.session() as s:
        assert s.scalar(select(func.count()).select_from(InboundEvent)) == 1
