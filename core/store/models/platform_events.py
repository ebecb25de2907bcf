"""What crosses the platform edge: webhook deliveries as recorded on the way in, and the
write-back outbox on the way out."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.store.models.base import Base, _fk, _open_rows

__all__ = ["InboundEvent", "WritebackTask"]


class InboundEvent(Base):
    """A webhook delivery as recorded at the edge. ``dedupe_key`` makes redelivery harmless."""

    __tablename__ = "inbound_event"
    __table_args__ = (Index("ix_inbound_event_subject", "platform", "subject"),
                      _open_rows("ix_inbound_event_pending", "received_at", "pending"))
    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(64))
    account: Mapped[str | None] = mapped_column(String(255))
    subject: Mapped[str | None] = mapped_column(String(255))
    headers: Mapped[dict[str, Any] | None] = mapped_column()
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|done|orphan|failed
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime]
    processed_at: Mapped[datetime | None]


class WritebackTask(Base):
    """The write-back outbox: one conversation event to show on one platform (a timeline entry,
    an order note, a task, a tag). Keyed by what it is about (``message:<id>``), so a change of the
    same message (delivered, read) updates the task, and the connector updates the record it made
    (``external_id``) instead of adding a second one."""

    __tablename__ = "writeback_task"
    __table_args__ = (UniqueConstraint("platform", "account", "key"),
                      Index("ix_writeback_due", "status", "platform", "account", "not_before"))
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = _fk("workspace.id")
    platform: Mapped[str] = mapped_column(String(32))
    account: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(24))  # message | handoff | release | outcome | consent ...
    key: Mapped[str] = mapped_column(String(255))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversation.id", ondelete="CASCADE"))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    external_id: Mapped[str | None] = mapped_column(String(255))  # what the platform called the record we made
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | done | failed
    attempts: Mapped[int] = mapped_column(default=0)
    not_before: Mapped[datetime | None]
    result: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
