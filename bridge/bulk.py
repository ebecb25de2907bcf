"""The bulk sender: many outbox rows per job, sent concurrently at the number's rate.

One RQ job per message cannot pass ~170 jobs/s on a forking worker, so campaigns hand the
sender batches (``send_batch(message_ids)``, queue "sends"). A batch is:

1. claimed in ONE conditional ``UPDATE ... SET status='sending' WHERE id IN (...) AND
   status='queued' ... RETURNING id``: a row moves for exactly one claimer, on SQLite (writes are
   serialised) and on PostgreSQL (the second UPDATE waits for the first's row locks, then
   re-reads the rows and finds them no longer queued); committed before any HTTP call;
2. asked the gate again for every row (``core.recheck``, the same decision as
   ``core.outbox.recheck`` with the batch's facts read at once: consent or the window may have
   changed since the row was queued); a recipient sent to within the pair window (1 message per
   6 s per user) goes back to ``queued`` with ``not_before``: deferred, not dropped;
3. sent concurrently through ``BulkClient`` (aiohttp, a bounded number in flight), paced by the
   per-number limiter (``WHATSAPP_MESSAGES_PER_SECOND``, 80 by default, up to 1,000);
4. recorded in one transaction: accepted with the wamid; throttled (130429), pair-limited
   (131056), 5xx and requests that never left back to ``queued`` with a jittered ``not_before``
   (the sweeper hands them out again); permanent errors ``failed`` with the API's reason; a
   request that may have arrived (timeout after it went out) ``unknown``: never re-sent blindly,
   reconciled from status webhooks by its ``biz_opaque_callback_data`` (``replyflow:<id>``).

A worker killed between 1 and 4 leaves its batch ``sending``; the sweeper turns stale
``sending`` rows into ``unknown``, as for single sends. Ids of the batch that are not in the
database at all (a worker on another database than the bridge's) are logged as a warning, as
single-row jobs do (``bridge.health.missing_row``), instead of being skipped in silence.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Awaitable, Callable, Sequence

from sqlalchemy import bindparam, or_, select, update

from connectors.whatsapp.client import BulkClient, OutcomeUnknown, SendResult
from connectors.whatsapp.errors import PermanentWhatsAppError
from connectors.whatsapp.mapper import message_body, recipient
from core.errors import RetryableError
from core.conversations import callback_data_for
from core.gate import Policy, Verdict
from core.recheck import BatchRecheck
from core.store import session_scope
from core.store.models import Message, Workspace
from core.writeback import has_writebacks, message_changed
from bridge.executor import reconcile_orphans, record_failure
from bridge.health import missing_rows
from bridge.runtime import Runtime

__all__ = ["BATCH", "BatchReport", "send_batch", "claim_batch", "chunks"]

_log = logging.getLogger(__name__)
# outbox rows per send_batch job: a forked job has fixed costs (the fork, two database
# connections, the HTTP session, RQ's bookkeeping); 500 (one job per campaign batch) took
# 0.55 ms of worker CPU a message against 0.85 ms with 200. At the default 80 msg/s a batch is
# paced over ~6 s, well inside MAX_PACING.
BATCH = 500
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class _Claimed:
    id: int
    to: str  # the recipient (phone or business-scoped id): the pair limit's key
    body: dict


@dataclass(slots=True)
class BatchReport:
    claimed: int = 0
    blocked: int = 0  # the gate said no on the recheck
    deferred: int = 0  # the gate or the pair limit said later
    accepted: int = 0
    retry: int = 0  # back to queued: throttled, pair-limited, 5xx, never left
    failed: int = 0
    unknown: int = 0


def chunks(ids: Sequence[int], size: int = BATCH) -> list[list[int]]:
    return [list(ids[i:i + size]) for i in range(0, len(ids), size)]


# ---------------------------------------------------------------- 1 and 2: claim and recheck


def claim_batch(rt: Runtime, message_ids: Sequence[int], report: BatchReport | None = None) -> list[_Claimed]:
    """Move the due, queued rows among ``message_ids`` to ``sending`` (one UPDATE), recheck them
    (``core.recheck``: the batch's facts in a few queries), reserve their recipients; returns what
    to send. Commits before returning."""
    report = report if report is not None else BatchReport()
    now = rt.clock.now()
    out: list[_Claimed] = []
    with session_scope(rt.db) as s:
        claimed = s.scalars(
            update(Message)
            .where(Message.id.in_(list(message_ids)), Message.status == "queued", Message.direction == "out",
                   or_(Message.not_before.is_(None), Message.not_before <= now))
            .values(status="sending", status_at=now)
            .returning(Message.id)
            .execution_options(synchronize_session=False)).all()
        report.claimed = len(claimed)
        _warn_missing(rt, s, message_ids, claimed)
        if not claimed:
            return out
        policies: dict[int, Policy] = {}

        def policy_of(workspace_id: int) -> Policy:
            if workspace_id not in policies:
                policies[workspace_id] = rt.flow_context(s.get(Workspace, workspace_id)).policy
            return policies[workspace_id]

        msgs = s.scalars(select(Message).where(Message.id.in_(claimed)).order_by(Message.id)).all()
        gate = BatchRecheck(s, msgs, rt.catalogue, now, policy_of)
        blocked = []
        for msg in msgs:
            decision = gate.decide(msg)
            if decision.verdict is Verdict.DEFERRED and decision.until is not None:
                msg.status, msg.not_before, msg.error_details = "queued", decision.until, f"deferred: {decision.reason}"
                report.deferred += 1
                continue
            if not decision.allowed:
                msg.status, msg.status_at, msg.error_details = "blocked", now, decision.reason
                gate.forget(msg)
                blocked.append(msg)
                report.blocked += 1
                continue
            contact = gate.contacts[msg.contact_id]
            try:
                to = recipient(contact.phone_e164, contact.user_id)
            except ValueError as exc:  # one contact nobody can address must not sink the whole batch
                msg.status, msg.status_at, msg.error_details = "failed", now, str(exc)
                gate.forget(msg)
                blocked.append(msg)
                report.failed += 1
                continue
            out.append(_Claimed(msg.id, next(iter(to.values())),
                                message_body(msg.request, to=to, callback_data=callback_data_for(msg.id))))
        s.flush()
        for msg in blocked:
            message_changed(s, msg, now)
        out = _pair_limit(rt, s, out, now, report)
    return out


def _warn_missing(rt: Runtime, s, message_ids: Sequence[int], claimed: Sequence[int]) -> None:
    """Ids not claimed are usually rows already sent (the job ran twice) or not due yet; one query,
    only when some were not claimed, tells those from ids the database has never had."""
    given = list(dict.fromkeys(message_ids))
    unclaimed = set(given) - set(claimed)
    if not unclaimed:
        return
    there = set(s.scalars(select(Message.id).where(Message.id.in_(unclaimed))))
    missing = [i for i in given if i in unclaimed and i not in there]
    if missing:
        _log.warning(missing_rows("messages", missing, len(given), rt.settings.database_url))


def _pair_limit(rt: Runtime, s, claimed: list[_Claimed], now, report: BatchReport) -> list[_Claimed]:
    unique = list(dict.fromkeys(c.to for c in claimed))
    waits = rt.pair_limiter.reserve(f"wa:{rt.settings.whatsapp_phone_number_id}", unique)
    if not waits and len(unique) == len(claimed):
        return claimed
    keep, seen = [], set()
    for c in claimed:
        if c.to in waits or c.to in seen:  # (two rows for one person in a batch: the second waits)
            wait = waits.get(c.to, rt.pair_limiter.window)
            msg = s.get(Message, c.id)
            msg.status, msg.not_before = "queued", now + timedelta(seconds=wait)
            msg.error_details = "deferred: pair rate limit (a message to this recipient went out moments ago)"
            report.deferred += 1
        else:
            keep.append(c)
            seen.add(c.to)
    return keep


# ---------------------------------------------------------------- 3: send


MAX_PACING = 20.0  # seconds a batch may wait for the number's rate before handing its rest back


async def _send_all(rt: Runtime, client: BulkClient, claimed: list[_Claimed], sleep: Sleep) -> list[SendResult | Exception]:
    """Start each send when the number's rate allows (several workers share it); rows still
    waiting after ``MAX_PACING`` are not sent (a RetryableError puts them back in the queue), so a
    batch never stays 'sending' long enough to look like a dead worker's to the sweeper."""
    key, rate = f"wa:{rt.settings.whatsapp_phone_number_id}", rt.settings.whatsapp_messages_per_second
    async with client.session() as session:
        tasks, i, waited = [], 0, 0.0
        while i < len(claimed) and waited <= MAX_PACING:
            granted, wait = rt.limiter.take(key, len(claimed) - i, rate)
            tasks += [asyncio.ensure_future(session.send(c.body)) for c in claimed[i:i + granted]]
            i += granted
            if i < len(claimed):
                await sleep(max(wait, 0.001))
                waited += max(wait, 0.001)
        saturated = RetryableError(f"the send rate of {key} stayed saturated for {MAX_PACING:.0f} s; not sent",
                                   retry_after=1.0)
        return list(await asyncio.gather(*tasks)) + [saturated] * (len(claimed) - i)


# ---------------------------------------------------------------- 4: record


def _retry_delay(exc: Exception) -> float:
    hint = getattr(exc, "retry_after", None) or 2.0
    return hint * random.uniform(1.0, 1.5)  # jitter, so retries of a batch do not arrive as one burst


_T = Message.__table__
_ACCEPT = (update(_T).where(_T.c.id == bindparam("row_id"), or_(_T.c.status == "sending", _T.c.status == "unknown"))
           .values(wamid=bindparam("wamid"), status="accepted", status_at=bindparam("at"), error_details=None))
_SETTLE = (update(_T).where(_T.c.id == bindparam("row_id"), _T.c.status == "sending")
           .values(status=bindparam("new_status"), status_at=bindparam("at"), error_details=bindparam("details"),
                   not_before=bindparam("after")))


def _outcome(result, now) -> tuple[str, dict] | None:
    """("accept" | "settle", the row's new values) for a result, or None for a permanent error
    (``record_failure``, row by row: it teaches the contact and the channel)."""
    if isinstance(result, SendResult):
        return "accept", {"wamid": result.wamid, "at": now}
    if isinstance(result, OutcomeUnknown) or not isinstance(result, Exception):  # (before RetryableError)
        return "settle", {"new_status": "unknown", "at": now, "details": str(result), "after": None}
    if isinstance(result, PermanentWhatsAppError):
        return None
    if isinstance(result, RetryableError):
        return "settle", {"new_status": "queued", "at": now, "details": f"will retry: {result}",
                          "after": now + timedelta(seconds=_retry_delay(result))}
    return "settle", {"new_status": "unknown", "at": now, "details": f"{type(result).__name__}: {result}",
                      "after": None}


def _record(rt: Runtime, claimed: list[_Claimed], results: list, report: BatchReport) -> list[str]:
    """The outcomes in one transaction: one executemany per kind of change, each guarded by the
    status it expects (a status webhook may have got here first: ``accepted`` wins over
    ``sending`` and ``unknown``, nothing else is overwritten); then the write-back of the changed
    rows, when the workspace has any connector to write to."""
    now = rt.clock.now()
    wamids, unsent, changed, failed = [], [], [], []
    batches: dict[str, list[dict]] = {"accept": [], "settle": []}
    for c, result in zip(claimed, results):
        outcome = _outcome(result, now)
        if outcome is None:
            failed.append((c, result))
            continue
        kind, values = outcome
        batches[kind].append({"row_id": c.id, **values})
        if kind == "accept":
            wamids.append(result.wamid)
            report.accepted += 1
        elif values["new_status"] == "queued":
            if getattr(result, "code", None) != 131056:  # not sent: the pair window is not used up
                unsent.append(c.to)
            report.retry += 1
        else:
            changed.append(c.id)
            report.unknown += 1
    changed += [b["row_id"] for b in batches["accept"]]
    with session_scope(rt.db) as s:
        for kind, statement in (("accept", _ACCEPT), ("settle", _SETTLE)):
            if batches[kind]:
                s.connection().execute(statement, batches[kind])  # (a Core executemany: no ORM rows)
        for c, exc in failed:
            msg = s.get(Message, c.id)
            if msg.status == "sending":
                record_failure(s, msg, exc, now)
                report.failed += 1
        if changed and _writes_back(s, claimed):
            for msg in s.scalars(select(Message).where(Message.id.in_(changed))):
                message_changed(s, msg, now)
    rt.pair_limiter.release(f"wa:{rt.settings.whatsapp_phone_number_id}", unsent)
    return wamids


def _writes_back(s, claimed: list[_Claimed]) -> bool:
    workspaces = s.scalars(select(Message.workspace_id).where(Message.id.in_([c.id for c in claimed])).distinct())
    return any(has_writebacks(s, w) for w in workspaces)


def send_batch(rt: Runtime, message_ids: Sequence[int], *, sleep: Sleep = asyncio.sleep) -> BatchReport:
    """The job body: claim, recheck, send, record. Idempotent: a second run finds nothing queued."""
    report = BatchReport()
    client = rt.bulk_client  # before the claim: a process that cannot send (SettingsError) leaves the rows queued
    claimed = claim_batch(rt, message_ids, report)
    if not claimed:
        return report
    try:
        results = asyncio.run(_send_all(rt, client, claimed, sleep))
    except BaseException:
        _log.exception("batch of %d sends stopped midway; their rows are left 'sending' (unknown once stale)",
                       len(claimed))
        raise
    wamids = _record(rt, claimed, results, report)
    reconcile_orphans(rt, *wamids)  # statuses that arrived before we knew the wamids
    _log.info("send_batch: %s", report)
    return report
