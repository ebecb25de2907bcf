"""Abandoned checkouts and what became of them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.store.models.base import Base, _fk

__all__ = ["Cart"]


class Cart(Base):
    """An abandoned checkout, and what became of it."""

    __tablename__ = "cart"
    __table_args__ = (UniqueConstraint("workspace_id", "platform", "token"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = _fk("workspace.id")
    platform: Mapped[str] = mapped_column(String(32))
    token: Mapped[str] = mapped_column(String(255))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id", ondelete="SET NULL"))
    total: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    recovery_url: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="open")  # open | recovered | not_contactable
    problem: Mapped[str | None] = mapped_column(Text)
    order_id: Mapped[str | None] = mapped_column(String(64))
    order_total: Mapped[Decimal | None]
    order_currency: Mapped[str | None] = mapped_column(String(3))
    recovered_at: Mapped[datetime | None]
    last_event_at: Mapped[datetime]
    created_at: Mapped[datetime]
