"""Agent accounts: create, check a password, list. Passwords are salted hashes (werkzeug.security)."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from core.store.models import Agent, Workspace

__all__ = ["ROLES", "AccountError", "create_agent", "authenticate", "agents_of", "MIN_PASSWORD"]

ROLES = ("agent", "admin")
MIN_PASSWORD = 10
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# a hash to check against when the email is unknown, so a wrong email costs as long as a wrong password
_DUMMY = generate_password_hash("replyflow-not-a-password")


class AccountError(ValueError):
    """An account that cannot be created as asked (the message says why)."""


def create_agent(s: Session, *, email: str, password: str, role: str, now: datetime,
                 name: str | None = None, workspace_slug: str = "default") -> Agent:
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise AccountError(f"not an email address: {email!r}")
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must be at least {MIN_PASSWORD} characters")
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


def authenticate(s: Session, email: str, password: str) -> Agent | None:
    agent = s.scalar(select(Agent).where(func.lower(Agent.email) == email.strip().lower()))
    if agent is None or not agent.active:
        check_password_hash(_DUMMY, password)
        return None
    return agent if check_password_hash(agent.password_hash, password) else None


def agents_of(s: Session, workspace_id: int) -> list[Agent]:
    return list(s.scalars(select(Agent).where(Agent.workspace_id == workspace_id).order_by(Agent.email)))
