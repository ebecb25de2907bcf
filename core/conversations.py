"""Conversations and their messages: inbound records, the window, delivery statuses."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.events import DeliveryState, DeliveryStatus, InboundMessage
from core.session import Session as Window
from core.store.models import Contact, Conversation, Message
from core.writeback import message_changed

__all__ = ["conversation_for", "window_of", "record_inbound", "apply_status", "adopt_by_callback", "callback_data_for",
           "STATUS_RANK", "MODES", "note"]

_CALLBACK = "replyflow:"

MODES = ("bot", "agent", "closed")  # who owns a conversation (Conversation.mode)

# A status only moves forward; failed is final and keeps its error.
STATUS_RANK = {
    "blocked": 0, "cancelled": 0, "queued": 1, "sending": 2, "unknown": 3, "accepted": 4,
    "sent": 5, "delivered": 6, "read": 7, "played": 8, "failed": 9,
}


def conversation_for(s: Session, contact: Contact, channel_id: int, now: datetime) -> Conversation:
    conv = s.scalar(select(Conversation).where(Conversation.contact_id == contact.id,
                                               Conversation.channel_id == channel_id))
    if conv is not None:
        return conv
    try:
        with s.begin_nested():
            conv = Conversation(workspace_id=contact.workspace_id, contact_id=contact.id,
                                channel_id=channel_id, mode="bot", updated_at=now)
            s.add(conv)
            s.flush()
        return conv
    except IntegrityError:
        return s.scalars(select(Conversation).where(Conversation.contact_id == contact.id,
                                                    Conversation.channel_id == channel_id)).one()


def window_of(conv: Conversation | None) -> Window:
    if conv is None:
        return Window()
    closed = conv.window_closed_at
    last = conv.last_inbound_at if closed is None or (conv.last_inbound_at or closed) > closed else None
    entry = conv.entry_point_at if closed is None or (conv.entry_point_at or closed) > closed else None
    return Window(last_inbound_at=last, entry_point_at=entry)


def record_inbound(s: Session, conv: Conversation, msg: InboundMessage, now: datetime) -> Message | None:
    """Store the message and open the window; None when this wamid was already recorded."""
    if s.scalar(select(Message.id).where(Message.wamid == msg.message_id)) is not None:
        return None
    sent_at = min(msg.timestamp, now)  # a clock-skewed future timestamp must not stretch the window
    if conv.last_inbound_at is None or sent_at > conv.last_inbound_at:
        conv.last_inbound_at = sent_at
    if msg.from_ad:
        conv.entry_point_at = sent_at
    conv.updated_at = now
    row = Message(workspace_id=conv.workspace_id, conversation_id=conv.id, contact_id=conv.contact_id,
                  direction="in", author="customer", kind=msg.kind.value, body=msg.text, reply_id=msg.reply_id,
                  wamid=msg.message_id, status="received", status_at=sent_at, created_at=now)
    try:
        with s.begin_nested():
            s.add(row)
            s.flush()
    except IntegrityError:  # the same wamid recorded concurrently
        return None
    message_changed(s, row, now)
    return row


def apply_status(s: Session, status: DeliveryStatus) -> tuple[Message | None, bool]:
    """Apply a delivery status in whatever order they arrive: (message, whether it moved).
    The message is None when the wamid is not known (yet)."""
    msg = s.scalar(select(Message).where(Message.wamid == status.message_id))
    if msg is None:
        return None, False
    new = status.state.value if status.state is not DeliveryState.UNKNOWN else None
    if new is None or STATUS_RANK.get(new, 0) <= STATUS_RANK.get(msg.status, 0):
        return msg, False
    msg.status, msg.status_at = new, status.timestamp
    if status.errors:
        err = status.errors[0]
        msg.error_code, msg.error_title, msg.error_details = err.code, err.title, err.details
    s.flush()
    message_changed(s, msg, status.timestamp)
    return msg, True


def callback_data_for(message_id: int) -> str:
    """What each send carries as ``biz_opaque_callback_data``: WhatsApp echoes it in status webhooks."""
    return f"{_CALLBACK}{message_id}"


def adopt_by_callback(s: Session, status: DeliveryStatus) -> Message | None:
    """A status for a wamid we never learned (the send timed out after it went out, or the worker
    died mid-call), naming our row in its callback data: the row takes the wamid, so this status
    and every later one apply to it. Only a row whose outcome is open (``unknown``, ``sending``)
    and that has no wamid yet is adopted."""
    data = status.callback_data or ""
    if not data.startswith(_CALLBACK) or not data[len(_CALLBACK):].isdigit():
        return None
    msg = s.get(Message, int(data[len(_CALLBACK):]))
    if msg is None or msg.direction != "out" or msg.wamid is not None or msg.status not in ("unknown", "sending"):
        return None
    msg.wamid = status.message_id
    s.flush()
    return msg


def note(s: Session, conv: Conversation, text: str, now: datetime, *, kind: str = "note",
         run_id: int | None = None, data: dict | None = None) -> Message:
    """A line in the history that is not a WhatsApp message: handoffs, releases, outcomes.
    ``data`` travels with its write-back (an outcome's order and amount, a handoff's reason)."""
    row = Message(workspace_id=conv.workspace_id, conversation_id=conv.id, contact_id=conv.contact_id,
                  direction="sys", author="replyflow", kind=kind, body=text, status="recorded",
                  flow_run_id=run_id, created_at=now)
    s.add(row)
    s.flush()
    message_changed(s, row, now, data=data)
    return row
