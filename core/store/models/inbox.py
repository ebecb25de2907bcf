"""The agent inbox: agents who sign in, their sessions, sign-in throttling, and how far each agent has read."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import JSON, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.store.models.base import Base, _fk

__all__ = ["Agent", "AgentRead", "AgentSession", "SignInThrottle", "SESSION_MAX_AGE", "SESSION_IDLE"]

# an inbox session ends by itself this long after sign-in, and this long after its last request
# (here, not in the bridge, so `replyflow db prune` knows which rows have ended)
SESSION_MAX_AGE = timedelta(days=30)
SESSION_IDLE = timedelta(days=7)


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


class AgentSession(Base):
    """One signed-in browser. The cookie holds a random token; only its SHA-256 (``token_hash``) is
    kept here, so a copy of this table signs nobody in. A request counts only while its row is open
    (``ended_at`` unset, not past the age limits in bridge/inbox/sessions.py): signing out ends the
    row, so a copied cookie stops working with the browser it came from. ``last_seen_at`` is
    written at most once a minute; ``client`` and ``address`` let the agent tell their sessions apart."""

    __tablename__ = "agent_session"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    agent_id: Mapped[int] = _fk("agent.id", index=True)
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    client: Mapped[str] = mapped_column(String(120))  # "Firefox on Windows", from the User-Agent header
    address: Mapped[str] = mapped_column(String(64))
    ended_at: Mapped[datetime | None]


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
