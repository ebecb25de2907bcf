"""Server-side inbox sessions (``agent_session`` rows): open one at sign-in, find the open one a
cookie names, end one, end all of an agent's. The cookie alone was valid until the agent's
``session_version`` changed, so signing out in one browser left a copy of its cookie signed in;
a row that signing out ends makes the server the judge.

The cookie holds a random token and the row only its SHA-256, so the table cannot sign anyone in.
A session also ends by itself ``SESSION_MAX_AGE`` after sign-in and ``SESSION_IDLE`` after its
last request, by the injected clock; ``last_seen_at`` is written at most every ``TOUCH_EVERY``,
so a busy inbox does not write a row per request.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from core.store.models import Agent, AgentSession
from core.store.models.inbox import SESSION_IDLE, SESSION_MAX_AGE

__all__ = ["SESSION_IDLE", "SESSION_MAX_AGE", "TOUCH_EVERY", "open_session", "current", "still_open", "end",
           "end_one", "end_all", "open_sessions", "activity", "describe"]

TOUCH_EVERY = timedelta(minutes=1)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(s: Session, agent_id: int, now: datetime, *, user_agent: str, address: str) -> str:
    """A new row for a sign-in; returns the token for the cookie (never stored)."""
    token = secrets.token_urlsafe(32)
    s.add(AgentSession(token_hash=_hash(token), agent_id=agent_id, created_at=now, last_seen_at=now,
                       client=describe(user_agent), address=(address or "unknown")[:64]))
    s.flush()
    return token


def _expired(row, now: datetime) -> bool:  # an AgentSession, or a row of its two times
    return row.created_at <= now - SESSION_MAX_AGE or row.last_seen_at <= now - SESSION_IDLE


def current(s: Session, token: str, now: datetime) -> tuple[Agent, AgentSession] | None:
    """The agent and the open session ``token`` names, in one indexed lookup, or None. An expired
    row is ended on the way; an open one is marked seen when its mark is a minute old."""
    found = s.execute(select(Agent, AgentSession).join(AgentSession, AgentSession.agent_id == Agent.id)
                      .where(AgentSession.token_hash == _hash(token), AgentSession.ended_at.is_(None))).first()
    if found is None:
        return None
    agent, row = found
    if _expired(row, now):
        row.ended_at = now
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
    return agent, row


def still_open(s: Session, session_id: int, version: int, now: datetime) -> bool:
    """Whether the session a request found open still is, for a request that stays open (the
    inbox's live stream): not ended, not expired, its agent active and not signed out everywhere
    since (``version``, the agent's ``session_version`` then). One lookup by primary key that
    writes nothing: the request that opened the stream marked the session seen."""
    row = s.execute(select(AgentSession.created_at, AgentSession.last_seen_at, AgentSession.ended_at, Agent.active,
                           Agent.session_version).join(Agent, Agent.id == AgentSession.agent_id)
                    .where(AgentSession.id == session_id)).first()
    return (row is not None and row.ended_at is None and not _expired(row, now) and row.active
            and row.session_version == version)


def end(s: Session, token: str, now: datetime) -> None:
    """Signing out: the session ``token`` names ends, whichever browser holds a copy of it."""
    s.execute(update(AgentSession).where(AgentSession.token_hash == _hash(token), AgentSession.ended_at.is_(None))
              .values(ended_at=now).execution_options(synchronize_session=False))


def end_one(s: Session, agent_id: int, session_id: int, now: datetime) -> bool:
    """The agent ends one of their own sessions by its row id (another browser of theirs). False
    when no open session of *this* agent has that id: someone else's session is not found."""
    return s.execute(update(AgentSession).where(AgentSession.id == session_id, AgentSession.agent_id == agent_id,
                                                AgentSession.ended_at.is_(None))
                     .values(ended_at=now).execution_options(synchronize_session=False)).rowcount == 1


def _open_at(now: datetime):
    """A row still open at ``now``: not ended, and not past either age limit."""
    return (AgentSession.ended_at.is_(None) & (AgentSession.created_at > now - SESSION_MAX_AGE)
            & (AgentSession.last_seen_at > now - SESSION_IDLE))


def end_all(s: Session, agent_id: int, now: datetime, *, keep: int | None = None) -> int:
    """Every open session of the agent ends, but ``keep`` (a row id, the browser asking); returns how
    many. One that already expired by the clock counts as over: it is neither ended again nor
    counted, so the number is the sessions the agent's page listed."""
    query = update(AgentSession).where(AgentSession.agent_id == agent_id, _open_at(now))
    if keep is not None:
        query = query.where(AgentSession.id != keep)
    return s.execute(query.values(ended_at=now).execution_options(synchronize_session=False)).rowcount


def open_sessions(s: Session, agent_id: int, now: datetime) -> list[AgentSession]:
    """The agent's sessions still open at ``now``, the most recently used first."""
    return list(s.scalars(select(AgentSession).where(AgentSession.agent_id == agent_id, _open_at(now))
                          .order_by(AgentSession.last_seen_at.desc(), AgentSession.id.desc())))


def activity(s: Session, agent_ids: list[int], now: datetime) -> dict[int, tuple[int, datetime | None]]:
    """For the admin's page of agents, in one grouped query: each agent's number of sessions open at
    ``now`` and when they were last seen in any session (open or ended; None: no session kept)."""
    found = {agent_id: (int(count or 0), seen) for agent_id, count, seen in s.execute(
        select(AgentSession.agent_id, func.sum(case((_open_at(now), 1), else_=0)),
               func.max(AgentSession.last_seen_at))
        .where(AgentSession.agent_id.in_(agent_ids)).group_by(AgentSession.agent_id))}
    return {agent_id: found.get(agent_id, (0, None)) for agent_id in agent_ids}


_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"),
             ("Safari/", "Safari"))
_SYSTEMS = (("Android", "Android"), ("iPhone", "iPhone"), ("iPad", "iPad"), ("Windows", "Windows"),
            ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"), ("Linux", "Linux"))


def describe(user_agent: str | None) -> str:
    """"Firefox on Windows" from a User-Agent header: enough to tell one's browsers apart, and no
    more kept than that. An unknown header is kept cut short."""
    ua = (user_agent or "").strip()
    browser = next((name for mark, name in _BROWSERS if mark in ua), None)
    system = next((name for mark, name in _SYSTEMS if mark in ua), None)
    if browser and system:
        return f"{browser} on {system}"
    return (browser or system or ua or "unknown browser")[:120]
