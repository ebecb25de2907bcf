"""Agent accounts: create, check a password, list, deactivate and activate, set or change a password.
Passwords are salted hashes (werkzeug.security)."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from core import handoff
from core.store.models import Agent, Conversation, Workspace
from bridge.inbox.sessions import end_all

__all__ = ["ROLES", "AccountError", "create_agent", "authenticate", "agents_of", "agent_by_email", "deactivate",
           "activate", "set_password", "check_new_password", "change_password", "WrongPassword", "MIN_PASSWORD"]

ROLES = ("agent", "admin")
MIN_PASSWORD = 10
MAX_EMAIL = 320  # Agent.email's length (RFC 5321's longest address)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# a hash to check against when the email is unknown, so a wrong email costs as long as a wrong password
_DUMMY = generate_password_hash("replyflow-not-a-password")


class AccountError(ValueError):
    """An account that cannot be created or changed as asked (the message says why)."""


class WrongPassword(AccountError):
    """The current password given to change it is not the agent's."""


def create_agent(s: Session, *, email: str, password: str, role: str, now: datetime,
                 name: str | None = None, workspace_slug: str = "default") -> Agent:
    email = email.strip().lower()
    if not _EMAIL.match(email) or len(email) > MAX_EMAIL:
        raise AccountError(f"not an email address: {email[:MAX_EMAIL]!r}")
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    _check_length(password)
    if s.scalar(select(Agent.id).where(func.lower(Agent.email) == email)) is not None:
        raise AccountError(f"an agent {email} already exists")
    ws = s.scalar(select(Workspace).where(Workspace.slug == workspace_slug))
    if ws is None:
        raise AccountError(f"no workspace {workspace_slug!r}")
    agent = Agent(workspace_id=ws.id, email=email, name=(name or email.split("@")[0])[:120],
                  password_hash=generate_password_hash(password), role=role, active=True, created_at=now)
    s.add(agent)
    s.flush()
    return agent


def _check_length(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must be at least {MIN_PASSWORD} characters")


def authenticate(s: Session, email: str, password: str) -> Agent | None:
    agent = s.scalar(select(Agent).where(func.lower(Agent.email) == email.strip().lower()))
    if agent is None or not agent.active:
        check_password_hash(_DUMMY, password)
        return None
    return agent if check_password_hash(agent.password_hash, password) else None


def agents_of(s: Session, workspace_id: int) -> list[Agent]:
    return list(s.scalars(select(Agent).where(Agent.workspace_id == workspace_id).order_by(Agent.email)))


def agent_by_email(s: Session, email: str) -> Agent:
    agent = s.scalar(select(Agent).where(func.lower(Agent.email) == email.strip().lower()))
    if agent is None:
        raise AccountError(f"no agent {email.strip().lower()!r} (replyflow agents list shows them all)")
    return agent


def deactivate(s: Session, agent: Agent, now: datetime) -> int:
    """The agent can no longer sign in, their sessions end, and the conversations they hold go back
    to the handoff queue; returns how many. The last active admin of a workspace cannot be deactivated."""
    # one deactivation at a time per workspace, so two admins deactivating each other at once cannot
    # both pass the check below: an empty write locks the workspace's row (PostgreSQL) or the database (SQLite)
    s.execute(update(Workspace).where(Workspace.id == agent.workspace_id).values(slug=Workspace.slug))
    s.refresh(agent)
    if not agent.active:
        raise AccountError(f"{agent.email} is already deactivated")
    if agent.role == "admin" and not s.scalar(select(func.count(Agent.id)).where(
            Agent.workspace_id == agent.workspace_id, Agent.role == "admin", Agent.active.is_(True),
            Agent.id != agent.id)):
        raise AccountError(f"{agent.email} is the last active admin: add another admin first "
                           "(replyflow agents add EMAIL --role admin)")
    agent.active, agent.session_version = False, agent.session_version + 1  # reactivating revives no session
    end_all(s, agent.id, now)
    held = s.scalars(select(Conversation).where(Conversation.workspace_id == agent.workspace_id,
                                                Conversation.mode == "agent",
                                                func.lower(Conversation.assignee) == agent.email.lower())).all()
    for conv in held:
        handoff.requeue(s, conv, f"{agent.email} was deactivated", now)
    return len(held)


def activate(agent: Agent) -> None:
    if agent.active:
        raise AccountError(f"{agent.email} is already active")
    agent.active = True


def set_password(s: Session, agent: Agent, password: str, now: datetime) -> None:
    """A new password (an admin's reset): every session the agent has is signed out."""
    _check_length(password)
    agent.password_hash = generate_password_hash(password)
    agent.session_version += 1
    end_all(s, agent.id, now)


def check_new_password(current: str, new: str) -> None:
    """What can be said of a change before the current password is checked."""
    _check_length(new)
    if new == current:
        raise AccountError("the new password is the current one")


def change_password(s: Session, agent: Agent, current: str, new: str, *, now: datetime,
                    keep: int | None = None) -> None:
    """The agent's own change: the current password first (WrongPassword). Their sessions are
    signed out (their rows end) but ``keep``, the one that made the change, which copies the new
    ``session_version`` to stay signed in.
    Only while the agent still has the ``session_version`` read with ``agent``: a change, reset or
    deactivation that landed meanwhile is not overwritten (AccountError; both sessions stayed in)."""
    check_new_password(current, new)
    if not check_password_hash(agent.password_hash, current):
        raise WrongPassword("the current password is wrong")
    changed = s.execute(update(Agent).where(Agent.id == agent.id, Agent.session_version == agent.session_version)
                        .values(password_hash=generate_password_hash(new), session_version=agent.session_version + 1)
                        .execution_options(synchronize_session=False))
    if changed.rowcount != 1:
        raise AccountError("your password was changed or your account deactivated meanwhile: sign in again")
    end_all(s, agent.id, now, keep=keep)
    s.refresh(agent)
