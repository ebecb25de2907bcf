"""The test run's own PostgreSQL database, and the clearing of those that killed runs left behind.

Each run creates ``replyflow_test_<pid>_<unix time>_<random>`` and holds, for as long as it lives,
a session advisory lock named after it on a connection of its own: the lock is taken before the
database is created and let go only after it is dropped. A run that is killed (SIGKILL, a CI
timeout, a closed terminal) skips its teardown, but its connection closes with the process and the
server lets the lock go. So at session start every ``replyflow_test_*`` database whose lock nobody
holds is a dead run's and is dropped; one whose lock is held belongs to a live run (on this machine
or another sharing the server) and is left alone, however long it has had no connection (a run
spends long stretches in SQLite tests). The lock is looked up in ``pg_locks``, which shows every
database's locks: runs that connect through different databases still see each other.

Databases named by earlier test code, ``replyflow_test_<pid>`` (no lock), are dropped only when
that pid is not alive on this machine AND the database is older than ``LEGACY_AGE`` (its creation
time read with ``pg_stat_file``, when the server lets us; otherwise they are left alone): a run of
the old code elsewhere is still protected by its age.
"""

from __future__ import annotations

import os
import re
import secrets
import time
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

__all__ = ["PREFIX", "LEGACY_AGE", "admin_url", "OwnDatabase", "create_own", "stale", "drop", "drop_stale"]

PREFIX = "replyflow_test_"
LEGACY_AGE = timedelta(hours=6)  # far longer than any test run
_LOCK_CLASS = 0x7266_7473  # the advisory lock's first key: "rfts", replyflow test sessions
_OWN = re.compile(rf"^{PREFIX}\d+_\d+_[0-9a-f]+$")
_LEGACY = re.compile(rf"^{PREFIX}(\d+)$")


def admin_url() -> str:
    """Where the tests create their databases from: REPLYFLOW_TEST_POSTGRES_URL, or the local server."""
    return os.environ.get("REPLYFLOW_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def lock_key(name: str) -> int:
    """The lock's second key (0 .. 2**31-1: the same number as an int4 argument and in pg_locks.objid).
    Two names on one key only ever keep a dead run's database longer, never drop a live one."""
    return zlib.crc32(name.encode()) & 0x7FFF_FFFF


@dataclass
class OwnDatabase:
    name: str
    holder: Connection  # holds the lock while the run lives

    def drop(self) -> None:
        """At the end of the run: the database first, then the lock (the other order would let a
        sweeper take a live database for a dead one's)."""
        self.holder.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.holder.execute(text("SELECT pg_advisory_unlock(:c, :k)"), {"c": _LOCK_CLASS, "k": lock_key(self.name)})
        self.holder.close()


def create_own(admin: Engine) -> OwnDatabase:
    """A new database for this run, its lock taken first (``admin``: an AUTOCOMMIT engine)."""
    name = f"{PREFIX}{os.getpid()}_{int(time.time())}_{secrets.token_hex(3)}"
    holder = admin.connect()
    try:
        holder.execute(text("SELECT pg_advisory_lock(:c, :k)"), {"c": _LOCK_CLASS, "k": lock_key(name)})
        holder.execute(text(f'CREATE DATABASE "{name}"'))
    except BaseException:
        holder.invalidate()  # really closed, not back to the pool still holding the lock
        raise
    return OwnDatabase(name, holder)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _created_at(conn: Connection, name: str) -> datetime | None:
    """When the database was created (its PG_VERSION file's time), or None when the server does
    not let this user read it."""
    try:
        return conn.scalar(text("SELECT (pg_stat_file('base/' || oid || '/PG_VERSION')).modification "
                                "FROM pg_database WHERE datname = :n"), {"n": name})
    except Exception:  # noqa: BLE001 - not allowed (pg_read_server_files) or gone meanwhile: keep it
        conn.rollback()
        return None


def stale(conn: Connection, now: datetime) -> list[str]:
    """The test databases on the server that no live run owns (see the module's docstring)."""
    # the names before the locks: a run that starts in between is not among the names; read the other
    # way round, its database could be listed without its lock, which was not there yet when read
    names = conn.scalars(text("SELECT datname FROM pg_database WHERE datname LIKE :p ORDER BY datname"),
                         {"p": PREFIX.replace("_", r"\_") + "%"}).all()
    held = set(conn.scalars(text("SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted "
                                 "AND classid = :c AND objsubid = 2"), {"c": _LOCK_CLASS}))
    out = []
    for name in names:
        if _OWN.match(name):
            if lock_key(name) not in held:
                out.append(name)
        elif (legacy := _LEGACY.match(name)) and not _pid_alive(int(legacy.group(1))):
            created = _created_at(conn, name)
            if created is not None and now - created > LEGACY_AGE:
                out.append(name)
    return out


def drop(admin: Engine, names: list[str]) -> list[str]:
    """Drop ``names``; returns those dropped (another run clearing at the same time may get there first)."""
    dropped = []
    for name in names:
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            dropped.append(name)
        except Exception:  # noqa: BLE001 - a concurrent drop; the next run tries again
            pass
    return dropped


def drop_stale(admin: Engine, now: datetime) -> list[str]:
    with admin.connect() as conn:
        names = stale(conn, now)
    return drop(admin, names)
