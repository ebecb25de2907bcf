"""`replyflow settings` sets what the gate and the flows read; `flows validate` checks a notice for
contacts without marketing consent is a UTILITY template."""

from __future__ import annotations

from importlib import resources

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from bridge import runtime
from bridge.cli import main
from bridge.config import Settings
from core.store import session_scope
from core.store.models import Workspace


@pytest.fixture
def database_url(tmp_path, monkeypatch):
    url = "sqlite:///" + str(tmp_path / "cli.db")
    runtime.set_runtime(None)
    runtime.build_runtime(Settings(database_url=url)).close()
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.delenv("REDIS_URL", raising=False)
    yield url
    runtime.get_runtime().close()
    runtime.set_runtime(None)


def _settings() -> dict:
    with session_scope(runtime.get_runtime().db) as s:
        return dict(s.scalar(select(Workspace).where(Workspace.slug == "default")).settings)


def test_set_show_unset_and_bad_values_refused(database_url):
    run = CliRunner().invoke
    shown = run(main, ["settings", "show"]).output
    for line in ("quiet_hours = 21:00-09:00 (default)", "marketing_cap = 2/7d (default)", "timezone = UTC (default)",
                 "template_languages = none: the template's first language (default)",
                 "cart_abandon_delay = 1h (default)", "cart_utility_without_consent = off (default)"):
        assert line in shown, shown
    done = run(main, ["settings", "set", "cart_utility_without_consent", "on"])
    assert done.exit_code == 0 and done.output == "cart_utility_without_consent = on (workspace 'default')\n"
    assert _settings() == {"cart_utility_without_consent": "on"}
    shown = run(main, ["settings", "show"]).output
    assert "cart_utility_without_consent = on    #" in shown and "quiet_hours = 21:00-09:00 (default)" in shown
    runtime.get_runtime().close()
    runtime.set_runtime(None)  # the next command reads the environment again
    assert "cart_abandon_delay = 30m (default)" in run(main, ["settings", "show"], env={"CART_ABANDON_DELAY": "30m"}).output
    bad = run(main, ["settings", "set", "cart_utility_without_consent", "sometimes"])
    assert bad.exit_code == 1 and "expected 'on' or 'off'" in bad.output
    assert run(main, ["settings", "set", "quiet_hours", "late"]).exit_code == 1
    assert run(main, ["settings", "set", "no_such_setting", "1"]).exit_code == 2
    assert _settings() == {"cart_utility_without_consent": "on"}
    assert run(main, ["settings", "unset", "cart_utility_without_consent"]).exit_code == 0
    assert _settings() == {}


def test_a_time_zone_or_quiet_hours_the_gate_cannot_read_is_refused_with_the_setting_named(database_url):
    run = CliRunner().invoke
    for value in ("Mars/Base", "Europe", "europe/madrid"):  # the gate would silently use UTC instead
        bad = run(main, ["settings", "set", "timezone", value])
        assert bad.exit_code == 1 and "timezone: not a time zone" in bad.output
    bad = run(main, ["settings", "set", "quiet_hours", "25:00-08:00"])
    assert bad.exit_code == 1 and "quiet_hours: hours are 00-23" in bad.output
    assert run(main, ["settings", "set", "timezone", "Europe/Madrid"]).exit_code == 0
    assert _settings() == {"timezone": "Europe/Madrid"}


def test_the_gate_falls_back_when_a_time_zone_names_a_folder():
    from core.gate import _zone

    assert str(_zone("Europe", "UTC")) == "UTC"


def test_flows_validate_refuses_a_marketing_notice_for_contacts_without_consent(tmp_path):
    shipped = (resources.files("core.flows") / "shipped" / "cart_recovery.yaml").read_text()
    assert CliRunner().invoke(main, ["flows", "validate", str(resources.files("core.flows") / "shipped" /
                                                              "cart_recovery.yaml")]).exit_code == 0
    edited = tmp_path / "cart.yaml"
    edited.write_text(shipped.replace("template: cart_saved", "template: welcome_optin").replace(
        "          recovery_link: \"{{ cart.recovery_url }}\"\n        goto:", "        goto:"))
    result = CliRunner().invoke(main, ["flows", "validate", str(edited)])
    assert result.exit_code == 1
    assert "without_consent: template 'welcome_optin' is MARKETING; a contact without marketing consent may " \
           "only get a UTILITY template" in result.output
