"""Inbox accounts beyond creation: sign-in throttling (counted in the database), deactivation, and
password changes that sign the agent's other sessions out. Through the HTTP app and the CLI, on
SQLite and on PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from core import handoff
from core.store.models import Agent, Conversation, Message, SignInThrottle
from bridge.app import create_app
from bridge.config import Settings
from bridge.cli import main
from bridge.inbox import throttle
from bridge.inbox.accounts import create_agent
from tests.harness import START, Harness
from tests.inbox_support import ADMIN, AGENT, add_agents, cart_handed_off, client_at, csrf_of, sign_in_as, signed_in


@pytest.fixture
def h(bridge: Harness) -> Harness:
    add_agents(bridge)
    return bridge


def _fail(h: Harness, client, email: str, times: int, *, every: timedelta = timedelta(minutes=1)) -> None:
    for _ in range(times):
        wrong = sign_in_as(client, email, "not-the-password")
        assert wrong.status_code == 401 and b"Wrong email or password" in wrong.data
        h.clock.advance(every)


def test_five_failures_lock_an_email_for_fifteen_minutes_known_or_not(h: Harness):
    one, other = client_at(h), create_app(h.rt).test_client()  # two apps: the count is in the database
    other.environ_base["REMOTE_ADDR"] = "127.0.0.1"
    other.csrf = csrf_of(other.get("/inbox/login").data)
    for i in range(5):  # 14:02:11 .. 14:06:11, alternating between the two apps
        _fail(h, one if i % 2 else other, AGENT[0].upper(), 1)
    locked = sign_in_as(one, AGENT[0], AGENT[1])  # even the right password is refused now
    assert locked.status_code == 429 and locked.headers["Retry-After"] == str(14 * 60)
    assert b"Too many failed sign-ins for this account; try again at 14:22 UTC." in locked.data  # 14:21:11
    for i in range(5):  # an email nobody has is locked the same way, with the same words
        _fail(h, one, "nobody@example.com", 1, every=timedelta(0))
    unknown = sign_in_as(one, "nobody@example.com", "not-the-password")
    assert unknown.status_code == 429
    assert b"Too many failed sign-ins for this account; try again at" in unknown.data
    assert sign_in_as(one, ADMIN[0], ADMIN[1]).status_code == 302  # another email, same address: fine
    with h.session() as s:
        row = s.scalars(select(SignInThrottle).where(SignInThrottle.key == AGENT[0])).one()
        assert row.scope == "email" and len(row.failures) == 5
    h.clock.set(START + timedelta(minutes=4 + 15, seconds=-1))  # 14:21:10, a second before the lockout ends
    assert sign_in_as(one, AGENT[0], AGENT[1]).status_code == 429
    h.clock.advance(timedelta(seconds=1))
    assert sign_in_as(one, AGENT[0], AGENT[1]).status_code == 302


def test_a_success_clears_the_count_and_old_failures_age_out(h: Harness):
    client = client_at(h)
    _fail(h, client, AGENT[0], 4)
    assert sign_in_as(client, AGENT[0], AGENT[1]).status_code == 302
    _fail(h, client, AGENT[0], 4)  # four more: eight since 14:02, but only four since the success
    with h.session() as s:
        assert s.scalars(select(SignInThrottle).where(SignInThrottle.key == AGENT[0])).one().locked_until is None
    h.clock.advance(timedelta(minutes=15))  # the four fall out of the window
    _fail(h, client, AGENT[0], 4, every=timedelta(0))
    assert sign_in_as(client, AGENT[0], AGENT[1]).status_code == 302  # four in the window: not locked
    _fail(h, client, AGENT[0], 5, every=timedelta(0))
    assert sign_in_as(client, AGENT[0], AGENT[1]).status_code == 429


def test_one_address_is_locked_after_twenty_failures_whatever_the_emails(h: Harness):
    client, elsewhere = client_at(h, "203.0.113.7"), client_at(h, "198.51.100.2")
    for i in range(20):
        _fail(h, client, f"guess{i}@example.com", 1, every=timedelta(seconds=10))
    refused = sign_in_as(client, AGENT[0], AGENT[1])
    assert refused.status_code == 429
    assert b"Too many failed sign-ins from this network address; try again at" in refused.data
    assert sign_in_as(elsewhere, AGENT[0], AGENT[1]).status_code == 302


def test_an_attempt_counts_before_its_password_is_checked(h: Harness):
    """Six guesses in flight at once: the sixth is refused though none has been answered yet."""
    now = h.clock.now()
    with h.session() as s:
        verdicts = [throttle.attempt(s, email="agent@example.com", address="10.0.0.1", now=now) for _ in range(6)]
    assert verdicts[:5] == [None] * 5 and verdicts[5].until == now + timedelta(minutes=15)
    with h.session() as s:  # the right password on one of them takes back that one failure only
        throttle.succeeded(s, email="agent@example.com", address="10.0.0.1", at=now)
        address = s.scalars(select(SignInThrottle).where(SignInThrottle.scope == "address")).one()
        assert len(address.failures) == 4 and address.locked_until is None
        assert s.scalars(select(SignInThrottle).where(SignInThrottle.scope == "email")).all() == []


def _throttle_keys(h: Harness) -> set[tuple[str, str]]:
    with h.session() as s:
        return {tuple(row) for row in s.execute(select(SignInThrottle.scope, SignInThrottle.key))}


def test_a_guesser_cycling_through_made_up_emails_does_not_grow_the_throttle_table_forever(h: Harness):
    """Each made-up email left a row behind for good. Rows whose failures all left the window go
    when later attempts come; rows still counting stay."""
    client = client_at(h, "203.0.113.7")
    for i in range(25):  # 20 failures lock the address; the last 5 are refused but still make a row each
        sign_in_as(client, f"guess{i}@example.com", "not-the-password")
    assert len(_throttle_keys(h)) == 26
    h.clock.advance(timedelta(minutes=10))
    _fail(h, client_at(h, "198.51.100.2"), AGENT[0], 1, every=timedelta(minutes=6))  # 14:12:11, then 14:18:11
    h.clock.advance(timedelta(seconds=1))
    refused = sign_in_as(client, "guess-late@example.com", "not-the-password")  # the address is locked until 14:17
    assert refused.status_code == 401  # 14:18:12: the lockout is over, so this one counts
    assert _throttle_keys(h) == {("email", AGENT[0]), ("address", "198.51.100.2"),
                                 ("email", "guess-late@example.com"), ("address", "203.0.113.7")}


def test_each_attempt_clears_a_bounded_number_of_stale_rows(h: Harness):
    old = h.clock.now() - timedelta(minutes=16)
    with h.session() as s:
        s.add_all(SignInThrottle(scope="email", key=f"old{i}@example.com", failures=[old.isoformat()],
                                 updated_at=old) for i in range(throttle.FORGET_BATCH + 3))
    with h.session() as s:
        assert throttle.attempt(s, email="someone@example.com", address="10.0.0.1", now=h.clock.now()) is None
    assert len(_throttle_keys(h)) == 3 + 2  # the rest wait for the next attempt
    with h.session() as s:
        throttle.attempt(s, email="someone@example.com", address="10.0.0.1", now=h.clock.now())
    assert _throttle_keys(h) == {("email", "someone@example.com"), ("address", "10.0.0.1")}


def _agent_id(h: Harness, email: str) -> int:
    with h.session() as s:
        return s.scalar(select(Agent.id).where(Agent.email == email))


def _cli(*args: str, input: str | None = None, env: dict | None = None):
    return CliRunner().invoke(main, ["agents", *args], input=input, env=env)


def test_a_deactivated_agent_is_signed_out_cannot_sign_in_and_their_conversations_go_back_to_the_queue(h: Harness):
    conv_id = cart_handed_off(h)
    agent, admin = signed_in(h, AGENT), signed_in(h, ADMIN)
    laptop = signed_in(h, AGENT)  # a second session that makes no request while the agent is deactivated
    agent.post(f"/inbox/conversations/{conv_id}/take", data={"csrf_token": agent.csrf})
    assert agent.post(f"/inbox/admin/agents/{_agent_id(h, ADMIN[0])}/deactivate",
                      data={"csrf_token": agent.csrf}).status_code == 403  # agents manage nobody
    url = f"/inbox/admin/agents/{_agent_id(h, AGENT[0])}/deactivate"
    assert admin.post(url).status_code == 400  # no CSRF token
    page = admin.post(url, data={"csrf_token": admin.csrf}, follow_redirects=True)
    assert b"Deactivated agent@example.com; 1 conversation(s) went back to the queue." in page.data
    assert b'<tr data-agent="agent@example.com"><td>agent@example.com</td><td>Ben</td><td>agent</td><td>no</td>' \
        in page.data
    gone = agent.get("/inbox/")  # the open session ends on its next request
    assert gone.status_code == 302 and gone.headers["Location"].startswith("/inbox/login")
    assert agent.post(f"/inbox/conversations/{conv_id}/reply", data={"text": "hi", "csrf_token": agent.csrf}
                      ).status_code in (400, 401)  # the session (and its token) is gone
    login = client_at(h)
    refused = sign_in_as(login, AGENT[0], AGENT[1])
    assert refused.status_code == 401 and b"Wrong email or password." in refused.data  # as for a wrong password
    with h.session() as s:
        conv = s.get(Conversation, conv_id)
        assert (conv.mode, conv.assignee) == ("agent", None)
        notes = s.scalars(select(Message.body).where(Message.conversation_id == conv_id, Message.direction == "sys"))
        assert "Back in the queue: agent@example.com was deactivated" in list(notes)
    assert ">Maya" in admin.get("/inbox/?filter=waiting").data.decode()
    again = admin.post(f"/inbox/admin/agents/{_agent_id(h, AGENT[0])}/activate", data={"csrf_token": admin.csrf},
                       follow_redirects=True)
    assert b"Activated agent@example.com: they can sign in again." in again.data
    assert laptop.get("/inbox/").status_code == 302  # reactivating revives no session from before
    assert sign_in_as(login, AGENT[0], AGENT[1]).status_code == 302


def test_the_last_active_admin_cannot_be_deactivated(h: Harness):
    admin = signed_in(h, ADMIN)
    page = admin.post(f"/inbox/admin/agents/{_agent_id(h, ADMIN[0])}/deactivate", data={"csrf_token": admin.csrf},
                      follow_redirects=True)
    assert b"Not deactivated: admin@example.com is the last active admin: add another admin first" in page.data
    refused = _cli("deactivate", "Admin@Example.com")
    assert refused.exit_code == 1
    assert "Error: admin@example.com is the last active admin: add another admin first" in refused.output
    with h.session() as s:
        create_agent(s, email="second@example.com", password="second-password", role="admin", now=h.clock.now())
    ok = _cli("deactivate", ADMIN[0])
    assert ok.exit_code == 0 and "admin@example.com deactivated; 0 conversation(s) back in the queue" in ok.output
    assert admin.get("/inbox/admin/agents").status_code == 302  # signed out
    last = _cli("deactivate", "second@example.com")
    assert last.exit_code == 1 and "second@example.com is the last active admin" in last.output


def test_cli_deactivates_and_activates_by_email(h: Harness):
    conv_id = cart_handed_off(h)
    with h.session() as s:
        handoff.take(s, s.get(Conversation, conv_id), AGENT[0], h.clock.now())
    out = _cli("deactivate", AGENT[0])
    assert out.exit_code == 0 and "agent@example.com deactivated; 1 conversation(s) back in the queue" in out.output
    with h.session() as s:
        assert s.get(Conversation, conv_id).assignee is None
    assert "agent@example.com\tagent\tinactive" in _cli("list").output
    twice = _cli("deactivate", AGENT[0])
    assert twice.exit_code == 1 and "agent@example.com is already deactivated" in twice.output
    unknown = _cli("deactivate", "nobody@example.com")
    assert unknown.exit_code == 1 and "no agent 'nobody@example.com'" in unknown.output
    assert _cli("activate", AGENT[0]).output == "agent@example.com activated\n"
    assert sign_in_as(client_at(h), AGENT[0], AGENT[1]).status_code == 302


def _row(page: bytes, email: str) -> str:
    """The agent's row on the admin's page of agents, from <tr> to </tr>."""
    text = page.decode()
    start = text.index(f'<tr data-agent="{email}">')
    return text[start:text.index("</tr>", start)]


def test_an_admin_sees_each_agents_sessions_and_signs_one_out_everywhere(h: Harness):
    admin = signed_in(h, ADMIN)  # 14:02
    with h.session() as s:
        create_agent(s, email="carl@example.com", password="carl-password-1", role="agent", now=h.clock.now())
    h.clock.advance(timedelta(minutes=3))
    phone, laptop = signed_in(h, AGENT), signed_in(h, AGENT)  # 14:05
    h.clock.advance(timedelta(minutes=4))
    assert laptop.get("/inbox/").status_code == 200  # 14:09: seen again
    page = admin.get("/inbox/admin/agents").data
    agent_row, admin_row, carl_row = (_row(page, e) for e in (AGENT[0], ADMIN[0], "carl@example.com"))
    assert "<td>agent</td><td>yes</td><td>2</td><td>2025-11-03 14:09 UTC</td>" in agent_row
    assert "<td>admin</td><td>yes</td><td>1</td><td>2025-11-03 14:09 UTC</td>" in admin_row  # this page load
    assert "<td>agent</td><td>yes</td><td>0</td><td>never</td>" in carl_row
    url = f"/inbox/admin/agents/{_agent_id(h, AGENT[0])}/sign-out"
    assert f'action="{url}"' in agent_row and "Sign out everywhere" in agent_row
    assert "Sign out everywhere" not in carl_row  # nothing to sign out
    assert phone.post(url, data={"csrf_token": phone.csrf}).status_code == 403  # agents sign nobody out
    assert admin.post(url).status_code == 400  # no CSRF token
    assert admin.post("/inbox/admin/agents/999999/sign-out", data={"csrf_token": admin.csrf}).status_code == 404
    assert phone.get("/inbox/").status_code == 200 and laptop.get("/inbox/").status_code == 200
    h.clock.advance(timedelta(minutes=1))
    done = admin.post(url, data={"csrf_token": admin.csrf}, follow_redirects=True)
    assert b"Signed agent@example.com out everywhere (2 session(s)); their password is unchanged." in done.data
    assert "<td>agent</td><td>yes</td><td>0</td><td>2025-11-03 14:09 UTC</td>" in _row(done.data, AGENT[0])
    for client in (phone, laptop):
        gone = client.get("/inbox/")
        assert gone.status_code == 302 and gone.headers["Location"].startswith("/inbox/login")
    assert admin.get("/inbox/").status_code == 200  # the admin's own session goes on
    with h.session() as s:
        assert s.scalars(select(Agent).where(Agent.email == AGENT[0])).one().active
    assert sign_in_as(client_at(h), AGENT[0], AGENT[1]).status_code == 302  # the same password still works


def test_cli_signs_an_agent_out_everywhere(h: Harness):
    signed_in(h, AGENT)
    h.clock.advance(timedelta(days=7))  # unused for a week: already over, not counted again
    phone, laptop, admin = signed_in(h, AGENT), signed_in(h, AGENT), signed_in(h, ADMIN)
    out = _cli("sign-out", "Agent@Example.com")
    assert out.exit_code == 0 and out.output == "agent@example.com signed out everywhere: 2 session(s) ended\n"
    assert phone.get("/inbox/").status_code == 302 and laptop.get("/inbox/").status_code == 302
    assert admin.get("/inbox/").status_code == 200
    assert _cli("sign-out", AGENT[0]).output == "agent@example.com signed out everywhere: 0 session(s) ended\n"
    unknown = _cli("sign-out", "nobody@example.com")
    assert unknown.exit_code == 1 and "Error: no agent 'nobody@example.com'" in unknown.output
    assert "agent@example.com\tagent\tactive" in _cli("list").output
    assert sign_in_as(client_at(h), AGENT[0], AGENT[1]).status_code == 302  # the same password still works


def _change(client, current: str, new: str, confirm: str | None = None, **kwargs):
    return client.post("/inbox/account/password", data={
        "current_password": current, "new_password": new, "confirm_password": new if confirm is None else confirm,
        "csrf_token": client.csrf}, **kwargs)


def test_an_agent_changes_their_password_and_their_other_sessions_end(h: Harness):
    here, there = signed_in(h, AGENT), signed_in(h, AGENT)
    page = here.get("/inbox/account/password")
    assert page.status_code == 200 and b'name="current_password"' in page.data
    assert here.post("/inbox/account/password", data={"current_password": AGENT[1], "new_password": "new-password-22",
                                                      "confirm_password": "new-password-22"}).status_code == 400  # CSRF
    for response, words in (
            (_change(here, "not-the-password", "new-password-22"), b"Not changed: the current password is wrong."),
            (_change(here, AGENT[1], "short"), b"Not changed: the password must be at least 10 characters."),
            (_change(here, AGENT[1], "new-password-22", "new-password-23"),
             b"Not changed: the two new passwords differ."),
            (_change(here, AGENT[1], AGENT[1]), b"Not changed: the new password is the current one.")):
        assert response.status_code == 400 and words in response.data
    assert there.get("/inbox/").status_code == 200  # nothing changed yet
    done = _change(here, AGENT[1], "new-password-22", follow_redirects=True)
    assert done.status_code == 200 and b"Password changed. Your other sessions are signed out." in done.data
    assert here.get("/inbox/").status_code == 200  # the session that changed it stays
    gone = there.get("/inbox/")
    assert gone.status_code == 302 and gone.headers["Location"].startswith("/inbox/login")
    login = client_at(h)
    assert sign_in_as(login, AGENT[0], AGENT[1]).status_code == 401
    assert sign_in_as(login, AGENT[0], "new-password-22").status_code == 302


def test_guessing_the_current_password_is_throttled_like_signing_in(h: Harness):
    client = signed_in(h, AGENT)
    for _ in range(3):  # mistakes that are not guesses do not count
        assert _change(client, AGENT[1], "new-password-22", "typo-password-22").status_code == 400
    for _ in range(5):
        assert _change(client, "a-wrong-guess", "new-password-22").status_code == 400
    locked = _change(client, AGENT[1], "new-password-22")
    assert locked.status_code == 429
    assert b"Not changed: Too many failed sign-ins for this account; try again at 14:18 UTC." in locked.data
    assert sign_in_as(client_at(h), AGENT[0], AGENT[1]).status_code == 429  # the sign-in page counts the same


def test_cli_sets_a_password_signs_the_agent_out_and_lifts_a_lockout(h: Harness):
    session = signed_in(h, AGENT)
    login = client_at(h, "192.0.2.10")
    _fail(h, login, AGENT[0], 5, every=timedelta(0))
    assert sign_in_as(login, AGENT[0], AGENT[1]).status_code == 429
    short = _cli("set-password", AGENT[0], input="short\nshort\n")
    assert short.exit_code == 1 and "the password must be at least 10 characters" in short.output
    unknown = _cli("set-password", "nobody@example.com", env={"REPLYFLOW_AGENT_PASSWORD": "long-enough-pw"})
    assert unknown.exit_code == 1 and "no agent 'nobody@example.com'" in unknown.output
    asked = _cli("set-password", AGENT[0].upper(), input="reset-by-admin-1\nreset-by-admin-1\n")
    assert asked.exit_code == 0 and "agent@example.com has a new password; their sessions are signed out" \
        in asked.output
    assert session.get("/inbox/").status_code == 302
    assert sign_in_as(login, AGENT[0], "reset-by-admin-1").status_code == 302  # no lockout any more
    from_env = _cli("set-password", AGENT[0], env={"REPLYFLOW_AGENT_PASSWORD": "from-the-environment"})
    assert from_env.exit_code == 0, from_env.output
    assert sign_in_as(client_at(h), AGENT[0], "reset-by-admin-1").status_code == 401
    assert sign_in_as(client_at(h), AGENT[0], "from-the-environment").status_code == 302


def _behind_proxy(h: Harness, hops: int, forwarded_for: str):
    app = create_app(replace(h.rt, settings=replace(h.rt.settings, trusted_proxies=hops)))
    client = app.test_client()
    client.environ_base.update(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded_for)  # the proxy's address
    client.csrf = csrf_of(client.get("/inbox/login").data)
    return client


def test_behind_a_trusted_proxy_each_client_address_is_counted_on_its_own(h: Harness):
    """Behind an HTTPS proxy every request came from the proxy: 20 bad sign-ins from anyone locked
    every agent out. REPLYFLOW_TRUSTED_PROXIES=1 reads the client's address the proxy forwards."""
    guesser = _behind_proxy(h, 1, "203.0.113.7")
    for i in range(20):
        _fail(h, guesser, f"guess{i}@example.com", 1, every=timedelta(seconds=10))
    assert sign_in_as(guesser, AGENT[0], AGENT[1]).status_code == 429
    assert sign_in_as(_behind_proxy(h, 1, "198.51.100.2"), AGENT[0], AGENT[1]).status_code == 302


def test_without_a_trusted_proxy_a_forwarded_address_is_not_believed(h: Harness):
    """Otherwise a guesser would name a new address in each request and never be locked."""
    for i in range(20):
        _fail(h, _behind_proxy(h, 0, f"203.0.113.{i}"), f"guess{i}@example.com", 1, every=timedelta(seconds=10))
    assert sign_in_as(_behind_proxy(h, 0, "198.51.100.2"), AGENT[0], AGENT[1]).status_code == 429


def test_trusted_proxies_is_a_small_count():
    assert Settings.from_env({"REPLYFLOW_TRUSTED_PROXIES": "1"}).trusted_proxies == 1
    with pytest.raises(ValueError, match="how many reverse proxies"):
        Settings.from_env({"REPLYFLOW_TRUSTED_PROXIES": "yes"})
