"""Conversations, every message in and out (the send outbox), and incidents: many contacts
failing with the same error at once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.store.models.base import Base, _fk, _open_rows

__all__ = ["Conversation", "Message", "Incident"]


class Conversation(Base):
    """One thread per contact and number; ``mode`` says who owns it: bot, agent or closed."""

    __tablename__ = "conversation"
    __table_args__ = (UniqueConstraint("contact_id", "channel_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = _fk("workspace.id", index=True)
    contact_id: Mapped[int] = _fk("contact.id")
    channel_id: Mapped[int] = _fk("channel.id")
    mode: Mapped[str] = mapped_column(String(16), default="bot")
    assignee: Mapped[str | None] = mapped_column(String(120))
    handoff_reason: Mapped[str | None] = mapped_column(Text)
    handed_off_at: Mapped[datetime | None]
    last_inbound_at: Mapped[datetime | None]
    window_closed_at: Mapped[datetime | None]  # WhatsApp said the window is closed (131047)
    entry_point_at: Mapped[datetime | None]  # last inbound from a click-to-WhatsApp ad
    updated_at: Mapped[datetime]


class Message(Base):
    """Every message in and out. Outbound rows are the outbox: written before the API call."""

    __tablename__ = "message"
    __table_args__ = (Index("ix_message_conversation", "conversation_id", "id"),
                      _open_rows("ix_message_queued", "status_at", "queued"),
                      _open_rows("ix_message_sending", "status_at", "sending"))
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = _fk("workspace.id")
    conversation_id: Mapped[int] = _fk("conversation.id")
    contact_id: Mapped[int] = _fk("contact.id", index=True)
    direction: Mapped[str] = mapped_column(String(3))  # in | out
    author: Mapped[str] = mapped_column(String(120))  # customer | bot | agent:<name>
    kind: Mapped[str] = mapped_column(String(24))
    body: Mapped[str | None] = mapped_column(Text)
    reply_id: Mapped[str | None] = mapped_column(String(256))
    template_name: Mapped[str | None] = mapped_column(String(512))
    template_category: Mapped[str | None] = mapped_column(String(24))
    request: Mapped[dict[str, Any] | None] = mapped_column()  # what we asked the API to send
    wamid: Mapped[str | None] = mapped_column(String(255), unique=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    status_at: Mapped[datetime | None]
    error_code: Mapped[int | None]
    error_title: Mapped[str | None] = mapped_column(String(255))
    error_details: Mapped[str | None] = mapped_column(Text)
    flow_run_id: Mapped[int | None] = mapped_column(ForeignKey("flow_run.id", ondelete="SET NULL"))
    not_before: Mapped[datetime | None]  # a queued send that must wait (e.g. the one retry after 131049)
    flow_step: Mapped[str | None] = mapped_column(String(120))  # the flow step that sent it (metrics per step)
    created_at: Mapped[datetime]


class Incident(Base):
    """Many contacts failing with the same error at once: a provider or account problem,
    reported once instead of being applied to every contact."""

    __tablename__ = "incident"
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = _fk("workspace.id")
    code: Mapped[int]
    title: Mapped[str] = mapped_column(String(255))
    contacts: Mapped[int]
    started_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
