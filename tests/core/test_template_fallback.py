"""A send_template step whose template cannot go (paused, rejected, missing) records why and follows
its declared fallback: another language, another template, then hand off or go to a step. The
language comes from the contact's locale or phone country, with a fallback order."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from core.commands import HandOff, SendTemplate, SkipTemplate
from core.errors import FlowDefinitionError
from core.flows.definition import Fallback, load_flow
from core.flows.engine import start
from core.gate import Decision, Verdict
from core.languages import choose_language, language_of_phone

NOW = datetime(2026, 1, 5, 10, 0, tzinfo=timezone.utc)
CTX = {"settings": {}, "contact": {"first_name": "Ana"}}

FLOW = """
name: promo
version: 1
trigger: {event: promo_started}
steps:
  - id: announce
    send_template:
      name: winter_sale
      params: {first_name: "{{ contact.first_name }}", discount: "20%"}
      fallback:
        - language: en_US
        - template: welcome_optin
          params: {first_name: "{{ contact.first_name }}"}
        - handoff: "no promo template can be sent to {{ contact.first_name }}"
    goto: end
"""


class Statuses:
    """The gate as the engine sees it: templates named here are unavailable, with this reason."""

    def __init__(self, **down: str) -> None:
        self.down, self.seen = down, []

    def __call__(self, command):
        self.seen.append((command.template, command.language))
        reason = self.down.get(f"{command.template}:{command.language}") or self.down.get(command.template)
        if reason:
            return Decision(verdict=Verdict.BLOCKED, reason=reason, template_problem=True)
        return Decision(verdict=Verdict.ALLOWED)


def test_the_first_template_that_can_go_is_sent_and_each_skip_is_recorded():
    check = Statuses(**{"winter_sale:None": "template is PAUSED, not APPROVED"})
    adv = start(load_flow(FLOW), CTX, NOW, check)
    assert check.seen == [("winter_sale", None), ("winter_sale", "en_US")]
    assert adv.commands == (
        SkipTemplate(template="winter_sale", language=None, reason="template is PAUSED, not APPROVED", step="announce"),
        SendTemplate(template="winter_sale", language="en_US", params={"first_name": "Ana", "discount": "20%"}),
    )
    assert adv.commands[1].step == "announce"
    assert adv.state.status == "completed"
    assert "announce: template winter_sale not sent: template is PAUSED, not APPROVED" in adv.notes


def test_another_template_then_hand_off():
    check = Statuses(winter_sale="template is REJECTED, not APPROVED")
    adv = start(load_flow(FLOW), CTX, NOW, check)
    assert adv.commands[-1] == SendTemplate(template="welcome_optin", params={"first_name": "Ana"})
    check = Statuses(winter_sale="template is REJECTED, not APPROVED", welcome_optin="template is DISABLED, not APPROVED")
    adv = start(load_flow(FLOW), CTX, NOW, check)
    assert [type(c).__name__ for c in adv.commands] == ["SkipTemplate", "SkipTemplate", "SkipTemplate", "HandOff"]
    assert adv.commands[-1] == HandOff(reason="no promo template can be sent to Ana")
    assert (adv.state.status, adv.state.outcome) == ("handed_off", "handed off: no template could be sent")


def test_a_policy_refusal_is_not_a_template_problem_so_no_fallback_is_tried():
    check = lambda command: Decision(verdict=Verdict.BLOCKED, reason="no marketing opt-in on record")  # noqa: E731
    adv = start(load_flow(FLOW), CTX, NOW, check)
    assert adv.commands == () and adv.state.outcome == "not sent: no marketing opt-in on record"


def test_goto_fallback_and_no_fallback():
    flow = load_flow(FLOW.replace('- handoff: "no promo template can be sent to {{ contact.first_name }}"',
                                  "- goto: apologise").replace("    goto: end\n", "    goto: end\n"
                                                               "  - id: apologise\n    handoff: sorry\n"))
    assert flow.step("announce").fallbacks[-1] == Fallback(goto="apologise")
    adv = start(flow, CTX, NOW, Statuses(winter_sale="x", welcome_optin="y"))
    assert adv.commands[-1] == HandOff(reason="sorry")
    bare = load_flow(FLOW.split("      fallback:")[0] + "    goto: end\n")
    adv = start(bare, CTX, NOW, Statuses(winter_sale="template is PAUSED, not APPROVED"))
    assert adv.state.outcome == "not sent: template is PAUSED, not APPROVED"


@pytest.mark.parametrize("fallback, message", [
    ("[]", "send_template.fallback: expected a list"),
    ("[{handoff: x}, {language: es}]", "send_template.fallback[0]: handoff ends the fallbacks: put it last"),
    ("[{goto: nowhere}]", "send_template.fallback[0].goto: no step named 'nowhere'"),
    ("[{handoff: x, language: es}]", "send_template.fallback[0]: handoff and goto stand alone"),
    ("[{params: {a: b}}]", "send_template.fallback[0]: give a language, a template"),
    ("[{lang: es}]", "send_template.fallback[0]: unknown field(s) lang"),
])
def test_fallbacks_are_validated(fallback, message):
    text = FLOW.split("      fallback:")[0] + f"      fallback: {fallback}\n"
    with pytest.raises(FlowDefinitionError, match="step 'announce'." + message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        load_flow(text, "promo.yaml")


@pytest.mark.parametrize("available, locale, phone, fallback, chosen", [
    (["en_US", "es"], "es_MX", None, (), "es"),  # the locale's language, regional or not
    (["en_US", "es_ES", "es_MX"], "es-mx", None, (), "es_MX"),
    (["en_US", "pt_BR"], "pt", None, (), "pt_BR"),
    (["en_US", "es"], None, "+34555000001", (), "es"),  # the phone's country (Spain)
    (["en_US", "de"], None, "+4915550000001", (), "de"),
    (["en_US", "es"], "fr", "+33555000001", ("es",), "es"),  # neither: the workspace's order
    (["en_US", "es"], "fr", None, (), "en_US"),  # nothing matches: the template's first language
    ([], "fr", None, (), None),
])
def test_language_choice(available, locale, phone, fallback, chosen):
    assert choose_language(available, locale=locale, phone=phone, fallback=fallback) == chosen


def test_language_of_phone():
    assert language_of_phone("+15550001111") == "en_US"
    assert language_of_phone("+5215550001111") == "es_MX"
    assert language_of_phone("not a phone") is None


def test_the_workspace_fallback_order_comes_from_its_settings():
    from core.gate import Policy

    assert Policy.from_settings({"template_languages": "es, en_US"}).template_languages == ("es", "en_US")
    assert Policy.from_settings({"template_languages": ["pt_BR"]}).template_languages == ("pt_BR",)
    assert Policy.from_settings({}).template_languages == ()
