"""The bulk sender (send_batch): exactly-once claims, the number's rate and the pair limit on a fake
clock, what each API error does to a row, and unknown outcomes reconciled by callback data."""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select

from bridge import bulk
from bridge.ratelimit import LocalLimiter, LocalPairLimiter
from bridge.servers import ServerThread
from core import contacts
from core.commands import SendTemplate
from core.conversations import conversation_for
from core.events import ConsentAction, ConsentPurpose, ConsentSignal, ContactRef, PhoneCandidate
from core.outbox import queue, recheck, record_consent
from core.recheck import BatchRecheck
from core.store.models import Channel, Contact, InboundEvent, Message, TemplateRecord, Workspace
from tests.conftest import fixture_bytes
from tests.emulators.cloud_api import LATE, OK, ScriptedCloudApi, error

PARAMS = {"first_name": "Ada", "cart_total": "$10.00", "recovery_link": "https://shop.example.com/cart/r/1"}


def phones(start: int, n: int) -> list[str]:
    return [f"+1555000{start + i:04d}" for i in range(n)]


def queued(bridge, numbers: list[str], *, key: str = "bulk", consent: ConsentAction = ConsentAction.OPT_IN) -> list[int]:
    """Outbox rows, one per number (a number listed twice gets two rows), queued by the gate."""
    now = bridge.clock.now()
    ids = []
    with bridge.session() as s:
        ws = s.scalar(select(Workspace).where(Workspace.slug == "default"))
        ws.settings = {**(ws.settings or {}), "quiet_hours": "off", "marketing_cap": "off"}
        channel = s.scalar(select(Channel.id))
        for i, phone in enumerate(numbers):
            ref = ContactRef(platform="test", phones=(PhoneCandidate(raw=phone, source="test"),))
            contact = contacts.resolve_ref(s, ws.id, ref, now).contact
            record_consent(s, contact, ConsentSignal(purpose=ConsentPurpose.MARKETING, action=consent,
                                                     source="test", evidence="ticked the box", at=now), now)
            msg, _ = queue(s, contact=contact, conv=conversation_for(s, contact, channel, now),
                           command=SendTemplate(template="cart_reminder", params=PARAMS), author="test",
                           catalogue=bridge.rt.catalogue, now=now, key=f"{key}:{i}:{phone}",
                           policy=bridge.rt.flow_context(ws).policy)
            ids.append(msg.id)
    return ids


def rows(bridge, ids) -> dict[int, Message]:
    with bridge.session() as s:
        return {m.id: m for m in s.scalars(select(Message).where(Message.id.in_(ids)))}


def statuses(bridge, ids) -> Counter:
    return Counter(m.status for m in rows(bridge, ids).values())


class FakeTime:
    """Monotonic seconds for the limiters, and an async sleep that only moves them forward."""

    def __init__(self) -> None:
        self.t, self.slept = 1000.0, []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.t += seconds


@pytest.fixture
def fake(bridge):
    time = FakeTime()
    bridge.rt.limiter = LocalLimiter(now=time.now)
    bridge.rt.pair_limiter = LocalPairLimiter(now=time.now)
    return time


@pytest.fixture
def scripted(bridge):
    """The bridge pointed at a scripted Cloud API; the bulk client gives up after 0.3 s."""
    api = ScriptedCloudApi(late_s=1.0)
    server = ServerThread(api.app())
    bridge.rt.settings = replace(bridge.rt.settings, whatsapp_api_base=server.url, whatsapp_timeout=0.3)
    yield api
    server.stop()


# ---------------------------------------------------------------- claims


def test_two_concurrent_claimers_never_claim_the_same_row(bridge):
    ids = queued(bridge, phones(1000, 120))
    barrier, claimed, errors = threading.Barrier(2), [], []

    def claim(part: list[int]) -> None:
        try:
            barrier.wait()
            claimed.append({c.id for c in bulk.claim_batch(bridge.rt, part)})
        except Exception as exc:  # surfaced below
            errors.append(exc)

    # overlapping batches: every row is offered to both claimers, most of them at the same moment
    threads = [threading.Thread(target=claim, args=(ids,)), threading.Thread(target=claim, args=(ids[::-1],))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and len(claimed) == 2
    first, second = claimed
    assert not first & second
    assert first | second == set(ids)
    assert statuses(bridge, ids) == Counter({"sending": 120})
    assert bulk.claim_batch(bridge.rt, ids) == []  # a third claim (the job run twice) finds nothing


def test_the_recheck_blocks_a_contact_who_opted_out_after_queueing(bridge, fake):
    ids = queued(bridge, phones(1200, 3))
    queued(bridge, phones(1201, 1), key="again", consent=ConsentAction.OPT_OUT)  # the second one says STOP
    report = bulk.send_batch(bridge.rt, ids, sleep=fake.sleep)
    assert (report.claimed, report.blocked, report.accepted) == (3, 1, 2)
    assert Counter(m.to for m in bridge.sandbox.sent) == Counter([phones(1200, 3)[0], phones(1200, 3)[2]])
    assert rows(bridge, ids)[ids[1]].status == "blocked"


def test_the_batch_recheck_decides_every_row_as_the_row_by_row_recheck(bridge):
    """core.recheck reads a batch's facts at once; each row must get the decision core.outbox.recheck
    gives it: opted out later, over the cap (two rows for one person count each other), not
    deliverable, quiet hours, and a template WhatsApp paused."""
    fine, stop, twice, bad = phones(1300, 1), phones(1301, 1), phones(1302, 1), phones(1303, 1)
    ids = queued(bridge, fine + stop + twice + twice + bad)
    queued(bridge, stop, key="again", consent=ConsentAction.OPT_OUT)
    now = bridge.clock.now()
    with bridge.session() as s:
        ws = s.scalar(select(Workspace).where(Workspace.slug == "default"))
        s.get(Contact, s.get(Message, ids[-1]).contact_id).deliverability = "not on WhatsApp"

    def both(settings: dict) -> list:
        with bridge.session() as s:
            ws = s.scalar(select(Workspace).where(Workspace.slug == "default"))
            ws.settings = {**ws.settings, **settings}
            s.flush()
            policy = bridge.rt.flow_context(ws).policy
            msgs = s.scalars(select(Message).where(Message.id.in_(ids)).order_by(Message.id)).all()
            one_by_one = [recheck(s, m, bridge.rt.catalogue, now, policy) for m in msgs]
            batch = BatchRecheck(s, msgs, bridge.rt.catalogue, now, lambda _ws: policy)
            assert [batch.decide(m) for m in msgs] == one_by_one
            return [d.verdict.value for d in one_by_one]

    assert both({}) == ["allowed", "blocked", "allowed", "allowed", "blocked"]
    assert both({"marketing_cap": "1/7d"}) == ["allowed", "blocked", "blocked", "blocked", "blocked"]
    assert both({"marketing_cap": "off", "quiet_hours": "00:00-23:59"})[0] == "deferred"
    with bridge.session() as s:
        s.add(TemplateRecord(workspace_id=ws.id, name="cart_reminder", language="en_US", category="MARKETING",
                             status="PAUSED", updated_at=now))
    assert both({"quiet_hours": "off"}) == ["blocked"] * 5


def test_the_batch_recheck_counts_the_cap_for_a_template_whatsapp_recategorised_as_marketing(bridge):
    """A utility template Meta re-categorised as MARKETING (the template table) is capped as
    marketing: the batch must read the contact's marketing history for it, as core.outbox.recheck
    does, even when no row of the batch was recorded as MARKETING."""
    phone = phones(1400, 1)
    queued(bridge, phone)  # one marketing template already on its way to this contact
    now = bridge.clock.now()
    with bridge.session() as s:
        ws = s.scalar(select(Workspace).where(Workspace.slug == "default"))
        contact = s.scalar(select(Contact).where(Contact.phone_e164 == phone[0]))
        notice, _ = queue(s, contact=contact, conv=conversation_for(s, contact, s.scalar(select(Channel.id)), now),
                          command=SendTemplate(template="cart_saved", params={
                              "first_name": "Ada", "recovery_link": PARAMS["recovery_link"]}),
                          author="test", catalogue=bridge.rt.catalogue, now=now, key="notice",
                          policy=bridge.rt.flow_context(ws).policy)
        assert (notice.template_category, notice.status) == ("UTILITY", "queued")
        s.add(TemplateRecord(workspace_id=ws.id, name="cart_saved", language="en_US", category="MARKETING",
                             status="APPROVED", updated_at=now))
        ws.settings = {**ws.settings, "marketing_cap": "1/7d"}
        s.flush()
        policy = bridge.rt.flow_context(ws).policy
        one_by_one = recheck(s, notice, bridge.rt.catalogue, now, policy)
        assert one_by_one.verdict.value == "blocked" and "frequency cap" in one_by_one.reason
        assert BatchRecheck(s, [notice], bridge.rt.catalogue, now, lambda _ws: policy).decide(notice) == one_by_one


# ---------------------------------------------------------------- the number's rate and the pair limit


def test_the_number_rate_paces_a_batch_on_the_fake_clock(bridge, fake):
    bridge.rt.settings = replace(bridge.rt.settings, whatsapp_messages_per_second=5.0)
    ids = queued(bridge, phones(1300, 12))
    report = bulk.send_batch(bridge.rt, ids, sleep=fake.sleep)
    assert report.accepted == 12 and len(bridge.sandbox.sent) == 12
    # a burst of 5 (the bucket holds one second), then one send every 1/5 s
    assert fake.slept == [pytest.approx(0.2)] * 7


def test_a_batch_hands_back_what_the_rate_would_keep_waiting_too_long(bridge, fake):
    bridge.rt.settings = replace(bridge.rt.settings, whatsapp_messages_per_second=1.0)
    ids = queued(bridge, phones(1350, 25))
    report = bulk.send_batch(bridge.rt, ids, sleep=fake.sleep)
    # 1 at once, then one a second: after ~20 s of waiting the rest goes back to the queue, unsent
    assert report.accepted + report.retry == 25 and 20 <= report.accepted <= 22
    assert len(bridge.sandbox.sent) == report.accepted and sum(fake.slept) <= bulk.MAX_PACING + 1
    back = [m for m in rows(bridge, ids).values() if m.status == "queued"]
    assert len(back) == report.retry and all("saturated" in m.error_details for m in back)


def test_a_recipient_inside_the_pair_window_is_deferred_not_dropped(bridge, fake):
    twice = phones(1400, 1)[0]
    ids = queued(bridge, [twice, *phones(1401, 3), twice])
    report = bulk.send_batch(bridge.rt, ids, sleep=fake.sleep)
    assert (report.accepted, report.deferred) == (4, 1)
    later = rows(bridge, ids)[ids[-1]]
    assert later.status == "queued" and "pair rate limit" in later.error_details
    assert later.not_before == bridge.clock.now() + timedelta(seconds=6)
    assert bulk.send_batch(bridge.rt, ids, sleep=fake.sleep).claimed == 0  # not due yet
    fake.t += 6  # the window passes for the limiter, and for the row:
    bridge.at(bridge.clock.now() + timedelta(seconds=6))  # the sweeper hands it out again
    assert Counter(m.to for m in bridge.sandbox.sent)[twice] == 2
    assert rows(bridge, ids)[ids[-1]].status == "accepted"


# ---------------------------------------------------------------- what each answer does


def test_each_api_answer_moves_the_row_where_it_belongs(bridge, fake, scripted):
    throttled, paired, broken, late, invalid, fine = phones(1500, 6)
    scripted.script = {
        throttled: [error(400, fixture_bytes("whatsapp", "send_error_130429.json")), OK],
        paired: [error(400, fixture_bytes("whatsapp", "send_error_131056.json")), OK],
        broken: [error(500, b'{"error":{"message":"(#131000) Something went wrong","code":131000}}'), OK],
        late: [LATE],
        invalid: [error(400, fixture_bytes("whatsapp", "send_error_100_invalid_parameter.json"))],
    }
    ids = queued(bridge, [throttled, paired, broken, late, invalid, fine])
    now = bridge.clock.now()
    report = bulk.send_batch(bridge.rt, ids, sleep=fake.sleep)
    assert (report.accepted, report.retry, report.failed, report.unknown) == (1, 3, 1, 1)
    by_phone = dict(zip([throttled, paired, broken, late, invalid, fine], (rows(bridge, ids)[i] for i in ids)))
    assert by_phone[fine].status == "accepted" and by_phone[fine].wamid.startswith("wamid.SCRIPTED")
    waits = {p: (by_phone[p].not_before - now).total_seconds() for p in (throttled, paired, broken)}
    assert {by_phone[p].status for p in waits} == {"queued"}
    assert 1.0 <= waits[throttled] <= 1.5  # 130429: the throughput is per second
    assert 6.0 <= waits[paired] <= 9.0  # 131056: 6 s at least
    assert 2.0 <= waits[broken] <= 3.0  # 5xx: retried with jitter
    assert by_phone[invalid].status == "failed" and by_phone[invalid].error_code == 100
    assert by_phone[invalid].error_details  # the API's reason is kept
    assert by_phone[late].status == "unknown"  # it went out; nobody knows whether it arrived
    # later: the retries go out once each, the unknown one is never sent again
    bridge.at(now + timedelta(seconds=10))
    sent = Counter(to for to, _ in scripted.requests)
    assert sent == {throttled: 2, paired: 2, broken: 2, late: 1, invalid: 1, fine: 1}
    final = {p: m.status for p, m in zip([throttled, paired, broken, late, invalid, fine],
                                         (rows(bridge, ids)[i] for i in ids))}
    assert final == {throttled: "accepted", paired: "accepted", broken: "accepted", late: "unknown",
                     invalid: "failed", fine: "accepted"}


# ---------------------------------------------------------------- unknown outcomes, reconciled


def _status_with_callback(wamid: str, callback: str, state: str = "sent") -> bytes:
    body = json.loads(fixture_bytes("whatsapp", "status_sent_with_callback_data.json"))
    status = body["entry"][0]["changes"][0]["value"]["statuses"][0]
    status.update(id=wamid, biz_opaque_callback_data=callback, status=state)
    return json.dumps(body).encode()


def test_a_status_webhook_reconciles_an_unknown_send_by_its_callback_data(bridge, fake, scripted):
    late = phones(1600, 1)[0]
    scripted.script = {late: [LATE]}
    [msg_id] = queued(bridge, [late])
    assert bulk.send_batch(bridge.rt, [msg_id], sleep=fake.sleep).unknown == 1
    [(wamid, to, body)] = scripted.accepted
    assert body["biz_opaque_callback_data"] == f"replyflow:{msg_id}"
    assert rows(bridge, [msg_id])[msg_id].wamid is None
    assert bridge.whatsapp(_status_with_callback(wamid, f"replyflow:{msg_id}")).status_code == 200
    msg = rows(bridge, [msg_id])[msg_id]
    assert (msg.status, msg.wamid) == ("sent", wamid)
    bridge.whatsapp(_status_with_callback(wamid, f"replyflow:{msg_id}", "delivered"))
    assert rows(bridge, [msg_id])[msg_id].status == "delivered"  # later statuses find it by wamid


def test_callback_data_that_is_not_ours_or_names_a_settled_row_adopts_nothing(bridge, fake):
    [msg_id] = queued(bridge, phones(1700, 1))
    bulk.send_batch(bridge.rt, [msg_id], sleep=fake.sleep)
    accepted = rows(bridge, [msg_id])[msg_id]
    assert accepted.status == "accepted"
    # the fixture as recorded: another system's callback data, a wamid nobody knows
    bridge.whatsapp(fixture_bytes("whatsapp", "status_sent_with_callback_data.json"))
    # our callback data, but the row already has its wamid: a stray wamid does not replace it
    bridge.whatsapp(_status_with_callback("wamid.SOMEONE_ELSE", f"replyflow:{msg_id}"))
    assert rows(bridge, [msg_id])[msg_id].wamid == accepted.wamid
    with bridge.session() as s:
        assert Counter(s.scalars(select(InboundEvent.status).where(InboundEvent.platform == "whatsapp"))) == \
            {"orphan": 2}


# ---------------------------------------------------------------- a campaign, end to end


@pytest.mark.redis
def test_a_campaign_of_hundreds_goes_out_in_batches_through_rq_once_each(tmp_path, redis_url, postgres_url):
    """300 rows through RQ (SimpleWorker), PostgreSQL and the sandbox: the opted-in get exactly one
    message each, in send_batch jobs; the opted-out and the never-asked get nothing."""
    import csv

    from bridge.campaigns import CampaignSpec, send_campaign
    from tests.harness import Harness

    h = Harness(tmp_path, runner="rq", redis_url=redis_url, database_url=postgres_url)
    try:
        opted_in, opted_out, never = phones(2000, 240), phones(2300, 40), phones(2400, 20)
        queued(h, opted_in + opted_out, key="consent-only")  # records the consent (and rows we drop:)
        with h.session() as s:
            for m in s.scalars(select(Message).where(Message.idempotency_key.like("consent-only:%"))):
                m.status = "cancelled"
        queued(h, opted_out, key="stop", consent=ConsentAction.OPT_OUT)
        with h.session() as s:
            for m in s.scalars(select(Message).where(Message.idempotency_key.like("stop:%"))):
                m.status = "cancelled"
        segment = tmp_path / "segment.csv"
        everyone = opted_in + opted_out + never
        with segment.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["phone", "first_name", "cart_total"])
            for i, phone in enumerate(everyone[::-1]):  # interleaved: the opted-in are not all in a row
                writer.writerow([phone, f"Ada{i}", f"${i}.00"])
        spec = CampaignSpec(name="hundreds", template="cart_reminder", segment=segment,
                            params={"recovery_link": PARAMS["recovery_link"]})
        sends = h.rt.queue.queues["sends"]
        report = send_campaign(h.rt, spec, batch_size=100)
        assert (report.tally.queued, report.tally.skipped) == (240, 60)
        jobs = [j.func_name for j in sends.jobs]
        assert jobs and set(jobs) == {"bridge.jobs.send_batch"} and len(jobs) <= 6  # not one job per message
        h.settle()
        assert Counter(m.to for m in h.sandbox.sent) == Counter(opted_in)
        with h.session() as s:
            got = Counter(s.scalars(select(Message.status).where(Message.idempotency_key.like("campaign:%"))))
        assert got == {"accepted": 240, "blocked": 60}
    finally:
        h.close()
