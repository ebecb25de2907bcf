"""Issue 10, "Consent from the shop": without marketing consent a cart is recorded and no marketing
reminder goes; with the workspace setting cart_utility_without_consent on, one plain UTILITY notice
(cart_saved) goes instead and no second reminder. An opt-out always wins. Through the real bridge."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from core.metrics.report import report
from core.store.models import Cart, FlowRun, Message, Workspace
from tests.harness import Harness, triggered_at

NO_CONSENT = "checkouts_update_phone_in_shipping_only"  # checkout B: +15550004444, no SMS consent
B_TOKEN = "a41f09c7d3e24b18b6e5c2f0d9a87e13"
B_WA_ID = "15550004444"


@pytest.fixture(params=["inprocess", "rq"])
def h(request, tmp_path):
    if request.param == "rq":
        harness = Harness(tmp_path, runner="rq", redis_url=request.getfixturevalue("redis_url"))
    else:
        harness = Harness(tmp_path)
    yield harness
    harness.close()


def _setting(h: Harness, value: str | None) -> None:
    with h.session() as s:
        ws = s.scalars(select(Workspace)).one()
        settings = {k: v for k, v in (ws.settings or {}).items() if k != "cart_utility_without_consent"}
        ws.settings = settings if value is None else {**settings, "cart_utility_without_consent": value}


def _templates(h: Harness) -> list[str]:
    return [m.body["template"]["name"] for m in h.sandbox.sent if m.body["type"] == "template"]


def _abandon_b(h: Harness) -> None:
    """Checkout B arrives, then the clock runs past the delay, the reply wait and a second day."""
    h.clock.set(triggered_at(NO_CONSENT))
    assert h.shopify(NO_CONSENT).status_code == 200
    for hours in (1, 25, 49, 73):
        h.at(triggered_at(NO_CONSENT) + timedelta(hours=hours))


def _run(h: Harness) -> FlowRun:
    with h.session() as s:
        return s.scalars(select(FlowRun).where(FlowRun.subject == f"cart:{B_TOKEN}")).one()


@pytest.mark.parametrize("value", [None, "off"], ids=["default", "off"])
def test_off_without_consent_the_cart_is_recorded_and_nothing_is_sent(h, value):
    _setting(h, value)
    _abandon_b(h)
    assert h.sandbox.sent == []
    with h.session() as s:
        assert s.scalars(select(Cart.token)).all() == [B_TOKEN]
    run = _run(h)
    assert (run.status, run.step, run.outcome) == ("completed", "remind", "not sent: no marketing opt-in on record")


def test_on_without_consent_one_utility_notice_and_no_second_reminder(h):
    _setting(h, "on")
    _abandon_b(h)
    assert _templates(h) == ["cart_saved"]
    [sent] = h.sandbox.sent
    assert sent.body["to"] == "+15550004444"
    params = {p["parameter_name"]: p["text"] for p in sent.body["template"]["components"][0]["parameters"]}
    assert params["recovery_link"].startswith(f"https://lumen-tea-co.myshopify.com/64012345678/checkouts/{B_TOKEN}")
    assert not any(c["type"] == "button" for c in sent.body["template"]["components"])  # a plain notice
    h.sandbox.deliver_statuses("delivered")
    h.settle()
    run = _run(h)
    assert (run.status, run.outcome) == ("completed", "completed")
    with h.session() as s:
        [msg] = s.scalars(select(Message).where(Message.direction == "out")).all()
        assert (msg.template_name, msg.template_category, msg.flow_step, msg.flow_run_id, msg.status) == (
            "cart_saved", "UTILITY", "remind", run.id, "delivered")
        [skip] = s.scalars(select(Message).where(Message.direction == "sys", Message.kind == "template_skipped")).all()
        assert skip.flow_run_id == run.id
        assert skip.body == ("Template cart_reminder [en_US] not sent at step remind: no marketing opt-in on record; "
                             "sending the utility notice cart_saved instead (cart_utility_without_consent is on)")
        figures = report(s, s.scalars(select(Workspace.id)).one())
    by_template = {f.key: f for f in figures.templates}
    assert set(by_template) == {"cart_saved [en_US]"}
    assert (by_template["cart_saved [en_US]"].sent, by_template["cart_saved [en_US]"].delivered) == (1, 1)
    assert {f.key: f.sent for f in figures.steps} == {"cart_recovery/remind": 1}


def test_on_a_reply_to_the_notice_goes_to_an_agent_not_to_a_second_reminder(h):
    _setting(h, "on")
    h.clock.set(triggered_at(NO_CONSENT))
    h.shopify(NO_CONSENT)
    h.at(triggered_at(NO_CONSENT) + timedelta(hours=1))
    assert _templates(h) == ["cart_saved"]
    h.clock.advance(timedelta(minutes=5))
    assert h.sandbox.customer_sends(B_WA_ID, "Guest", text="is the blue one still there?").status_code == 200
    h.settle()
    run = _run(h)
    assert (run.status, run.step) == ("handed_off", "hand_off")
    h.at(h.clock.now() + timedelta(hours=50))
    assert _templates(h) == ["cart_saved"]


@pytest.mark.parametrize("value", ["on", "off"])
@pytest.mark.parametrize("stop", ["STOP", "STOP ALL"])
def test_an_opted_out_contact_gets_nothing_either_way(h, value, stop):
    _setting(h, value)
    h.clock.set(triggered_at(NO_CONSENT) - timedelta(minutes=10))
    assert h.sandbox.customer_sends(B_WA_ID, "Guest", text=stop).status_code == 200
    h.settle()
    confirmations = len(h.sandbox.sent)  # the one confirmation of the opt-out
    _abandon_b(h)
    assert _templates(h) == [] and len(h.sandbox.sent) == confirmations
    run = _run(h)
    assert run.status == "completed" and run.outcome.startswith("not sent: contact opted out")


@pytest.mark.parametrize("value", ["on", "off"])
def test_a_consented_contact_gets_the_marketing_reminder_as_before(h, value):
    _setting(h, value)
    assert h.shopify("checkouts_create").status_code == 200  # checkout A: Maya ticked SMS consent
    start = triggered_at("checkouts_create")
    h.at(start + timedelta(hours=1))
    assert _templates(h) == ["cart_reminder"]
    h.at(start + timedelta(hours=25))
    assert _templates(h) == ["cart_reminder", "cart_reminder_2"]
