"""Campaigns: one approved template sent to every contact of a segment, resumably.

Every row of the segment is decided once: skipped (no phone, missing parameter...), or handed to
the outbox (``core.outbox.queue``, so the policy gate decides: queued, deferred to ``not_before``,
or blocked with its reason, counted as skipped). Each outbox row carries the idempotency key
``campaign:<campaign id>:<normalised phone>``, so a resumed or repeated campaign never queues a
contact twice; ``Campaign.last_row`` only lets a resume skip ahead without asking the database.

Nothing here commits: the caller runs ``send_rows`` once per batch, in its own transaction.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import contacts, phones, privacy
from core.commands import SendTemplate
from core.conversations import conversation_for
from core.errors import PermanentError, PhoneError, TemplateError
from core.events import ContactRef, PhoneCandidate
from core.gate import Outgoing, Policy
from core.campaign_batch import Known, read_known
from core.outbox import COUNTED, decide_with, outgoing_for, queue, row_values, stored_for
from core.store.models import Campaign, Conversation, Message
from core.store.inserts import insert_ids
from core.templates import Catalogue, Rendered, Template, render

__all__ = [
    "CampaignError", "Outcome", "Tally", "BatchResult", "KINDS", "campaign_key", "key_prefix",
    "start_campaign", "send_rows", "finish_campaign", "find_campaign", "outbox_counts",
]

_log = logging.getLogger(__name__)
KINDS = ("queued", "deferred", "skipped", "failed", "already")
_NOT_PARAMS = {"phone", "country"}


class CampaignError(PermanentError):
    """A campaign that cannot start or resume as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: str  # one of KINDS
    reason: str | None = None  # skipped / failed: why
    message_id: int | None = None  # queued / deferred: the outbox row


@dataclass(slots=True)
class Tally:
    """Counts per outcome, and skip reasons with their counts."""

    rows: int = 0
    queued: int = 0
    deferred: int = 0
    skipped: int = 0
    failed: int = 0
    already: int = 0
    reasons: Counter = field(default_factory=Counter)

    def add(self, outcome: Outcome) -> None:
        self.rows += 1
        setattr(self, outcome.kind, getattr(self, outcome.kind) + 1)
        if outcome.reason:
            self.reasons[outcome.reason] += 1

    def merge(self, other: "Tally") -> None:
        for name in ("rows",) + KINDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.reasons.update(other.reasons)


@dataclass(frozen=True, slots=True)
class BatchResult:
    tally: Tally
    queued_ids: tuple[int, ...]  # rows to hand to the sender now (deferred ones wait for the sweeper)


def key_prefix(campaign_id: int) -> str:
    return f"campaign:{campaign_id}:"


def campaign_key(campaign_id: int, e164: str) -> str:
    """One key per phone line: the smallest of its match keys, so that ``+52 1 …`` and ``+52 …``
    (or Brazil's ninth digit) are the same recipient."""
    return key_prefix(campaign_id) + min(phones.match_keys(e164))


# ---------------------------------------------------------------- starting and finishing


def _template(catalogue: Catalogue, name: str, language: str | None, params: Mapping[str, str]) -> Template:
    try:
        template = catalogue.get(name, language)
    except TemplateError as exc:
        raise CampaignError(str(exc)) from None
    if template.status.value != "APPROVED":
        raise CampaignError(f"template {name!r} is {template.status.value}, not APPROVED")
    unknown = sorted(set(params) - set(template.all_params))
    if unknown:
        wanted = ", ".join(template.all_params) or "none"
        raise CampaignError(f"template {name!r} has no parameter {', '.join(unknown)} (its parameters: {wanted})")
    return template


def find_campaign(s: Session, workspace_id: int, name: str) -> Campaign | None:
    return s.scalar(select(Campaign).where(Campaign.workspace_id == workspace_id, Campaign.name == name))


def _check_same(c: Campaign, template: Template, params: Mapping[str, str]) -> None:
    if (c.template, c.language) != (template.name, template.language):
        raise CampaignError(f"campaign {c.name!r} sends {c.template} ({c.language}); give another --name "
                            f"to send {template.name} ({template.language})")
    if dict(c.params or {}) != dict(params):
        raise CampaignError(f"campaign {c.name!r} was started with other parameters {dict(c.params or {})}; "
                            "give the same ones to resume, or another --name")


def start_campaign(s: Session, *, workspace_id: int, name: str, template: str, language: str | None,
                   params: Mapping[str, str], segment_path: str, segment_sha256: str,
                   catalogue: Catalogue, now: datetime) -> Campaign:
    """The campaign ``name``: created, or resumed. A resume with a changed segment file starts
    reading it from the first row again (row numbers mean nothing in another file; keys still
    keep anyone from getting a second message), and the counters start again with it, so they
    count the new file's rows once (those queued before count as ``already``)."""
    tpl = _template(catalogue, template, language, params)
    c = find_campaign(s, workspace_id, name)
    if c is None:
        c = Campaign(workspace_id=workspace_id, name=name, template=tpl.name, language=tpl.language,
                     params=dict(params), segment_path=segment_path, segment_sha256=segment_sha256,
                     status="running", last_row=0, rows_read=0, queued=0, deferred=0, skipped=0, failed=0,
                     already=0, skip_reasons={}, created_at=now, updated_at=now)
        s.add(c)
        s.flush()
        return c
    _check_same(c, tpl, params)
    if c.segment_sha256 != segment_sha256:
        _log.warning("campaign %s: the segment changed; reading it again from the first row", c.id)
        c.segment_path, c.segment_sha256, c.last_row, c.status = segment_path, segment_sha256, 0, "running"
        c.rows_read, c.skip_reasons = 0, {}
        for kind in KINDS:
            setattr(c, kind, 0)
    c.updated_at = now
    s.flush()
    return c


def finish_campaign(s: Session, campaign: Campaign, now: datetime) -> None:
    campaign.status, campaign.finished_at, campaign.updated_at = "done", now, now
    s.flush()


# ---------------------------------------------------------------- one row


def _clean(row: Mapping[Any, Any]) -> dict[str, str]:
    return {str(k).strip().lower(): v.strip() for k, v in row.items() if k is not None and isinstance(v, str)}


def _params(template: Template, constants: Mapping[str, str], row: Mapping[str, str]) -> tuple[dict, list[str]]:
    """Per-row parameters (a non-empty column wins over a constant) and the names still missing."""
    params, missing = {}, []
    for key in template.all_params:
        value = row.get(key) or constants.get(key)
        if value:
            params[key] = value
        else:
            missing.append(key)
    return params, missing


def _prepare(template: Template, constants: Mapping[str, str], row: Mapping[str, str]):
    """(phone, params, the rendered template) for a row, or the reason it is skipped."""
    if not row.get("phone"):
        return None, "no phone number"
    try:
        phone = phones.normalize(row["phone"], row.get("country") or None)
    except PhoneError as exc:
        hint = "; give it with + and the country code, or add a 'country' column (e.g. US)" if (
            "without a country" in str(exc) and not row.get("country")) else ""
        return None, f"not a phone number: {exc}{hint}"
    params, missing = _params(template, constants, row)
    if missing:
        return None, f"missing parameter{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
    try:
        rendered = render(template, params)
    except TemplateError as exc:
        return None, str(exc)
    return (phone, params, rendered), None


@dataclass(frozen=True, slots=True)
class _Job:
    """What every row of one batch shares."""

    campaign: Campaign
    template: Template
    now: datetime
    catalogue: Catalogue
    policy: Policy
    channel_id: int
    erase_salt: str | None
    outgoing: Outgoing  # what the gate is told about the template (its stored status wins), the same for every row


def _queue(s: Session, job: _Job, row: Mapping[str, str], phone: phones.Phone, params: dict, key: str) -> Outcome:
    c = job.campaign
    ref = ContactRef(platform="campaign", first_name=row.get("first_name") or None,
                     last_name=row.get("last_name") or None,
                     phones=(PhoneCandidate(raw=phone.e164, source="segment.phone"),))
    contact = contacts.resolve_ref(s, c.workspace_id, ref, job.now).contact
    if contact is None:
        return Outcome("failed", "the contact could not be resolved")
    conv = conversation_for(s, contact, job.channel_id, job.now)
    command = SendTemplate(template=job.template.name, params=params, language=job.template.language)
    msg, decision = queue(s, contact=contact, conv=conv, command=command, author=f"campaign:{c.name}"[:120],
                          catalogue=job.catalogue, now=job.now, key=key, policy=job.policy)
    if msg.status != "queued":
        return Outcome("skipped", decision.reason or msg.error_details or msg.status)
    return Outcome("deferred" if msg.not_before else "queued", message_id=msg.id)


# ---------------------------------------------------------------- a batch


def _save(c: Campaign, tally: Tally, last_row: int, now: datetime) -> None:
    c.rows_read += tally.rows
    for kind in KINDS:
        setattr(c, kind, getattr(c, kind) + getattr(tally, kind))
    reasons = Counter(c.skip_reasons or {})
    reasons.update(tally.reasons)
    c.skip_reasons = dict(reasons)  # a new dict, so the JSON column is written
    c.last_row, c.updated_at = max(c.last_row, last_row), now


def _fast(s: Session, job: _Job, known: Known, row: dict, phone: phones.Phone, params: dict, rendered: Rendered,
          key: str) -> dict | None:
    """The row's outbox columns decided from what the batch read (inserted later, with the
    batch's others), or None when the batch does not hold what the row needs (the caller takes
    the row-by-row path)."""
    contact = known.contact(phone.e164)
    if contact is None:
        return None
    for name in ("first_name", "last_name"):  # as resolve_ref does: fill in, never overwrite
        if row.get(name) and not getattr(contact, name):
            setattr(contact, name, row[name])
            contact.updated_at = job.now
    conv = known.convs.get(contact.id) or conversation_for(s, contact, job.channel_id, job.now)
    known.convs[contact.id] = conv
    command = SendTemplate(template=job.template.name, params=params, language=job.template.language)
    decision = decide_with(contact, conv, job.outgoing, job.now, job.policy,
                           consent=known.consent(contact.id), sent=tuple(known.sent.get(contact.id, ())))
    values, _decision = row_values(contact_id=contact.id, conv=conv, command=command,
                                   author=f"campaign:{job.campaign.name}"[:120], catalogue=job.catalogue,
                                   now=job.now, key=key, decision=decision, rendered=rendered)
    return values


def _open_conversations(s: Session, job: _Job, known: Known) -> None:
    """The conversations the batch's known contacts lack on this channel, inserted together; if
    another process made one meanwhile, ``conversation_for`` finds or makes them row by row.
    (New conversations hold nothing the gate reads but their ids: they are not loaded back.)"""
    missing = [c for cid, c in known.contacts.items() if cid not in known.convs]
    if not missing:
        return
    rows = [dict(workspace_id=c.workspace_id, contact_id=c.id, channel_id=job.channel_id, mode="bot",
                 updated_at=job.now) for c in missing]
    try:
        with s.begin_nested():
            ids = insert_ids(s, Conversation.__table__, rows)
    except IntegrityError:
        return
    known.convs.update({r["contact_id"]: Conversation(id=i, **r) for i, r in zip(ids, rows)})


def _outcome(values: Mapping[str, Any], message_id: int) -> Outcome:
    if values["status"] != "queued":
        return Outcome("skipped", values["error_details"] or values["status"])
    return Outcome("deferred" if values["not_before"] else "queued", message_id=message_id)


def _decide_batch(s: Session, job: _Job, raws: list[Mapping[Any, Any]]) -> list[Outcome]:
    """Every row's outcome, the batch's facts read at once (``core.campaign_batch``), its new
    outbox rows inserted at once (``core.store.inserts``)."""
    outcomes: list[Outcome | None] = [None] * len(raws)
    prepared = {}
    for i, raw in enumerate(raws):
        row = _clean(raw)
        ready, reason = _prepare(job.template, job.campaign.params or {}, row)
        if ready is None:
            outcomes[i] = Outcome("skipped", reason)
        else:
            prepared[i] = (row, *ready, campaign_key(job.campaign.id, ready[0].e164))
    known = read_known(s, workspace_id=job.campaign.workspace_id, channel_id=job.channel_id,
                       numbers=[p[1].e164 for p in prepared.values()], keys=[p[4] for p in prepared.values()],
                       since=job.now - job.policy.cap_window, marketing=job.outgoing.template_category == "MARKETING",
                       counted=COUNTED)
    _open_conversations(s, job, known)
    pending: list[tuple[int, dict]] = []
    for i, (row, phone, params, rendered, key) in prepared.items():
        if key in known.existing_keys:
            outcomes[i] = Outcome("already")
            continue
        known.existing_keys.add(key)  # (the same person twice in one batch: the second is "already")
        if known.erased_possible and job.erase_salt is not None and privacy.was_erased(
                s, job.campaign.workspace_id, phones.match_keys(phone.e164), job.erase_salt):
            outcomes[i] = Outcome("skipped", "contact was erased (privacy request)")
            continue
        values = _fast(s, job, known, row, phone, params, rendered, key)
        if values is None:
            s.flush()
            outcomes[i] = _queue(s, job, row, phone, params, key)
        else:
            pending.append((i, values))
    s.flush()
    ids = insert_ids(s, Message.__table__, [values for _i, values in pending])
    for (i, values), message_id in zip(pending, ids):
        outcomes[i] = _outcome(values, message_id)
    return outcomes


def send_rows(s: Session, campaign: Campaign, rows: Iterable[tuple[int, Mapping[Any, Any]]], *, now: datetime,
              catalogue: Catalogue, policy: Policy, channel_id: int, erase_salt: str | None = None) -> BatchResult:
    """Decide every ``(row number, row)`` of ``rows`` (rows at or before ``campaign.last_row`` are
    passed over) and record the counters and the new ``last_row`` on the campaign. The caller
    commits; if ``rows`` raises, rolling back leaves the campaign as it was before the batch."""
    template = catalogue.get(campaign.template, campaign.language)
    command = SendTemplate(template=template.name, language=template.language)
    outgoing = outgoing_for(command, catalogue, stored_for(s, campaign.workspace_id))
    job = _Job(campaign=campaign, template=template, now=now, catalogue=catalogue, policy=policy,
               channel_id=channel_id, erase_salt=erase_salt, outgoing=outgoing)
    tally, queued, last = Tally(), [], campaign.last_row
    items = [(number, row) for number, row in rows if number > campaign.last_row]
    for (number, _row), outcome in zip(items, _decide_batch(s, job, [row for _, row in items])):
        tally.add(outcome)
        if outcome.kind == "queued":
            queued.append(outcome.message_id)
        last = max(last, number)
    _save(campaign, tally, last, now)
    s.flush()
    return BatchResult(tally=tally, queued_ids=tuple(queued))


# ---------------------------------------------------------------- status


def outbox_counts(s: Session, campaign_id: int) -> dict[str, int]:
    """The campaign's outbox rows by status (queued, blocked, accepted, sent, delivered, read, failed...)."""
    rows = s.execute(select(Message.status, func.count()).where(
        Message.idempotency_key.like(key_prefix(campaign_id) + "%")).group_by(Message.status))
    return {status: count for status, count in rows}
