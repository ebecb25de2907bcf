"""This database, the businesses it serves, their WhatsApp numbers and installed connectors."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.store.models.base import Base, _fk

__all__ = ["DatabaseIdentity", "Workspace", "Channel", "Installation"]


class DatabaseIdentity(Base):
    """One row: a random id naming this database whatever URL reaches it (made by migration 0012,
    or on first use). The bridge records it in Redis; a worker refuses to start on another."""

    __tablename__ = "database_identity"
    id: Mapped[int] = mapped_column(primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)


class Workspace(Base):
    """One business: its numbers, installations and settings."""

    __tablename__ = "workspace"
    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Channel(Base):
    """A WhatsApp business number."""

    __tablename__ = "channel"
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = _fk("workspace.id", index=True)
    phone_number_id: Mapped[str] = mapped_column(String(64), unique=True)
    display_phone: Mapped[str | None] = mapped_column(String(32))
    waba_id: Mapped[str | None] = mapped_column(String(64))


class Installation(Base):
    """A connector installed for a workspace: a Shopify shop, a HubSpot portal..."""

    __tablename__ = "installation"
    __table_args__ = (UniqueConstraint("platform", "account"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = _fk("workspace.id", index=True)
    platform: Mapped[str] = mapped_column(String(32))
    account: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="active")  # pending | active | uninstalled | erased
    credentials: Mapped[str | None] = mapped_column(Text)  # sealed (core.sealed), never plain
    config: Mapped[dict[str, Any] | None] = mapped_column()  # api base, version, scopes, webhook ids...
    installed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime | None]
