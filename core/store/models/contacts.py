"""Contacts: who they are, every key that identifies them, their consent ledger, and what is
left of an erased one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.store.models.base import Base, _fk

__all__ = ["Contact", "ContactLink", "ConsentEvent", "ErasedContact"]


class Contact(Base):
    __tablename__ = "contact"
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = _fk("workspace.id", index=True)
    phone_e164: Mapped[str | None] = mapped_column(String(32))  # where we send
    wa_id: Mapped[str | None] = mapped_column(String(32))  # what WhatsApp calls them
    user_id: Mapped[str | None] = mapped_column(String(160))  # business-scoped user id
    first_name: Mapped[str | None] = mapped_column(String(120))
    last_name: Mapped[str | None] = mapped_column(String(120))
    profile_name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    locale: Mapped[str | None] = mapped_column(String(16))
    timezone: Mapped[str | None] = mapped_column(String(64))
    deliverability: Mapped[str | None] = mapped_column(String(200))  # None = fine
    marketing_retry_after: Mapped[datetime | None]  # per-user marketing limit (131049): not before
    properties: Mapped[dict[str, Any] | None] = mapped_column()  # set by flows (e.g. interest: pricing)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ContactLink(Base):
    """Every key that identifies a contact: phone match keys, wa_id, BSUID, platform ids.

    The unique constraint is what makes "a reply never creates a second contact" hold under
    concurrency: two workers resolving the same person race on this row, not on a lookup.
    """

    __tablename__ = "contact_link"
    __table_args__ = (UniqueConstraint("workspace_id", "platform", "external_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = _fk("workspace.id")
    contact_id: Mapped[int] = _fk("contact.id", index=True)
    platform: Mapped[str] = mapped_column(String(32))  # phone | whatsapp | bsuid | shopify ...
    external_id: Mapped[str] = mapped_column(String(255))


class ConsentEvent(Base):
    """Append-only consent ledger; the current state is derived from it, never stored."""

    __tablename__ = "consent_event"
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = _fk("workspace.id")
    contact_id: Mapped[int] = _fk("contact.id", index=True)
    purpose: Mapped[str] = mapped_column(String(16))  # marketing | utility
    action: Mapped[str] = mapped_column(String(16))  # opt_in | opt_out
    source: Mapped[str] = mapped_column(String(64))
    evidence: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime]
    recorded_at: Mapped[datetime]


class ErasedContact(Base):
    """What is left of an erased contact: a salted hash of each phone key, so that a later
    import does not silently subscribe the person again."""

    __tablename__ = "erased_contact"
    __table_args__ = (UniqueConstraint("workspace_id", "key_hash"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = _fk("workspace.id")
    key_hash: Mapped[str] = mapped_column(String(128))
    erased_at: Mapped[datetime]
