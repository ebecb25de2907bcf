"""Template approval status as WhatsApp reports it, stored per workspace, name and language.

Three writers, one table (``TemplateRecord``): ``record_submission`` (our create call and its
answer), ``apply_remote`` (a ``templates sync`` listing) and ``apply_update`` (the
``message_template_status_update`` / ``quality`` / ``category`` webhooks). The send path asks
``status_of``: a stored status wins over the catalogue's expectation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.events import TemplateStatusUpdate
from core.store.models import TemplateRecord
from core.templates import Template, normalise_language

__all__ = ["RemoteTemplate", "SENDABLE", "stored_templates", "status_of", "category_of", "statuses", "record_submission",
           "apply_remote", "apply_update", "learn_from_send_error", "STATUS_OF_ERROR"]

STATUS_OF_ERROR = {132015: "PAUSED", 132016: "DISABLED"}  # send errors that tell a template's status

SENDABLE = ("APPROVED",)
UNKNOWN = "UNKNOWN"  # a row made by a quality or category webhook: the status is not known
_REINSTATED = {"REINSTATED": "APPROVED", "UNARCHIVED": "APPROVED"}  # events that mean "sendable again"


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteTemplate:
    """One template language as the account lists it."""

    name: str
    language: str
    category: str
    status: str
    remote_id: str | None = None
    quality: str | None = None
    rejected_reason: str | None = None


def stored_templates(s: Session, workspace_id: int | None = None) -> list[TemplateRecord]:
    query = select(TemplateRecord).order_by(TemplateRecord.name, TemplateRecord.language)
    if workspace_id is not None:
        query = query.where(TemplateRecord.workspace_id == workspace_id)
    return list(s.scalars(query))


def _row(s: Session, workspace_id: int, name: str, language: str) -> TemplateRecord | None:
    return s.scalar(select(TemplateRecord).where(TemplateRecord.workspace_id == workspace_id,
                                                 TemplateRecord.name == name,
                                                 TemplateRecord.language == normalise_language(language)))


def status_of(s: Session, workspace_id: int, name: str, language: str) -> str | None:
    """What WhatsApp last said about the template's status; None when it never said (a quality or
    category webhook alone does not tell the status)."""
    row = _row(s, workspace_id, name, language)
    return None if row is None or row.status == UNKNOWN else row.status


def category_of(s: Session, workspace_id: int, name: str, language: str) -> str | None:
    """The category WhatsApp last gave the template (it re-categorises a utility template that
    promotes as MARKETING); None when it never said."""
    row = _row(s, workspace_id, name, language)
    return None if row is None or row.category in (UNKNOWN, "") else row.category


def statuses(s: Session, workspace_id: int) -> dict[tuple[str, str], str]:
    return {(r.name, r.language): r.status for r in stored_templates(s, workspace_id)}


def _upsert(s: Session, workspace_id: int, name: str, language: str, category: str, now: datetime) -> TemplateRecord:
    row = _row(s, workspace_id, name, language)
    if row is None:
        row = TemplateRecord(workspace_id=workspace_id, name=name, language=normalise_language(language),
                             category=category, status=UNKNOWN, updated_at=now)
        s.add(row)
    return row


def record_submission(s: Session, workspace_id: int, t: Template, *, remote_id: str | None, status: str,
                      components: Mapping[str, Any], now: datetime) -> TemplateRecord:
    row = _upsert(s, workspace_id, t.name, t.language, t.category.value, now)
    row.status, row.remote_id, row.components = status.upper(), remote_id, dict(components)
    row.rejected_reason = None
    row.submitted_at = row.updated_at = now
    s.flush()
    return row


def apply_remote(s: Session, workspace_id: int, remote: RemoteTemplate, now: datetime) -> str | None:
    """Store what a listing says; a line saying what changed, or None."""
    row = _row(s, workspace_id, remote.name, remote.language)
    before = None if row is None else (row.status, row.quality, row.rejected_reason, row.category)
    row = row or _upsert(s, workspace_id, remote.name, remote.language, remote.category, now)
    row.status, row.category = remote.status.upper(), remote.category.upper()
    row.quality = remote.quality or row.quality
    row.rejected_reason = remote.rejected_reason if remote.status.upper() == "REJECTED" else None
    row.remote_id = remote.remote_id or row.remote_id
    after = (row.status, row.quality, row.rejected_reason, row.category)
    if after == before:
        return None
    row.updated_at = now
    s.flush()
    was = "new" if before is None else before[0]
    why = f" ({row.rejected_reason})" if row.rejected_reason else ""
    moved = f"{was} -> {row.status}{why}" if was != row.status else row.status
    return f"{row.name} [{row.language}]: {moved}" + (f", quality {row.quality}" if row.quality else "")


def _detail(update: TemplateStatusUpdate) -> str | None:
    parts = [p for p in (update.reason if update.reason not in (None, "NONE") else None, update.detail) if p]
    return ": ".join(parts) or None


def apply_update(s: Session, workspace_id: int, update: TemplateStatusUpdate, now: datetime) -> str | None:
    """A template webhook; the line saying what changed, or None when it names no template."""
    if not update.name or not update.language:
        return None
    row = _upsert(s, workspace_id, update.name, update.language, update.new_category or "UNKNOWN", now)
    if update.field == "message_template_status_update" and update.event:
        row.status = _REINSTATED.get(update.event.upper(), update.event.upper())
        row.rejected_reason = None if row.status == "APPROVED" else _detail(update)
    elif update.field == "message_template_quality_update" and update.new_quality:
        row.quality = update.new_quality.upper()
    elif update.field == "template_category_update" and update.new_category:
        row.category = update.new_category.upper()
    row.remote_id = update.template_id or row.remote_id
    row.updated_at = now
    s.flush()
    return f"{row.name} [{row.language}]: {row.status}" + (f", quality {row.quality}" if row.quality else "")


def learn_from_send_error(s: Session, workspace_id: int, name: str, language: str, category: str | None,
                          code: int, now: datetime) -> str | None:
    """A send refused with 132015 (paused) or 132016 (disabled) tells the status before any webhook
    does: store it, so the next sends follow their fallback instead of failing the same way."""
    status = STATUS_OF_ERROR.get(code)
    if status is None:
        return None
    row = _upsert(s, workspace_id, name, language, category or "UNKNOWN", now)
    row.status, row.rejected_reason, row.updated_at = status, f"send refused with {code}", now
    s.flush()
    return f"template {name} [{row.language}] marked {status}: the next sends use the flow's fallback"
