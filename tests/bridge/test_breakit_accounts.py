"""Break-it probes on inbox accounts: races between sessions, odd inputs, throttle evasion."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from core.store.models import Agent, Conversation, Message
from bridge.inbox import auth_views, thread
from tests.harness import Harness
from tests.inbox_support import ADMIN, AGENT, add_agents, cart_handed_off, client_at, sign_in_as, signed_in


@pytest.fixture
def h(bridge: Harness) -> Harness:
    add_agents(bridge)
    return bridge


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

    def interleaved(s, agent, current, new, **kwargs):
        if not answers:
            answers.append(None)  # B's own change goes through here too: once
            answers[0] = _change(there, AGENT[1], "browser-b-password")
        return real(s, agent, current, new, **kwargs)

    monkeypatch.setattr(auth_views, "change_password", interleaved)
    refused = _change(here, AGENT[1], "browser-a-password", follow_redirects=True)
    assert answers[0].status_code == 302  # B's change
    assert b"Not changed: your password was changed or your account deactivated meanwhile: sign in again." \
        in refused.data
    assert (here.get("/inbox/").status_code, there.get("/inbox/").status_code) == (302, 200)
    assert sign_in_as(client_at(h), AGENT[0], "browser-a-password").status_code == 401
    assert sign_in_as(client_at(h), AGENT[0], "browser-b-password").status_code == 302


@pytest.mark.parametrize("target", ["/\t/evil.example", "/\n/evil.example", "/\r\n/evil.example", "/\x7f/x"])
def test_next_after_sign_in_with_a_control_character_goes_to_the_inbox(h: Harness, target):
    """A browser drops tabs and line breaks from a Location: "/\\t/evil.example" took a freshly
    signed-in agent to evil.example (an open redirect); "/\\n/..." was a 500."""
    client = client_at(h)
    response = client.post("/inbox/login", query_string={"next": target},
                           data={"email": AGENT[0], "password": AGENT[1], "csrf_token": client.csrf})
    assert (response.status_code, response.headers["Location"]) == (302, "/inbox/")


@pytest.mark.parametrize("action", ["reply", "template", "take"])
def test_an_agent_deactivated_mid_request_takes_no_conversation_back(h: Harness, monkeypatch, action):
    """The admin deactivates the agent after the agent's request was let in (signed in) but before
    it touched the conversation: the conversation had gone back to the queue, and the reply made
    the deactivated agent its owner again, out of every other agent's queue."""
    conv_id = cart_handed_off(h)
    agent, admin = signed_in(h, AGENT), signed_in(h, ADMIN)
    with h.session() as s:
        agent_id = s.scalar(select(Agent.id).where(Agent.email == AGENT[0]))
    real, deactivated = thread._conv, []

    def interleaved(s, cid):
        if not deactivated:
            deactivated.append(admin.post(f"/inbox/admin/agents/{agent_id}/deactivate",
                                          data={"csrf_token": admin.csrf}))
        return real(s, cid)

    monkeypatch.setattr(thread, "_conv", interleaved)
    form = {"reply": {"text": "hello"}, "take": {},
            "template": {"template": "cart_reminder", "param_first_name": "Maya"}}[action]
    answer = agent.post(f"/inbox/conversations/{conv_id}/{action}", data={**form, "csrf_token": agent.csrf})
    assert deactivated[0].status_code == 302 and answer.status_code == 401
    with h.session() as s:
        conv = s.get(Conversation, conv_id)
        assert (conv.mode, conv.assignee) == ("agent", None)
        assert s.scalar(select(func.count(Message.id)).where(Message.author == f"agent:{AGENT[0]}")) == 0


@pytest.mark.parametrize("email,password", [("\x00agent@example.com", "not-the-password"), (AGENT[0], "pass\x00word")])
def test_a_nul_character_in_the_sign_in_form_is_a_400_not_a_500(h: Harness, email, password):
    """PostgreSQL refuses NUL in text: the throttle's lookup raised and the page was a 500."""
    assert sign_in_as(client_at(h), email, password).status_code == 400
    assert signed_in(h, AGENT).get("/inbox/", query_string={"q": "Maya\x00"}).status_code == 400


def test_the_admin_page_refuses_an_email_longer_than_the_column(h: Harness):
    """A 400-character address was stored on SQLite and a 500 on PostgreSQL (String(320))."""
    admin = signed_in(h, ADMIN)
    page = admin.post("/inbox/admin/agents", data={"email": "a" * 400 + "@example.com", "password": "long-password-1",
                                                   "role": "agent", "csrf_token": admin.csrf})
    assert page.status_code == 400 and b"not an email address" in page.data
    with h.session() as s:
        assert s.scalar(select(func.count(Agent.id))) == 2


def test_case_and_whitespace_variants_of_an_email_count_as_one_account(h: Harness):
    """Guard: the throttle's key and the account lookup normalise the same way, or a guesser
    could spread guesses over "Agent@Example.com ", " AGENT@example.COM", ..."""
    client = client_at(h)
    for variant in ("Agent@Example.com ", " AGENT@example.COM", "agent@example.com\t", "\u00a0agent@EXAMPLE.com",
                    "agent@example.com\n"):
        assert sign_in_as(client, variant, "not-the-password").status_code == 401
    assert sign_in_as(client, AGENT[0], AGENT[1]).status_code == 429
