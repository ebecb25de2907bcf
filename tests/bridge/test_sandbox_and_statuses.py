"""The sandbox refuses what WhatsApp refuses; delivery statuses only move forward, in any order."""

from __future__ import annotations


from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from connectors.whatsapp.client import CloudApiClient
from connectors.whatsapp.errors import PermanentWhatsAppError, Reaction
from connectors.whatsapp.mapper import message_body
from core.clock import ManualClock
from core.store.models import Message
from bridge.sandbox import Sandbox, create_sandbox_app
from bridge.servers import ServerThread
from tests.harness import Harness

T0 = datetime(2026, 1, 2, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def sandbox():
    clock = ManualClock(T0)
    box = Sandbox(clock=clock, app_secret="s", access_token="tok", phone_number_id="106000000000002")
    with ServerThread(create_sandbox_app(box)) as server:
        client = CloudApiClient(access_token="tok", phone_number_id="106000000000002", base_url=server.url)
        yield box, clock, client
        client.close()


def _text(to: str) -> dict:
    return message_body({"text": "hello", "buttons": []}, to={"to": to})


def test_sandbox_refuses_free_form_outside_the_window_with_131047(sandbox):
    box, clock, client = sandbox
    with pytest.raises(PermanentWhatsAppError) as never_wrote:
        client.send(_text("+15550003333"))
    assert never_wrote.value.code == 131047 and never_wrote.value.reaction is Reaction.NEEDS_TEMPLATE
    box.customer_message("15550003333", "Lee", text="hi")  # the customer writes: the window opens
    clock.advance(timedelta(hours=23, minutes=59, seconds=59))
    assert client.send(_text("+15550003333")).wamid.startswith("wamid.")
    clock.advance(timedelta(seconds=1))  # exactly 24 hours later: closed
    with pytest.raises(PermanentWhatsAppError) as closed:
        client.send(_text("+15550003333"))
    assert closed.value.code == 131047


def test_sandbox_checks_templates_and_tokens(sandbox):
    _box, _clock, client = sandbox
    unknown = message_body({"template": "no_such_template", "language": "en_US", "params": {}, "buttons": []},
                           to={"to": "+15550003333"})
    with pytest.raises(PermanentWhatsAppError) as missing:
        client.send(unknown)
    assert missing.value.code == 132001 and missing.value.reaction is Reaction.TEMPLATE_BROKEN
    short = message_body({"template": "cart_reminder", "language": "en_US", "params": {"first_name": "A"},
                          "buttons": []}, to={"to": "+15550003333"})
    with pytest.raises(PermanentWhatsAppError) as count:
        client.send(short)
    assert count.value.code == 132000
    client._headers = {"Authorization": "Bearer wrong"}
    with pytest.raises(PermanentWhatsAppError) as token:
        client.send(_text("+15550003333"))
    assert token.value.code == 190 and token.value.reaction is Reaction.PAUSE_CHANNEL


def _status_body(h: Harness, wamid: str, state: str, errors: list | None = None) -> bytes:
    return h.status_webhook(wamid, state, errors)


def _agent_message(h: Harness) -> Message:
    h.sandbox.customer_sends("15550002222", "Maya", text="hello")
    h.settle()
    with h.session() as s:
        conv_id = s.scalar(select(Message.conversation_id))
    assert h.api("POST", f"/conversations/{conv_id}/messages", json={"text": "hi"}).status_code == 202
    h.settle()
    with h.session() as s:
        return s.scalars(select(Message).where(Message.direction == "out")).one()


def _reload(h: Harness, message_id: int) -> Message:
    with h.session() as s:
        return s.get(Message, message_id)


def test_statuses_only_move_forward_whatever_the_order(bridge: Harness):
    msg = _agent_message(bridge)
    for state in ("read", "delivered", "sent"):  # arrive backwards
        assert bridge.whatsapp(_status_body(bridge, msg.wamid, state)).status_code == 200
    assert _reload(bridge, msg.id).status == "read"


def test_failed_keeps_its_error_and_is_final(bridge: Harness):
    msg = _agent_message(bridge)
    error = [{"code": 131026, "title": "Message undeliverable", "error_data": {"details": "not on WhatsApp"}}]
    bridge.whatsapp(_status_body(bridge, msg.wamid, "failed", error))
    bridge.whatsapp(_status_body(bridge, msg.wamid, "sent"))
    row = _reload(bridge, msg.id)
    assert (row.status, row.error_code, row.error_details) == ("failed", 131026, "not on WhatsApp")


def test_status_before_its_send_is_recorded_is_applied_later(bridge: Harness):
    from bridge.executor import reconcile_orphans
    from core.store.models import InboundEvent

    early = "wamid.EARLY000000000000000000000000"
    bridge.whatsapp(_status_body(bridge, early, "delivered"))
    with bridge.session() as s:
        assert s.scalars(select(InboundEvent.status)).all() == ["orphan"]
    msg = _agent_message(bridge)
    with bridge.session() as s:  # pretend the API had returned the early wamid for our message
        s.get(Message, msg.id).wamid, s.get(Message, msg.id).status = early, "accepted"
    reconcile_orphans(bridge.rt, early)
    assert _reload(bridge, msg.id).status == "delivered"





def _ids_from(box: Sandbox) -> set[str]:
    """The ids one sandbox hands out: a customer's message and the reply sent to them."""
    import json

    body = json.loads(box.customer_message("15550003333", "Lee", text="hi"))
    inbound = body["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    answer, status = box.handle_send(box.phone_number_id, f"Bearer {box.access_token}", _text("+15550003333"))
    assert status == 200, answer
    return {inbound, answer["messages"][0]["id"]}


def test_two_sandboxes_never_hand_out_the_same_id():
    """Two processes (or one `replyflow serve`, restarted) each have their own sandbox: a repeated
    wamid would be taken for a duplicate webhook and the customer's message dropped."""
    first, second = (Sandbox(clock=ManualClock(T0), app_secret="s", access_token="tok",
                             phone_number_id="106000000000002") for _ in range(2))
    ids = _ids_from(first), _ids_from(second)
    assert all(i.startswith("wamid.") for i in ids[0] | ids[1])
    assert len(ids[0]) == len(ids[1]) == 2 and not ids[0] & ids[1]


def _talk(h: Harness, text: str) -> None:
    assert h.sandbox.customer_sends("15550002222", "Maya", text=text).status_code == 200
    h.settle()
    with h.session() as s:
        conv_id = s.scalar(select(Message.conversation_id))
    assert h.api("POST", f"/conversations/{conv_id}/messages", json={"text": f"re: {text}"}).status_code == 202
    h.settle()


def test_a_restarted_sandbox_is_heard_and_its_replies_accepted(tmp_path):
    before = Harness(tmp_path)
    try:
        _talk(before, "hello")
    finally:
        before.close()
    after = Harness(tmp_path)  # the same database, a new sandbox: `replyflow serve` restarted
    try:
        _talk(after, "are you there?")
        with after.session() as s:
            inbound = s.scalars(select(Message.body).where(Message.direction == "in").order_by(Message.id)).all()
            replies = s.execute(select(Message.body, Message.status).where(Message.direction == "out",
                                                                           Message.author != "bot")).all()
    finally:
        after.close()
    assert inbound == ["hello", "are you there?"]
    assert sorted(replies) == [("re: are you there?", "accepted"), ("re: hello", "accepted")]
