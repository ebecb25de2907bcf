"""The agent API names what is missing and refuses what it cannot do, with a reason."""

from __future__ import annotations

import pytest

from tests.harness import Harness


@pytest.fixture
def h(tmp_path):
    harness = Harness(tmp_path)
    yield harness
    harness.close()


@pytest.mark.parametrize("method,path,body", [
    ("GET", "/conversations/999", None),
    ("POST", "/conversations/999/messages", {"text": "hi"}),
    ("POST", "/conversations/999/take", {"agent": "sam"}),
    ("POST", "/conversations/999/release", {"agent": "sam"}),
])
def test_an_unknown_conversation_is_a_404_with_its_id(h: Harness, method, path, body):
    response = h.api(method, path, json=body) if body is not None else h.api(method, path)
    assert response.status_code == 404
    assert response.json() == {"error": "no conversation 999"}


def test_without_the_token_every_call_is_refused(h: Harness):
    assert h.http.get("/api/conversations").status_code == 401
