"""`replyflow campaign send|status`: a template to a CSV segment through the policy gate, resumably."""

from __future__ import annotations

import csv
import itertools
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from bridge.campaigns import CampaignSpec, campaign_status, process_rows, read_segment, send_campaign
from bridge.cli import main
from core import campaigns, contacts
from core.events import ConsentAction, ConsentPurpose, ConsentSignal, ContactRef, PhoneCandidate
from core.outbox import record_consent
from core.store.models import Campaign, Channel, Message, TemplateRecord, Workspace

LINK = "https://shop.example.com/cart/recover/spring"
OPTED_IN = [f"+1555000{2000 + i}" for i in range(16)]
NO_CONSENT = [f"+1555000{2100 + i}" for i in range(12)]
MISSING_PARAM = "+15550002200"  # opted in, but no cart_total
REASONS = {"no marketing opt-in on record": 12, "not a phone number: too short for US": 1,
           "missing parameter cart_total": 1}


def _segment(tmp_path: Path, name: str = "segment.csv") -> Path:
    """30 rows: 16 opted in (one without a first name: --param fills it), 12 without consent,
    an impossible number and an opted-in contact without its cart total."""
    path = tmp_path / name
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["phone", "country", "first_name", "last_name", "cart_total"])
        for i, phone in enumerate(OPTED_IN[:8] + NO_CONSENT[:6] + OPTED_IN[8:] + NO_CONSENT[6:]):
            writer.writerow([phone, "", "" if i == 3 else f"Ada{i}", "Lovelace", f"${10 + i}.00"])
        writer.writerow(["555 12", "US", "Short", "Number", "$1.00"])
        writer.writerow([MISSING_PARAM, "", "Nocart", "", ""])
    return path


def _opt_in(bridge, phones) -> None:
    now = bridge.clock.now()
    with bridge.session() as s:
        ws = s.scalar(select(Workspace).where(Workspace.slug == "default"))
        for phone in phones:
            ref = ContactRef(platform="test", phones=(PhoneCandidate(raw=phone, source="test"),))
            contact = contacts.resolve_ref(s, ws.id, ref, now).contact
            record_consent(s, contact, ConsentSignal(purpose=ConsentPurpose.MARKETING, action=ConsentAction.OPT_IN,
                                                     source="test", evidence="ticked the box", at=now), now)


@pytest.fixture
def segment(bridge, tmp_path):
    _opt_in(bridge, OPTED_IN + [MISSING_PARAM])
    return _segment(tmp_path)


def _spec(path: Path, name: str = "spring") -> CampaignSpec:
    return CampaignSpec(name=name, template="cart_reminder", segment=path,
                        params={"recovery_link": LINK, "first_name": "there"})


def _sent_to(bridge) -> Counter:
    return Counter(m.to for m in bridge.sandbox.sent)


def test_a_segment_is_sent_to_exactly_the_allowed_contacts(bridge, segment):
    report = send_campaign(bridge.rt, _spec(segment), batch_size=7)
    t = report.tally
    assert (t.rows, t.queued, t.deferred, t.skipped, t.failed, t.already) == (30, 16, 0, 14, 0, 0)
    assert dict(t.reasons) == REASONS
    assert report.total["status"] == "done" and report.total["last_row"] == 30
    bridge.settle()
    assert _sent_to(bridge) == Counter(OPTED_IN)
    bodies = {m.to: [p["text"] for c in m.body["template"]["components"] if c["type"] == "body"
                     for p in c["parameters"]] for m in bridge.sandbox.sent}
    assert bodies[OPTED_IN[0]] == ["Ada0", "$10.00", LINK]
    assert bodies[OPTED_IN[3]][0] == "there"  # an empty column falls back to --param
    status = campaign_status(bridge.rt, "spring")
    assert status["outbox"] == {"accepted": 16, "blocked": 12}
    assert status["campaign"]["skip_reasons"] == REASONS


def test_a_template_whatsapp_paused_skips_every_row_as_the_row_by_row_gate_would(bridge, segment):
    """The batch path tells the gate the template's stored status (the template table), as
    core.outbox.queue does, not only the catalogue's."""
    with bridge.session() as s:
        ws = s.scalar(select(Workspace).where(Workspace.slug == "default"))
        s.add(TemplateRecord(workspace_id=ws.id, name="cart_reminder", language="en_US", category="MARKETING",
                             status="PAUSED", updated_at=bridge.clock.now()))
    t = send_campaign(bridge.rt, _spec(segment), batch_size=7).tally
    assert (t.rows, t.queued, t.skipped) == (30, 0, 30)
    assert t.reasons["template is PAUSED, not APPROVED"] == 28
    bridge.settle()
    assert not bridge.sandbox.sent


def test_a_template_whatsapp_recategorised_as_marketing_is_capped_as_the_row_by_row_gate_would(bridge, segment):
    """A utility template Meta re-categorised as MARKETING (the template table) counts toward the
    frequency cap: the batch path reads the contacts' marketing history for it, as
    core.outbox.queue does, though the catalogue calls it UTILITY."""
    for name in ("one", "two"):  # two marketing templates each: the default cap (2 in 7 days) is reached
        send_campaign(bridge.rt, _spec(segment, name), batch_size=7)
    with bridge.session() as s:
        ws = s.scalar(select(Workspace).where(Workspace.slug == "default"))
        s.add(TemplateRecord(workspace_id=ws.id, name="cart_saved", language="en_US", category="MARKETING",
                             status="APPROVED", updated_at=bridge.clock.now()))
    spec = CampaignSpec(name="notice", template="cart_saved", segment=segment,
                        params={"recovery_link": LINK, "first_name": "there"})
    t = send_campaign(bridge.rt, spec, batch_size=7).tally
    # the opted-in contact the cart_reminder campaigns skipped (no cart_total) is the only one under the cap
    assert (t.rows, t.queued, t.skipped) == (30, 1, 29)
    assert t.reasons["frequency cap: 2 marketing messages in 7 days"] == 16


def test_running_the_same_campaign_again_queues_nothing_twice(bridge, segment):
    send_campaign(bridge.rt, _spec(segment), batch_size=10)
    bridge.settle()
    assert len(bridge.sandbox.sent) == 16
    again = send_campaign(bridge.rt, _spec(segment), batch_size=10)
    assert again.resumed_at == 30 and again.tally.rows == 0
    with bridge.session() as s:  # lose the checkpoint: the keys alone must hold
        s.scalars(select(Campaign)).one().last_row = 0
    third = send_campaign(bridge.rt, _spec(segment), batch_size=10)
    assert (third.tally.rows, third.tally.queued, third.tally.already, third.tally.skipped) == (30, 0, 28, 2)
    bridge.settle()
    assert _sent_to(bridge) == Counter(OPTED_IN)
    with bridge.session() as s:
        assert s.scalar(select(Campaign.queued)) == 16
        keys = s.scalars(select(Message.idempotency_key).where(Message.direction == "out")).all()
    assert len(keys) == len(set(keys)) == 28


class Crash(Exception):
    pass


def _crashing(rows, after: int):
    for number, row in rows:
        if number > after:
            raise Crash("the process died")
        yield number, row


def test_a_crash_inside_the_core_loses_only_the_open_batch(bridge, segment):
    rt = bridge.rt
    with bridge.session() as s:
        ws = s.scalar(select(Workspace).where(Workspace.slug == "default"))
        channel = s.scalar(select(Channel.id))
        c = campaigns.start_campaign(s, workspace_id=ws.id, name="spring", template="cart_reminder", language=None,
                                     params={"recovery_link": LINK, "first_name": "there"},
                                     segment_path=str(segment), segment_sha256=_sha(segment),
                                     catalogue=rt.catalogue, now=rt.clock.now())
        first = campaigns.send_rows(s, c, itertools.islice(read_segment(segment), 10), now=rt.clock.now(),
                                    catalogue=rt.catalogue, policy=rt.flow_context(ws).policy, channel_id=channel)
        assert (first.tally.queued, first.tally.skipped) == (8, 2)
    with pytest.raises(Crash):
        with bridge.session() as s:
            c = s.scalars(select(Campaign)).one()
            campaigns.send_rows(s, c, _crashing(read_segment(segment), 17), now=rt.clock.now(),
                                catalogue=rt.catalogue, policy=rt.flow_context(ws).policy, channel_id=channel)
    with bridge.session() as s:
        assert s.scalar(select(Campaign.last_row)) == 10
    report = send_campaign(rt, _spec(segment), batch_size=4)
    assert report.resumed_at == 10 and report.tally.rows == 20 and report.tally.queued == 8
    assert report.total["queued"] == 16 and report.total["rows_read"] == 30
    bridge.sweep()  # a campaign row is not re-enqueued while its batch job may still be waiting...
    assert len(bridge.sandbox.sent) == 16 - 8
    # ...rows queued before the crash were never enqueued: once stale, the sweeper finds them
    bridge.at(rt.clock.now() + timedelta(seconds=61))
    assert _sent_to(bridge) == Counter(OPTED_IN)


def test_a_crash_between_batches_resumes_after_the_last_commit(bridge, segment):
    rt = bridge.rt
    spec = _spec(segment)
    with bridge.session() as s:
        ws = s.scalar(select(Workspace).where(Workspace.slug == "default"))
        c = campaigns.start_campaign(s, workspace_id=ws.id, name=spec.name, template=spec.template, language=None,
                                     params=spec.params, segment_path=str(segment),
                                     segment_sha256=_sha(segment), catalogue=rt.catalogue, now=rt.clock.now())
        campaign_id = c.id
    with pytest.raises(Crash):
        process_rows(rt, campaign_id, _crashing(read_segment(segment), 25), batch_size=10)
    bridge.settle()
    first = len(bridge.sandbox.sent)
    assert 0 < first < 16
    report = send_campaign(rt, spec, batch_size=10)
    assert report.resumed_at == 20 and report.tally.rows == 10
    bridge.settle()
    assert _sent_to(bridge) == Counter(OPTED_IN)


def _sha(path: Path) -> str:
    from bridge.campaigns import scan_segment

    return scan_segment(path)[0]


def test_quiet_hours_defer_the_sends_instead_of_dropping_them(bridge, segment):
    night = datetime(2025, 11, 3, 23, 0, tzinfo=timezone.utc)
    bridge.clock.set(night)
    report = send_campaign(bridge.rt, _spec(segment))
    assert (report.tally.queued, report.tally.deferred, report.tally.skipped) == (0, 16, 14)
    bridge.settle()
    assert bridge.sandbox.sent == []
    with bridge.session() as s:
        waits = set(s.scalars(select(Message.not_before).where(Message.status == "queued")))
    morning = night.replace(hour=9) + timedelta(days=1)
    assert waits == {morning}
    bridge.at(morning)
    assert _sent_to(bridge) == Counter(OPTED_IN)


# ---------------------------------------------------------------- the command line


def _cli(*args: str):
    return CliRunner().invoke(main, ["campaign", *args])


@pytest.fixture
def wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")


def test_cli_sends_then_reports_status(bridge, segment, wide):
    result = _cli("send", "cart_reminder", "--segment", str(segment), "--name", "spring",
                  "--param", f"recovery_link={LINK}", "--param", "first_name=there", "--batch-size", "8")
    assert result.exit_code == 0, result.output
    assert "read 30 rows: queued 16, deferred 0, skipped 14, failed 0" in result.output
    for reason, count in REASONS.items():
        [line] = [x for x in result.output.splitlines() if reason in x]
        assert str(count) in line.replace(reason, "")
    assert _sent_to(bridge) == Counter(OPTED_IN)
    bridge.sandbox.deliver_statuses("read")
    bridge.settle()
    status = _cli("status", "spring")
    assert status.exit_code == 0, status.output
    assert "30 read, 16 queued, 0 deferred, 14 skipped, 0 failed" in status.output
    assert "16 sent, 16 delivered, 16 read, 0 failed" in status.output
    resumed = _cli("send", "cart_reminder", "--segment", str(segment), "--name", "spring",
                   "--param", f"recovery_link={LINK}", "--param", "first_name=there")
    assert resumed.exit_code == 0 and "resuming after row 30" in resumed.output
    assert len(bridge.sandbox.sent) == 16


def test_a_segment_saved_again_is_counted_once(bridge, segment, tmp_path, wide):
    """The same three rows saved again (here with Windows line ends) are another file: it is read
    from the first row again, and the campaign's counters describe it, not both files added up."""
    rows = [f"{phone},Ada,$10.00" for phone in OPTED_IN[:3]]
    small = tmp_path / "three.csv"
    small.write_bytes(("phone,first_name,cart_total\n" + "\n".join(rows) + "\n").encode())
    args = ("send", "cart_reminder", "--segment", str(small), "--name", "three", "--param", f"recovery_link={LINK}")
    first = _cli(*args)
    assert first.exit_code == 0 and "done: 3 rows in all, 3 queued" in first.output.replace("\n", " ")
    small.write_bytes(("phone,first_name,cart_total\r\n" + "\r\n".join(rows) + "\r\n").encode())
    again = _cli(*args)
    assert again.exit_code == 0, again.output
    assert "read 3 rows: queued 0, deferred 0, skipped 0, failed 0, already 3" in again.output
    assert "done: 3 rows in all, 0 queued, 0 deferred, 0 skipped, 0 failed, 3 already queued" in again.output.replace("\n", " ")
    status = _cli("status", "three")
    assert "3 rows done" in status.output and "rows: 3 read, 0 queued" in status.output
    assert "3 sent" in status.output and _sent_to(bridge) == Counter(OPTED_IN[:3])


def test_cli_status_takes_the_number_send_showed(bridge, segment, wide):
    report = send_campaign(bridge.rt, _spec(segment))
    by_name = _cli("status", "spring")
    assert by_name.exit_code == 0 and f"campaign spring (#{report.campaign_id})" in by_name.output
    for given in (str(report.campaign_id), f"#{report.campaign_id}"):
        by_number = _cli("status", given)
        assert by_number.exit_code == 0, by_number.output
        assert by_number.output == by_name.output
    with bridge.session() as s:
        s.add(Workspace(slug="other", name="Another shop", settings={}))
    elsewhere = _cli("status", str(report.campaign_id), "--workspace", "other")  # its numbers are not theirs
    assert elsewhere.exit_code == 1 and f"no campaign '{report.campaign_id}'" in elsewhere.output
    unknown = _cli("status", str(report.campaign_id + 1))
    assert unknown.exit_code == 1 and f"no campaign '{report.campaign_id + 1}'" in unknown.output


@pytest.mark.parametrize("args, message", [
    (["--segment", "{missing}"], "segment file not found"),
    (["--segment", "{segment}", "--template", "nope"], "template 'nope' is not in the catalogue"),
    (["--segment", "{segment}", "--param", "recovery_link"], "expected KEY=VALUE"),
    (["--segment", "{segment}", "--param", "coupon=X"], "has no parameter coupon"),
    (["--segment", "{headless}"], "one of them 'phone'"),
])
def test_cli_argument_errors_exit_1_with_a_clear_message(bridge, segment, tmp_path, wide, args, message):
    headless = tmp_path / "headless.csv"
    headless.write_text("+15550002000,Ada\n", encoding="utf-8")
    paths = {"missing": tmp_path / "nope.csv", "segment": segment, "headless": headless}
    args = [a.format(**paths) for a in args]
    template = "cart_reminder"
    if "--template" in args:
        i = args.index("--template")
        template, args = args[i + 1], args[:i] + args[i + 2:]
    result = _cli("send", template, *args)
    assert result.exit_code == 1, result.output
    assert message in result.output
    unknown = _cli("status", "no-such-campaign")
    assert unknown.exit_code == 1 and "no campaign 'no-such-campaign'" in unknown.output


def test_a_resume_must_send_the_same_template(bridge, segment):
    send_campaign(bridge.rt, _spec(segment))
    other = CampaignSpec(name="spring", template="cart_reminder_2", segment=segment,
                         params={"recovery_link": LINK, "first_name": "there"})
    with pytest.raises(campaigns.CampaignError, match="give another --name"):
        send_campaign(bridge.rt, other)


def test_a_campaign_has_its_own_figures_in_the_report(bridge, segment):
    """Campaign sends are no flow's messages: the report left them out entirely (a newcomer sent a
    campaign and found its template missing from the Templates table). Each send now counts as a
    run of the flow 'campaign <name>'."""
    from core.metrics.report import report

    send_campaign(bridge.rt, _spec(segment), batch_size=7)
    bridge.settle()
    assert len(bridge.sandbox.sent) == 16
    bridge.sandbox.deliver_statuses("read")
    bridge.settle()
    bridge.clock.advance(timedelta(minutes=5))
    bridge.sandbox.customer_sends(OPTED_IN[0].lstrip("+"), "Ada0", text="is the discount still on?")
    bridge.settle()
    with bridge.session() as s:
        ws = s.scalar(select(Workspace).where(Workspace.slug == "default"))
        rep = report(s, ws.id)
    [flow] = [f for f in rep.flows if f.key == "campaign spring"]
    assert (flow.runs, flow.contacted, flow.sent, flow.read, flow.replied) == (16, 16, 16, 16, 1)
    assert flow.median_reply_seconds == 300
    [template] = [t for t in rep.templates if t.key.startswith("cart_reminder")]
    assert (template.sent, template.replied) == (16, 1)
