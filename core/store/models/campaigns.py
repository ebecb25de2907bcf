"""Campaigns: a template sent to a segment, resumably."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.store.models.base import Base, _fk

__all__ = ["Campaign"]


class Campaign(Base):
    """A template sent to a segment (a CSV of contacts). Resumable: its outbox rows carry the
    idempotency key ``campaign:<id>:<phone>``; ``last_row`` lets a resume skip ahead quickly."""

    __tablename__ = "campaign"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = _fk("workspace.id")
    name: Mapped[str] = mapped_column(String(200))
    template: Mapped[str] = mapped_column(String(512))
    language: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)  # constants (--param); a CSV column wins
    segment_path: Mapped[str] = mapped_column(Text)
    segment_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | done
    last_row: Mapped[int] = mapped_column(default=0)  # data rows of the segment processed and committed
    rows_read: Mapped[int] = mapped_column(default=0)
    queued: Mapped[int] = mapped_column(default=0)
    deferred: Mapped[int] = mapped_column(default=0)  # queued with not_before (quiet hours...)
    skipped: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    already: Mapped[int] = mapped_column(default=0)  # key already in the outbox: not queued again
    skip_reasons: Mapped[dict[str, Any]] = mapped_column(default=dict)  # reason -> count
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
