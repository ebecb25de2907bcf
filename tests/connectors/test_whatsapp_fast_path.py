"""The parser's fast path gives exactly what the general parser gives, or steps aside.

For every fixture, and for hypothesis-made variants of them (fields dropped, retyped, replaced,
lists duplicated), either the fast path declines (``Unusual``) or its updates equal the general
parser's: same events, same dedupe keys, same envelopes. Errors always come from the general
parser, so they keep their precise paths."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from connectors.whatsapp._fast import Unusual, parse_common
from connectors.whatsapp.events import ParsedUpdate, _single_status, parse_general, parse_webhook
from core.errors import PayloadError

FIXTURES = sorted((Path(__file__).parents[1] / "fixtures" / "whatsapp").glob("*.json"))
NAMED = {p.stem: json.loads(p.read_text()) for p in FIXTURES}
NAMED = {name: body for name, body in NAMED.items() if isinstance(body, dict) and "entry" in body}  # webhooks only
BODIES = list(NAMED.values())


def _general(body):
    try:
        return parse_general(copy.deepcopy(body))
    except PayloadError as exc:
        return exc


def _fast(body):
    try:
        return parse_common(copy.deepcopy(body), ParsedUpdate, _single_status)
    except Unusual:
        return None


def _same(body) -> bool:
    fast = _fast(body)
    if fast is None:
        return False
    general = _general(body)
    assert not isinstance(general, Exception), f"fast path accepted what the general parser refuses: {general}"
    assert fast == general
    return True


def test_the_common_fixtures_take_the_fast_path_and_agree():
    taken = [name for name, body in NAMED.items() if _same(body)]
    # texts, replies, media and statuses are the bulk of real traffic: they must not fall back
    for name in ("inbound_text", "inbound_button_reply", "inbound_list_reply", "inbound_image",
                 "status_sent", "status_delivered", "status_read", "status_failed_131047"):
        assert name in taken


def test_a_batch_of_statuses_splits_into_one_envelope_each():
    body = copy.deepcopy(NAMED["status_delivered"])
    value = body["entry"][0]["changes"][0]["value"]
    second = {**value["statuses"][0], "id": "wamid.SECOND"}
    value["statuses"].append(second)
    assert _same(body)
    updates = parse_webhook(json.dumps(body).encode())
    assert [u.event.message_id for u in updates] == [value["statuses"][0]["id"], "wamid.SECOND"]
    assert [len(u.envelope["entry"][0]["changes"][0]["value"]["statuses"]) for u in updates] == [1, 1]


# text that int() reads differently from str.isdigit(): other scripts' digits, superscripts,
# signs, spaces, underscores, too many digits
_NUMERIC_TEXT = ["\u00b2", "\u0661\u0662\u0663", "1.5", " 7 ", "1_0", "-1", "+3", "9" * 400, "9" * 5000, "0x10", ""]
_ODD = st.one_of(st.none(), st.integers(-5, 10**10), st.text(max_size=5), st.booleans(),
                 st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                 st.floats(allow_nan=True), st.sampled_from(_NUMERIC_TEXT))


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


@st.composite
def _mutated(draw):
    body = copy.deepcopy(draw(st.sampled_from(BODIES)))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(body) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = body
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["drop", "replace", "duplicate"]))
        if action == "drop":
            del parent[path[-1]]
        elif action == "replace":
            parent[path[-1]] = draw(_ODD)
        elif isinstance(parent[path[-1]], list) and parent[path[-1]]:
            parent[path[-1]].append(copy.deepcopy(parent[path[-1]][0]))
        else:
            parent[path[-1]] = copy.deepcopy(parent[path[-1]])
    return body


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated())
def test_mutated_bodies_agree_or_fall_back(body):
    _same(body)  # asserts agreement whenever the fast path accepts


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_parse_webhook_equals_the_general_parser_on_every_fixture(path):
    body = json.loads(path.read_text())
    expected = _general(body)
    if isinstance(expected, Exception):
        with pytest.raises(PayloadError):
            parse_webhook(path.read_bytes())
    else:
        assert parse_webhook(path.read_bytes()) == expected


@pytest.mark.parametrize("name", ["inbound_text", "status_read"])
@pytest.mark.parametrize("stamp", _NUMERIC_TEXT, ids=lambda s: repr(s) if len(s) < 12 else f"{len(s)} nines")
def test_odd_timestamps_parse_as_the_general_parser_says_or_are_refused(name, stamp):
    body = copy.deepcopy(NAMED[name])
    value = body["entry"][0]["changes"][0]["value"]
    (value.get("messages") or value["statuses"])[0]["timestamp"] = stamp
    _same(body)
    expected = _general(body)
    if isinstance(expected, Exception):  # a PayloadError with a reason, never a crash
        with pytest.raises(PayloadError, match="timestamp"):
            parse_webhook(json.dumps(body).encode())
    else:
        assert parse_webhook(json.dumps(body).encode()) == expected
