"""The sweeper against a sender finishing at the same moment: a row the sender settled after the
sweep looked at it keeps what the sender recorded, never ``unknown`` on top of it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, select, text

from core.store.models import Channel, Contact, Conversation, Message
from tests.harness import Harness


@pytest.fixture
def h(bridge: Harness) -> Harness:  # conftest's bridge: on SQLite and on PostgreSQL
    return bridge


def _sending_row(h: Harness) -> int:
    now = h.clock.now()
    with h.session() as s:
        channel = s.scalar(select(Channel).order_by(Channel.id))
        contact = Contact(workspace_id=channel.workspace_id, phone_e164="+15550002222", wa_id="15550002222",
                          created_at=now, updated_at=now)
        s.add(contact)
        s.flush()
        conv = Conversation(workspace_id=channel.workspace_id, contact_id=contact.id, channel_id=channel.id,
                            updated_at=now)
        s.add(conv)
        s.flush()
        msg = Message(workspace_id=channel.workspace_id, conversation_id=conv.id, contact_id=contact.id,
                      direction="out", author="bot", kind="text", body="hi", status="sending", status_at=now,
                      created_at=now)
        s.add(msg)
        s.flush()
        return msg.id


def test_a_send_settled_while_the_sweep_runs_is_not_marked_unknown(h):
    """The sender records ``accepted`` for a slow send between the sweep's look at the stale
    ``sending`` rows and its write: the sweep's write must only move rows still ``sending``."""
    message_id = _sending_row(h)
    engine = h.rt.db.engine
    done: list[bool] = []

    def sender_finishes(conn, cursor, statement, parameters, context, executemany):
        if done or not statement.lstrip().upper().startswith("UPDATE MESSAGE"):
            return
        done.append(True)
        with engine.begin() as other:  # another process: the worker whose call just came back
            other.execute(text("UPDATE message SET status = 'accepted', wamid = 'wamid.late' WHERE id = :id"),
                          {"id": message_id})

    h.clock.set(h.clock.now() + timedelta(minutes=2))
    event.listen(engine, "before_cursor_execute", sender_finishes)
    try:
        h.sweep()
    finally:
        event.remove(engine, "before_cursor_execute", sender_finishes)
    assert done, "the sweep wrote nothing to message"
    with h.session() as s:
        msg = s.get(Message, message_id)
        assert (msg.status, msg.wamid) == ("accepted", "wamid.late")
