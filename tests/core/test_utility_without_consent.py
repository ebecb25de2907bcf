"""A contact without marketing consent: the gate says why it refuses, and a send_template step's
``without_consent`` notice goes instead only when the workspace allows it (never after an opt-out)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from core.commands import SendTemplate, SkipTemplate
from core.consent import ConsentState
from core.errors import FlowDefinitionError
from core.flows.definition import load_flow, shipped_flows
from core.flows.engine import RunState, Wake, advance, start
from core.gate import Outgoing, Policy, Verdict, decide
from core.outbox import outgoing_for
from core.session import Session
from core.templates import default_catalogue

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=timezone.utc)  # 15:00 UTC: not quiet hours
MARKETING = Outgoing(template_category="MARKETING", template_status="APPROVED")
NONE = ConsentState()
OPTED_IN = ConsentState(marketing_opt_in=True)
OPTED_OUT = ConsentState(marketing_opt_out=True)
ALL_OUT = ConsentState(all_opt_out=True)
ON, OFF = Policy.from_settings({"cart_utility_without_consent": "on"}), Policy.from_settings({})
FLOW = shipped_flows()["cart_recovery"]
URL = "https://shop.example/cart/recover/abc"
CTX = {"settings": {}, "contact": {"first_name": "Jonas"}, "cart": {"total_display": "59.90 EUR", "recovery_url": URL}}


@pytest.mark.parametrize("value, expected", [
    (None, False), ("off", False), ("on", True), ("ON ", True), (True, True), (False, False), ("yes", True),
])
def test_the_setting_is_off_by_default_and_reads_on_off(value, expected):
    settings = {} if value is None else {"cart_utility_without_consent": value}
    assert Policy.from_settings(settings).utility_without_consent is expected


def test_a_setting_the_gate_cannot_read_is_refused():
    with pytest.raises(ValueError, match="cart_utility_without_consent: expected 'on' or 'off'"):
        Policy.from_settings({"cart_utility_without_consent": "sometimes"})


@pytest.mark.parametrize("consent, policy, missing, instead, reason", [
    (NONE, OFF, True, False, "no marketing opt-in on record"),
    (NONE, ON, True, True, "no marketing opt-in on record"),
    (OPTED_OUT, ON, False, False, "contact opted out of marketing"),
    (ALL_OUT, ON, False, False, "contact opted out of all messages"),
], ids=["no-consent-off", "no-consent-on", "opted-out", "stop-all"])
def test_the_gate_says_when_only_an_opt_in_is_missing(consent, policy, missing, instead, reason):
    decision = decide(MARKETING, consent=consent, session=Session(), now=NOW, policy=policy)
    assert decision.verdict is Verdict.BLOCKED and decision.reason == reason
    assert (decision.missing_consent, decision.utility_instead) == (missing, instead)


def test_a_consented_contact_is_allowed_and_nothing_is_flagged():
    decision = decide(MARKETING, consent=OPTED_IN, session=Session(), now=NOW, policy=ON)
    assert decision.allowed and not decision.missing_consent and not decision.utility_instead


def _gate(consent: ConsentState, policy: Policy):
    """The real gate over the shipped catalogue, for one contact (what the bridge binds per run)."""
    catalogue = default_catalogue()
    return lambda command: decide(outgoing_for(command, catalogue), consent=consent, session=Session(), now=NOW,
                                  policy=policy)


def _remind(consent: ConsentState, policy: Policy):
    state = start(FLOW, CTX, NOW, _gate(consent, policy)).state
    assert state.step == "wait_for_abandonment"
    return advance(FLOW, state, Wake("wait_for_abandonment"), CTX, state.wake_at, _gate(consent, policy))


def test_on_without_consent_the_utility_notice_goes_instead_and_the_skip_is_recorded():
    adv = _remind(NONE, ON)
    skip, notice = adv.commands
    assert isinstance(skip, SkipTemplate) and skip.template == "cart_reminder" and skip.step == "remind"
    assert skip.reason == ("no marketing opt-in on record; sending the utility notice cart_saved instead "
                           "(cart_utility_without_consent is on)")
    assert notice == SendTemplate(template="cart_saved", params={"first_name": "Jonas", "recovery_link": URL})
    assert notice.step == "remind"
    assert adv.state.step == "await_reply_to_notice" and adv.state.waiting_for == "reply"
    # no reply: the run ends; the second (marketing) reminder is never tried
    later = adv.state.wake_at
    end = advance(FLOW, adv.state, Wake("await_reply_to_notice"), CTX, later, _gate(NONE, ON))
    assert end.commands == () and end.state.status == "completed"


def test_off_without_consent_nothing_is_sent_as_before():
    adv = _remind(NONE, OFF)
    assert adv.commands == ()
    assert adv.state == RunState(step="remind", status="completed", outcome="not sent: no marketing opt-in on record")
    assert "remind: no utility notice instead: the workspace setting cart_utility_without_consent is off" in adv.notes


@pytest.mark.parametrize("consent", [OPTED_OUT, ALL_OUT], ids=["opted-out", "stop-all"])
@pytest.mark.parametrize("policy", [ON, OFF], ids=["on", "off"])
def test_an_opt_out_always_wins_nothing_is_sent(consent, policy):
    adv = _remind(consent, policy)
    assert adv.commands == () and adv.state.status == "completed"
    assert adv.state.outcome.startswith("not sent: contact opted out")


def test_a_consented_contact_gets_the_marketing_reminder_either_way():
    adv = _remind(OPTED_IN, ON)
    [reminder] = adv.commands
    assert reminder.template == "cart_reminder" and adv.state.step == "await_reply"


def test_a_notice_the_gate_refuses_is_recorded_and_the_step_is_blocked():
    """A notice template that is itself MARKETING (e.g. re-categorised by Meta) needs consent too."""
    text = FLOW.text.replace("template: cart_saved", "template: cart_reminder_2").replace(
        "          recovery_link: \"{{ cart.recovery_url }}\"\n        goto: await_reply_to_notice",
        "          recovery_link: \"{{ cart.recovery_url }}\"\n          cart_total: x\n        goto: await_reply_to_notice")
    flow = load_flow(text)
    gate = _gate(NONE, ON)
    state = start(flow, CTX, NOW, gate).state
    adv = advance(flow, state, Wake("wait_for_abandonment"), CTX, state.wake_at, gate)
    assert [type(c).__name__ for c in adv.commands] == ["SkipTemplate", "SkipTemplate"]
    assert adv.commands[1].template == "cart_reminder_2"
    assert adv.state.outcome == "not sent: no marketing opt-in on record"


def test_the_shipped_flow_names_a_utility_notice():
    assert FLOW.step("remind").without_consent.template == "cart_saved"
    assert default_catalogue().get("cart_saved", None).category.value == "UTILITY"


@pytest.mark.parametrize("body, message", [
    ("{template: cart_saved, when: always}", "unknown field(s) when"),
    ("{params: {first_name: x}}", "without_consent.template: expected a non-empty string"),
    ("{template: cart_saved, goto: nowhere}", "send_template.without_consent.goto: no step named 'nowhere'"),
    ("cart_saved", "expected 'key: value' lines, got text 'cart_saved'"),
])
def test_the_flow_language_checks_without_consent(body, message):
    text = ("name: t\nversion: 1\ntrigger:\n  event: cart_abandoned\nsteps:\n  - id: remind\n    send_template:\n"
            f"      name: cart_reminder\n      without_consent: {body}\n")
    with pytest.raises(FlowDefinitionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_flow(text)



def test_a_notice_whatsapp_re_categorised_as_marketing_needs_consent_again():
    """Meta re-categorises a utility template that promotes: the category it reports wins over ours."""
    catalogue, notice = default_catalogue(), SendTemplate(template="cart_saved", params={})
    assert outgoing_for(notice, catalogue).template_category == "UTILITY"
    reported = outgoing_for(notice, catalogue, lambda name, language: (None, "MARKETING"))
    assert (reported.template_category, reported.template_status) == ("MARKETING", "APPROVED")
    decision = decide(reported, consent=NONE, session=Session(), now=NOW, policy=ON)
    assert decision.verdict is Verdict.BLOCKED and decision.missing_consent
