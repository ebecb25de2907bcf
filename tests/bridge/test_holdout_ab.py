"""Hold-out and A/B through the real bridge: the groups are recorded on the run, a held-out contact
gets nothing, each arm sends its own template, and the report counts it all from the records."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from core.flows.assign import assignment_vars, bucket, in_holdout, variants_for
from core.flows.definition import load_flow
from core.metrics import report
from core.store.models import FlowRun, Message, Workspace
from tests.harness import Harness

FLOW = """
name: welcome_test
version: 1
holdout: 40%
trigger: {event: signed_up, reentry: ignore}
steps:
  - id: hello
    send_template:
      params: {first_name: "{{ contact.first_name }}"}
      variants:
        - {name: warm, template: welcome_optin}
        - {name: short, template: conversation_reopen}
"""
PHONES = [f"+1555000{n:04d}" for n in range(101, 111)]


def test_assignment_is_deterministic_and_near_the_share():
    flow = load_flow(FLOW)
    assert bucket("holdout", "welcome_test", 7) == bucket("holdout", "welcome_test", 7)
    held = sum(in_holdout(flow, cid) for cid in range(1, 2001))
    assert 720 <= held <= 880  # 40 % of 2000 = 800, within ±4 standard deviations (±88)
    arms = [variants_for(flow, cid)["hello"] for cid in range(1, 2001)]
    assert 900 <= arms.count("warm") <= 1100 and set(arms) == {"warm", "short"}
    no_groups = load_flow(FLOW.replace("holdout: 40%\n", "").replace(
        "      variants:\n        - {name: warm, template: welcome_optin}\n"
        "        - {name: short, template: conversation_reopen}\n", "      name: welcome_optin\n"))
    assert assignment_vars(no_groups, 1) == {}


@pytest.fixture(params=["sqlite", "postgres"])
def h(request, tmp_path):
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "welcome_test.yaml").write_text(FLOW)
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    harness = Harness(tmp_path, flows_dir=str(flows), database_url=url)
    yield harness
    harness.close()


def test_held_out_contacts_get_nothing_and_each_arm_its_template(h):
    for phone in PHONES:
        h.trigger("signed_up", f"signup:{phone}", phone=phone, consent="opt_in")
    flow = h.rt.flows["welcome_test"]
    with h.session() as s:
        runs = s.scalars(select(FlowRun).order_by(FlowRun.id)).all()
        sent = {m.flow_run_id: m for m in s.scalars(select(Message).where(Message.direction == "out"))}
        assert len(runs) == len(PHONES)
        for run in runs:
            groups = assignment_vars(flow, run.contact_id)
            assert run.vars["_holdout"] is groups["_holdout"]
            if run.vars["_holdout"]:
                assert (run.status, run.outcome, run.id in sent) == ("completed", "held out", False)
            else:
                arm = run.vars["_variants"]["hello"]
                assert arm == groups["_variants"]["hello"]
                assert sent[run.id].template_name == {"warm": "welcome_optin", "short": "conversation_reopen"}[arm]
                assert sent[run.id].flow_step == "hello"
        held = [r for r in runs if r.vars["_holdout"]]
        treated = [r for r in runs if not r.vars["_holdout"]]
        assert held and treated  # both groups exist among these ten contacts
        first_treated_phone = next(p for p, r in zip(PHONES, runs) if not r.vars["_holdout"])
    assert len(h.sandbox.sent) == len(treated)
    h.sandbox.deliver_statuses("read")
    h.settle()
    h.clock.advance(timedelta(minutes=3))
    h.sandbox.customer_sends(first_treated_phone.lstrip("+"), "Maya", text="Pricing please")
    h.settle()
    with h.session() as s:
        ws = s.scalar(select(Workspace))
        result = report(s, ws.id)
    [figures] = result.flows
    assert (figures.runs, figures.contacted, figures.sent, figures.delivered, figures.read) == (
        len(treated), len(treated), len(treated), len(treated), len(treated))
    assert (figures.replied, figures.median_reply_seconds) == (1, 180.0)
    [lift] = result.holdouts
    assert (lift.treated.n, lift.control.n, lift.treated.hits, lift.control.hits) == (len(treated), len(held), 0, 0)
    arms = {v.variant: v for v in result.variants}
    assert sum(v.runs for v in arms.values()) == len(treated)
    assert sum(v.reply.hits for v in arms.values()) == 1


def test_flows_validate_checks_variant_and_fallback_templates(tmp_path):
    from bridge.flowsim import check_file

    good = tmp_path / "good.yaml"
    good.write_text(FLOW)
    assert check_file(str(good))[1] == []
    bad = tmp_path / "bad.yaml"
    bad.write_text(FLOW.replace("template: conversation_reopen", "template: no_such_template") +
                   "      fallback:\n        - language: es\n        - handoff: sorry\n")
    problems = check_file(str(bad))[1]
    assert len(problems) == 2
    assert problems[0].startswith(f"{bad}: step 'hello': send_template.variants[1]: no template 'no_such_template'")
    assert problems[1].startswith(f"{bad}: step 'hello': send_template.fallback[0]: template 'welcome_optin' has no "
                                  "'es' version")
