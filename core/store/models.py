"""SQLAlchemy models: the system of record. Every record carries its workspace.

Instants are stored as naive UTC and read back as aware UTC (``UTCDateTime``); money is kept
as exact decimal text (``Money``), so SQLite and PostgreSQL give the same answers.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, literal, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import DateTime, TypeDecorator

__all__ = [
    "Base",
    "DatabaseIdentity",
    "Workspace",
    "Channel",
    "Installation",
    "Contact",
    "ContactLink",
    "ConsentEvent",
    "Conversation",
    "Message",
    "Cart",
    "FlowRun",
    "InboundEvent",
    "ErasedContact",
    "Incident",
    "FlowVersion",
    "ActionTask",
    "Campaign",
    "WritebackTask",
    "Agent",
    "AgentRead",
    "SignInThrottle",
    "TemplateRecord",
]


class UTCDateTime(TypeDecorator):
    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


class Money(TypeDecorator):
    impl = String(40)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Any) -> str | None:
        return None if value is None else str(Decimal(value))

    def process_result_value(self, value: str | None, dialect: Any) -> Decimal | None:
        return None if value is None else Decimal(value)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, Decimal: Money}


def _open_rows(name: str, column: str, status: str) -> Index:
    """An index of only the rows in one open status (the sweeper's work): it stays the size of the
    work to do, however long the history grows. Queries must name the status as a literal
    (``core.store.in_status``) for SQLite to take a partial index."""
    where = text(f"status = '{status}'")
    return Index(name, column, sqlite_where=where, postgresql_where=where)


def in_status(column: Any, status: str) -> Any:
    """``column == status`` with the status written into the SQL: a bound parameter hides it from
    SQLite's planner, which then cannot take the partial index of that status."""
    return column == literal(status, literal_execute=True)


def _fk(target: str, **kw: Any) -> Any:
    return mapped_column(ForeignKey(target, ondelete="CASCADE"), **kw)


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


class FlowRun(Base):
    """One contact's way through one flow. Waits are durable: ``wake_at`` is the timer."""

    __tablename__ = "flow_run"
    __table_args__ = (Index("ix_flow_run_due", "status", "wake_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = _fk("workspace.id")
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"), index=True)
    flow_name: Mapped[str] = mapped_column(String(120))
    flow_version: Mapped[int]
    subject: Mapped[str] = mapped_column(String(255))  # what the run is about: "cart:<token>"
    active_key: Mapped[str | None] = mapped_column(String(400), unique=True)  # set while not ended
    status: Mapped[str] = mapped_column(String(16))  # waiting | handed_off | completed | cancelled | failed
    step: Mapped[str | None] = mapped_column(String(120))
    waiting_for: Mapped[str | None] = mapped_column(String(16))  # timer | reply
    wake_at: Mapped[datetime | None]
    vars: Mapped[dict[str, Any]] = mapped_column(default=dict)
    outcome: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


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


class ErasedContact(Base):
    """What is left of an erased contact: a salted hash of each phone key, so that a later
    import does not silently subscribe the person again."""

    __tablename__ = "erased_contact"
    __table_args__ = (UniqueConstraint("workspace_id", "key_hash"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = _fk("workspace.id")
    key_hash: Mapped[str] = mapped_column(String(128))
    erased_at: Mapped[datetime]


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


class FlowVersion(Base):
    """Every flow version ever run, as written: a run keeps the definition it started with."""

    __tablename__ = "flow_version"
    __table_args__ = (UniqueConstraint("name", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    version: Mapped[int]
    text: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[datetime]


class ActionTask(Base):
    """An action a flow asked for (a signed webhook, a connector call): an outbox, retried by jobs."""

    __tablename__ = "action_task"
    __table_args__ = (_open_rows("ix_action_task_pending", "updated_at", "pending"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = _fk("workspace.id")
    flow_run_id: Mapped[int | None] = mapped_column(ForeignKey("flow_run.id", ondelete="SET NULL"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(120))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | done | failed
    attempts: Mapped[int] = mapped_column(default=0)
    result: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


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
class Agent(Base):
    """A person who signs in to the inbox. ``role`` is agent or admin; the password is a salted hash.
    ``session_version`` is copied into each sign-in's cookie; raising it (a new password, a
    deactivation) signs out every session that carries an older number."""

    __tablename__ = "agent"
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = _fk("workspace.id", index=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="agent")  # agent | admin
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
    session_version: Mapped[int] = mapped_column(default=1, server_default="1")


class SignInThrottle(Base):
    """Recent failed sign-ins for one email (``scope`` email) or one client address (``scope``
    address), kept here so every bridge process counts the same failures. ``failures`` holds the
    instants (ISO 8601, oldest first) still inside the counting window; ``locked_until`` ends a
    lockout. Not a workspace's record: the sign-in page comes before any workspace is known."""

    __tablename__ = "sign_in_throttle"
    __table_args__ = (UniqueConstraint("scope", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))  # email | address
    key: Mapped[str] = mapped_column(String(320))
    failures: Mapped[list[str]] = mapped_column(JSON, default=list)
    locked_until: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class AgentRead(Base):
    """How far an agent has read a conversation: what the inbox's unread counts are measured from."""

    __tablename__ = "agent_read"
    __table_args__ = (UniqueConstraint("agent_id", "conversation_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = _fk("agent.id")
    conversation_id: Mapped[int] = _fk("conversation.id", index=True)
    last_message_id: Mapped[int] = mapped_column(default=0)
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
