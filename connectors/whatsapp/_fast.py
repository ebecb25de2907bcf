"""The fast path of ``parse_webhook`` for the shapes Meta sends nearly always: one entry, one
``messages`` change, one message or a batch of statuses, at most one contact.

It checks every field it reads with exact type tests and builds the same ``ParsedUpdate`` values
as the general parser, without building error-path strings or re-assembling an envelope that is
the body itself. Anything unusual (another field, several entries, a wrong type, a missing id)
raises ``Unusual`` and the general parser takes over, so errors keep their precise paths.
tests/connectors/test_whatsapp_fast_path.py checks both paths agree on every fixture and on
hypothesis-mutated bodies.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from connectors.whatsapp import _wire as w
from core.errors import PayloadError
from core.events import DeliveryState, DeliveryStatus, InboundMessage, MessageKind

__all__ = ["Unusual", "parse_common"]

_OBJECT = "whatsapp_business_account"
_ENTRY_KEYS = frozenset(("id", "time", "changes"))
_VALUE_LISTS = frozenset(("contacts", "messages", "statuses", "user_preferences", "errors"))
_KINDS = {k.value: k for k in MessageKind}
_STATES = {s.value: s for s in DeliveryState}
_UTC = timezone.utc
_MEDIA = frozenset(("image", "video", "audio", "document", "sticker"))


class Unusual(Exception):
    """Not a common shape: let the general parser decide (and explain, if it is wrong)."""


def _str(d: dict, key: str) -> str | None:
    v = d.get(key)
    if v is None or type(v) is str:
        return v
    raise Unusual


def _moment(d: dict) -> datetime:
    v = d.get("timestamp")
    if type(v) is str and v.isdigit():
        v = int(v)
    elif type(v) is not int:
        raise Unusual
    try:
        return datetime.fromtimestamp(v, tz=_UTC)
    except (OverflowError, OSError, ValueError):
        raise Unusual from None


def _errors(d: dict) -> tuple:
    items = d.get("errors")
    if items is None:
        return ()
    if type(items) is not list:
        raise Unusual
    try:
        return w.api_errors(items, "errors") if items else ()
    except PayloadError:
        raise Unusual from None  # the general parser says where


def parse_common(body: Any, updates: type, single: Any) -> list | None:
    """The updates of a common-shaped body, or ``Unusual``. ``updates`` is ParsedUpdate;
    ``single(body, value, items, contact)`` builds a one-status envelope (for status batches)."""
    if type(body) is not dict or len(body) != 2 or body.get("object") != _OBJECT:
        raise Unusual
    entries = body.get("entry")
    if type(entries) is not list or len(entries) != 1:
        raise Unusual
    entry = entries[0]
    if type(entry) is not dict or not entry.keys() <= _ENTRY_KEYS or type(entry.get("id")) is not str or not entry["id"]:
        raise Unusual
    changes = entry.get("changes")
    if type(changes) is not list or len(changes) != 1:
        raise Unusual
    change = changes[0]
    if type(change) is not dict or len(change) != 2 or change.get("field") != "messages":
        raise Unusual
    value = change.get("value")
    if type(value) is not dict:
        raise Unusual
    metadata = value.get("metadata")
    channel = metadata.get("phone_number_id") if type(metadata) is dict else None
    if type(channel) is not str or not channel:
        raise Unusual
    lists = value.keys() & _VALUE_LISTS
    contact = None
    if "contacts" in value:  # exactly one contact, or the envelope would not be the body
        contacts = value["contacts"]
        if type(contacts) is not list or len(contacts) != 1 or type(contacts[0]) is not dict:
            raise Unusual
        contact = contacts[0]
    if lists <= {"contacts", "messages"}:
        messages = value.get("messages")
        if type(messages) is not list or len(messages) != 1:
            raise Unusual
        return [updates(event=_message(messages[0], channel, contact), envelope=body,
                        dedupe_key="wa:msg:" + messages[0]["id"])]
    if lists <= {"contacts", "statuses"}:
        statuses = value.get("statuses")
        if type(statuses) is not list or not statuses:
            raise Unusual
        out = []
        for st in statuses:
            event = _status(st, channel)
            envelope = body if len(statuses) == 1 else single(body, value, [st], contact)
            out.append(updates(event=event, envelope=envelope,
                               dedupe_key=f"wa:status:{event.message_id}:{st['status'].lower()}"))
        return out
    raise Unusual


def _content(msg: dict, wire_type: str) -> tuple[str | None, str | None, str | None]:
    """(text, reply_id, media_id) for the common message types; Unusual for the rest."""
    payload = msg.get(wire_type)
    if type(payload) is not dict:
        raise Unusual
    g = payload.get
    if wire_type == "text":
        text, reply_id, media_id = g("body"), None, None
    elif wire_type == "interactive":
        sub = g("type")
        if sub != "button_reply" and sub != "list_reply":
            raise Unusual
        reply = g(sub)
        if type(reply) is not dict:
            raise Unusual
        text, reply_id, media_id = reply.get("title"), reply.get("id"), None
    elif wire_type == "button":
        text, reply_id, media_id = g("text"), g("payload"), None
    elif wire_type in _MEDIA:
        text, reply_id, media_id = g("caption"), None, g("id")
    elif wire_type == "location":
        text, reply_id, media_id = g("name"), None, None
    else:
        raise Unusual
    if not (type(text) is str or text is None) or not (type(reply_id) is str or reply_id is None) \
            or not (type(media_id) is str or media_id is None):
        raise Unusual
    return text, reply_id, media_id


def _message(msg: Any, channel: str, contact: dict | None) -> InboundMessage:
    if type(msg) is not dict:
        raise Unusual
    g = msg.get
    wamid, wire_type, sender, sender_uid = g("id"), g("type"), g("from"), g("from_user_id")
    if type(wamid) is not str or not wamid or type(wire_type) is not str:
        raise Unusual
    if not (type(sender) is str or sender is None) or not (type(sender_uid) is str or sender_uid is None):
        raise Unusual
    profile_name = username = None
    if contact is not None:
        if not ((sender and contact.get("wa_id") == sender) or (sender_uid and contact.get("user_id") == sender_uid)):
            if sender or sender_uid:
                raise Unusual  # a contact for someone else: the general rules decide
        profile = contact.get("profile")
        if profile is not None:
            if type(profile) is not dict:
                raise Unusual
            profile_name, username = _str(profile, "name"), _str(profile, "username")
        sender = sender or _str(contact, "wa_id")
        sender_uid = sender_uid or _str(contact, "user_id")
    referral, context = g("referral"), g("context")
    if (referral is not None and type(referral) is not dict) or wire_type == "reaction":
        raise Unusual
    if context is None:
        context_message_id = None
    elif type(context) is dict and (type(context.get("id")) is str or context.get("id") is None):
        context_message_id = context.get("id")
    else:
        raise Unusual
    text, reply_id, media_id = _content(msg, wire_type)
    return InboundMessage(
        channel=channel, message_id=wamid, timestamp=_moment(msg), kind=_KINDS[wire_type], wa_id=sender,
        user_id=sender_uid, username=username, profile_name=profile_name, text=text, reply_id=reply_id,
        media_id=media_id, context_message_id=context_message_id, from_ad=referral is not None,
        wire_type=wire_type, errors=_errors(msg), raw=msg)


def _status(st: Any, channel: str) -> DeliveryStatus:
    if type(st) is not dict:
        raise Unusual
    wamid, state = st.get("id"), st.get("status")
    if type(wamid) is not str or not wamid or type(state) is not str:
        raise Unusual
    pricing = st.get("pricing")
    if pricing is not None and type(pricing) is not dict:
        raise Unusual
    enum = _STATES.get(state)
    if enum is None:
        raise Unusual
    return DeliveryStatus(
        channel=channel, message_id=wamid, state=enum, timestamp=_moment(st), recipient=_str(st, "recipient_id"),
        recipient_user_id=_str(st, "recipient_user_id"), errors=_errors(st),
        pricing_category=_str(pricing, "category") if pricing else None,
        callback_data=_str(st, "biz_opaque_callback_data"), raw=st)
