"""core.jsonwire: the one strict loader every edge uses. Bad bytes give PayloadError with a reason."""

from __future__ import annotations

import pytest

from core import jsonwire
from core.errors import PayloadError

DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize("raw, reason", [
    pytest.param(b"", "empty", id="empty"),
    pytest.param(b"   \n", "empty", id="blank"),
    pytest.param(b"{not json", "not JSON", id="broken"),
    pytest.param(b"\xff\xfe\x00", "not UTF-8", id="not-utf8"),
    pytest.param('{"a": 1}'.encode("utf-16"), "not UTF-8", id="utf16"),
    pytest.param(b'{"id": NaN}', "NaN is not allowed", id="nan"),
    pytest.param(b'{"id": -Infinity}', "-Infinity is not allowed", id="infinity"),
    pytest.param(b'{"total": 1e400}', "not a finite number", id="overflow"),
    pytest.param(b'{"name": "\\ud800"}', "lone surrogate", id="lone-surrogate"),
    pytest.param(DEEP, "nested too deeply", id="deep-array"),
    pytest.param(b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "nested too deeply", id="deep-object"),
])
def test_bad_bytes_are_payload_errors_with_the_reason(raw, reason):
    with pytest.raises(PayloadError, match=reason) as caught:
        jsonwire.loads(raw)
    assert str(caught.value).startswith("body")


@pytest.mark.parametrize("raw, expect, got", [
    (b"[1]", dict, "got array"), (b"null", dict, "got null"), (b'"x"', dict, "got string"),
    (b"1.5", list, "got number"), (b"{}", list, "got object"), (b"true", (dict, list), "got boolean"),
])
def test_the_top_level_type_is_checked(raw, expect, got):
    with pytest.raises(PayloadError, match=f"expected a JSON .*, {got}"):
        jsonwire.loads(raw, expect=expect)


def test_good_json_decodes_the_same_as_the_standard_library():
    raw = '{"a": [1, 2.5, "é", null, true], "b": {"c": "\\ud83d\\ude00"}, "n": 12345678901234567890}'.encode()
    assert jsonwire.loads(raw, expect=dict) == {"a": [1, 2.5, "é", None, True], "b": {"c": "😀"},
                                                "n": 12345678901234567890}
    assert jsonwire.loads(bytearray(b"[]"), expect=list) == []
    assert jsonwire.loads("{}") == {}


def test_the_message_names_what_was_read():
    with pytest.raises(PayloadError, match=r"^event: expected a JSON object, got array"):
        jsonwire.loads(b"[]", expect=dict, what="event")
