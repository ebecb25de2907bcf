"""Test databases left behind by killed runs are dropped at the next session's start; a live
run's database never is, even one no connection uses at that moment (tests/pg_databases.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests import pg_databases

ROOT = Path(__file__).resolve().parents[1]
# a test run in miniature: its own database, the lock held, then it waits to be killed
RUN = """
import sys, time
from sqlalchemy import create_engine
from tests import pg_databases
own = pg_databases.create_own(create_engine(sys.argv[1], isolation_level="AUTOCOMMIT"))
print(own.name, flush=True)
time.sleep(120)
"""


@pytest.fixture
def admin(postgres_server_url):
    engine = create_engine(pg_databases.admin_url(), isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


def _exists(admin, name: str) -> bool:
    with admin.connect() as conn:
        return conn.scalar(text("SELECT count(*) FROM pg_database WHERE datname = :n"), {"n": name}) == 1


def _stale(admin, now: datetime) -> list[str]:
    with admin.connect() as conn:
        return pg_databases.stale(conn, now)


def test_a_killed_runs_database_is_dropped_and_a_live_runs_is_not(admin):
    run = subprocess.Popen([sys.executable, "-c", RUN, pg_databases.admin_url()], cwd=ROOT,
                           stdout=subprocess.PIPE, text=True)
    try:
        name = run.stdout.readline().strip()
        assert name.startswith(pg_databases.PREFIX) and _exists(admin, name)
        # alive, and nobody connected to its database: kept, whatever the clock says
        pg_databases.drop_stale(admin, datetime.now(timezone.utc) + timedelta(days=30))
        assert _exists(admin, name)
    finally:
        run.send_signal(signal.SIGKILL)  # no teardown: what a killed run leaves
        run.wait(timeout=10)
    deadline = time.monotonic() + 10  # the server notices the closed connection and lets the lock go
    while name not in _stale(admin, datetime.now(timezone.utc)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert name in pg_databases.drop_stale(admin, datetime.now(timezone.utc))
    assert not _exists(admin, name)


def _dead_pid() -> int:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait(timeout=30)
    return done.pid


def test_a_database_named_by_earlier_test_code_goes_when_its_pid_is_dead_and_it_is_old(admin):
    dead, alive = f"{pg_databases.PREFIX}{_dead_pid()}", f"{pg_databases.PREFIX}{os.getpid()}"
    with admin.connect() as conn:
        for name in (dead, alive):
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        now = datetime.now(timezone.utc)
        assert not {dead, alive} & set(_stale(admin, now))  # young: kept, the pid may be another machine's
        later = now + pg_databases.LEGACY_AGE + timedelta(minutes=1)
        assert {dead, alive} & set(_stale(admin, later)) == {dead}  # a live pid keeps its database
    finally:
        pg_databases.drop(admin, [dead, alive])
    assert not _exists(admin, dead) and not _exists(admin, alive)
