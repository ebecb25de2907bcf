"""connectors.whatsapp.events: signatures, handshake, and the webhook parser against fixtures."""

from __future__ import annotations

import copy
import json
import logging
import random
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from connectors.whatsapp.events import (
    MAX_BODY_BYTES,
    SIGNATURE_HEADER,
    ParsedUpdate,
    parse_webhook,
    sign,
    verify,
    verify_handshake,
)
from core.errors import PayloadError, PermanentError, SignatureError
from core.events import (
    ApiError,
    DeliveryState,
    DeliveryStatus,
    IgnoredUpdate,
    InboundMessage,
    MarketingPreference,
    MessageKind,
    SystemError_,
    TemplateStatusUpdate,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "whatsapp"
PREFIXES = ("inbound_", "status_", "user_preferences_", "template_", "errors_")
WEBHOOK_FIXTURES = sorted(p.name for p in FIXTURES.glob("*.json") if p.name.startswith(PREFIXES))
EVENT_TYPES = (InboundMessage, DeliveryStatus, MarketingPreference, TemplateStatusUpdate, SystemError_, IgnoredUpdate)
SECRET = "test-app-secret"
CHANNEL = "106000000000002"
WABA = "109876543210001"


def raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def body(value: dict[str, Any], field: str = "messages", **entry: Any) -> bytes:
    change = {"field": field, "value": value}
    doc = {"object": "whatsapp_business_account", "entry": [{"id": WABA, **entry, "changes": [change]}]}
    return json.dumps(doc).encode()


def messages_value(**message: Any) -> dict[str, Any]:
    base = {"from": "15550002222", "id": "wamid.TEST", "timestamp": "1767340800", "type": "text"}
    metadata = {"display_phone_number": "15550001111", "phone_number_id": CHANNEL}
    return {"messaging_product": "whatsapp", "metadata": metadata, "messages": [{**base, **message}]}


# ---------------------------------------------------------------- every fixture parses and round-trips


def test_fixture_selection_is_complete() -> None:
    assert len(WEBHOOK_FIXTURES) >= 45
    assert set(WEBHOOK_FIXTURES) == set(EXPECTED), "every webhook fixture needs a row in EXPECTED"


@pytest.mark.parametrize("name", WEBHOOK_FIXTURES)
def test_every_fixture_parses(name: str) -> None:
    updates = parse_webhook(raw(name))
    assert updates
    for update in updates:
        assert isinstance(update, ParsedUpdate)
        assert isinstance(update.event, EVENT_TYPES)
        assert not isinstance(update.event, IgnoredUpdate)
        assert update.dedupe_key.startswith("wa:")
        assert update.event.raw is not None


@pytest.mark.parametrize("name", WEBHOOK_FIXTURES)
def test_envelope_round_trip(name: str) -> None:
    for update in parse_webhook(raw(name)):
        envelope = update.envelope
        assert envelope["object"] == "whatsapp_business_account"
        assert len(envelope["entry"]) == 1 and len(envelope["entry"][0]["changes"]) == 1
        value = envelope["entry"][0]["changes"][0]["value"]
        assert len(value.get("contacts", [])) <= 1
        for key in ("messages", "statuses", "user_preferences"):
            assert len(value.get(key, [])) <= 1
        assert parse_webhook(json.dumps(envelope).encode()) == [update]
        assert parse_webhook(json.dumps(envelope, ensure_ascii=False).encode()) == [update]


def test_dedupe_keys_are_unique_across_fixtures() -> None:
    keys = [u.dedupe_key for name in WEBHOOK_FIXTURES for u in parse_webhook(raw(name))]
    assert len(keys) == len(set(keys))


def test_parsing_is_deterministic() -> None:
    for name in WEBHOOK_FIXTURES:
        assert parse_webhook(raw(name)) == parse_webhook(raw(name))


MSG = InboundMessage
ST = DeliveryStatus
CTX_5 = "wamid.GAsxNTU1MDAwMjIyMhUCABEYEkExRjAwMDAwMDAwMDAwMDUwNQA="

# file -> one dict per update: "type" and the event attributes to check
EXPECTED: dict[str, list[dict[str, Any]]] = {
    "inbound_text.json": [
        dict(type=MSG, kind=MessageKind.TEXT, channel=CHANNEL, wa_id="15550002222", user_id=None,
             profile_name="Ana Lima", text="Hi! Is the blue hoodie still available in size M?",
             timestamp=at(1767340800), context_message_id=None, from_ad=False, wire_type="text", errors=(),
             message_id="wamid.GAsxNTU1MDAwMjIyMhUCABIYFDNFQjAwMDAwMDAwMDAwMDAwMDAxAA==")
    ],
    "inbound_text_reply_context.json": [dict(type=MSG, kind=MessageKind.TEXT, context_message_id=CTX_5)],
    "inbound_text_forwarded.json": [
        dict(type=MSG, kind=MessageKind.TEXT, context_message_id=None, wa_id="15550003333")
    ],
    "inbound_text_frequently_forwarded.json": [dict(type=MSG, kind=MessageKind.TEXT, context_message_id=None)],
    "inbound_image.json": [
        dict(type=MSG, kind=MessageKind.IMAGE, media_id="1234500000000001", text="This is the damaged item")
    ],
    "inbound_document.json": [
        dict(type=MSG, kind=MessageKind.DOCUMENT, media_id="1234500000000002", text="Invoice for order 10045",
             profile_name="Jorge Díaz")
    ],
    "inbound_audio_voice.json": [dict(type=MSG, kind=MessageKind.AUDIO, media_id="1234500000000003", text=None)],
    "inbound_sticker.json": [dict(type=MSG, kind=MessageKind.STICKER, media_id="1234500000000004", text=None)],
    "inbound_video.json": [
        dict(type=MSG, kind=MessageKind.VIDEO, media_id="1234500000000005", text="Unboxing - the zipper is broken")
    ],
    "inbound_location.json": [dict(type=MSG, kind=MessageKind.LOCATION, text="Tienda Centro", media_id=None)],
    "inbound_contacts.json": [dict(type=MSG, kind=MessageKind.CONTACTS, text=None, wa_id="15550002222")],
    "inbound_button_reply.json": [
        dict(type=MSG, kind=MessageKind.INTERACTIVE, reply_id="flow:returns:v3:start", text="Start a return",
             context_message_id="wamid.GAsxNTU1MDAwMjIyMhUCABEYEkExRjAwMDAwMDAwMDAwMDUwMgA=")
    ],
    "inbound_list_reply.json": [
        dict(type=MSG, kind=MessageKind.INTERACTIVE, reply_id="ship:express", text="Express (1-2 days)",
             context_message_id="wamid.GAsxNTU1MDAwMzMzMxUCABEYEkExRjAwMDAwMDAwMDAwMDUwMwA=")
    ],
    "inbound_template_quick_reply.json": [
        dict(type=MSG, kind=MessageKind.BUTTON, reply_id="promo:winter26:more_info", text="Tell me more",
             context_message_id="wamid.GAsxNTU1MDAwMjIyMhUCABEYEkExRjAwMDAwMDAwMDAwMDUwMQA=")
    ],
    "inbound_template_quick_reply_unsubscribe.json": [
        dict(type=MSG, kind=MessageKind.BUTTON, reply_id="optout:marketing", text="Stop promotions")
    ],
    "inbound_flow_nfm_reply.json": [dict(type=MSG, kind=MessageKind.INTERACTIVE, reply_id="ft-7f3a2c-order-10045")],
    "inbound_reaction.json": [dict(type=MSG, kind=MessageKind.REACTION, text="👍", context_message_id=CTX_5)],
    "inbound_reaction_removed.json": [dict(type=MSG, kind=MessageKind.REACTION, text=None, context_message_id=CTX_5)],
    "inbound_order.json": [dict(type=MSG, kind=MessageKind.ORDER, text="Gift wrap please", profile_name="Lukas Berg")],
    "inbound_product_inquiry.json": [
        dict(type=MSG, kind=MessageKind.TEXT, text="Does this come in green?",
             context_message_id="wamid.GAsxNTU1MDAwMzMzMxUCABEYEkExRjAwMDAwMDAwMDAwNjAwMQA=")
    ],
    "inbound_unsupported.json": [
        dict(type=MSG, kind=MessageKind.UNSUPPORTED, wire_type="unsupported", text=None,
             errors=(ApiError(code=131051, title="Message type unknown",
                              details="Message type is currently not supported."),))
    ],
    "inbound_system_number_change.json": [
        dict(type=MSG, kind=MessageKind.SYSTEM, wa_id="15550003333", profile_name=None,
             text="User Jorge Díaz changed from 15550003333 to 15550003399")
    ],
    "inbound_referral_ctwa.json": [dict(type=MSG, kind=MessageKind.TEXT, from_ad=True, wa_id="15550007777")],
    "inbound_multiple_messages_batched.json": [
        dict(type=MSG, text="Also, do you ship to Porto?", wa_id="15550002222", profile_name="Ana Lima"),
        dict(type=MSG, text="Gracias!", wa_id="15550003333", profile_name="Jorge Díaz"),
        dict(type=ST, state=DeliveryState.READ, message_id=CTX_5, recipient="15550002222"),
    ],
    "inbound_text_bsuid_username.json": [
        dict(type=MSG, wa_id=None, user_id="PT.30218877465501932211", username="nadia.k", profile_name="Nadia K.",
             text="Olá! Vi o vosso perfil, têm loja física?")
    ],
    "status_sent.json": [
        dict(type=ST, state=DeliveryState.SENT, channel=CHANNEL, recipient="15550002222", pricing_category="marketing",
             timestamp=at(1767342100), errors=(), callback_data=None)
    ],
    "status_sent_free_customer_service.json": [dict(type=ST, state=DeliveryState.SENT, pricing_category="service")],
    "status_sent_free_entry_point.json": [
        dict(type=ST, state=DeliveryState.SENT, pricing_category="referral_conversion")
    ],
    "status_sent_legacy_cbp_v23.json": [
        dict(type=ST, state=DeliveryState.SENT, pricing_category="utility", timestamp=at(1767140800))
    ],
    "status_delivered.json": [dict(type=ST, state=DeliveryState.DELIVERED, pricing_category=None)],
    "status_read.json": [dict(type=ST, state=DeliveryState.READ)],
    "status_sent_with_callback_data.json": [dict(type=ST, callback_data="cart:shopify:5551234:step2")],
    "status_failed_131047.json": [
        dict(type=ST, state=DeliveryState.FAILED, recipient="15550003333",
             errors=(ApiError(code=131047, title="Re-engagement message",
                              details="Message failed to send because more than 24 hours have passed since the "
                                      "customer last replied to this number."),))
    ],
    "status_failed_131050.json": [dict(type=ST, state=DeliveryState.FAILED, error_codes=(131050,))],
    "status_failed_131049.json": [dict(type=ST, state=DeliveryState.FAILED, error_codes=(131049,))],
    "status_failed_131026.json": [dict(type=ST, state=DeliveryState.FAILED, error_codes=(131026,))],
    "status_failed_132015_paused_template.json": [dict(type=ST, state=DeliveryState.FAILED, error_codes=(132015,))],
    "errors_system_level_130429.json": [dict(type=SystemError_, channel=CHANNEL, error_codes=(130429,))],
    "template_status_update.json": [
        dict(type=TemplateStatusUpdate, account=WABA, field="message_template_status_update",
             template_id="1500000000000001", name="order_shipped_v2", language="en_US", event="APPROVED",
             reason="NONE", timestamp=at(1767342800))
    ],
    "template_status_update_rejected.json": [
        dict(type=TemplateStatusUpdate, event="REJECTED", reason="INVALID_FORMAT", language="es")
    ],
    "template_status_update_paused.json": [dict(type=TemplateStatusUpdate, event="PAUSED")],
    "template_quality_update.json": [
        dict(type=TemplateStatusUpdate, field="message_template_quality_update", new_quality="YELLOW", event=None,
             template_id="1500000000000003")
    ],
    "template_category_update.json": [
        dict(type=TemplateStatusUpdate, field="template_category_update", new_category="MARKETING",
             timestamp=at(1767343100))
    ],
    "user_preferences_stop.json": [
        dict(type=MarketingPreference, channel=CHANNEL, wa_id="15550007777", user_id=None, value="stop",
             detail="User requested to stop marketing messages", timestamp=at(1767342305))
    ],
    "user_preferences_resume.json": [dict(type=MarketingPreference, value="resume", timestamp=at(1767430800))],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_predicates(name: str) -> None:
    updates = parse_webhook(raw(name))
    assert len(updates) == len(EXPECTED[name])
    for update, expected in zip(updates, EXPECTED[name]):
        event = update.event
        for attr, want in expected.items():
            if attr == "type":
                assert type(event) is want
            elif attr == "error_codes":
                assert tuple(e.code for e in event.errors) == want
            else:
                assert getattr(event, attr) == want, attr


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("inbound_text.json", "wa:msg:wamid.GAsxNTU1MDAwMjIyMhUCABIYFDNFQjAwMDAwMDAwMDAwMDAwMDAxAA=="),
        ("status_read.json", "wa:status:wamid.GAsxNTU1MDAwMjIyMhUCABEYEkExRjAwMDAwMDAwMDAwMDUwMQA=:read"),
        ("status_failed_131047.json", "wa:status:wamid.GAsxNTU1MDAwMzMzMxUCABEYEkExRjAwMDAwMDAwMDAwMDUwOQA=:failed"),
        ("user_preferences_stop.json", "wa:pref:15550007777:stop:1767342305"),
        ("template_status_update.json", "wa:tpl:message_template_status_update:1500000000000001:APPROVED:1767342800"),
        ("template_quality_update.json", "wa:tpl:message_template_quality_update:1500000000000003:YELLOW:1767342950"),
        ("template_category_update.json", "wa:tpl:template_category_update:1500000000000004:MARKETING:1767343100"),
    ],
)
def test_dedupe_key_formats(name: str, key: str) -> None:
    assert parse_webhook(raw(name))[0].dedupe_key == key


def test_system_error_key_is_sha256_of_value() -> None:
    (update,) = parse_webhook(raw("errors_system_level_130429.json"))
    digest = update.dedupe_key.removeprefix("wa:err:")
    assert len(digest) == 64 and int(digest, 16) >= 0


def test_timestamps_are_aware_utc() -> None:
    for name in WEBHOOK_FIXTURES:
        for update in parse_webhook(raw(name)):
            moment = getattr(update.event, "timestamp", None)
            if moment is not None:
                assert moment.utcoffset() is not None and moment.utcoffset().total_seconds() == 0


def test_bsuid_preference_without_wa_id() -> None:
    value = {"metadata": {"phone_number_id": CHANNEL},
             "user_preferences": [{"user_id": "US.1234", "value": "stop", "detail": "", "timestamp": "1767342305"}]}
    (update,) = parse_webhook(body(value, field="user_preferences"))
    assert (update.event.wa_id, update.event.user_id) == (None, "US.1234")
    assert update.dedupe_key == "wa:pref:US.1234:stop:1767342305"


# ---------------------------------------------------------------- tolerance for what Meta adds later


def test_unknown_message_type_is_unknown_not_an_error() -> None:
    (update,) = parse_webhook(body(messages_value(type="poll_vote", poll_vote={"option": 1})))
    assert update.event.kind is MessageKind.UNKNOWN
    assert update.event.wire_type == "poll_vote"


def test_request_welcome_and_uppercase_type() -> None:
    (welcome,) = parse_webhook(body(messages_value(type="request_welcome")))
    assert welcome.event.kind is MessageKind.REQUEST_WELCOME
    (upper,) = parse_webhook(body(messages_value(type="TEXT", TEXT={"body": "hi"})))
    assert upper.event.kind is MessageKind.TEXT


def test_unknown_status_value_is_unknown_state() -> None:
    value = {"metadata": {"phone_number_id": CHANNEL},
             "statuses": [{"id": "wamid.X", "status": "deleted", "timestamp": "1767340800"}]}
    (update,) = parse_webhook(body(value))
    assert update.event.state is DeliveryState.UNKNOWN
    assert update.dedupe_key == "wa:status:wamid.X:deleted"


@pytest.mark.parametrize(
    "field", ["account_update", "phone_number_quality_update", "message_template_components_update"]
)
def test_unknown_field_is_ignored(field: str) -> None:
    (update,) = parse_webhook(body({"event": "SOMETHING", "phone_number": "x"}, field=field))
    assert update.event == IgnoredUpdate(field=field)
    assert update.dedupe_key.startswith("wa:ignored:") and len(update.dedupe_key) == len("wa:ignored:") + 64
    assert parse_webhook(json.dumps(update.envelope).encode()) == [update]


def test_messages_field_without_update_lists_is_ignored() -> None:
    (update,) = parse_webhook(body({"messaging_product": "whatsapp", "metadata": {"phone_number_id": CHANNEL}}))
    assert isinstance(update.event, IgnoredUpdate)


def test_empty_lists_yield_nothing() -> None:
    assert parse_webhook(body({"metadata": {"phone_number_id": CHANNEL}, "messages": []})) == []
    assert parse_webhook(json.dumps({"object": "whatsapp_business_account", "entry": []}).encode()) == []


def test_nfm_reply_with_broken_response_json_keeps_message() -> None:
    interactive = {"type": "nfm_reply", "nfm_reply": {"name": "flow", "body": "Sent", "response_json": "{not json"}}
    (update,) = parse_webhook(body(messages_value(type="interactive", interactive=interactive)))
    assert update.event.kind is MessageKind.INTERACTIVE and update.event.reply_id is None


def test_numeric_ids_and_integer_timestamps_are_accepted() -> None:
    (update,) = parse_webhook(body(messages_value(**{"from": 15550002222, "timestamp": 1767340800})))
    assert update.event.wa_id == "15550002222" and update.event.timestamp == at(1767340800)


def test_no_phone_numbers_or_text_in_info_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    for name in WEBHOOK_FIXTURES:
        parse_webhook(raw(name))
    text = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    assert "1555000" not in text and "hoodie" not in text


# ---------------------------------------------------------------- malformed payloads


def _with_message(**changes: Any) -> bytes:
    value = messages_value()
    message = value["messages"][0]
    for key, new in changes.items():
        if new is _DELETE:
            del message[key]
        else:
            message[key] = new
    return body(value)


_DELETE = object()

MALFORMED: list[tuple[str, bytes, str]] = [
    ("not json", b"{not json", "not JSON"),
    ("not utf-8", b"\xff\xfe\x00garbage", "not JSON"),
    ("NaN", b'{"object": NaN}', "not JSON"),
    ("empty body", b"", "not JSON"),
    ("array", b"[]", "body is not an object"),
    ("string", b'"whatsapp"', "body is not an object"),
    ("wrong object", json.dumps({"object": "page", "entry": []}).encode(), "object is not"),
    ("no object", json.dumps({"entry": []}).encode(), "object is not"),
    ("no entry", json.dumps({"object": "whatsapp_business_account"}).encode(), "body has no entry"),
    ("entry string", json.dumps({"object": "whatsapp_business_account", "entry": "x"}).encode(), "entry is not a list"),
    ("entry item", json.dumps({"object": "whatsapp_business_account", "entry": [3]}).encode(),
     "entry[0] is not an object"),
    ("no changes", json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1"}]}).encode(),
     "entry[0] has no changes"),
    ("changes dict",
     json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": {}}]}).encode(),
     "changes is not a list"),
    ("no entry id", json.dumps({"object": "whatsapp_business_account", "entry": [{"changes": []}]}).encode(),
     "entry[0] has no id"),
    ("no field", json.dumps({"object": "whatsapp_business_account",
                             "entry": [{"id": "1", "changes": [{"value": {}}]}]}).encode(), "has no field"),
    ("no value", json.dumps({"object": "whatsapp_business_account",
                             "entry": [{"id": "1", "changes": [{"field": "messages"}]}]}).encode(), "has no value"),
    ("value list", body([], field="messages"), "value is not an object"),  # type: ignore[arg-type]
    ("no message id", _with_message(id=_DELETE), "messages[0] has no id"),
    ("no message type", _with_message(type=_DELETE), "messages[0] has no type"),
    ("no timestamp", _with_message(timestamp=_DELETE), "messages[0] has no timestamp"),
    ("word timestamp", _with_message(timestamp="yesterday"), "timestamp is not numeric"),
    ("list timestamp", _with_message(timestamp=[1]), "timestamp is not numeric"),
    ("huge timestamp", _with_message(timestamp="1e300"), "timestamp is out of range"),
    ("inf timestamp", _with_message(timestamp="inf"), "not a finite number"),
    ("text is a string", _with_message(text="hello"), "messages[0].text is not an object"),
    ("body is a dict", _with_message(text={"body": {"x": 1}}), "text.body is not a string"),
    ("context list", _with_message(context=[]), "context is not an object"),
    ("error without code", _with_message(errors=[{"title": "x"}]), "errors[0] has no code"),
    ("error code word", _with_message(errors=[{"code": "abc"}]), "not an integer error code"),
    ("messages dict", body({"metadata": {"phone_number_id": CHANNEL}, "messages": {}}), "messages is not a list"),
    ("message string", body({"metadata": {"phone_number_id": CHANNEL}, "messages": ["hi"]}),
     "messages[0] is not an object"),
    ("no metadata", body({"messages": messages_value()["messages"]}), "has no metadata.phone_number_id"),
    ("metadata string", body({**messages_value(), "metadata": "x"}), "metadata is not an object"),
    ("contacts string", body({**messages_value(), "contacts": "x"}), "contacts is not a list"),
    ("profile list", body({**messages_value(), "contacts": [{"wa_id": "15550002222", "profile": []}]}),
     "profile is not an object"),
    ("status without status", body({"metadata": {"phone_number_id": CHANNEL},
                                    "statuses": [{"id": "w", "timestamp": "1"}]}), "statuses[0] has no status"),
    ("pref without who", body({"metadata": {"phone_number_id": CHANNEL},
                               "user_preferences": [{"value": "stop", "timestamp": 1}]}, field="user_preferences"),
     "has no wa_id or user_id"),
    ("pref bad timestamp", body({"metadata": {"phone_number_id": CHANNEL},
                                 "user_preferences": [{"wa_id": "1", "value": "stop", "timestamp": True}]},
                                field="user_preferences"), "timestamp is not numeric"),
    ("template bad time", body({"event": "APPROVED", "message_template_id": 1},
                               field="message_template_status_update", time="soon"), "entry.time is not numeric"),
    ("template id float", body({"event": "APPROVED", "message_template_id": 1.5},
                               field="message_template_status_update", time=1), "message_template_id is not a string"),
    ("system errors dict", body({"metadata": {"phone_number_id": CHANNEL}, "errors": {"code": 1}}),
     "errors is not a list"),
]


@pytest.mark.parametrize(("case", "payload", "reason"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_payloads_raise_payload_error(case: str, payload: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as info:
        parse_webhook(payload)
    assert reason in str(info.value)
    assert isinstance(info.value, PermanentError)


def test_body_larger_than_3_mb() -> None:
    padding = " " * (MAX_BODY_BYTES + 1 - len(raw("inbound_text.json")))
    with pytest.raises(PayloadError, match="body larger than 3 MB"):
        parse_webhook(raw("inbound_text.json") + padding.encode())
    parse_webhook(raw("inbound_text.json") + b" " * (MAX_BODY_BYTES - len(raw("inbound_text.json"))))


def test_integers_beyond_64_bits_are_still_json() -> None:
    (update,) = parse_webhook(body(messages_value(text={"body": "x"}, big=10**30)))
    assert update.event.text == "x"


def test_deep_nesting_is_a_payload_error() -> None:
    deep = "[" * 5000 + "]" * 5000
    payload = ('{"object":"whatsapp_business_account","entry":' + deep + "}").encode()
    with pytest.raises(PayloadError):
        parse_webhook(payload)


# ---------------------------------------------------------------- mutation (fuzz-ish)

_REPLACEMENTS: list[Any] = [None, 0, -1, 1.5, True, False, "", "x", "1767340800", "-5", [], {}, [1, "a"],
                            {"a": {}}, 10**30, "\u00e9\U0001f600", "1e999"]


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path] if path else []
    if isinstance(node, dict):
        for key, child in node.items():
            found += _paths(child, path + (key,))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += _paths(child, path + (index,))
    return found


def _mutate(doc: Any, rng: random.Random) -> Any:
    doc = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 3)):
        paths = _paths(doc)
        if not paths:
            break
        path = rng.choice(paths)
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        if rng.random() < 0.4:
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(rng.choice(_REPLACEMENTS))
    return doc


@pytest.mark.parametrize("name", WEBHOOK_FIXTURES)
def test_mutations_give_result_or_payload_error(name: str) -> None:
    rng = random.Random(f"replyflow:{name}")
    original = json.loads(raw(name))
    outcomes = {"ok": 0, "error": 0}
    for _ in range(8):  # 8 x ~48 fixtures: a few hundred mutations, deterministic
        payload = json.dumps(_mutate(original, rng), ensure_ascii=False).encode()
        try:
            updates = parse_webhook(payload)
        except PayloadError:
            outcomes["error"] += 1
            continue
        outcomes["ok"] += 1
        for update in updates:
            assert isinstance(update.event, EVENT_TYPES)
            assert parse_webhook(json.dumps(update.envelope).encode()) == [update]
    assert sum(outcomes.values()) == 8


# ---------------------------------------------------------------- signatures


def test_sign_matches_known_vector() -> None:
    assert sign(b"", "key") == "sha256=5d5d139563c95b5967b9bd9a8c9b233a9dedb45072794cd232dc1b74832607d0"


def test_good_signature_on_raw_fixture_bytes() -> None:
    payload = raw("inbound_text.json")
    verify(payload, {SIGNATURE_HEADER: sign(payload, SECRET)}, [SECRET])


def test_header_lookup_is_case_insensitive_for_plain_dicts() -> None:
    payload = raw("status_sent.json")
    verify(payload, {"x-hub-signature-256": sign(payload, SECRET)}, [SECRET])
    verify(payload, {"X-HUB-SIGNATURE-256": sign(payload, SECRET).upper().replace("SHA256=", "sha256=")}, [SECRET])


def test_werkzeug_headers() -> None:
    datastructures = pytest.importorskip("werkzeug.datastructures")
    payload = raw("status_sent.json")
    headers = datastructures.Headers([("x-hub-signature-256", sign(payload, SECRET))])
    verify(payload, headers, [SECRET])


def test_wrong_secret_is_a_mismatch() -> None:
    payload = raw("inbound_text.json")
    with pytest.raises(SignatureError, match="does not match") as info:
        verify(payload, {SIGNATURE_HEADER: sign(payload, "other-secret")}, [SECRET])
    assert info.value.missing is False


def test_tampered_body_is_a_mismatch() -> None:
    payload = raw("inbound_text.json")
    header = sign(payload, SECRET)
    with pytest.raises(SignatureError, match="does not match"):
        verify(payload.replace(b"size M", b"size L"), {SIGNATURE_HEADER: header}, [SECRET])


@pytest.mark.parametrize("headers", [{}, {SIGNATURE_HEADER: ""}, {SIGNATURE_HEADER: "   "}, {"Content-Type": "x"}])
def test_missing_signature(headers: dict[str, str]) -> None:
    with pytest.raises(SignatureError, match="missing") as info:
        verify(raw("inbound_text.json"), headers, [SECRET])
    assert info.value.missing is True


@pytest.mark.parametrize(
    "header",
    ["abc", "sha1=" + "0" * 40, "sha256=" + "z" * 64, "sha256=" + "0" * 63, "0" * 64, "sha256=é" + "0" * 63,
     "sha256 " + "0" * 64],
)
def test_malformed_signature(header: str) -> None:
    with pytest.raises(SignatureError, match="malformed") as info:
        verify(raw("inbound_text.json"), {SIGNATURE_HEADER: header}, [SECRET])
    assert info.value.missing is False


def test_rotation_accepts_any_configured_secret() -> None:
    payload = raw("inbound_image.json")
    header = {SIGNATURE_HEADER: sign(payload, "new-secret")}
    verify(payload, header, ["old-secret", "new-secret"])
    verify(payload, header, ("new-secret",))
    with pytest.raises(SignatureError):
        verify(payload, header, ["old-secret", "older-secret"])


def test_single_string_secret_is_not_iterated_by_character() -> None:
    payload = raw("inbound_text.json")
    verify(payload, {SIGNATURE_HEADER: sign(payload, SECRET)}, SECRET)


@pytest.mark.parametrize("secrets", [[], (), [""]])
def test_no_secret_is_a_configuration_error(secrets: list[str]) -> None:
    payload = raw("inbound_text.json")
    with pytest.raises(ValueError, match="no app secret configured"):
        verify(payload, {SIGNATURE_HEADER: sign(payload, SECRET)}, secrets)


def test_non_ascii_body_must_be_signed_as_received() -> None:
    payload = raw("inbound_text_bsuid_username.json")
    assert any(b > 127 for b in payload)
    header = {SIGNATURE_HEADER: sign(payload, SECRET)}
    verify(payload, header, [SECRET])
    reserialised = json.dumps(json.loads(payload)).encode()  # \u-escapes the accents
    assert reserialised != payload
    with pytest.raises(SignatureError, match="does not match"):
        verify(reserialised, header, [SECRET])


# ---------------------------------------------------------------- GET handshake

TOKEN = "verify-me-please"


def test_handshake_returns_challenge() -> None:
    params = {"hub.mode": "subscribe", "hub.verify_token": TOKEN, "hub.challenge": "1158201444"}
    assert verify_handshake(params, TOKEN) == "1158201444"


def test_handshake_wrong_token() -> None:
    params = {"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"}
    with pytest.raises(SignatureError, match="does not match") as info:
        verify_handshake(params, TOKEN)
    assert info.value.missing is False


@pytest.mark.parametrize("params", [{"hub.mode": "subscribe", "hub.challenge": "1"},
                                    {"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1"}])
def test_handshake_missing_token(params: dict[str, str]) -> None:
    with pytest.raises(SignatureError) as info:
        verify_handshake(params, TOKEN)
    assert info.value.missing is True


def test_handshake_wrong_mode() -> None:
    params = {"hub.mode": "unsubscribe", "hub.verify_token": TOKEN, "hub.challenge": "1"}
    with pytest.raises(SignatureError, match="subscribe"):
        verify_handshake(params, TOKEN)


def test_handshake_missing_challenge() -> None:
    with pytest.raises(SignatureError, match="challenge"):
        verify_handshake({"hub.mode": "subscribe", "hub.verify_token": TOKEN}, TOKEN)


def test_handshake_non_ascii_token_does_not_crash() -> None:
    with pytest.raises(SignatureError):
        verify_handshake({"hub.mode": "subscribe", "hub.verify_token": "tökën", "hub.challenge": "1"}, TOKEN)


def test_handshake_without_configured_token() -> None:
    with pytest.raises(ValueError):
        verify_handshake({"hub.mode": "subscribe", "hub.verify_token": "x", "hub.challenge": "1"}, "")
