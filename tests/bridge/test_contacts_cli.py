"""`replyflow contacts show|export|erase`: what an admin uses to prove consent and answer privacy requests."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from bridge import runtime
from bridge.cli import main
from bridge.config import Settings
from core import contacts, privacy
from core.events import ConsentAction, ConsentPurpose, ConsentSignal, ContactRef, PhoneCandidate
from core.outbox import record_consent
from core.store import session_scope
from core.store.models import ConsentEvent, Contact, ErasedContact, Workspace

T0 = datetime(2025, 11, 3, 14, 2, 11, tzinfo=timezone.utc)
T1 = datetime(2025, 11, 5, 9, 30, 0, tzinfo=timezone.utc)
PHONE = "+15550002222"


@pytest.fixture
def database_url(tmp_path, monkeypatch):
    url = "sqlite:///" + str(tmp_path / "cli.db")
    runtime.set_runtime(None)
    rt = runtime.build_runtime(Settings(database_url=url))
    with session_scope(rt.db) as s:
        ws = s.scalar(select(Workspace).where(Workspace.slug == "default"))
        ref = ContactRef(platform="shopify", external_id="7700000000101", first_name="Maya", last_name="Lindqvist",
                         email="maya@example.com", phones=(PhoneCandidate(raw=PHONE, source="checkout.phone"),))
        maya = contacts.resolve_ref(s, ws.id, ref, T0).contact
        for action, source, evidence, at in (
                (ConsentAction.OPT_IN, "shopify.checkout", '{"buyer_accepts_sms_marketing":true}', T0),
                (ConsentAction.OPT_OUT, "whatsapp.keyword", "STOP", T1)):
            record_consent(s, maya, ConsentSignal(purpose=ConsentPurpose.MARKETING, action=action, source=source,
                                                  evidence=evidence, at=at), T1)
    rt.close()
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "160")
    yield url
    runtime.get_runtime().close()
    runtime.set_runtime(None)


def _run(*args: str, input: str | None = None):
    return CliRunner().invoke(main, ["contacts", *args], input=input)


def _contact(url: str) -> Contact:
    rt = runtime.get_runtime()
    assert rt.settings.database_url == url
    with session_scope(rt.db) as s:
        return s.scalars(select(Contact)).one()


@pytest.mark.parametrize("args", [[PHONE], ["(555) 000-2222", "--country", "US"], ["1 555 000 2222", "--country", "us"]])
def test_show_prints_the_contact_and_the_whole_ledger(database_url, args):
    result = _run("show", *args)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Maya Lindqvist" in out and PHONE in out and "maya@example.com" in out
    assert "shopify:7700000000101" in out
    assert "marketing: opted out" in out and "whatsapp.keyword" in out
    for row in (("2025-11-03T14:02:11+00:00", "marketing", "opt_in", "shopify.checkout", "buyer_accepts_sms"),
                ("2025-11-05T09:30:00+00:00", "marketing", "opt_out", "whatsapp.keyword", "STOP")):
        [line] = [x for x in out.splitlines() if row[0] in x and row[2] in x]
        assert all(cell in line for cell in row), line


@pytest.mark.parametrize("command", ["show", "export", "erase"])
def test_clear_errors_exit_1(database_url, command):
    unknown = _run(command, "+15550009999")
    assert unknown.exit_code == 1 and "no contact with that phone number" in unknown.output
    invalid = _run(command, "555 12", "--country", "US")
    assert invalid.exit_code == 1 and "not a phone number: too short for US" in invalid.output
    national = _run(command, "555 000 2222")
    assert national.exit_code == 1 and "not a phone number: national number without a country" in national.output


def test_export_to_stdout_and_to_a_file(database_url, tmp_path):
    result = _run("export", PHONE)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["contact"]["first_name"] == "Maya" and data["found"] is True
    assert [e["source"] for e in data["consent"]["ledger"]] == ["shopify.checkout", "whatsapp.keyword"]
    out = tmp_path / "out" / "maya.json"
    result = _run("export", "(555) 000-2222", "--country", "US", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert str(out) in result.output and PHONE not in result.output
    assert json.loads(out.read_text())["contact"]["phone_e164"] == PHONE


def test_erase_asks_first(database_url):
    refused = _run("erase", PHONE, input="n\n")
    assert refused.exit_code == 1 and "Aborted" in refused.output
    assert _contact(database_url).phone_e164 == PHONE
    accepted = _run("erase", PHONE, input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert "+*******2222" in accepted.output and "erased" in accepted.output
    assert _contact(database_url).phone_e164 is None


def test_erase_with_yes_then_the_contact_is_gone(database_url):
    result = _run("erase", "(555) 000-2222", "--country", "US", "--yes")
    assert result.exit_code == 0, result.output
    rt = runtime.get_runtime()
    with session_scope(rt.db) as s:
        assert (c := s.scalars(select(Contact)).one()).first_name is None and c.email is None
        assert {e.evidence for e in s.scalars(select(ConsentEvent))} == {privacy.REDACTED}
        assert len(s.scalars(select(ErasedContact)).all()) == 1  # the one phone key
        assert privacy.was_erased(s, c.workspace_id, [PHONE], rt.settings.erase_salt)
    again = _run("show", PHONE)
    assert again.exit_code == 1 and "no contact with that phone number" in again.output
