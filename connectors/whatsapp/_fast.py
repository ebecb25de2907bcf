"""The fast path of ``parse_webhook`` for the shapes Meta sends nearly always: one entry, one
``messages`` change, one message or a batch of statuses, at most one contact.

It checks every field it reads with exact type tests and builds the same ``ParsedUpdate`` values
as the general parser, without building error-path strings or re-assembling an envelope that is
the body itself. Anything unusual (another field, several entries, a wrong type, a missing id)
raises ``Unusual`` and the general parser takes over, so errors keep their precise paths.
tests/connectors/test_whatsapp_fast_path.py checks both paths agree on every fixture and on
hypothesis-mutated bodies.

Written for speed (it is most of a webhook request's parsing time): locals instead of helper
calls where a helper would be called once per update, exact ``type(x) is T`` tests, events made
with ``core.frozen.builder`` (a frozen dataclass's own ``__init__`` costs more than the rest).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from core.events import ApiError, DeliveryState, DeliveryStatus, InboundMessage, MessageKind
from core.frozen import builder

__all__ = ["Unusual", "parse_common"]

_OBJECT = "whatsapp_business_account"
_KINDS = {k.value: k for k in MessageKind}
_STATES = {s.value: s for s in DeliveryState}
_UTC = timezone.utc
_MEDIA = frozenset(("image", "video", "audio", "document", "sticker"))
_fromtimestamp = datetime.fromtimestamp
_tuple = tuple.__new__  # a NamedTuple's own __new__ is a Python function around this
_new_message = builder(InboundMessage, "channel message_id timestamp kind wa_id user_id username profile_name text"
                                       " reply_id context_message_id media_id from_ad wire_type errors raw")
_new_status = builder(DeliveryStatus, "channel message_id state timestamp recipient recipient_user_id errors"
                                      " pricing_category callback_data raw")
_new_error = builder(ApiError, "code title details")


class Unusual(Exception):
    """Not a common shape: let the general parser decide (and explain, if it is wrong)."""


def _moment(v: Any) -> datetime:
    """A ``timestamp`` value: Unix seconds as an int or as text ``int()`` reads (as the general
    parser reads it; text that is not an integer, such as ``"1.5"``, goes the general way)."""
    if type(v) is str:
        try:
            v = int(v)
        except ValueError:
            raise Unusual from None
    elif type(v) is not int:
        raise Unusual
    try:
        return _fromtimestamp(v, _UTC)
    except (OverflowError, OSError, ValueError):
        raise Unusual from None


def _errors(items: Any) -> tuple:
    """``errors[]`` as ApiError values, when each is an object with an int code and string (or
    absent) title, message and error_data.details; the general parser reads the rest."""
    if type(items) is not list:
        raise Unusual
    out = []
    for error in items:
        if type(error) is not dict:
            raise Unusual
        g = error.get
        code, title, message, data = g("code"), g("title"), g("message"), g("error_data")
        details = data.get("details") if type(data) is dict else None
        if type(code) is not int or not (type(title) is str or title is None) \
                or not (type(message) is str or message is None) or not (type(data) is dict or data is None) \
                or not (type(details) is str or details is None):
            raise Unusual
        out.append(_new_error(code, title or message or "", details or ""))
    return tuple(out)


def parse_common(body: Any, updates: type, single: Any) -> list:
    """The updates of a common-shaped body, or ``Unusual``. ``updates`` is ParsedUpdate;
    ``single(body, value, items, contact)`` builds a one-status envelope (for status batches)."""
    if type(body) is not dict or len(body) != 2 or body.get("object") != _OBJECT:
        raise Unusual
    entries = body.get("entry")
    if type(entries) is not list or len(entries) != 1:
        raise Unusual
    entry = entries[0]  # id, changes and perhaps time; nothing else
    if type(entry) is not dict or not (len(entry) == 2 or (len(entry) == 3 and "time" in entry)):
        raise Unusual
    account, changes = entry.get("id"), entry.get("changes")
    if type(account) is not str or not account or type(changes) is not list or len(changes) != 1:
        raise Unusual
    change = changes[0]
    if type(change) is not dict or len(change) != 2 or change.get("field") != "messages":
        raise Unusual
    value = change.get("value")
    if type(value) is not dict or "user_preferences" in value or "errors" in value:
        raise Unusual
    metadata = value.get("metadata")
    channel = metadata.get("phone_number_id") if type(metadata) is dict else None
    if type(channel) is not str or not channel:
        raise Unusual
    contact = None
    if "contacts" in value:  # exactly one contact, or the envelope would not be the body
        contacts = value["contacts"]
        if type(contacts) is not list or len(contacts) != 1 or type(contacts[0]) is not dict:
            raise Unusual
        contact = contacts[0]
    if "messages" in value:
        messages = value["messages"]
        if "statuses" in value or type(messages) is not list or len(messages) != 1:
            raise Unusual
        event = _message(messages[0], channel, contact)
        return [_tuple(updates, (event, "wa:msg:" + event.message_id, body))]
    statuses = value.get("statuses")
    if type(statuses) is not list or not statuses:
        raise Unusual
    if len(statuses) == 1:
        event = _status(statuses[0], channel)
        return [_tuple(updates, (event, f"wa:status:{event.message_id}:{statuses[0]['status'].lower()}", body))]
    out = []
    for st in statuses:
        event = _status(st, channel)
        out.append(updates(event, f"wa:status:{event.message_id}:{st['status'].lower()}",
                           single(body, value, [st], contact)))
    return out


def _message(msg: Any, channel: str, contact: dict | None) -> InboundMessage:
    if type(msg) is not dict:
        raise Unusual
    g = msg.get
    wamid, wire_type, sender, sender_uid = g("id"), g("type"), g("from"), g("from_user_id")
    if type(wamid) is not str or not wamid or type(wire_type) is not str or wire_type == "reaction":
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
            profile_name, username = profile.get("name"), profile.get("username")
            if not (type(profile_name) is str or profile_name is None) or \
                    not (type(username) is str or username is None):
                raise Unusual
        if not sender:
            sender = contact.get("wa_id")
            if not (type(sender) is str or sender is None):
                raise Unusual
        if not sender_uid:
            sender_uid = contact.get("user_id")
            if not (type(sender_uid) is str or sender_uid is None):
                raise Unusual
    if not (sender or sender_uid):
        raise Unusual  # nobody to answer: the general parser refuses it with the reason
    referral, context = g("referral"), g("context")
    if referral is not None and type(referral) is not dict:
        raise Unusual
    if context is None:
        context_message_id = None
    elif type(context) is dict:
        context_message_id = context.get("id")
        if not (type(context_message_id) is str or context_message_id is None):
            raise Unusual
    else:
        raise Unusual
    # content: (text, reply_id, media_id) for the common types; the rest go the general way
    payload = g(wire_type)
    if type(payload) is not dict:
        raise Unusual
    p = payload.get
    if wire_type == "text":
        text, reply_id, media_id = p("body"), None, None
    elif wire_type == "interactive":
        sub = p("type")
        if sub != "button_reply" and sub != "list_reply":
            raise Unusual
        reply = p(sub)
        if type(reply) is not dict:
            raise Unusual
        text, reply_id, media_id = reply.get("title"), reply.get("id"), None
    elif wire_type == "button":
        text, reply_id, media_id = p("text"), p("payload"), None
    elif wire_type in _MEDIA:
        text, reply_id, media_id = p("caption"), None, p("id")
    elif wire_type == "location":
        text, reply_id, media_id = p("name"), None, None
    else:
        raise Unusual
    if not (type(text) is str or text is None) or not (type(reply_id) is str or reply_id is None) \
            or not (type(media_id) is str or media_id is None):
        raise Unusual
    errors = g("errors")
    return _new_message(
        channel, wamid, _moment(g("timestamp")), _KINDS[wire_type], sender, sender_uid, username, profile_name,
        text, reply_id, context_message_id, media_id, referral is not None, wire_type,
        () if errors is None else _errors(errors), msg)


def _status(st: Any, channel: str) -> DeliveryStatus:
    if type(st) is not dict:
        raise Unusual
    g = st.get
    wamid, state, recipient, recipient_uid, callback, pricing = (
        g("id"), g("status"), g("recipient_id"), g("recipient_user_id"), g("biz_opaque_callback_data"), g("pricing"))
    if type(wamid) is not str or not wamid or type(state) is not str:
        raise Unusual
    enum = _STATES.get(state)
    if enum is None:
        raise Unusual
    if not (type(recipient) is str or recipient is None) or not (type(recipient_uid) is str or recipient_uid is None) \
            or not (type(callback) is str or callback is None):
        raise Unusual
    if pricing is None or (type(pricing) is dict and not pricing):
        category = None
    elif type(pricing) is dict:
        category = pricing.get("category")
        if not (type(category) is str or category is None):
            raise Unusual
    else:
        raise Unusual
    errors = g("errors")
    return _new_status(channel, wamid, enum, _moment(g("timestamp")), recipient, recipient_uid,
                       () if errors is None else _errors(errors), category, callback, st)
