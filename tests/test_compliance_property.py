"""Property test of the compliance core: random interleavings of inbound messages, STOP/START,
platform consent events, sends and clock jumps, against a real SQLite database, checked after
every step against the independent model in ``tests/compliance_oracle.py``.

The oracle never asks ``core.gate`` (``decide``/``quiet_until``), ``core.session`` (``is_open``)
or ``core.consent.derive``; it keeps its own history per contact.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule
from sqlalchemy import select

from core import contacts, conversations, outbox
from core.commands import SendTemplate, SendText
from core.events import ConsentAction, ConsentPurpose, ConsentSignal, InboundMessage, MessageKind
from core.flows import runs
from core.gate import Policy
from core.store import Database
from core.store.models import Channel, Contact, Message, Workspace
from core.templates import default_catalogue
from tests.compliance_oracle import ContactModel, Rules, is_quiet, max_in_any_window, utc

CATALOGUE = default_catalogue()
ZONES = ["Asia/Kolkata", "America/Los_Angeles", "Europe/Berlin", "UTC", None]
SEC, MIN, HOUR, DAY = timedelta(seconds=1), timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)

# Start instants near the interesting dates: US and EU DST changes, a year boundary.
STARTS = [
    utc(2024, 3, 9, 18),  # America/Los_Angeles springs forward 2024-03-10 02:00 local
    utc(2024, 3, 30, 20),  # Europe/Berlin springs forward 2024-03-31 02:00 local
    utc(2024, 11, 2, 12),  # Los Angeles falls back 2024-11-03
    utc(2024, 10, 26, 22),  # Berlin falls back 2024-10-27
    utc(2024, 12, 31, 15),
]

# (settings given to Policy.from_settings or None for Policy(), the oracle's own reading of them)
POLICIES = [
    (None, Rules()),
    ({}, Rules()),
    ({"quiet_hours": "22:00-07:30", "marketing_cap": "3/7d", "timezone": "Europe/Berlin"},
     Rules(quiet=(time(22, 0), time(7, 30)), cap=3, cap_days=7, default_zone="Europe/Berlin")),
    ({"quiet_hours": "12:00-14:00", "marketing_cap": "1/1d"},
     Rules(quiet=(time(12, 0), time(14, 0)), cap=1, cap_days=1)),
    ({"quiet_hours": "off", "marketing_cap": "2/7d", "timezone": "Asia/Kolkata"},
     Rules(quiet=None, cap=2, cap_days=7, default_zone="Asia/Kolkata")),
    ({"quiet_hours": "21:00-09:00", "marketing_cap": "off"}, Rules(cap=None)),
]

# inbound texts and what the rule says they mean (whole message, case/accents/punctuation folded)
TEXTS = {
    "hello": None,
    "where is my order?": None,
    "don't stop the order!": None,
    "STOP": "opt_out",
    "Arrêt": "opt_out",
    " stop. ": "opt_out",
    "unsubscribe": "opt_out",
    "start": "opt_in",
    "START!": "opt_in",
}

JUMPS = st.one_of(
    st.sampled_from([SEC, 59 * SEC, HOUR, 12 * HOUR, DAY - SEC, DAY, DAY + SEC, 7 * DAY - SEC, 7 * DAY,
                     7 * DAY + SEC]),
    st.integers(min_value=1, max_value=3 * 86400).map(lambda n: timedelta(seconds=n)),
)

CART_PARAMS = {"first_name": "Maria", "cart_total": "€84.90",
               "recovery_link": "https://shop.example.com/cart/recover/c1a2b3"}
SENDS = {
    "marketing": SendTemplate(template="cart_reminder", params=CART_PARAMS),
    "utility": SendTemplate(template="conversation_reopen", params={"first_name": "A"}),
    "freeform": SendText(text="hi"),
}


class ComplianceMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.db: Database | None = None
        self.s = None

    # ------------------------------------------------------------------ set-up
    @initialize(
        n=st.integers(min_value=3, max_value=5),
        zones=st.lists(st.sampled_from(ZONES), min_size=5, max_size=5),
        start=st.sampled_from(STARTS),
        offset=st.integers(min_value=0, max_value=2 * 86400),
        policy=st.sampled_from(range(len(POLICIES))),
        opted=st.lists(st.booleans(), min_size=5, max_size=5),
    )
    def setup(self, n, zones, start, offset, policy, opted):
        self.db = Database("sqlite://")
        self.db.create_all()
        self.s = self.db.sessions()
        self.now: datetime = start + timedelta(seconds=offset)
        settings_, self.rules = POLICIES[policy]
        self.settings = settings_ or {}
        self.policy = Policy() if settings_ is None else Policy.from_settings(settings_)
        self.ctx = runs.Context(flows={}, catalogue=CATALOGUE, settings={})
        ws = Workspace(slug="default", name="Shop", settings=self.settings)
        self.s.add(ws)
        self.s.flush()
        self.channel = Channel(workspace_id=ws.id, phone_number_id="PNID1", display_phone="+1 555 0100")
        self.s.add(self.channel)
        self.s.flush()
        self.ws = ws
        self.wa_ids = [f"1555000{i:04d}" for i in range(n)]
        self.model = [ContactModel(zone=zones[i]) for i in range(n)]
        self.contact_ids = []
        for i, wa_id in enumerate(self.wa_ids):
            contact = contacts.resolve_whatsapp(self.s, ws.id, wa_id=wa_id, user_id=None, profile_name=f"P{i}",
                                                now=self.now)
            contact.timezone = zones[i]
            conversations.conversation_for(self.s, contact, self.channel.id, self.now)
            self.contact_ids.append(contact.id)
            if opted[i]:  # some contacts come with a shop opt-in from before the test began
                at = start - DAY
                outbox.record_consent(self.s, contact, ConsentSignal(
                    purpose=ConsentPurpose.MARKETING, action=ConsentAction.OPT_IN, source="test.platform",
                    evidence="checkout checkbox", at=at), self.now)
                self.model[i].consent.append((at, "opt_in"))
        self.s.commit()
        self.wamids = 0
        self.zone_at_send: dict[int, str] = {}  # marketing row id -> the contact's zone then
        self.trace: list[str] = []

    def teardown(self) -> None:
        if self.s is not None:
            self.s.close()
        if self.db is not None:
            self.db.dispose()

    def _contact(self, i: int) -> Contact:
        return self.s.get(Contact, self.contact_ids[i])

    def _who(self, i: int) -> int:
        return i % len(self.model)

    # ------------------------------------------------------------------ actions
    @rule(delta=JUMPS)
    def jump(self, delta):
        self.now += delta
        self.trace.append(f"jump {delta} -> {self.now.isoformat()}")

    @rule(who=st.integers(0, 4), zone=st.sampled_from(ZONES))
    def move(self, who, zone):
        i = self._who(who)
        self._contact(i).timezone = zone
        self.model[i].zone = zone
        self.s.commit()
        self.trace.append(f"contact {i} zone {zone}")

    @rule(who=st.integers(0, 4), text=st.sampled_from(sorted(TEXTS)),
          lag=st.sampled_from([0, 0, 0, 0, 1, 90, -30]))
    def inbound(self, who, text, lag):
        """A customer's message, processed the way ``bridge.whatsapp_inbound._inbound`` does (``lag`` seconds
        between sending and processing; negative = the phone's clock is ahead)."""
        i = self._who(who)
        self.wamids += 1
        sent_at = self.now - timedelta(seconds=lag)
        msg = InboundMessage(channel="PNID1", message_id=f"wamid.{self.wamids}", timestamp=sent_at,
                             kind=MessageKind.TEXT, wa_id=self.wa_ids[i], profile_name=f"P{i}", text=text)
        contact = contacts.resolve_whatsapp(self.s, self.ws.id, wa_id=msg.wa_id, user_id=msg.user_id,
                                            profile_name=msg.profile_name, now=self.now)
        assert contact.id == self.contact_ids[i], "a reply created a second contact"
        conv = conversations.conversation_for(self.s, contact, self.channel.id, self.now)
        assert conversations.record_inbound(self.s, conv, msg, self.now) is not None
        m = self.model[i]
        effective = min(sent_at, self.now)
        m.inbound.append(effective)
        intent = TEXTS[text]
        self.trace.append(f"inbound {i} {text!r} at {sent_at.isoformat()} (now {self.now.isoformat()})")
        if intent is None:
            runs.on_reply(self.s, conv, msg, self.ctx, self.now)
            self.s.commit()
            return
        was_out, was_in = m.opted_out(), m.opted_in()
        fx = runs.on_consent_message(self.s, conv, msg, intent, self.ctx, self.now)
        m.consent.append((effective, intent))
        self.s.commit()
        confirmations = self.s.scalars(select(Message).where(
            Message.contact_id == contact.id, Message.direction == "out",
            Message.idempotency_key == f"consent:{msg.message_id}")).all()
        for row in confirmations:
            assert row.status == "queued", f"confirmation not queued: {row.status} {row.error_details}"
            row.status = "sent"  # the sender delivers it
        self.s.commit()
        assert len(fx.outbox) == len(confirmations) <= 1
        after_out, after_in = m.opted_out(), m.opted_in()
        if intent == "opt_out":
            changed = not was_out and after_out
            m.opt_out_changes += changed
            m.opt_out_confirmations += len(confirmations)
            if not was_out and not after_out:
                # KNOWN BUG (see test_stop_superseded_by_a_later_opt_in_is_not_confirmed): the STOP
                # is confirmed although a later opt-in on record keeps the contact opted in.
                # Tolerated here so the machine can look for other problems.
                m.opt_out_changes += len(confirmations)
                return
            # at most one confirmation per state change, and one for each change by message
            assert len(confirmations) == int(changed), (
                f"STOP from contact {i}: {len(confirmations)} confirmation(s), state changed: {changed} "
                f"(before: opted out={was_out}; consent history {m.consent})")
            assert m.opt_out_confirmations <= m.opt_out_changes
        else:
            changed = not was_in and after_in
            if not was_in and not after_in:
                return  # KNOWN BUG (see test_start_that_does_not_take_effect_is_not_confirmed)
            assert len(confirmations) == int(changed), (
                f"START from contact {i}: {len(confirmations)} confirmation(s), state changed to opted in: "
                f"{changed} (consent history {m.consent})")

    @rule(who=st.integers(0, 4), action=st.sampled_from(["opt_in", "opt_out"]),
          ago=st.sampled_from([0, 0, 0, 1, 3600, 2 * 86400]))
    def platform_consent(self, who, action, ago):
        """A shop or CRM reports a marketing consent statement, possibly made a while ago."""
        i = self._who(who)
        at = self.now - timedelta(seconds=ago)
        signal = ConsentSignal(purpose=ConsentPurpose.MARKETING, action=ConsentAction(action),
                               source="test.platform", evidence=f"{action} via test", at=at)
        outbox.record_consent(self.s, self._contact(i), signal, self.now)
        self.model[i].consent.append((at, action))
        self.s.commit()
        self.trace.append(f"platform {action} for {i} at {at.isoformat()}")

    @rule(who=st.integers(0, 4), kind=st.sampled_from(sorted(SENDS)))
    def send(self, who, kind):
        i = self._who(who)
        contact = self._contact(i)
        conv = conversations.conversation_for(self.s, contact, self.channel.id, self.now)
        m = self.model[i]
        # what the oracle expects, computed before the attempt
        in_window = m.window_open(self.now)
        consent_ok, quiet, under_cap = m.opted_in(), m.quiet(self.now, self.rules), m.under_cap(self.now, self.rules)
        row, decision = outbox.queue(self.s, contact=contact, conv=conv, command=SENDS[kind], author="bot:test",
                                     catalogue=CATALOGUE, now=self.now, policy=self.policy)
        if decision.verdict.value == "deferred":
            # a deferred send is queued for later, not dropped; this model's horizon never runs the
            # sender, so it is withdrawn here after checking it waits exactly as long as the gate said
            assert row.status == "queued" and row.not_before == decision.until and decision.until > self.now
            row.status = "cancelled"
        allowed = row.status == "queued"
        assert allowed == decision.allowed
        self.trace.append(f"send {kind} to {i}: {row.status} {decision.verdict.value} {decision.reason}")
        where = (f"{kind} to contact {i} at {self.now.isoformat()} (zone {m.zone}, rules {self.rules}); "
                 f"gate said {decision.verdict.value}: {decision.reason!r}")
        if kind == "freeform":
            # both directions: free-form goes exactly when the window is open
            assert allowed == in_window, (
                f"{where}; window open per oracle: {in_window} (last inbound {m.last_inbound()})")
        elif kind == "utility":
            assert allowed, f"{where}; a utility template needs no consent, window or quiet hours"
        else:
            if allowed:
                assert consent_ok, f"{where}; no standing marketing opt-in: {m.consent}"
                assert not quiet, f"{where}; inside quiet hours"
                assert under_cap, f"{where}; over the cap: earlier sends {m.marketing}"
            else:  # the gate is not stricter than the rules either
                assert not (consent_ok and not quiet and under_cap), f"{where}; the rules allow it"
            if allowed:
                m.marketing.append(self.now)
                self.zone_at_send[row.id] = m.zone_name(self.rules)
        if allowed:
            row.status, row.status_at = "sent", self.now  # the sender delivers it
        self.s.commit()
        self._check_all_rows()

    @rule(who=st.integers(0, 4), times=st.integers(2, 4),
          gap=st.sampled_from([timedelta(0), SEC, HOUR, DAY - SEC, DAY, 7 * DAY - SEC, 7 * DAY]))
    def marketing_burst(self, who, times, gap):
        """Several marketing sends to one contact, ``gap`` apart: the frequency cap's edges."""
        for k in range(times):
            if k:
                self.now += gap
            self.send(who, "marketing")

    @rule(who=st.integers(0, 4), delta=st.sampled_from([DAY - SEC, DAY, DAY + SEC]))
    def freeform_at_window_edge(self, who, delta):
        """A customer writes, and the agent answers free-form just before, at or after 24 h."""
        self.inbound(who, "hello", 0)
        self.now += delta
        self.send(who, "freeform")

    # ------------------------------------------------------------------ the whole outbox
    def _check_all_rows(self) -> None:
        rows = self.s.scalars(select(Message).where(Message.direction == "out",
                                                    Message.status.in_(("queued", "sent")))).all()
        by_contact = {cid: i for i, cid in enumerate(self.contact_ids)}
        marketing: dict[int, list[datetime]] = {}
        for row in rows:
            i = by_contact[row.contact_id]
            m = self.model[i]
            if row.template_category is None:
                known = [t for t in m.inbound if t <= row.created_at]
                assert m.window_open_at(row.created_at, known), (
                    f"free-form {row.body!r} to contact {i} at {row.created_at} outside 24 h of {known}")
            elif row.template_category == "MARKETING":
                zone = self.zone_at_send[row.id]
                assert not is_quiet(row.created_at, zone, self.rules), (
                    f"marketing to contact {i} at {row.created_at} in quiet hours ({zone})")
                marketing.setdefault(i, []).append(row.created_at)
        if self.rules.cap is not None:
            for i, times in marketing.items():
                most = max_in_any_window(times, self.rules.cap_window)
                assert most <= self.rules.cap, f"contact {i}: {most} marketing sends in one window: {sorted(times)}"


ComplianceMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestCompliance = ComplianceMachine.TestCase


# ---------------------------------------------------------------------- bugs found by the machine


def _world(now: datetime):
    db = Database("sqlite://")
    db.create_all()
    s = db.sessions()
    ws = Workspace(slug="default", name="Shop", settings={})
    s.add(ws)
    s.flush()
    channel = Channel(workspace_id=ws.id, phone_number_id="PNID1")
    s.add(channel)
    s.flush()
    contact = contacts.resolve_whatsapp(s, ws.id, wa_id="15550000000", user_id=None, profile_name="P", now=now)
    contact.timezone = "UTC"
    conv = conversations.conversation_for(s, contact, channel.id, now)
    return db, s, contact, conv


def _say(s, conv, text: str, wamid: str, sent_at: datetime, now: datetime):
    msg = InboundMessage(channel="PNID1", message_id=wamid, timestamp=sent_at, kind=MessageKind.TEXT,
                         wa_id="15550000000", text=text)
    conversations.record_inbound(s, conv, msg, now)
    intent = {"STOP": "opt_out", "START": "opt_in"}[text]
    ctx = runs.Context(flows={}, catalogue=CATALOGUE, settings={})
    return runs.on_consent_message(s, conv, msg, intent, ctx, now)


def _platform(s, contact, action: ConsentAction, at: datetime, now: datetime) -> None:
    outbox.record_consent(s, contact, ConsentSignal(purpose=ConsentPurpose.MARKETING, action=action,
                                                    source="test.platform", evidence="test", at=at), now)


def test_stop_superseded_by_a_later_opt_in_is_not_confirmed():
    now = utc(2024, 6, 3, 12)  # a Monday noon in UTC: not quiet
    db, s, contact, conv = _world(now)
    try:
        _platform(s, contact, ConsentAction.OPT_IN, now, now)  # the shop's opt-in, at 12:00:00
        fx = _say(s, conv, "STOP", "wamid.1", now - SEC, now)  # sent 11:59:59, processed 12:00:00
        confirmed = bool(fx.outbox)
        later = now + HOUR
        row, _ = outbox.queue(s, contact=contact, conv=conv, command=SENDS["marketing"], author="bot:test",
                              catalogue=CATALOGUE, now=later)
        # either the STOP counts (marketing blocked), or the customer is not told that it does
        assert not (confirmed and row.status == "queued"), (
            "opt-out confirmed, then a marketing template was let through")
    finally:
        s.close()
        db.dispose()


def test_start_that_does_not_take_effect_is_not_confirmed():
    now = utc(2024, 6, 3, 12)
    db, s, contact, conv = _world(now)
    try:
        _say(s, conv, "STOP", "wamid.1", now, now)
        fx = _say(s, conv, "START", "wamid.2", now, now)  # same second
        opted_in = outbox.consent_of(s, contact.id).marketing_opt_in
        assert opted_in or not fx.outbox, "opt-in confirmed, but the contact is still opted out"
    finally:
        s.close()
        db.dispose()
