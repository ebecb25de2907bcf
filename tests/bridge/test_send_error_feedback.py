"""Failed sends teach the system: 131050 opts out, 131049 waits a day for one retry, 131026 marks
the number (unless it is an incident), 131047 closes the window. Through the real webhook path."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from core.store.models import ConsentEvent, Contact, Incident, Message
from tests.harness import Harness, triggered_at


def _error(code: int, title: str) -> list[dict]:
    return [{"code": code, "title": title, "message": title, "error_data": {"details": title}}]


def _reminder(h: Harness) -> Message:
    h.shopify("checkouts_create")
    h.at(triggered_at("checkouts_create") + timedelta(hours=1))
    with h.session() as s:
        return s.scalars(select(Message).where(Message.direction == "out")).one()


def test_131050_records_a_marketing_opt_out_and_blocks_the_next_marketing_send(bridge: Harness):
    msg = _reminder(bridge)
    bridge.whatsapp(bridge.status_webhook(msg.wamid, "failed", _error(131050, "User stopped marketing")))
    with bridge.session() as s:
        last = s.scalars(select(ConsentEvent).order_by(ConsentEvent.id.desc())).first()
        assert (last.action, last.source) == ("opt_out", "whatsapp.error_131050")
    # the same status delivered again teaches nothing twice
    bridge.whatsapp(bridge.status_webhook(msg.wamid, "failed", _error(131050, "User stopped marketing")))
    with bridge.session() as s:
        assert s.scalar(select(func.count()).select_from(ConsentEvent).where(
            ConsentEvent.source == "whatsapp.error_131050")) == 1


def test_131049_is_not_an_opt_out_and_holds_the_next_reminder_a_day(bridge: Harness):
    msg = _reminder(bridge)
    bridge.clock.advance(timedelta(hours=2))
    failed_at = bridge.clock.now()
    bridge.whatsapp(bridge.status_webhook(msg.wamid, "failed", _error(131049, "healthy ecosystem engagement")))
    with bridge.session() as s:
        assert s.scalars(select(ConsentEvent.action)).all() == ["opt_in", "opt_in"]  # no opt-out added
    bridge.at(failed_at + timedelta(hours=23, minutes=59))  # the flow's timeout passed, but it must wait
    assert len(bridge.sandbox.sent) == 1
    bridge.at(failed_at + timedelta(hours=24))
    assert [m.body["template"]["name"] for m in bridge.sandbox.sent] == ["cart_reminder", "cart_reminder_2"]


def test_131049_outside_a_flow_is_retried_once_a_day_later(bridge: Harness):
    from core.commands import SendTemplate
    from core.feedback import apply_send_error
    from core.outbox import queue
    from core.store.models import Conversation

    _reminder(bridge)  # gives Maya a contact, a conversation and a marketing opt-in
    now = bridge.clock.now() + timedelta(days=3)
    with bridge.session() as s:
        contact, conv = s.scalars(select(Contact)).one(), s.scalars(select(Conversation)).one()
        command = SendTemplate(template="cart_reminder", params={"first_name": "Maya", "cart_total": "1 USD",
                                                                 "recovery_link": "https://example.com/r"})
        campaign, _ = queue(s, contact=contact, conv=conv, command=command, author="campaign",
                            catalogue=bridge.rt.catalogue, now=now)
        campaign.status, campaign.error_code = "failed", 131049
        apply_send_error(s, campaign, "per_user_limit", 131049, "limit", now)
        apply_send_error(s, campaign, "per_user_limit", 131049, "limit", now)  # the same lesson twice
        retry = s.scalars(select(Message).where(Message.idempotency_key == f"retry-131049:{campaign.id}")).one()
        assert (retry.status, retry.not_before) == ("queued", now + timedelta(hours=24))
        retry.status = "failed"
        assert "no further retry" in apply_send_error(s, retry, "per_user_limit", 131049, "limit", now)
        assert s.scalar(select(func.count()).select_from(Message).where(
            Message.idempotency_key.like("retry-131049:%"))) == 1


def test_131026_marks_the_number_undeliverable(bridge: Harness):
    msg = _reminder(bridge)
    bridge.whatsapp(bridge.status_webhook(msg.wamid, "failed", _error(131026, "Message undeliverable")))
    with bridge.session() as s:
        assert s.get(Contact, msg.contact_id).deliverability == "131026: Message undeliverable"
        assert s.scalar(select(func.count()).select_from(ConsentEvent).where(ConsentEvent.action == "opt_out")) == 0


def test_many_contacts_failing_at_once_is_an_incident_not_applied_to_each(bridge: Harness):
    from core.feedback import INCIDENT_THRESHOLD

    contacts = [f"1555000{7000 + i:04d}" for i in range(INCIDENT_THRESHOLD + 2)]
    for wa_id in contacts:  # each writes, an agent answers (free-form, inside the window)
        bridge.sandbox.customer_sends(wa_id, "C", text="hi")
    bridge.settle()
    with bridge.session() as s:
        conversations = s.scalars(select(Message.conversation_id).where(Message.direction == "in")).all()
    for conv_id in conversations:
        assert bridge.api("POST", f"/conversations/{conv_id}/messages", json={"text": "hello"}).status_code == 202
    bridge.settle()
    for sent in bridge.sandbox.sent:
        bridge.whatsapp(bridge.status_webhook(sent.wamid, "failed", _error(131026, "Message undeliverable"),
                                              recipient=sent.to.lstrip("+")), settle=False)
    bridge.settle()
    with bridge.session() as s:
        marked = s.scalar(select(func.count()).select_from(Contact).where(Contact.deliverability.is_not(None)))
        incident = s.scalars(select(Incident)).one()
    assert marked == INCIDENT_THRESHOLD - 1  # the ones before the threshold was reached
    assert incident.code == 131026 and incident.contacts == len(contacts)


def test_131047_closes_our_record_of_the_window(bridge: Harness):
    bridge.sandbox.customer_sends("15550002222", "Maya", text="hi")
    bridge.settle()
    with bridge.session() as s:
        conv_id = s.scalar(select(Message.conversation_id))
    assert bridge.api("POST", f"/conversations/{conv_id}/messages", json={"text": "one"}).status_code == 202
    bridge.settle()
    wamid = bridge.sandbox.sent[0].wamid
    bridge.whatsapp(bridge.status_webhook(wamid, "failed", _error(131047, "Re-engagement message")))
    refused = bridge.api("POST", f"/conversations/{conv_id}/messages", json={"text": "two"})
    assert refused.status_code == 409 and "window is closed" in refused.json()["error"]
    bridge.clock.advance(timedelta(minutes=1))
    bridge.sandbox.customer_sends("15550002222", "Maya", text="still there?")  # a new message reopens it
    bridge.settle()
    assert bridge.api("POST", f"/conversations/{conv_id}/messages", json={"text": "yes"}).status_code == 202
