"""Inbox sessions kept on the server (``agent_session``): signing out ends that session wherever a
copy of its cookie is, "sign out everywhere else", expiry by the clock, password changes, and
`replyflow db prune`. Through the HTTP app, on SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from core.store.models import AgentSession
from core.store.retention import count_prunable_sessions, prune_sessions
from bridge.app import create_app
from tests.harness import START, Harness
from tests.inbox_support import ADMIN, AGENT, add_agents, client_at, sign_in_as, signed_in

COOKIE = "replyflow_session"
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"


@pytest.fixture
def h(bridge: Harness) -> Harness:
    add_agents(bridge)
    return bridge


def _copy_of(h: Harness, client):
    """Another browser holding a copy of ``client``'s cookie (a shared computer, a stolen cookie)."""
    copy = create_app(h.rt).test_client()
    copy.set_cookie(COOKIE, client.get_cookie(COOKIE).value)
    return copy


def _signed_in_page(client) -> bool:
    response = client.get("/inbox/")
    assert response.status_code in (200, 302), response.status_code
    return response.status_code == 200


def _rows(h: Harness) -> list[AgentSession]:
    with h.session() as s:
        rows = list(s.scalars(select(AgentSession).order_by(AgentSession.id)))
        s.expunge_all()
        return rows


def test_signing_out_ends_that_session_for_a_copied_cookie_too_and_no_other(h: Harness):
    shop, laptop = signed_in(h, AGENT), signed_in(h, AGENT)
    copy = _copy_of(h, shop)
    assert _signed_in_page(copy)  # the copy is as good as the cookie it came from
    app = create_app(h.rt)
    token = app.session_interface.get_signing_serializer(app).loads(shop.get_cookie(COOKIE).value)["sid"]
    assert _rows(h)[0].token_hash == hashlib.sha256(token.encode()).hexdigest()  # the table holds no token
    out = shop.post("/inbox/logout", data={"csrf_token": shop.csrf})
    assert out.status_code == 302 and out.headers["Location"].endswith("/inbox/login")
    assert not _signed_in_page(shop)
    assert not _signed_in_page(copy)  # the copied cookie stopped working on the server
    assert copy.post("/inbox/account/sessions/others/end", data={"csrf_token": shop.csrf}).status_code in (400, 401)
    assert _signed_in_page(laptop)  # the agent's other session goes on
    first, second = _rows(h)
    assert first.ended_at == h.clock.now() and second.ended_at is None


def test_sign_out_everywhere_else_keeps_this_browser_only(h: Harness):
    here = client_at(h, "198.51.100.7")
    here.environ_base["HTTP_USER_AGENT"] = FIREFOX
    assert sign_in_as(here, *AGENT).status_code == 302
    h.clock.advance(timedelta(minutes=5))
    there = signed_in(h, AGENT)
    copy_of_there, admin = _copy_of(h, there), signed_in(h, ADMIN)
    page = here.get("/inbox/account/sessions").data.decode()
    assert page.count("<tr data-session=") == 2  # the admin's session is not the agent's
    assert ('<tr data-session="this"><td>Firefox on Windows</td><td>198.51.100.7</td>'
            '<td>2025-11-03 14:02 UTC</td><td>2025-11-03 14:07 UTC</td><td>this browser</td>') in page
    assert '<tr data-session="other"><td>Werkzeug/' in page and "<td>127.0.0.1</td><td>2025-11-03 14:07 UTC" in page
    assert here.post("/inbox/account/sessions/others/end").status_code == 400  # no CSRF token
    assert _signed_in_page(there)
    done = here.post("/inbox/account/sessions/others/end", data={"csrf_token": here.csrf}, follow_redirects=True)
    assert b"Signed out everywhere else (1 session(s))." in done.data
    assert done.data.decode().count("<tr data-session=") == 1
    assert not _signed_in_page(there) and not _signed_in_page(copy_of_there)
    assert _signed_in_page(here) and _signed_in_page(admin)


def _ids(h: Harness) -> list[int]:
    return [row.id for row in _rows(h)]


def test_sign_out_one_other_browser_of_ones_own_and_never_someone_elses(h: Harness):
    here, there, third = signed_in(h, AGENT), signed_in(h, AGENT), signed_in(h, AGENT)
    copy_of_there, admin = _copy_of(h, there), signed_in(h, ADMIN)
    here_id, there_id, _, admin_id = _ids(h)
    page = here.get("/inbox/account/sessions").data.decode()
    assert page.count('<button type="submit">Sign out</button></form></td></tr>') == 2  # one per other browser
    assert f'action="/inbox/account/sessions/{there_id}/end"' in page
    assert f'action="/inbox/account/sessions/{here_id}/end"' not in page  # this browser: the header's Sign out
    url = f"/inbox/account/sessions/{there_id}/end"
    assert here.post(url).status_code == 400  # no CSRF token
    assert here.post(url, data={"csrf_token": admin.csrf}).status_code == 400  # another session's token
    # a forged id: the admin's session is not the agent's to end, nor the agent's the admin's
    assert here.post(f"/inbox/account/sessions/{admin_id}/end", data={"csrf_token": here.csrf}).status_code == 404
    assert admin.post(url, data={"csrf_token": admin.csrf}).status_code == 404
    assert here.post("/inbox/account/sessions/999999/end", data={"csrf_token": here.csrf}).status_code == 404
    assert all(row.ended_at is None for row in _rows(h))
    assert _signed_in_page(there) and _signed_in_page(admin)
    h.clock.advance(timedelta(minutes=3))
    done = here.post(url, data={"csrf_token": here.csrf}, follow_redirects=True)
    assert done.status_code == 200 and b"Signed out that browser." in done.data
    assert done.data.decode().count("<tr data-session=") == 2  # this browser and the third
    assert not _signed_in_page(there) and not _signed_in_page(copy_of_there)
    assert _signed_in_page(here) and _signed_in_page(third) and _signed_in_page(admin)
    assert [row.ended_at for row in _rows(h)] == [None, h.clock.now(), None, None]
    assert here.post(url, data={"csrf_token": here.csrf}).status_code == 404  # already ended


def test_a_session_ends_after_a_week_unused_and_a_month_after_sign_in(h: Harness):
    idle = signed_in(h, AGENT)
    h.clock.advance(timedelta(days=7, seconds=-1))
    assert _signed_in_page(idle)  # used again a second before a week is up: on for another week
    h.clock.advance(timedelta(days=7, seconds=-1))
    assert _signed_in_page(idle)
    h.clock.advance(timedelta(days=7))
    assert not _signed_in_page(idle)
    assert _rows(h)[0].ended_at == h.clock.now()
    h.clock.set(START)
    busy = signed_in(h, AGENT)  # used every day: it still ends 30 days after signing in
    for _ in range(29):
        h.clock.advance(timedelta(days=1))
        assert _signed_in_page(busy)
    h.clock.set(START + timedelta(days=30, seconds=-1))
    assert _signed_in_page(busy)
    h.clock.advance(timedelta(seconds=1))
    assert not _signed_in_page(busy)
    assert sign_in_as(client_at(h), *AGENT).status_code == 302  # signing in again is all it takes


def test_last_seen_is_written_at_most_once_a_minute(h: Harness):
    client = signed_in(h, AGENT)  # signed_in's own page load was at START too
    for seconds in (30, 59):
        h.clock.set(START + timedelta(seconds=seconds))
        assert _signed_in_page(client)
        assert _rows(h)[0].last_seen_at == START
    h.clock.set(START + timedelta(seconds=60))
    assert _signed_in_page(client)
    assert _rows(h)[0].last_seen_at == START + timedelta(seconds=60)


def _open(h: Harness) -> int:
    with h.session() as s:
        return s.scalar(select(func.count()).select_from(AgentSession).where(AgentSession.ended_at.is_(None)))


def test_a_new_password_or_a_deactivation_ends_the_other_sessions_rows(h: Harness):
    from click.testing import CliRunner

    from bridge.cli import main

    here, there = signed_in(h, AGENT), signed_in(h, AGENT)
    signed_in(h, ADMIN)
    changed = here.post("/inbox/account/password", data={
        "current_password": AGENT[1], "new_password": "new-password-22", "confirm_password": "new-password-22",
        "csrf_token": here.csrf}, follow_redirects=True)
    assert b"Password changed. Your other sessions are signed out." in changed.data
    assert _signed_in_page(here) and not _signed_in_page(there)
    assert here.get("/inbox/account/sessions").data.decode().count("<tr data-session=") == 1  # the list agrees
    assert _open(h) == 2  # here, and the admin's
    later = signed_in(h, (AGENT[0], "new-password-22"))
    reset = CliRunner().invoke(main, ["agents", "set-password", AGENT[0]],
                               env={"REPLYFLOW_AGENT_PASSWORD": "reset-by-admin-1"})
    assert reset.exit_code == 0, reset.output
    assert _open(h) == 1 and not _signed_in_page(here) and not _signed_in_page(later)
    again = signed_in(h, (AGENT[0], "reset-by-admin-1"))
    assert CliRunner().invoke(main, ["agents", "deactivate", AGENT[0]]).exit_code == 0
    assert _open(h) == 1 and not _signed_in_page(again)  # the admin's own session is untouched


def test_prune_deletes_sessions_that_ended_before_the_cut_off(h: Harness):
    gone, expired = signed_in(h, AGENT), signed_in(h, AGENT)
    gone.post("/inbox/logout", data={"csrf_token": gone.csrf})
    del expired  # never signed out: it ends by itself after a week unused
    h.clock.advance(timedelta(days=20))
    recent = signed_in(h, AGENT)
    recent.post("/inbox/logout", data={"csrf_token": recent.csrf})
    kept = signed_in(h, ADMIN)
    for days in (6, 4):  # 30 days (and a minute) since the first two, 10 since the others; kept in use
        h.clock.advance(timedelta(days=days, minutes=days // 4))
        assert _signed_in_page(kept)
    engine, now = h.rt.db.engine, h.clock.now()
    assert count_prunable_sessions(engine, now, timedelta(days=30)) == 1  # signed out 30 days ago
    assert count_prunable_sessions(engine, now, timedelta(days=14)) == 2  # and the one unused since then
    assert prune_sessions(engine, now, timedelta(days=14)) == 2
    assert [r.created_at for r in _rows(h)] == [START + timedelta(days=20)] * 2  # recently ended, and open
    assert _signed_in_page(kept)
