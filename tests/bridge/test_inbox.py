"""The agent inbox through Flask's test client: accounts, sessions, CSRF, roles, the list and its
filters, the thread, the composer and the gate, take/release/close, the live stream, the sandbox phone."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from core import handoff
from core.store.models import Agent, Contact, Conversation, Message
from bridge.app import create_app
from bridge.cli import main
from bridge.config import Settings, SettingsError
from bridge.inbox.links import conversation_url
from bridge.inbox.security import SecretKeyMissing, secret_key_for
from tests.harness import Harness
from tests.inbox_support import ADMIN, AGENT, NAME, WA_ID, add_agents, cart_handed_off, csrf_of, past_window, signed_in


@pytest.fixture
def h(bridge: Harness) -> Harness:
    add_agents(bridge)
    return bridge


def _messages(h: Harness, conv_id: int) -> list[Message]:
    with h.session() as s:
        return list(s.scalars(select(Message).where(Message.conversation_id == conv_id).order_by(Message.id)))


def test_sign_in_lands_on_the_deep_link_and_cookies_are_locked_down(h: Harness):
    client = create_app(h.rt).test_client()
    assert conversation_url(h.rt.settings, 7) == "http://127.0.0.1:8000/inbox/conversations/7"
    first = client.get("/inbox/conversations/7")
    assert first.status_code == 302 and first.headers["Location"] == "/inbox/login?next=/inbox/conversations/7"
    page = client.get(first.headers["Location"])
    token = csrf_of(page.data)
    assert b'name="next" value="/inbox/conversations/7"' in page.data
    wrong = client.post("/inbox/login", data={"email": AGENT[0], "password": "not-it-at-all", "csrf_token": token,
                                              "next": "/inbox/conversations/7"})
    assert wrong.status_code == 401 and b"Wrong email or password" in wrong.data
    ok = client.post("/inbox/login", data={"email": AGENT[0].upper(), "password": AGENT[1], "csrf_token": token,
                                           "next": "/inbox/conversations/7"})
    assert ok.status_code == 302 and ok.headers["Location"] == "/inbox/conversations/7"
    cookie = ok.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie  # sandbox: plain http
    evil = client.post("/inbox/login", data={"email": AGENT[0], "password": AGENT[1],
                                             "csrf_token": csrf_of(client.get("/inbox/login").data),
                                             "next": "//evil.example/x"})
    assert evil.headers["Location"] == "/inbox/"  # an off-site next is ignored


def test_secure_cookies_and_the_secret_key(h: Harness, tmp_path):
    app = create_app(replace(h.rt, settings=replace(h.rt.settings, secure_cookies=True)))
    assert app.config["SESSION_COOKIE_SECURE"] is True
    production = replace(h.rt.settings, sandbox=False, secret_key=None)
    with pytest.raises(SecretKeyMissing, match="REPLYFLOW_SECRET_KEY"):
        create_app(replace(h.rt, settings=production))
    embedded = replace(h.rt.settings, database_url=f"sqlite:///{tmp_path / 'x.db'}", secret_key=None)
    key = secret_key_for(embedded)
    assert len(key) == 64 and secret_key_for(embedded) == key  # generated once, then kept
    assert (tmp_path / "x.db.secret-key").stat().st_mode & 0o077 == 0
    assert secret_key_for(replace(embedded, secret_key="given")) == "given"


def test_posts_without_the_csrf_token_are_refused(h: Harness):
    conv_id = cart_handed_off(h)
    client = create_app(h.rt).test_client()
    assert client.post("/inbox/login", data={"email": AGENT[0], "password": AGENT[1]}).status_code == 400
    client = signed_in(h)
    before = len(_messages(h, conv_id))
    refused = client.post(f"/inbox/conversations/{conv_id}/reply", data={"text": "hello"})
    assert refused.status_code == 400 and b"CSRF" in refused.data
    wrong = client.post(f"/inbox/conversations/{conv_id}/take", data={"csrf_token": "forged"})
    assert wrong.status_code == 400
    assert len(_messages(h, conv_id)) == before
    with h.session() as s:
        assert s.get(Conversation, conv_id).assignee is None


def test_only_admins_manage_agents_and_see_metrics(h: Harness):
    agent = signed_in(h, AGENT)
    assert agent.get("/inbox/admin/agents").status_code == 403
    assert agent.get("/inbox/admin/metrics").status_code == 403
    assert agent.post("/inbox/admin/agents", data={"email": "x@example.com", "password": "long-enough-1",
                                                   "role": "admin", "csrf_token": agent.csrf}).status_code == 403
    admin = signed_in(h, ADMIN)
    short = admin.post("/inbox/admin/agents", data={"email": "cy@example.com", "password": "short", "role": "agent",
                                                    "csrf_token": admin.csrf})
    assert short.status_code == 400 and b"at least 10 characters" in short.data
    added = admin.post("/inbox/admin/agents", data={"email": "cy@example.com", "password": "long-enough-1",
                                                    "role": "agent", "name": "Cy", "csrf_token": admin.csrf})
    assert added.status_code == 200 and b"Added cy@example.com (agent)" in added.data
    with h.session() as s:
        cy = s.scalars(select(Agent).where(Agent.email == "cy@example.com")).one()
        assert cy.password_hash != "long-enough-1" and cy.password_hash.startswith(("scrypt:", "pbkdf2:"))
    signed_in(h, ("cy@example.com", "long-enough-1"))
    page = admin.get("/inbox/admin/metrics")  # no flow has run: the tables say so (the figures: test_inbox_metrics)
    assert page.status_code == 200 and b"<h2>Flows</h2>" in page.data and b"No flow has run yet." in page.data


def test_list_puts_the_queue_first_filters_searches_and_counts_unread(h: Harness):
    conv_id = cart_handed_off(h)  # Maya: waiting for an agent
    for wa_id, name in (("15550003333", "Jonas Berg"), ("15550004444", "Lea Sommer"), ("15550005555", "Omar Haddad")):
        h.sandbox.customer_sends(wa_id, name, text="hi there")
    h.settle()
    with h.session() as s:
        by_phone = {p: s.get(Conversation, cid) for cid, p in s.execute(
            select(Conversation.id, Contact.phone_e164).join(Contact, Contact.id == Conversation.contact_id))}
        handoff.take(s, by_phone["+15550004444"], AGENT[0], h.clock.now())  # Lea: mine
        omar = by_phone["+15550005555"].id
    client = signed_in(h)
    client.post(f"/inbox/conversations/{omar}/close", data={"csrf_token": client.csrf})  # Omar: closed

    def names(url: str) -> list[str]:
        html = client.get(url).data.decode()
        return [n for n in ("Maya", "Jonas", "Lea", "Omar") if f">{n}" in html]

    everything = client.get("/inbox/").data.decode()
    assert everything.index(">Maya") < everything.index(">Lea") < everything.index(">Jonas")  # queue, mine, rest
    assert names("/inbox/?filter=waiting") == ["Maya"]
    assert names("/inbox/?filter=mine") == ["Lea"]
    assert names("/inbox/?filter=bot") == ["Jonas"]
    assert names("/inbox/?filter=closed") == ["Omar"]
    assert names("/inbox/?q=jonas") == ["Jonas"]
    assert names("/inbox/?q=555000-4444") == ["Lea"]
    row = f'data-conversation="{conv_id}"'
    maya = everything[everything.index(row):].split("</tr>")[0]
    assert 'title="unread">1<' in maya  # the tap on "I need help"
    client.get(f"/inbox/conversations/{conv_id}")  # reading clears it
    maya = client.get("/inbox/").data.decode().split(row)[1].split("</tr>")[0]
    assert 'title="unread"' not in maya
    h.sandbox.customer_sends(WA_ID, NAME, text="are you there?")
    h.sandbox.customer_sends("15550005555", "Omar Haddad", text="one more thing")  # after it was closed
    h.settle()
    maya = client.get("/inbox/").data.decode().split(row)[1].split("</tr>")[0]
    assert 'title="unread">1<' in maya
    assert names("/inbox/?filter=waiting") == ["Maya", "Omar"] and names("/inbox/?filter=closed") == ["Omar"]
    assert "wrote after it was closed" in client.get("/inbox/?filter=waiting").data.decode()


def test_thread_shows_history_context_and_the_window(h: Harness):
    conv_id = cart_handed_off(h)
    h.sandbox.deliver_statuses("read")
    h.settle()
    html = signed_in(h).get(f"/inbox/conversations/{conv_id}").data.decode()
    assert "template <b>cart_reminder</b>" in html and "✓✓ read" in html  # the template with its ticks
    assert "I need help" in html and "Handed off to an agent: Customer asked for help with their cart" in html
    assert "cart_recovery · step <b>hand_off</b>" in html
    assert "82.00 USD" in html and "/recover" in html  # the cart and its link to the shop
    assert "marketing opt-in" in html
    assert "window open: 23h 59m left" in html or "window open: 24h 00m left" in html


def test_composer_inside_the_window_then_the_gate_refuses_free_text(h: Harness):
    conv_id = cart_handed_off(h)
    client = signed_in(h)
    assert client.post(f"/inbox/conversations/{conv_id}/take", data={"csrf_token": client.csrf}).status_code == 302
    sent = client.post(f"/inbox/conversations/{conv_id}/reply", data={"text": "Hi Maya, I can help.",
                                                                      "csrf_token": client.csrf})
    assert sent.status_code == 302
    h.settle()
    assert h.sandbox.sent[-1].body["text"]["body"] == "Hi Maya, I can help."
    past_window(h)
    page = client.get(f"/inbox/conversations/{conv_id}").data.decode()
    assert "24-hour window closed: templates only" in page and 'name="text"' not in page
    refused = client.post(f"/inbox/conversations/{conv_id}/reply", data={"text": "Still there?",
                                                                         "csrf_token": client.csrf},
                          follow_redirects=True)
    assert "Not sent: the customer-service window is closed" in refused.data.decode()
    assert _messages(h, conv_id)[-1].status == "blocked"
    form = {"template": "welcome_optin", "language": "en_US", "param_first_name": "Maya", "csrf_token": client.csrf}
    first = client.post(f"/inbox/conversations/{conv_id}/template", data=form, follow_redirects=True)
    assert "Not sent" not in first.data.decode()  # opted in; the cart reminder was the first of two a week
    capped = client.post(f"/inbox/conversations/{conv_id}/template", data=form, follow_redirects=True)
    assert "Not sent: frequency cap: 2 marketing messages in 7 days" in capped.data.decode()
    h.settle()
    preview = client.get("/inbox/templates/preview?template=conversation_reopen&language=en_US&param_first_name=Maya")
    assert preview.json["ok"] and preview.json["text"].startswith("Hi Maya, we have an answer")
    count = len(h.sandbox.sent)
    ok = client.post(f"/inbox/conversations/{conv_id}/template", data={
        "template": "conversation_reopen", "language": "en_US", "param_first_name": "Maya", "csrf_token": client.csrf})
    assert ok.status_code == 302
    h.settle()
    assert len(h.sandbox.sent) == count + 1 and h.sandbox.sent[-1].body["template"]["name"] == "conversation_reopen"


def test_take_assign_release_close(h: Harness):
    conv_id = cart_handed_off(h)
    client = signed_in(h)
    client.post(f"/inbox/conversations/{conv_id}/take", data={"csrf_token": client.csrf})
    with h.session() as s:
        assert (s.get(Conversation, conv_id).mode, s.get(Conversation, conv_id).assignee) == ("agent", AGENT[0])
    client.post(f"/inbox/conversations/{conv_id}/assign", data={"agent": ADMIN[0], "csrf_token": client.csrf})
    with h.session() as s:
        assert s.get(Conversation, conv_id).assignee == ADMIN[0]
    client.post(f"/inbox/conversations/{conv_id}/close", data={"csrf_token": client.csrf})
    with h.session() as s:
        assert (s.get(Conversation, conv_id).mode, s.get(Conversation, conv_id).assignee) == ("closed", None)
    client.post(f"/inbox/conversations/{conv_id}/release", data={"csrf_token": client.csrf})
    h.settle()
    with h.session() as s:
        assert s.get(Conversation, conv_id).mode == "bot"
    notes = [m.body for m in _messages(h, conv_id) if m.direction == "sys"]
    assert any(n.startswith("Released to the bot by agent@example.com") for n in notes)
    assert any(n.startswith("Context for the bot:") for n in notes)


def test_events_stream_reports_a_change(h: Harness):
    client = signed_in(h)
    client.application.config.update(INBOX_SSE_POLL=0.02, INBOX_SSE_MAX=0.2)
    assert client.get("/inbox/events").status_code == 200
    stream = client.get("/inbox/events?cursor=stale").get_data(as_text=True)
    assert "event: change" in stream and "id: " in stream
    anonymous = create_app(h.rt).test_client()
    refused = anonymous.get("/inbox/events")  # EventSource cannot read a 401: it is told, and goes to sign in
    assert refused.status_code == 200 and refused.get_data(as_text=True).endswith("event: signed-out\ndata: \n\n")


def test_a_stream_looks_once_by_default_and_the_page_cursor_makes_reconnecting_quiet(h: Harness):
    """Under gunicorn's sync workers a stream that stays open holds a whole worker, so by default
    a stream looks once and ends; the browser asks again with the page's cursor (or the last
    event's id), and hears "change" only when something moved since."""
    client = signed_in(h)
    assert client.application.config["INBOX_SSE_MAX"] == 0
    assert Settings.from_env({}).inbox_stream_seconds is None  # the server's default
    assert Settings.from_env({"REPLYFLOW_INBOX_STREAM_SECONDS": "30"}).inbox_stream_seconds == 30
    with pytest.raises(SettingsError, match="REPLYFLOW_INBOX_STREAM_SECONDS must be seconds from 0"):
        Settings.from_env({"REPLYFLOW_INBOX_STREAM_SECONDS": "forever"})
    longer = create_app(replace(h.rt, settings=replace(h.rt.settings, inbox_stream_seconds=30)))
    assert longer.config["INBOX_SSE_MAX"] == 30
    page = client.get("/inbox/").get_data(as_text=True)
    events = re.search(r'data-events="([^"]+)"', page).group(1).replace("&amp;", "&")
    quiet = client.get(events).get_data(as_text=True)  # nothing moved since the page was rendered
    assert quiet == "retry: 2000\n\n"  # one look, nothing to say: the response has ended
    h.sandbox.customer_sends(WA_ID, NAME, text="Hello?")
    h.settle()
    moved = client.get(events).get_data(as_text=True)
    stamp = re.search(r"id: (\S+)\nevent: change\n", moved).group(1)
    assert client.get(events, headers={"Last-Event-ID": stamp}).get_data(as_text=True) == "retry: 2000\n\n"


def _sign_out(h: Harness, client) -> None:
    client.post("/inbox/logout", data={"csrf_token": client.csrf})


def _deactivate(h: Harness, client) -> None:
    from bridge.inbox.accounts import deactivate

    with h.session() as s:
        deactivate(s, s.scalars(select(Agent).where(Agent.email == AGENT[0])).one(), h.clock.now())


def _expire(h: Harness, client) -> None:
    from bridge.inbox.sessions import SESSION_IDLE

    h.clock.advance(SESSION_IDLE)


def _signed_out_everywhere(h: Harness, client) -> None:  # a raised session version, rows left open
    with h.session() as s:
        s.scalars(select(Agent).where(Agent.email == AGENT[0])).one().session_version += 1


@pytest.mark.parametrize("end", [_sign_out, _deactivate, _expire, _signed_out_everywhere])
def test_an_open_stream_ends_with_its_session(h: Harness, end):
    """A stream opened while signed in stops at its next look once the session is over, saying so,
    and never tells a signed-out page about a change (it used to go on until its time was up)."""
    client = signed_in(h)
    client.application.config.update(INBOX_SSE_POLL=0.02, INBOX_SSE_MAX=3)
    page = client.get("/inbox/").get_data(as_text=True)
    events = re.search(r'data-events="([^"]+)"', page).group(1).replace("&amp;", "&")
    stream = client.get(events, buffered=False)  # signed in: the stream is open, its first look not yet made
    assert stream.status_code == 200
    end(h, client)
    h.sandbox.customer_sends(WA_ID, NAME, text="Anyone there?")  # a change the signed-out page must not hear of
    h.settle()
    body = stream.get_data(as_text=True)
    assert "event: change" not in body and body.endswith("\n\nevent: signed-out\ndata: \n\n"), body
    again = client.get(events).get_data(as_text=True)  # the browser asking again is told the same
    assert again.endswith("event: signed-out\ndata: \n\n") and "change" not in again


def test_sandbox_phone_posts_through_the_signed_webhook(h: Harness):
    assert signed_in(h, AGENT).get("/inbox/sandbox/phone").status_code == 403
    admin = signed_in(h, ADMIN)
    page = admin.get("/inbox/sandbox/phone?wa_id=15550006666&name=Ines")
    assert page.status_code == 200 and b"No messages yet" in page.data
    admin.post("/inbox/sandbox/phone", data={"wa_id": "15550006666", "name": "Ines", "text": "hello shop",
                                             "csrf_token": admin.csrf})
    h.settle()
    with h.session() as s:
        contact = s.scalars(select(Contact).where(Contact.wa_id == "15550006666")).one()
        assert contact.profile_name == "Ines"
        assert s.scalars(select(Message.body).where(Message.contact_id == contact.id,
                                                    Message.direction == "in")).all() == ["hello shop"]


def test_cli_adds_the_first_admin(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    from bridge.runtime import set_runtime

    set_runtime(None)
    try:
        result = CliRunner().invoke(main, ["agents", "add", "Boss@Example.com", "--role", "admin"],
                                    input="a-long-password\na-long-password\n")
        assert result.exit_code == 0, result.output
        assert "boss@example.com added (admin)" in result.output
        again = CliRunner().invoke(main, ["agents", "add", "boss@example.com"], input="another-password\n" * 2)
        assert again.exit_code != 0 and "already exists" in again.output
        listed = CliRunner().invoke(main, ["agents", "list"])
        assert "boss@example.com\tadmin\tactive" in listed.output
    finally:
        from bridge.runtime import get_runtime

        get_runtime().close()
        set_runtime(None)


@pytest.mark.parametrize("public_url, line", [
    (None, "sign in at http://127.0.0.1:8000/inbox/login (set REPLYFLOW_PUBLIC_URL to the address your agents use)"),
    ("https://shop.example.com/", "sign in at https://shop.example.com/inbox/login\n"),
])
def test_cli_add_says_where_to_sign_in(tmp_path, monkeypatch, public_url, line):
    from bridge.runtime import get_runtime, set_runtime

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.delenv("REPLYFLOW_PUBLIC_URL", raising=False)
    if public_url:
        monkeypatch.setenv("REPLYFLOW_PUBLIC_URL", public_url)
    set_runtime(None)
    try:
        result = CliRunner().invoke(main, ["agents", "add", "ana@example.com"], input="a-long-password\n" * 2)
        assert result.exit_code == 0, result.output
        assert line in result.output
    finally:
        get_runtime().close()
        set_runtime(None)


def test_a_sandbox_seals_platform_tokens_with_its_generated_key_not_a_key_in_the_source(tmp_path):
    from core.sealed import SealError, Sealer
    from bridge.config import Settings
    from bridge.secret_keys import LEGACY_SANDBOX_KEY, sealing_keys_for

    sandbox = Settings(database_url=f"sqlite:///{tmp_path / 'shop.db'}")
    keys = sealing_keys_for(sandbox)
    assert keys[0] == secret_key_for(sandbox) and keys[0] != LEGACY_SANDBOX_KEY  # the generated file's key seals
    sealed = Sealer(keys).seal({"token": "shpat_sandbox"})
    with pytest.raises(SealError):
        Sealer((LEGACY_SANDBOX_KEY,)).open(sealed)  # the key printed in the source cannot open it
    old = Sealer((LEGACY_SANDBOX_KEY,)).seal({"token": "sealed-before"})
    assert Sealer(keys).open(old) == {"token": "sealed-before"}  # tokens sealed before still open
    live = replace(sandbox, secret_key="a-long-random-key", secret_keys=("a-long-random-key",), sandbox=False)
    assert sealing_keys_for(live) == ("a-long-random-key",)


def test_a_sandbox_on_postgresql_shares_one_generated_key_between_its_processes(tmp_path, monkeypatch):
    """gunicorn's workers each built their own key when the database was no SQLite file: a signed-in
    agent was sent back to the login page whenever a request reached another worker."""
    import multiprocessing

    from bridge.config import Settings

    monkeypatch.chdir(tmp_path)
    settings = Settings(database_url="postgresql+psycopg://postgres@127.0.0.1:5432/none")
    with multiprocessing.get_context("spawn").Pool(4) as pool:  # processes starting together
        keys = pool.map(secret_key_for, [settings] * 8)
    assert len(set(keys)) == 1 and len(keys[0]) == 64
    assert secret_key_for(settings) == keys[0]
    assert (tmp_path / "replyflow.secret-key").stat().st_mode & 0o077 == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["replyflow.secret-key"]  # no candidates left behind
