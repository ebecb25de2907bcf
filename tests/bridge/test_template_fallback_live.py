"""End to end: a template paused by WhatsApp's webhook is not sent; the flow records why and sends
its fallback language through the sandbox, or hands off when nothing can go."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from bridge.template_sync import submit_templates
from core.store.models import Conversation, FlowRun, Message
from core.template_files import load_folder
from tests.harness import Harness

GOOD = Path(__file__).resolve().parent.parent / "fixtures" / "templates" / "good"
FLOW = """
name: winter_promo
version: 1
trigger: {event: promo_started}
steps:
  - id: announce
    send_template:
      name: winter_sale
      params: {first_name: "{{ contact.first_name }}", discount: "20%"}
      fallback:
        - language: en_US
        - handoff: the winter sale template cannot be sent
    goto: end
"""


@pytest.fixture(params=["sqlite", "postgres"])
def h(request, tmp_path):
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "winter_promo.yaml").write_text(FLOW)
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    harness = Harness(tmp_path, templates_dir=str(GOOD), flows_dir=str(flows), database_url=url)
    submit_templates(harness.rt, list(load_folder(GOOD)))
    yield harness
    harness.close()


def _start(h: Harness, phone: str, locale: str | None) -> None:
    contact = {"phone": phone, "first_name": "Lucía", **({"locale": locale} if locale else {})}
    response = h.api("POST", "/triggers", json={"event": "promo_started", "subject": f"promo:{phone}",
                                                "contact": contact, "data": {},
                                                "consent": {"marketing": "opt_in", "evidence": "signed up"}})
    assert response.status_code in (200, 202), response.text
    h.settle()


def _history(h: Harness) -> list[tuple[str, str, str | None, str | None]]:
    with h.session() as s:
        return [(m.kind, m.status, m.template_name, m.flow_step) for m in
                s.scalars(select(Message).where(Message.direction != "in").order_by(Message.id))]


def test_the_contacts_language_is_sent_when_approved(h):
    for language in ("en_US", "es"):
        h.sandbox.templates.review("winter_sale", language, "APPROVED")
    h.settle()
    _start(h, "+34555000001", None)  # a Spanish number: Spanish
    sent = h.sandbox.sent[-1].body["template"]
    assert (sent["name"], sent["language"]["code"]) == ("winter_sale", "es")
    assert _history(h) == [("template", "accepted", "winter_sale", "announce")]


def test_a_paused_language_falls_back_and_the_skip_is_in_the_history(h):
    h.sandbox.templates.review("winter_sale", "en_US", "APPROVED")
    h.sandbox.templates.review("winter_sale", "es", "PAUSED")
    h.settle()
    _start(h, "+15550002222", "es_ES")
    sent = h.sandbox.sent[-1].body["template"]
    assert (sent["name"], sent["language"]["code"]) == ("winter_sale", "en_US")
    with h.session() as s:
        skipped = s.scalars(select(Message.body).where(Message.kind == "template_skipped")).all()
    assert skipped == ["Template winter_sale [es] not sent at step announce: template is PAUSED, not APPROVED"]


def test_nothing_approved_hands_off_without_sending(h):
    h.sandbox.templates.review("winter_sale", "es", "REJECTED", reason="PROMOTIONAL")
    h.settle()  # en_US is still PENDING
    _start(h, "+15550002222", "es")
    assert h.sandbox.sent == []
    with h.session() as s:
        run = s.scalar(select(FlowRun))
        conv = s.scalar(select(Conversation))
        notes = s.scalars(select(Message.body).where(Message.kind == "template_skipped")).all()
    assert (run.status, run.outcome) == ("handed_off", "handed off: no template could be sent")
    assert conv.mode == "agent" and conv.handoff_reason == "the winter sale template cannot be sent"
    assert notes == ["Template winter_sale [es] not sent at step announce: template is REJECTED, not APPROVED",
                     "Template winter_sale [en_US] not sent at step announce: template is PENDING, not APPROVED"]


def test_a_send_refused_as_paused_marks_the_template_and_the_next_run_falls_back(h):
    for language in ("en_US", "es"):
        h.sandbox.templates.review("winter_sale", language, "APPROVED")
    h.settle()
    h.sandbox.templates.templates[("winter_sale", "es")].status = "PAUSED"  # paused; the webhook is late
    _start(h, "+34555000001", None)
    assert h.sandbox.sent == []
    with h.session() as s:
        failed = s.scalar(select(Message).where(Message.kind == "template"))
        errors = s.scalars(select(Message.body).where(Message.kind == "error")).all()
    assert (failed.status, failed.error_code) == ("failed", 132015)
    assert errors == ["Send failed (132015): template winter_sale [es] marked PAUSED: the next sends use the "
                      "flow's fallback"]
    _start(h, "+34555000002", None)  # the next Spanish contact gets the English version
    sent = h.sandbox.sent[-1].body["template"]
    assert (sent["name"], sent["language"]["code"]) == ("winter_sale", "en_US")
