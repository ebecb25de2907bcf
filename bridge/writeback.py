"""Flushes the write-back outbox of one installation through its connector's writer.

Tasks are claimed in batches (status ``writing``), written outside the transaction, and their
results recorded: ``done`` keeps the platform's record id so a later change of the same line
updates it; ``retry`` waits (``not_before``) as long as the platform asked; ``failed`` keeps the
reason. A worker that dies mid-batch leaves ``writing`` rows that the sweeper returns to pending.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Sequence

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from connectors import REGISTRY
from connectors.base import WriteResult, WriteTask
from core.errors import PermanentError, RetryableError
from core.installations import NotInstalled
from core.sealed import SealError
from core.store import session_scope
from core.store.models import Contact, ContactLink, WritebackTask
from core.writeback import transcript
from bridge.installs import opened
from bridge.runtime import Runtime

__all__ = ["flush", "BATCH", "RETRY_DEFAULT"]

_log = logging.getLogger(__name__)
BATCH = 100
RETRY_DEFAULT = 30.0  # seconds, when a retryable failure does not say how long


def _claim(rt: Runtime, platform: str, account: str) -> list[WriteTask]:
    now = rt.clock.now()
    with session_scope(rt.db) as s:
        q = (select(WritebackTask).where(WritebackTask.platform == platform, WritebackTask.account == account,
                                         WritebackTask.status == "pending",
                                         or_(WritebackTask.not_before.is_(None), WritebackTask.not_before <= now))
             .order_by(WritebackTask.id).limit(BATCH))
        if s.bind.dialect.name == "postgresql":
            q = q.with_for_update(skip_locked=True)
        rows = list(s.scalars(q))
        tasks = []
        for row in rows:
            row.status, row.attempts, row.updated_at = "writing", row.attempts + 1, now
            contact = s.get(Contact, row.contact_id) if row.contact_id else None
            ref = s.scalar(select(ContactLink.external_id).where(
                ContactLink.contact_id == row.contact_id, ContactLink.platform == platform)) if contact else None
            tasks.append(WriteTask(
                id=row.id, kind=row.kind, key=row.key, account=account, payload=row.payload, contact_ref=ref,
                external_id=row.external_id,
                conversation_url=rt.settings.conversation_url(row.conversation_id) if row.conversation_id else None,
                contact={} if contact is None else {
                    "phone": contact.phone_e164, "first_name": contact.first_name, "last_name": contact.last_name,
                    "email": contact.email, "profile_name": contact.profile_name},
                transcript=tuple(transcript(s, row.conversation_id, row.payload.get("message_id")))
                if row.kind == "handoff" and row.conversation_id else ()))
        return tasks


def _record(rt: Runtime, platform: str, results: Sequence[WriteResult], tasks: Sequence[WriteTask]) -> None:
    now = rt.clock.now()
    seen = {r.task_id for r in results}
    missing = [WriteResult(task_id=t.id, outcome="retry", detail="the writer gave no result")
               for t in tasks if t.id not in seen]
    with session_scope(rt.db) as s:
        for r in [*results, *missing]:
            row = s.get(WritebackTask, r.task_id)
            if row is None or row.status != "writing":
                continue  # changed meanwhile (a newer version of the line is pending): leave it
            row.updated_at, row.result = now, r.detail
            if r.external_id:
                row.external_id = r.external_id
            if r.outcome == "done":
                row.status = "done"
            elif r.outcome == "failed":
                row.status = "failed"
                _log.warning("write-back %s to %s failed: %s", row.key, platform, r.detail)
            else:
                row.status = "pending"
                row.not_before = now + timedelta(seconds=r.retry_after if r.retry_after is not None else RETRY_DEFAULT)
            if r.contact_ref and row.contact_id:
                _link(s, row, platform, r.contact_ref)


def _link(s, row: WritebackTask, platform: str, ref: str) -> None:
    exists = s.scalar(select(ContactLink.id).where(ContactLink.workspace_id == row.workspace_id,
                                                   ContactLink.platform == platform, ContactLink.external_id == ref))
    if exists is None:
        try:
            with s.begin_nested():
                s.add(ContactLink(workspace_id=row.workspace_id, contact_id=row.contact_id, platform=platform,
                                  external_id=ref))
        except IntegrityError:
            pass


def _give_back(rt: Runtime, tasks: Sequence[WriteTask], outcome: str, detail: str, retry_after: float | None) -> None:
    _record(rt, "", [WriteResult(task_id=t.id, outcome=outcome, detail=detail, retry_after=retry_after)
                     for t in tasks], tasks)


def flush(rt: Runtime, platform: str, account: str, max_batches: int = 50) -> int:
    """Write what is due for one installation; returns how many tasks were tried."""
    connector = REGISTRY.get(platform)
    if connector is None:
        return 0
    try:
        writer = connector.writer(opened(rt, platform, account))
    except (NotInstalled, SealError) as exc:
        with session_scope(rt.db) as s:
            s.execute(update(WritebackTask).where(
                WritebackTask.platform == platform, WritebackTask.account == account,
                WritebackTask.status == "pending").values(status="failed", result=str(exc), updated_at=rt.clock.now()))
        _log.warning("write-backs to %s %s dropped: %s", platform, account, exc)
        return 0
    if writer is None:
        return 0
    tried = 0
    try:
        for _ in range(max_batches):
            tasks = _claim(rt, platform, account)
            if not tasks:
                break
            tried += len(tasks)
            try:
                results = writer.write(tasks)
            except RetryableError as exc:
                _give_back(rt, tasks, "retry", str(exc), exc.retry_after)
                break
            except PermanentError as exc:
                _give_back(rt, tasks, "failed", str(exc), None)
                break
            _record(rt, platform, results, tasks)
            if any(r.outcome == "retry" for r in results) or len(tasks) < BATCH:
                break
    finally:
        writer.close()
    return tried
