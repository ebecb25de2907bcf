"""`replyflow connect hubspot --token`: connects the portal the token belongs to, creates the contact
properties once, and keeps the token sealed; a refused token exits 1 with HubSpot's reason."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from bridge.cli import main
from bridge.servers import ServerThread
from core.sealed import Sealer
from core.store import Database, session_scope
from core.store.models import Installation
from tests.emulators.hubspot import HubSpotEmulator, create_hubspot_app

TOKEN = "pat-na1-test-cli"
KEY = "a-test-sealing-key-that-is-long-enough"


@pytest.fixture
def portal():
    emu = HubSpotEmulator(private_tokens={TOKEN}, time_zone="Europe/Berlin")
    server = ServerThread(create_hubspot_app(emu))
    emu.url = server.url
    yield emu
    server.stop()


def test_connect_hubspot_with_a_private_app_token(tmp_path, portal):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {"DATABASE_URL": url, "HUBSPOT_API_BASE": portal.url, "REPLYFLOW_SECRET_KEY": KEY,
           "WHATSAPP_ACCESS_TOKEN": "", "REDIS_URL": ""}
    first = CliRunner().invoke(main, ["connect", "hubspot", "--token", TOKEN], env=env)
    assert first.exit_code == 0, first.output
    assert "Connected HubSpot portal 24681357" in first.output
    assert "whatsapp_marketing_opt_in" in first.output
    again = CliRunner().invoke(main, ["connect", "hubspot", "--token", TOKEN], env=env)
    assert again.exit_code == 0 and "none (they exist)" in again.output
    db = Database(url)
    with session_scope(db) as s:
        inst = s.scalar(select(Installation).where(Installation.platform == "hubspot"))
        assert inst.account == "24681357" and TOKEN not in inst.credentials
        assert Sealer([KEY]).open(inst.credentials) == {"access_token": TOKEN}
        assert inst.config["write_all_contacts"] is True and inst.config["time_zone"] == "Europe/Berlin"
        assert inst.config["write_kinds"] == ["message", "handoff", "release", "outcome"]
        assert inst.config["requests_per_10s"] == 100 and inst.config["api_base"] == portal.url
        assert inst.config["phone_properties"] == ["phone", "mobilephone", "hs_whatsapp_phone_number"]
    db.dispose()
    refused = CliRunner().invoke(main, ["connect", "hubspot", "--token", "pat-wrong"], env=env)
    assert refused.exit_code == 1 and "401" in refused.output


def test_connect_hubspot_oauth_prints_a_single_use_invitation_not_the_api_token(tmp_path):
    from bridge import runtime

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {"DATABASE_URL": url, "HUBSPOT_CLIENT_ID": "app-1", "HUBSPOT_CLIENT_SECRET": "app-secret",
           "REPLYFLOW_PUBLIC_URL": "https://bridge.example.test", "REPLYFLOW_API_TOKEN": "the-admin-token",
           "WHATSAPP_ACCESS_TOKEN": "", "REDIS_URL": ""}
    try:
        result = CliRunner().invoke(main, ["connect", "hubspot", "--oauth"], env=env)
    finally:
        if runtime._current is not None:  # the command built the process's runtime from env
            runtime._current.close()
        runtime.set_runtime(None)
    assert result.exit_code == 0, result.output
    assert "https://bridge.example.test/hubspot/install?invite=" in result.output and "works once" in result.output
    assert "the-admin-token" not in result.output and "key=" not in result.output
    nonce = result.output.split("invite=", 1)[1].split()[0]
    db = Database(url)
    with session_scope(db) as s:
        pending = s.scalar(select(Installation).where(Installation.platform == "hubspot"))
        assert pending.status == "pending" and nonce not in pending.account and pending.credentials is None
    db.dispose()


def test_connect_hubspot_when_hubspot_cannot_be_reached_says_so_in_one_line(tmp_path):
    import socket

    with socket.socket() as sock:  # bound then closed: nothing listens there
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "HUBSPOT_API_BASE": f"http://127.0.0.1:{closed}",
           "REPLYFLOW_SECRET_KEY": KEY, "WHATSAPP_ACCESS_TOKEN": "", "REDIS_URL": ""}
    result = CliRunner().invoke(main, ["connect", "hubspot", "--token", TOKEN], env=env)
    assert result.exit_code == 1
    assert f"Cannot reach HubSpot at http://127.0.0.1:{closed}" in result.output
    assert "refused" not in result.output.split(":")[0] and "HTTP error occurred" not in result.output
