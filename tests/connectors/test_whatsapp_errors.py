"""connectors.whatsapp.errors: Graph error responses and codes -> reactions and error types."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from connectors.whatsapp.errors import (
    RETRYABLE,
    PermanentWhatsAppError,
    Reaction,
    RetryableWhatsAppError,
    WhatsAppApiError,
    classify,
    retry_after_hint,
)
from core.errors import PermanentError, ReplyflowError, RetryableError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "whatsapp"

# fixture -> (HTTP status per the fixture README, code, reaction, retryable)
SEND_ERRORS = {
    "send_error_131047.json": (400, 131047, Reaction.NEEDS_TEMPLATE, False),
    "send_error_130429.json": (400, 130429, Reaction.THROTTLED, True),
    "send_error_131056.json": (400, 131056, Reaction.PAIR_RATE_LIMIT, True),
    "send_error_132000.json": (400, 132000, Reaction.TEMPLATE_BROKEN, False),
    "send_error_132001.json": (404, 132001, Reaction.TEMPLATE_BROKEN, False),
    "send_error_132012.json": (400, 132012, Reaction.TEMPLATE_BROKEN, False),
    "send_error_131009.json": (400, 131009, Reaction.NEVER_RETRY, False),
    "send_error_100_invalid_parameter.json": (400, 100, Reaction.NEVER_RETRY, False),
    "send_error_190_token_expired.json": (401, 190, Reaction.PAUSE_CHANNEL, False),
    "send_error_4_app_rate_limit.json": (400, 4, Reaction.THROTTLED, True),
    "send_error_80007_waba_rate_limit.json": (400, 80007, Reaction.THROTTLED, True),
    "send_error_368_policy_block.json": (403, 368, Reaction.PAUSE_CHANNEL, False),
    "send_error_133010_not_registered.json": (400, 133010, Reaction.PAUSE_CHANNEL, False),
}


def test_every_send_error_fixture_is_in_the_table() -> None:
    assert {p.name for p in FIXTURES.glob("send_error_*.json")} == set(SEND_ERRORS)


@pytest.mark.parametrize("name", sorted(SEND_ERRORS))
def test_send_error_fixtures(name: str) -> None:
    status, code, reaction, retryable = SEND_ERRORS[name]
    payload = (FIXTURES / name).read_bytes()
    error = WhatsAppApiError.from_response(status, payload)
    assert error.code == code
    assert error.reaction is reaction
    assert error.is_retryable is retryable
    assert error.http_status == status
    assert error.fbtrace_id and error.fbtrace_id.startswith("AbCdEfGh")
    assert error.title and not error.title.startswith("(#")
    assert isinstance(error, ReplyflowError) and isinstance(error, WhatsAppApiError)
    if retryable:
        assert isinstance(error, RetryableWhatsAppError) and isinstance(error, RetryableError)
        assert not isinstance(error, PermanentError)
    else:
        assert isinstance(error, PermanentWhatsAppError) and isinstance(error, PermanentError)
        assert not isinstance(error, RetryableError)
    # the same from an already-decoded dict and from text
    assert WhatsAppApiError.from_response(status, json.loads(payload)).reaction is reaction
    assert WhatsAppApiError.from_response(status, payload.decode()).reaction is reaction


def test_details_title_and_subcode() -> None:
    error = WhatsAppApiError.from_response(400, (FIXTURES / "send_error_132001.json").read_bytes())
    assert error.title == "Template name does not exist in the translation"
    assert error.details == "template name (order_shipped_v2) does not exist in pt_BR"
    expired = WhatsAppApiError.from_response(401, (FIXTURES / "send_error_190_token_expired.json").read_bytes())
    assert expired.subcode == 463 and expired.details == ""
    assert "190" in str(expired)


def test_retry_after_hints() -> None:
    pair = WhatsAppApiError.from_response(400, (FIXTURES / "send_error_131056.json").read_bytes())
    assert isinstance(pair, RetryableError) and pair.retry_after == 6.0
    assert retry_after_hint(131049) == 24 * 3600
    assert retry_after_hint(131057) == 60.0
    assert retry_after_hint(100) is None and retry_after_hint(None) is None


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (502, b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
        (503, b""),
        (500, "Internal error"),
        (504, None),
        (500, b'{"unexpected": true}'),
        (502, b'{"error": "gateway"}'),
    ],
)
def test_non_json_5xx_is_retryable(status: int, body: bytes | str | None) -> None:
    error = WhatsAppApiError.from_response(status, body)
    assert error.code is None
    assert error.reaction is Reaction.RETRY
    assert isinstance(error, RetryableWhatsAppError) and isinstance(error, RetryableError)
    assert str(status) in str(error)


def test_non_json_4xx_is_permanent_and_429_is_throttled() -> None:
    assert isinstance(WhatsAppApiError.from_response(400, b"<html>bad</html>"), PermanentError)
    throttled = WhatsAppApiError.from_response(429, b"Too Many Requests")
    assert throttled.reaction is Reaction.THROTTLED and throttled.is_retryable


def test_unknown_code_marked_transient_is_retried() -> None:
    body = {"error": {"message": "(#999001) Something new", "code": 999001, "is_transient": True}}
    assert WhatsAppApiError.from_response(400, body).reaction is Reaction.RETRY
    body["error"]["is_transient"] = False
    assert WhatsAppApiError.from_response(400, body).reaction is Reaction.NEVER_RETRY


def test_code_wins_over_http_status() -> None:
    body = {"error": {"message": "(#131045) Incorrect certificate", "code": 131045}}
    assert WhatsAppApiError.from_response(500, body).reaction is Reaction.PAUSE_CHANNEL
    body = {"error": {"message": "(#131047) Re-engagement message", "code": 131047}}
    assert WhatsAppApiError.from_response(503, body).reaction is Reaction.NEEDS_TEMPLATE


def test_errors_survive_pickling() -> None:
    error = WhatsAppApiError.from_response(400, (FIXTURES / "send_error_131056.json").read_bytes())
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is RetryableWhatsAppError
    assert (again.code, again.reaction, again.retry_after, str(again)) == (
        error.code, error.reaction, error.retry_after, str(error))


def test_build_picks_the_leaf_class() -> None:
    assert type(WhatsAppApiError.build(131000, "Unknown error")) is RetryableWhatsAppError
    assert type(WhatsAppApiError.build(131050)) is PermanentWhatsAppError


CODES = [
    (0, Reaction.PAUSE_CHANNEL),
    (2, Reaction.RETRY),
    (4, Reaction.THROTTLED),
    (10, Reaction.PAUSE_CHANNEL),
    (100, Reaction.NEVER_RETRY),
    (190, Reaction.PAUSE_CHANNEL),
    (200, Reaction.PAUSE_CHANNEL),
    (250, Reaction.PAUSE_CHANNEL),
    (299, Reaction.PAUSE_CHANNEL),
    (300, Reaction.NEVER_RETRY),
    (368, Reaction.PAUSE_CHANNEL),
    (80007, Reaction.THROTTLED),
    (130429, Reaction.THROTTLED),
    (130472, Reaction.NEVER_RETRY),
    (130497, Reaction.NEVER_RETRY),
    (131000, Reaction.RETRY),
    (131005, Reaction.NEVER_RETRY),
    (131008, Reaction.NEVER_RETRY),
    (131009, Reaction.NEVER_RETRY),
    (131016, Reaction.RETRY),
    (131021, Reaction.NEVER_RETRY),
    (131026, Reaction.UNDELIVERABLE),
    (131031, Reaction.PAUSE_CHANNEL),
    (131042, Reaction.PAUSE_CHANNEL),
    (131045, Reaction.PAUSE_CHANNEL),
    (131047, Reaction.NEEDS_TEMPLATE),
    (131048, Reaction.NEVER_RETRY),
    (131049, Reaction.PER_USER_LIMIT),
    (131050, Reaction.OPTED_OUT),
    (131051, Reaction.NEVER_RETRY),
    (131052, Reaction.NEVER_RETRY),
    (131053, Reaction.NEVER_RETRY),
    (131056, Reaction.PAIR_RATE_LIMIT),
    (131057, Reaction.RETRY),
    (132000, Reaction.TEMPLATE_BROKEN),
    (132001, Reaction.TEMPLATE_BROKEN),
    (132005, Reaction.TEMPLATE_BROKEN),
    (132007, Reaction.TEMPLATE_BROKEN),
    (132008, Reaction.TEMPLATE_BROKEN),
    (132012, Reaction.TEMPLATE_BROKEN),
    (132015, Reaction.TEMPLATE_BROKEN),
    (132016, Reaction.TEMPLATE_BROKEN),
    (132068, Reaction.NEVER_RETRY),
    (133004, Reaction.RETRY),
    (133010, Reaction.PAUSE_CHANNEL),
    (133016, Reaction.NEVER_RETRY),
    (999999, Reaction.NEVER_RETRY),
]


@pytest.mark.parametrize(("code", "reaction"), CODES)
def test_classify(code: int, reaction: Reaction) -> None:
    assert classify(code) is reaction
    assert classify(code, 400) is reaction


def test_retryable_codes_match_platform_notes() -> None:
    retryable = {code for code, _ in CODES if classify(code) in RETRYABLE}
    assert retryable == {4, 80007, 130429, 131000, 131016, 131056, 131057, 2, 133004}


@pytest.mark.parametrize(
    ("code", "status", "reaction"),
    [
        (None, None, Reaction.RETRY),
        (None, 500, Reaction.RETRY),
        (None, 502, Reaction.RETRY),
        (None, 408, Reaction.RETRY),
        (None, 429, Reaction.THROTTLED),
        (None, 400, Reaction.NEVER_RETRY),
        (None, 404, Reaction.NEVER_RETRY),
        (999999, 503, Reaction.RETRY),
        (999999, 429, Reaction.THROTTLED),
        (131047, 500, Reaction.NEEDS_TEMPLATE),
    ],
)
def test_classify_with_http_status(code: int | None, status: int | None, reaction: Reaction) -> None:
    assert classify(code, status) is reaction
