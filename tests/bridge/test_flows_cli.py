"""`replyflow flows validate|simulate`: flow files checked against the catalogue, and a run played
in the terminal with the real engine and the real policy gate."""

from __future__ import annotations

import json
from importlib import resources

import pytest
import yaml
from click.testing import CliRunner

from bridge.cli import main
from bridge.flowsim import load_event, load_replies, validate_files
from core.flows.definition import load_flow

CART_FLOW = (resources.files("core.flows") / "shipped" / "cart_recovery.yaml").read_text(encoding="utf-8")

GOOD = """
name: nudge
version: 1
trigger: {event: cart_abandoned}
steps:
  - id: remind
    send_template:
      name: cart_reminder
      params:
        first_name: "{{ contact.first_name }}"
        cart_total: "{{ cart.total_display }}"
        recovery_link: "{{ cart.recovery_url }}"
"""

FOUR_BUTTONS = """
name: too_many
version: 1
trigger: {event: cart_abandoned}
steps:
  - id: ask
    send_text:
      text: Pick one
      buttons:
        - {id: a, title: A}
        - {id: b, title: B}
        - {id: c, title: C}
        - {id: d, title: D}
"""


def _run(*args: str, input: str | None = None):
    return CliRunner().invoke(main, ["flows", *args], input=input)


def _write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _event(tmp_path, **contact) -> str:
    event = load_event("cart_abandoned")
    event["contact"].update(contact)
    return _write(tmp_path, "event.json", json.dumps(event))


def _replies(tmp_path, *entries: dict) -> str:
    return _write(tmp_path, "replies.yaml", yaml.safe_dump(list(entries)))


# ---------------------------------------------------------------- validate


def test_validate_accepts_good_files(tmp_path):
    shipped = _write(tmp_path, "cart_recovery.yaml", CART_FLOW)
    good = _write(tmp_path, "nudge.yaml", GOOD)
    result = _run("validate", shipped, good)
    assert result.exit_code == 0, result.output
    assert f"ok: {shipped} ({len(load_flow(CART_FLOW).steps)} steps)" in result.output
    assert f"ok: {good} (1 steps)" in result.output


def test_validate_reports_each_bad_file_and_exits_1(tmp_path):
    good = _write(tmp_path, "nudge.yaml", GOOD)
    buttons = _write(tmp_path, "buttons.yaml", FOUR_BUTTONS)
    unknown = _write(tmp_path, "unknown.yaml", GOOD.replace("name: cart_reminder", "name: cart_remindr"))
    missing = _write(tmp_path, "missing.yaml", GOOD.replace('        recovery_link: "{{ cart.recovery_url }}"\n', ""))
    result = _run("validate", good, buttons, unknown, missing)
    assert result.exit_code == 1
    assert f"ok: {good} (1 steps)" in result.output
    assert f"ok: {buttons}" not in result.output and f"ok: {missing}" not in result.output
    assert f"{buttons}: step 'ask'.send_text.buttons: reply buttons allow 1 to 3, got 4" in result.output
    assert f"{unknown}: step 'remind': send_template.name: no template 'cart_remindr' in the catalogue" in result.output
    assert (f"{missing}: step 'remind': template 'cart_reminder' needs params first_name, cart_total, "
            f"recovery_link; missing recovery_link") in result.output
    assert "3 of 4 file(s) failed" in result.output


def test_validate_refuses_a_flow_named_like_a_campaign_in_the_report(tmp_path):
    clash = _write(tmp_path, "spring.yaml", GOOD.replace("name: nudge", "name: Campaign spring"))
    result = _run("validate", clash)
    assert result.exit_code == 1 and f"ok: {clash}" not in result.output
    assert (f"{clash}: name: 'Campaign spring' starts with 'campaign', a word kept for campaigns: `replyflow report` "
            "lists each campaign as 'campaign <its name>'") in result.output
    assert "give the flow another name, e.g. 'spring campaign'" in result.output


def test_validate_files_names_extra_params_and_unreadable_files(tmp_path):
    extra = _write(tmp_path, "extra.yaml", GOOD.replace("params:\n", "params:\n        coupon: SAVE10\n"))
    errors = validate_files([extra, str(tmp_path / "nope.yaml")])
    assert errors[0] == (f"{extra}: step 'remind': template 'cart_reminder' needs params first_name, cart_total, "
                         f"recovery_link; unknown coupon")
    assert errors[1].startswith(f"{tmp_path / 'nope.yaml'}: cannot read")
    assert validate_files([_write(tmp_path, "nudge.yaml", GOOD)]) == []


# ---------------------------------------------------------------- simulate


def test_simulate_help_button_hands_off(tmp_path):
    result = _run("simulate", "cart_recovery", "--event", _event(tmp_path),
                  "--replies", _replies(tmp_path, {"button": "cart_help"}))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "⏩ 1h later" in out
    assert "Hi Maya, you left items worth 112.00 USD in your cart." in out
    assert "[1] Complete my order   [2] I need help" in out
    assert "💬 Maya: [I need help] (button cart_help)" in out
    assert "→ agent: Customer asked for help with their cart" in out
    assert "■ end: handed off at step 'hand_off'" in out
    assert out.index("· remind: send template cart_reminder") < out.index("Hi Maya") < out.index(
        "· await_reply: waiting for a reply") < out.index("💬 Maya") < out.index("→ agent")
    assert "cart_reminder_2" not in out and "gate:" not in out


def test_simulate_a_typed_button_title_is_the_button(tmp_path):
    result = _run("simulate", "cart_recovery", "--event", _event(tmp_path),
                  "--replies", _replies(tmp_path, {"text": "I need help!"}))
    assert result.exit_code == 0, result.output
    assert "await_reply: reply matched button cart_help" in result.output
    assert "■ end: handed off at step 'hand_off'" in result.output and "re-asked" not in result.output


def test_simulate_two_waits_send_the_second_reminder_then_complete(tmp_path):
    result = _run("simulate", "cart_recovery", "--event", _event(tmp_path),
                  "--replies", _replies(tmp_path, {"wait": True}, {"wait": True}))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "📤 template cart_reminder_2 (MARKETING) to Maya:" in out
    assert "your cart worth 112.00 USD is still saved" in out
    assert out.count("no reply in time: ") == 2
    assert "■ end: completed at step 'end', Wed 07 Jan 2026 11:00 UTC" in out
    assert "→ agent" not in out


def test_simulate_without_marketing_opt_in_sends_nothing(tmp_path):
    result = _run("simulate", "cart_recovery", "--event", _event(tmp_path, marketing_opt_in=False),
                  "--replies", _replies(tmp_path))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "gate: template cart_reminder blocked: no marketing opt-in on record" in out
    assert "📤" not in out and "Hi Maya" not in out
    assert "■ end: completed (not sent: no marketing opt-in on record) at step 'remind'" in out


def test_simulate_quiet_hours_defer_to_nine_in_the_contacts_zone(tmp_path):
    result = _run("simulate", "cart_recovery", "--event", _event(tmp_path), "--at", "2026-01-05T22:30:00+01:00",
                  "--replies", _replies(tmp_path, {"button": "cart_complete"}))
    assert result.exit_code == 0, result.output
    out = result.output
    assert ("gate: template cart_reminder deferred until 09:00 Europe/Berlin on Tue 06 Jan "
            "(quiet hours in the contact's time zone)") in out
    assert "⏩ 9h30m later: Tue 06 Jan 2026 08:00 UTC (09:00 Europe/Berlin)" in out
    assert out.index("deferred until 09:00") < out.index("Hi Maya")
    assert "📤 text to Maya:" in out and "Here is your cart, just as you left it" in out
    assert "■ end: completed at step 'end'" in out


def test_simulate_stop_cancels_the_run(tmp_path):
    result = _run("simulate", "cart_recovery", "--event", "cart_abandoned",
                  "--replies", _replies(tmp_path, {"after": "2h", "text": "STOP"}))
    assert result.exit_code == 0, result.output
    assert "⏩ 2h later: Mon 05 Jan 2026 13:00 UTC" in result.output
    assert "consent: opt out by message; the run is cancelled" in result.output
    assert "■ end: cancelled (contact opted out)" in result.output


def test_simulate_interactive_picks_a_button_by_number(tmp_path):
    result = _run("simulate", "cart_recovery", "--event", "cart_abandoned", input="9\n1\n")
    assert result.exit_code == 0, result.output
    assert "pick a button between 1 and 2" in result.output
    assert "💬 Maya: [Complete my order] (button cart_complete)" in result.output
    assert "Here is your cart, just as you left it: https://shop.example.com/cart/recover/7d0c3b5e" in result.output


@pytest.mark.parametrize("replies, message", [
    ([{"button": "cart_nope"}], "button 'cart_nope' was not offered"),
    ([{"text": "hi", "wait": True}], "replies[0]: expected one of button, text, wait"),
    ([{"after": "soon"}], "replies[0].after: not a duration"),
])
def test_simulate_rejects_bad_replies(tmp_path, replies, message):
    result = _run("simulate", "cart_recovery", "--event", "cart_abandoned", "--replies", _replies(tmp_path, *replies))
    assert result.exit_code == 1
    assert message in result.output


def test_simulate_unknown_flow_and_event():
    result = _run("simulate", "nope", "--event", "cart_abandoned")
    assert result.exit_code == 1 and "no flow 'nope': not a file, nor a shipped flow (" in result.output
    assert "cart_recovery" in result.output.split("shipped flow")[1]
    result = _run("simulate", "cart_recovery", "--event", "nope.yaml")
    assert result.exit_code == 1 and "no event file 'nope.yaml'" in result.output


def test_examples_ship_as_package_data():
    assert load_event("cart_abandoned")["contact"]["first_name"] == "Maya"
    assert load_event("cart_abandoned_no_consent")["contact"]["marketing_opt_in"] is False
    assert [set(e) - {"where"} for e in load_replies("cart_replies_need_help")] == [{"wait"}, {"after", "button"}]


TEXT_FLOW = """
name: booking_note
version: 1
trigger: {event: booking_upcoming}
steps:
  - id: note
    send_text: "See you for your {{ event.service }}, {{ contact.first_name }} ({{ contact.tier }})."
"""


@pytest.mark.parametrize("last_inbound_at, sent", [("2026-01-05T09:00:00Z", True), (None, False)])
def test_simulate_event_data_and_the_service_window(tmp_path, last_inbound_at, sent):
    event = {"event": "booking_upcoming", "data": {"service": "Haircut"},
             "contact": {"first_name": "Ana", "properties": {"tier": "gold"}, "last_inbound_at": last_inbound_at}}
    result = _run("simulate", _write(tmp_path, "flow.yaml", TEXT_FLOW), "--event",
                  _write(tmp_path, "event.yaml", yaml.safe_dump(event)), "--replies", _replies(tmp_path))
    assert result.exit_code == 0, result.output
    assert ("   │ See you for your Haircut, Ana (gold)." in result.output) is sent
    assert ("gate: message needs template: the customer-service window is closed" in result.output) is not sent
