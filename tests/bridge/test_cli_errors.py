"""A `replyflow` command that fails says why in one line and exits non-zero; no Python traceback
unless asked for (`--debug`, REPLYFLOW_DEBUG=1). Every case here once printed a traceback."""

from __future__ import annotations

import socket

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from bridge import runtime
from bridge.cli import _Main, main
from bridge.config import SettingsError
from core import contacts, conversations
from core.events import ContactRef, PhoneCandidate
from core.store import session_scope
from core.store.models import Channel, Message, Workspace

_CLEARED = ("REDIS_URL", "WHATSAPP_ACCESS_TOKEN", "WHATSAPP_API_BASE", "WHATSAPP_MESSAGES_PER_SECOND",
            "REPLYFLOW_RETRY_INTERVALS", "REPLYFLOW_INGEST", "CART_ABANDON_DELAY", "REPLYFLOW_DEBUG")


def _closed_port() -> int:
    with socket.socket() as sock:  # bound, then closed: nothing listens there
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def cli(tmp_path, monkeypatch):
    runtime.set_runtime(None)
    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.chdir(tmp_path)

    def run(*args: str, **env: str):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return CliRunner().invoke(main, list(args))

    yield run
    if runtime._current is not None:
        runtime._current.close()
    runtime.set_runtime(None)


def _one_line_failure(result, expected: str, exit_code: int = 1) -> None:
    assert result.exit_code == exit_code, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # handled, not a crash
    assert "Traceback" not in result.output
    assert expected in result.output, result.output


@pytest.mark.parametrize("env, expected", [
    ({"WHATSAPP_MESSAGES_PER_SECOND": "abc"}, "configuration: WHATSAPP_MESSAGES_PER_SECOND must be a number"),
    ({"REPLYFLOW_RETRY_INTERVALS": "a"}, "configuration: REPLYFLOW_RETRY_INTERVALS must be seconds"),
    ({"REPLYFLOW_INGEST": "bogus"}, "configuration: REPLYFLOW_INGEST must be 'direct' or 'deferred'"),
    ({"CART_ABANDON_DELAY": "soon"}, "configuration: CART_ABANDON_DELAY: not a duration: 'soon'"),
    ({"REDIS_URL": "foo"}, "configuration: REDIS_URL must start with redis://"),
    ({"REDIS_URL": f"redis://127.0.0.1:{_closed_port()}/0"}, "cannot reach Redis at REDIS_URL"),
    ({"DATABASE_URL": "nonsense"}, "DATABASE_URL cannot be used"),
    ({"DATABASE_URL": "sqlite:////nonexistent/folder/x.db"}, "the database at DATABASE_URL cannot be used"),
], ids=["rate", "retry-intervals", "ingest", "cart-delay", "redis-url", "redis-unreachable", "database-url",
        "database-unopenable"])
def test_an_unusable_setting_or_service_is_one_line(cli, env, expected):
    _one_line_failure(cli("jobs", "failed", **env), expected)


def test_debug_shows_the_traceback(cli):
    result = cli("--debug", "jobs", "failed", REPLYFLOW_INGEST="bogus")
    assert isinstance(result.exception, SettingsError)
    result = cli("jobs", "failed", REPLYFLOW_DEBUG="1")
    assert isinstance(result.exception, SettingsError)


def test_a_segment_that_is_not_utf8_is_refused_before_any_row(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("WHATSAPP_API_BASE", f"http://127.0.0.1:{_closed_port()}")  # a sandbox's address
    (tmp_path / "segment.csv").write_bytes(b"phone,first_name\n+15550002222,Maya\n+15550002223,Jos\xe9\n")
    _one_line_failure(cli("campaign", "send", "cart_reminder", "--segment", "segment.csv"),
                      "segment segment.csv: line 3 is not UTF-8 text")
    with session_scope(runtime.get_runtime().db) as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 0


@pytest.mark.parametrize("group", ["templates", "flows"])
def test_validating_a_binary_file_names_it(cli, tmp_path, group):
    (tmp_path / "photo.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    _one_line_failure(cli(group, "validate", "photo.yaml"), "photo.yaml: not UTF-8 text (byte 0x89 at 0)")


def test_templates_sync_with_the_api_unreachable(cli):
    _one_line_failure(cli("templates", "sync", WHATSAPP_API_BASE=f"http://127.0.0.1:{_closed_port()}"),
                      "unreachable")


@pytest.mark.parametrize("url", ["ftp://x", "shop.example", "https://"])
def test_connect_woocommerce_needs_an_http_store_address(cli, url):
    _one_line_failure(cli("connect", "woocommerce", "--url", url), "is not a store address", exit_code=2)


def test_connect_woocommerce_to_a_store_that_does_not_answer(cli):
    result = cli("connect", "woocommerce", "--url", f"http://127.0.0.1:{_closed_port()}", "--key", "ck_1",
                 "--secret", "cs_1")
    _one_line_failure(result, "list webhooks: cannot connect to the store")
    assert "oauth" not in result.output.lower()


def test_reconcile_an_unknown_store(cli):
    _one_line_failure(cli("woocommerce", "reconcile", "--account", "nosuch"), "'nosuch' is not connected")


def test_report_into_a_missing_folder_is_refused_first(cli):
    _one_line_failure(cli("report", "--csv", "/nonexistent/x.csv"), "the folder /nonexistent does not exist",
                      exit_code=2)


def test_retry_without_redis_exits_1_as_its_help_says(cli):
    _one_line_failure(cli("jobs", "retry", "nosuch"), "failed jobs are only kept by RQ")


def test_an_empty_agent_reply_is_refused_and_nothing_changes(cli, monkeypatch):
    monkeypatch.setenv("WHATSAPP_API_BASE", f"http://127.0.0.1:{_closed_port()}")  # a sandbox's address
    rt = runtime.get_runtime()
    with session_scope(rt.db) as s:
        ws = s.scalar(select(Workspace).where(Workspace.slug == "default"))
        ref = ContactRef(platform="api", phones=(PhoneCandidate(raw="+15550002222", source="test"),))
        contact = contacts.resolve_ref(s, ws.id, ref, rt.clock.now()).contact
        channel = s.scalar(select(Channel).where(Channel.workspace_id == ws.id))
        conv = conversations.conversation_for(s, contact, channel.id, rt.clock.now())
        s.flush()
        conv_id = conv.id
    _one_line_failure(cli("agent", "reply", str(conv_id), "  "), "the reply is empty")
    with session_scope(rt.db) as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 0


@pytest.mark.parametrize("command", [("templates", "sync"), ("templates", "submit"), ("agent", "reply", "1", "hi"),
                                     ("campaign", "send", "cart_reminder", "--segment", "segment.csv")])
def test_a_command_that_would_send_in_sandbox_mode_without_a_sandbox_says_so(cli, tmp_path, command):
    """No WHATSAPP_ACCESS_TOKEN and no WHATSAPP_API_BASE: the Graph API with the sandbox's made-up
    token would answer 401 after the rows were written; the command refuses first."""
    (tmp_path / "segment.csv").write_text("phone,first_name\n+15550002222,Maya\n")
    (tmp_path / "templates").mkdir()
    result = cli(*command, REPLYFLOW_TEMPLATES_DIR=str(tmp_path / "templates"))
    _one_line_failure(result, "configuration: WHATSAPP_ACCESS_TOKEN is not set, so replyflow is in sandbox mode")
    assert "WHATSAPP_API_BASE" in result.output
    with session_scope(runtime.get_runtime().db) as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 0


def test_a_bug_is_one_line_that_asks_for_debug():
    @click.group(cls=_Main)
    @click.option("--debug", is_flag=True)
    def group(debug: bool) -> None:
        pass

    @group.command()
    def broken() -> None:
        {}["missing"]

    result = CliRunner().invoke(group, ["broken"])
    _one_line_failure(result, "unexpected KeyError: 'missing' (a bug: run `replyflow --debug ...`")
    assert isinstance(CliRunner().invoke(group, ["--debug", "broken"]).exception, KeyError)


def test_a_command_that_would_start_a_new_sqlite_file_says_where(cli, tmp_path):
    first = cli("agents", "list")
    assert first.exit_code == 0, first.output
    assert f"note: no database at {tmp_path / 'cli.db'} yet, so this command starts a new one" in first.output
    again = cli("agents", "list")
    assert again.exit_code == 0 and "note:" not in again.output  # the file exists now


def _listener(port: int = 0) -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def test_serve_names_its_own_port_when_another_program_holds_it(cli):
    with _listener() as held:
        port = held.getsockname()[1]
        result = cli("serve", "--port", str(port))
    _one_line_failure(result, f"port {port} is in use by another program: stop it, or choose another with --port")
    assert "sandbox" not in result.output  # the bridge's own port is checked first


def test_serve_says_when_the_sandbox_port_is_the_one_taken(cli):
    from bridge.servers import bind_error

    while True:  # a free port whose next one is held
        held = _listener()
        port = held.getsockname()[1] - 1
        if bind_error("127.0.0.1", port) is None:
            break
        held.close()
    with held:
        result = cli("serve", "--port", str(port))
    _one_line_failure(result, f"the built-in WhatsApp sandbox cannot listen on its port {port + 1} (--port + 1)")
    assert "choose another with --sandbox-port" in result.output


def test_serve_says_when_replyflow_already_runs_on_its_port(cli, tmp_path):
    from tests.harness import Harness

    (tmp_path / "running").mkdir()
    running = Harness(tmp_path / "running")
    try:
        port = int(running.server.url.rsplit(":", 1)[1])
        result = cli("serve", "--port", str(port))
    finally:
        running.close()
    _one_line_failure(result, f"replyflow is already running on port {port} (its /healthz answers)")


@pytest.mark.parametrize("args", [("jobs", "--help"), ("campaign", "--help"), ("agents", "add", "--help"),
                                  ("settings", "show", "--help"), ("agents",), ("agents", "nosuch")])
def test_help_or_a_mistyped_command_starts_no_database_and_says_none(cli, tmp_path, args):
    result = cli(*args)
    assert "note:" not in result.output and "Traceback" not in result.output, result.output
    assert not (tmp_path / "cli.db").exists()
