"""Message templates as WhatsApp knows them: approval status, quality, rejection reason."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.store.models.base import Base, _fk

__all__ = ["TemplateRecord"]


class TemplateRecord(Base):
    """A template language as WhatsApp knows it: its approval status, quality and why it was
    rejected or paused. Written by ``templates submit/sync`` and the template webhooks; the send
    path reads the status from here (it wins over the catalogue's expectation)."""

    __tablename__ = "template"
    __table_args__ = (UniqueConstraint("workspace_id", "name", "language"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = _fk("workspace.id")
    name: Mapped[str] = mapped_column(String(512))
    language: Mapped[str] = mapped_column(String(16))  # as WhatsApp spells it: en_US
    category: Mapped[str] = mapped_column(String(24))
    status: Mapped[str] = mapped_column(String(24))  # APPROVED, PENDING, REJECTED, PAUSED, DISABLED ...
    quality: Mapped[str | None] = mapped_column(String(16))  # GREEN, YELLOW, RED, UNKNOWN
    rejected_reason: Mapped[str | None] = mapped_column(Text)  # or the pause/disable detail
    remote_id: Mapped[str | None] = mapped_column(String(64))  # WhatsApp's message_template_id
    components: Mapped[dict[str, Any] | None] = mapped_column()  # what was submitted
    submitted_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
