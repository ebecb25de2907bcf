"""Engine and session set-up: SQLite by default (WAL, busy timeout), PostgreSQL by URL."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Callable, Iterator

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from core.store.models import Base

__all__ = ["Database", "session_scope", "startup_lock", "sqlite_file"]


def sqlite_file(url: str) -> str | None:
    """The file a SQLite URL names (relative paths stay relative); None for other databases and
    in-memory SQLite."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return parsed.database

_STARTUP_LOCK = 0x7265706C79  # "reply": PostgreSQL advisory lock key shared by every replyflow process


def startup_lock(conn: Session | Connection) -> None:
    """Serialise the start-up writes (migrations, the default workspace, flow versions) of processes
    started at once against one database, e.g. several workers on a fresh PostgreSQL: held to the end
    of the transaction. SQLite serialises writers by itself."""
    bind = conn.get_bind() if isinstance(conn, Session) else conn
    if bind.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _STARTUP_LOCK})


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # pragma: no cover - trivial
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class Database:
    """One engine and its session factory. ``create_all`` makes the tables if missing."""

    def __init__(self, url: str, *, connect_timeout: int = 10) -> None:
        self.url = url
        kwargs: dict = {"future": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            # no pre-ping: it costs a round trip on every checkout (a third of a webhook's time);
            # a connection the server dropped fails once, is discarded, and the work is retried
            # (jobs by the queue, webhook inserts by ``inbound.record``, requests by the platform)
            kwargs.update(pool_size=10, max_overflow=20, pool_recycle=1800)
            if url.startswith("postgresql") and "connect_timeout" not in url:
                # a server that drops packets is an error after this long, not a hang (/healthz, jobs)
                kwargs["connect_args"] = {"connect_timeout": connect_timeout}
        self.engine: Engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # called after a unit of work commits, with the jobs it asked for (``session.info["after_commit"]``):
        # the bridge enqueues them; the sweeper finds the same work in the tables if this never runs
        self.on_commit: Callable[[set[tuple]], None] | None = None
        # RQ forks a work-horse per job: a child must open its own connections, never reuse the parent's
        os.register_at_fork(after_in_child=lambda: self.engine.dispose(close=False))

    def create_all(self) -> None:
        """Tables straight from the models (unit tests); the application uses ``upgrade``."""
        Base.metadata.create_all(self.engine)

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (Alembic)."""
        from core.store.migrate import upgrade

        upgrade(self.engine)

    def drop_all(self) -> None:
        Base.metadata.drop_all(self.engine)
        with self.engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def session_scope(db: Database) -> Iterator[Session]:
    """A unit of work: commit on success, roll back on error."""
    session = db.sessions()
    try:
        yield session
        session.commit()
        jobs = session.info.pop("after_commit", None)
        if jobs and db.on_commit is not None:
            db.on_commit(jobs)
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
