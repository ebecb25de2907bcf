"""Break-it probes on inbox accounts: races between sessions, odd inputs, throttle evasion."""

from __future__ import annotations

import pytest

from bridge.app import create_app
from bridge.inbox import auth_views
from tests.harness import Harness
from tests.inbox_support import AGENT, add_agents, csrf_of, signed_in


@pytest.fixture
def h(bridge: Harness) -> Harness:
    add_agents(bridge)
    return bridge


def _client(h: Harness, address: str = "127.0.0.1"):
    client = create_app(h.rt).test_client()
    client.environ_base["REMOTE_ADDR"] = address
    client.csrf = csrf_of(client.get("/inbox/login").data)
    return client


def _sign_in(client, email: str, password: str):
    return client.post("/inbox/login", data={"email": email, "password": password, "csrf_token": client.csrf})


def _change(client, current: str, new: str, **kwargs):
    return client.post("/inbox/account/password", data={
        "current_password": current, "new_password": new, "confirm_password": new, "csrf_token": client.csrf},
        **kwargs)


def test_two_browsers_changing_the_password_at_once_leave_one_signed_in(h: Harness, monkeypatch):
    """Browser A has checked the current password when browser B's change lands. A's change wrote
    over B's from its stale read (the same session_version): both sessions stayed signed in, and
    A's password was in force though B was told its own was."""
    here, there = signed_in(h, AGENT), signed_in(h, AGENT)
    real, answers = auth_views.change_password, []

    def interleaved(s, agent, current, new):
        if not answers:
            answers.append(None)  # B's own change goes through here too: once
            answers[0] = _change(there, AGENT[1], "browser-b-password")
        return real(s, agent, current, new)

    monkeypatch.setattr(auth_views, "change_password", interleaved)
    refused = _change(here, AGENT[1], "browser-a-password", follow_redirects=True)
    assert answers[0].status_code == 302  # B's change
    assert b"Not changed: your password was changed or your account deactivated meanwhile: sign in again." \
        in refused.data
    assert (here.get("/inbox/").status_code, there.get("/inbox/").status_code) == (302, 200)
    assert _sign_in(_client(h), AGENT[0], "browser-a-password").status_code == 401
    assert _sign_in(_client(h), AGENT[0], "browser-b-password").status_code == 302


@pytest.mark.parametrize("target", ["/\t/evil.example", "/\n/evil.example", "/\r\n/evil.example", "/\x7f/x"])
def test_next_after_sign_in_with_a_control_character_goes_to_the_inbox(h: Harness, target):
    """A browser drops tabs and line breaks from a Location: "/\\t/evil.example" took a freshly
    signed-in agent to evil.example (an open redirect); "/\\n/..." was a 500."""
    client = _client(h)
    response = client.post("/inbox/login", query_string={"next": target},
                           data={"email": AGENT[0], "password": AGENT[1], "csrf_token": client.csrf})
    assert (response.status_code, response.headers["Location"]) == (302, "/inbox/")
