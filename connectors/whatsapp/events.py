"""The WhatsApp Cloud API webhook edge: signatures, the GET handshake, and the payload parser.

``parse_webhook`` turns one POST body into one ``ParsedUpdate`` per update it carries
(every ``entry[] x changes[] x messages[]/statuses[]/user_preferences[]/errors[]``), each with
a typed ``core.events`` value, a dedupe key and a minimal single-update envelope that parses
back to the same update. Anything that is not Meta's shape raises ``PayloadError``.
"""

from __future__ import annotations

__all__ = [
    "SIGNATURE_HEADER",
    "MAX_BODY_BYTES",
    "ParsedUpdate",
    "sign",
    "verify",
    "verify_handshake",
    "parse_webhook",
    "envelope_text",
]

import hashlib
import hmac
import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

import orjson

from connectors.whatsapp import _wire as w
from connectors.whatsapp._fast import Unusual, parse_common
from connectors.whatsapp._wire import MAX_BODY_BYTES
from connectors._signing import header as _header, secret_list
from core.errors import PayloadError, SignatureError
from core.events import (
    ChannelEvent,
    DeliveryState,
    DeliveryStatus,
    IgnoredUpdate,
    InboundMessage,
    MarketingPreference,
    MessageKind,
    SystemError_,
    TemplateStatusUpdate,
)

_log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"
_OBJECT = "whatsapp_business_account"
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


class ParsedUpdate(NamedTuple):
    """One update of a webhook POST: the typed event, its idempotency key, and a minimal
    webhook body in the original shape holding only this update (for storage/replay).
    Immutable; a NamedTuple rather than a frozen dataclass because it is made once per update
    on the webhook's hot path and costs a third as much to build."""

    event: ChannelEvent
    dedupe_key: str
    envelope: dict[str, Any]


# ---------------------------------------------------------------- signature and handshake


def sign(body: bytes, secret: str) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends for ``body``: ``sha256=<hex HMAC>``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), bytes(body), hashlib.sha256).hexdigest()


def verify(raw_body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> None:
    """Check ``X-Hub-Signature-256`` over the raw body against any of ``secrets`` (rotation).

    SignatureError(missing=True) when the header is absent; SignatureError otherwise when it
    is malformed or matches no secret; ValueError when no secret is configured.
    """
    keys = secret_list(secrets, "app secret")
    header = _header(headers, SIGNATURE_HEADER) or ""
    if not header:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header", missing=True)
    prefix, _, digest = header.partition("=")
    if prefix.lower() != "sha256" or not _HEX64.fullmatch(digest):
        raise SignatureError(f"malformed {SIGNATURE_HEADER} header: expected 'sha256=<64 hex>'")
    given = digest.lower().encode("ascii")
    matched = False
    for key in keys:  # no early exit: every secret costs the same
        expected = sign(raw_body, key).partition("=")[2].encode("ascii")
        matched |= hmac.compare_digest(expected, given)
    if not matched:
        raise SignatureError(f"{SIGNATURE_HEADER} does not match the body")


def verify_handshake(params: Mapping[str, str], verify_token: str) -> str:
    """The GET subscription check: return ``hub.challenge`` to echo with HTTP 200."""
    if not verify_token:
        raise ValueError("no verify token configured")
    token = params.get("hub.verify_token")
    if not token:
        raise SignatureError("missing hub.verify_token", missing=True)
    if params.get("hub.mode") != "subscribe":
        raise SignatureError("hub.mode is not 'subscribe'")
    if not hmac.compare_digest(str(token).encode("utf-8"), verify_token.encode("utf-8")):
        raise SignatureError("hub.verify_token does not match")
    challenge = params.get("hub.challenge")
    if not challenge:
        raise SignatureError("missing hub.challenge")
    return str(challenge)


# ---------------------------------------------------------------- parsing: envelope level


def envelope_text(envelope: Mapping[str, Any]) -> str:
    """One update's envelope as the text stored for the job to replay: orjson (about a tenth of
    ``json.dumps``' time on the webhook path), or ``json`` for what orjson refuses (integers over
    64 bits, lone surrogates), so nothing a webhook carried is refused here."""
    try:
        return orjson.dumps(envelope).decode()
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(envelope, ensure_ascii=False)


def parse_webhook(raw_body: bytes) -> list[ParsedUpdate]:
    """Every update in a webhook body, in order, as ParsedUpdate; PayloadError if malformed.
    Common shapes take the fast path (``_fast.py``); the rest, and every error, the general one."""
    body = w.load_json(raw_body)
    try:
        return parse_common(body, ParsedUpdate, _single_status)
    except Unusual:
        return parse_general(body)


def parse_general(body: Any) -> list[ParsedUpdate]:
    """The general parser over a decoded body: any shape Meta documents, precise error paths."""
    body = w.obj(body, "body")
    if body.get("object") != _OBJECT:
        raise PayloadError(f"object is not {_OBJECT!r}")
    updates: list[ParsedUpdate] = []
    for i, entry in enumerate(w.req_list(body, "entry", "body")):
        updates.extend(_parse_entry(w.obj(entry, f"entry[{i}]"), f"entry[{i}]"))
    _log.debug("parsed %d webhook updates", len(updates))
    return updates


def _single_status(body: dict[str, Any], value: dict[str, Any], items: list[Any],
                   contact: dict[str, Any] | None) -> dict[str, Any]:
    entry = body["entry"][0]
    return _single(_Change({k: entry[k] for k in ("id", "time") if k in entry}, "messages", value, ""),
                   "statuses", items, contact)


@dataclass(frozen=True, slots=True)
class _Change:
    """One ``entry[].changes[]`` item plus what its updates need from the entry."""

    entry: dict[str, Any]  # the entry without its changes: id and, for templates, time
    field: str
    value: dict[str, Any]
    where: str

    def envelope(self, value: dict[str, Any]) -> dict[str, Any]:
        change = {"field": self.field, "value": value}
        return {"object": _OBJECT, "entry": [{**self.entry, "changes": [change]}]}


def _parse_entry(entry: dict[str, Any], where: str) -> Iterable[ParsedUpdate]:
    w.req_str(entry, "id", where)
    head = {k: entry[k] for k in ("id", "time") if k in entry}
    for j, raw_change in enumerate(w.req_list(entry, "changes", where)):
        here = f"{where}.changes[{j}]"
        change = w.obj(raw_change, here)
        field_name = w.req_str(change, "field", here)
        if change.get("value") is None:
            raise PayloadError(f"{here} has no value")
        value = w.obj(change["value"], f"{here}.value")
        ch = _Change(head, field_name, value, f"{here}.value")
        yield from _FIELDS.get(field_name, _ignored)(ch)


def _by_value_keys(ch: _Change) -> Iterable[ParsedUpdate]:
    """``messages`` / ``user_preferences`` fields: dispatch on which update lists are present."""
    present = [key for key in _LISTS if key in ch.value]
    if not present:
        yield from _ignored(ch)
    for key in present:
        yield from _LISTS[key](ch)


def _ignored(ch: _Change) -> Iterable[ParsedUpdate]:
    _log.info("ignoring webhook field %r", ch.field)
    envelope = ch.envelope(ch.value)
    event = IgnoredUpdate(field=ch.field, raw=ch.value)
    yield ParsedUpdate(event=event, dedupe_key="wa:ignored:" + w.canonical_hash(envelope), envelope=envelope)


# ---------------------------------------------------------------- per-item envelopes and contacts

_LIST_KEYS = ("contacts", "messages", "statuses", "user_preferences", "errors")


def _single(ch: _Change, key: str, items: list[Any], contact: dict[str, Any] | None) -> dict[str, Any]:
    """``ch.value`` without its update lists, plus ``key: items`` and the one contact."""
    value = {k: v for k, v in ch.value.items() if k not in _LIST_KEYS}
    if contact is not None:
        value["contacts"] = [contact]
    value[key] = items
    return ch.envelope(value)


def _maybe_channel(ch: _Change) -> str | None:
    metadata = w.opt_obj(ch.value, "metadata", ch.where) or {}
    return w.opt_str(metadata, "phone_number_id", f"{ch.where}.metadata")


def _channel(ch: _Change) -> str:
    channel = _maybe_channel(ch)
    if not channel:
        raise PayloadError(f"{ch.where} has no metadata.phone_number_id")
    return channel


def _contacts(ch: _Change) -> list[dict[str, Any]]:
    items = w.opt_list(ch.value, "contacts", ch.where)
    return [w.obj(c, f"{ch.where}.contacts[{i}]") for i, c in enumerate(items)]


def _contact_for(contacts: list[dict[str, Any]], wa_id: str | None, user_id: str | None) -> dict[str, Any] | None:
    """The contact with this wa_id or user_id; the only contact when none matches."""
    for contact in contacts:
        if (wa_id and contact.get("wa_id") == wa_id) or (user_id and contact.get("user_id") == user_id):
            return contact
    return contacts[0] if len(contacts) == 1 else None


class _Who(NamedTuple):
    wa_id: str | None
    user_id: str | None
    username: str | None
    profile_name: str | None


def _who(contact: dict[str, Any] | None, wa_id: str | None, user_id: str | None, where: str) -> _Who:
    if contact is None:
        return _Who(wa_id, user_id, None, None)
    here = f"{where}.contacts[]"
    profile = w.opt_obj(contact, "profile", here) or {}
    return _Who(
        wa_id or w.opt_str(contact, "wa_id", here),
        user_id or w.opt_str(contact, "user_id", here),
        w.opt_str(profile, "username", f"{here}.profile"),
        w.opt_str(profile, "name", f"{here}.profile"),
    )


def _each(ch: _Change, key: str, parse: Callable[..., ParsedUpdate]) -> Iterable[ParsedUpdate]:
    contacts = _contacts(ch)
    for i, item in enumerate(w.opt_list(ch.value, key, ch.where)):
        here = f"{ch.where}.{key}[{i}]"
        yield parse(ch, w.obj(item, here), here, contacts)


# ---------------------------------------------------------------- inbound messages


def _message(ch: _Change, msg: dict[str, Any], where: str, contacts: list[dict[str, Any]]) -> ParsedUpdate:
    wamid, wire_type = w.req_str(msg, "id", where), w.req_str(msg, "type", where)
    moment = w.timestamp(msg, "timestamp", where)
    sender, sender_uid = w.opt_str(msg, "from", where), w.opt_str(msg, "from_user_id", where)
    contact = _contact_for(contacts, sender, sender_uid)
    who = _who(contact, sender, sender_uid, ch.where)
    if not (who.wa_id or who.user_id):
        raise PayloadError(f"{where} has no from or from_user_id (and no contact names the sender)")
    content = w.content(msg, wire_type, where)
    event = InboundMessage(
        channel=_channel(ch),
        message_id=wamid,
        timestamp=moment,
        kind=MessageKind(wire_type),
        **who._asdict(),
        **content._asdict(),
        context_message_id=w.context_id(msg, wire_type, where),
        from_ad=w.opt_obj(msg, "referral", where) is not None,
        wire_type=wire_type,
        errors=w.api_errors(w.opt_list(msg, "errors", where), f"{where}.errors"),
        raw=msg,
    )
    return ParsedUpdate(event=event, dedupe_key="wa:msg:" + wamid, envelope=_single(ch, "messages", [msg], contact))


# ---------------------------------------------------------------- statuses, preferences, errors


def _status(ch: _Change, st: dict[str, Any], where: str, contacts: list[dict[str, Any]]) -> ParsedUpdate:
    wamid, state = w.req_str(st, "id", where), w.req_str(st, "status", where)
    recipient, recipient_uid = w.opt_str(st, "recipient_id", where), w.opt_str(st, "recipient_user_id", where)
    pricing = w.opt_obj(st, "pricing", where) or {}
    event = DeliveryStatus(
        channel=_channel(ch),
        message_id=wamid,
        state=DeliveryState(state),
        timestamp=w.timestamp(st, "timestamp", where),
        recipient=recipient,
        recipient_user_id=recipient_uid,
        errors=w.api_errors(w.opt_list(st, "errors", where), f"{where}.errors"),
        pricing_category=w.opt_str(pricing, "category", f"{where}.pricing"),
        callback_data=w.opt_str(st, "biz_opaque_callback_data", where),
        raw=st,
    )
    key = f"wa:status:{wamid}:{state.lower()}"
    contact = _contact_for(contacts, recipient, recipient_uid) if contacts else None
    return ParsedUpdate(event=event, dedupe_key=key, envelope=_single(ch, "statuses", [st], contact))


def _preference(ch: _Change, pref: dict[str, Any], where: str, contacts: list[dict[str, Any]]) -> ParsedUpdate:
    wa_id, user_id = w.opt_str(pref, "wa_id", where), w.opt_str(pref, "user_id", where)
    contact = _contact_for(contacts, wa_id, user_id)
    who = _who(contact, wa_id, user_id, ch.where)
    if not (who.wa_id or who.user_id):
        raise PayloadError(f"{where} has no wa_id or user_id")
    value, moment = w.req_str(pref, "value", where), w.timestamp(pref, "timestamp", where)
    event = MarketingPreference(
        channel=_channel(ch),
        wa_id=who.wa_id,
        user_id=who.user_id,
        value=value,
        detail=w.opt_str(pref, "detail", where) or "",
        timestamp=moment,
        raw=pref,
    )
    key = f"wa:pref:{who.wa_id or who.user_id}:{value}:{w.epoch(moment)}"
    return ParsedUpdate(event=event, dedupe_key=key, envelope=_single(ch, "user_preferences", [pref], contact))


def _system_errors(ch: _Change) -> Iterable[ParsedUpdate]:
    items = w.opt_list(ch.value, "errors", ch.where)
    if not items:
        return
    errors = w.api_errors(items, f"{ch.where}.errors")
    envelope = _single(ch, "errors", items, None)
    value = envelope["entry"][0]["changes"][0]["value"]
    event = SystemError_(channel=_maybe_channel(ch), errors=errors, raw=value)
    yield ParsedUpdate(event=event, dedupe_key="wa:err:" + w.canonical_hash(value), envelope=envelope)


def _template_detail(v: dict[str, Any]) -> str | None:
    info = v.get("rejection_info") or v.get("other_info")
    if not isinstance(info, dict):
        return None
    parts = [str(info[k]) for k in ("title", "reason", "description") if isinstance(info.get(k), str)]
    return ": ".join(parts) or None


def _template(ch: _Change) -> Iterable[ParsedUpdate]:
    v, where = ch.value, ch.where
    moment = w.timestamp(ch.entry, "time", "entry") if ch.entry.get("time") is not None else None
    event = TemplateStatusUpdate(
        account=str(ch.entry["id"]),
        field=ch.field,
        template_id=w.opt_str(v, "message_template_id", where),
        name=w.opt_str(v, "message_template_name", where),
        language=w.opt_str(v, "message_template_language", where),
        event=w.opt_str(v, "event", where),
        reason=w.opt_str(v, "reason", where),
        new_quality=w.opt_str(v, "new_quality_score", where),
        new_category=w.opt_str(v, "new_category", where),
        timestamp=moment,
        detail=_template_detail(v),
        raw=v,
    )
    what = event.event or event.new_quality or event.new_category or ""
    when = w.epoch(moment) if moment else "h" + w.canonical_hash(v)[:16]
    key = f"wa:tpl:{ch.field}:{event.template_id or ''}:{what}:{when}"
    yield ParsedUpdate(event=event, dedupe_key=key, envelope=ch.envelope(v))


_LISTS: dict[str, Callable[[_Change], Iterable[ParsedUpdate]]] = {
    "messages": lambda ch: _each(ch, "messages", _message),
    "statuses": lambda ch: _each(ch, "statuses", _status),
    "user_preferences": lambda ch: _each(ch, "user_preferences", _preference),
    "errors": _system_errors,
}

_FIELDS: dict[str, Callable[[_Change], Iterable[ParsedUpdate]]] = {
    "messages": _by_value_keys,
    "user_preferences": _by_value_keys,
    "message_template_status_update": _template,
    "message_template_quality_update": _template,
    "template_category_update": _template,
}
