"""Shared fixtures: real Redis and PostgreSQL (started here when missing, a failure under CI),
an injected clock, the sandbox Cloud API, and the bridge served on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(what: str) -> None:
    message = f"{what} is not available"
    if IN_CI:
        pytest.fail(message + " (CI=true: services are required, not optional)")
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _redis_ok(url: str) -> bool:
    from redis import Redis

    try:
        client = Redis.from_url(url, socket_connect_timeout=1)
        ok = client.ping()
        client.close()
        return bool(ok)
    except Exception:
        return False


@pytest.fixture(scope="session")
def redis_server_url():
    """A Redis to test against: REPLYFLOW_TEST_REDIS_URL, the local one, or one started here."""
    url = os.environ.get("REPLYFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
    if _redis_ok(url):
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        _unavailable("Redis (no server at 127.0.0.1:6379 and no redis-server binary)")
    port = _free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/13"
    for _ in range(100):
        if _redis_ok(url):
            break
        time.sleep(0.05)
    else:
        proc.kill()
        _unavailable("Redis (a redis-server started by the tests did not answer)")
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def redis_url(redis_server_url):
    """An empty Redis database, flushed before and after the test (rq's RQTestCase discipline)."""
    from redis import Redis

    client = Redis.from_url(redis_server_url)
    client.flushdb()
    yield redis_server_url
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def postgres_server_url():
    """A database of our own on the PostgreSQL server (created here, dropped at the end), so test
    runs never touch data they did not make and two runs at once do not collide. Those that killed
    runs left behind are dropped first; another live run's never are (tests/pg_databases.py)."""
    from datetime import datetime, timezone

    from tests import pg_databases

    base = pg_databases.admin_url()
    try:
        from sqlalchemy import create_engine

        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        pg_databases.drop_stale(admin, datetime.now(timezone.utc))
        own = pg_databases.create_own(admin)
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        _unavailable(f"PostgreSQL at {base.split('@')[-1]} ({type(exc).__name__}: {exc})")
    yield base.rsplit("/", 1)[0] + "/" + own.name
    own.drop()
    admin.dispose()


@pytest.fixture
def postgres_url(postgres_server_url):
    """PostgreSQL with replyflow's tables dropped before the test (the test creates them)."""
    from core.store import Database

    db = Database(postgres_server_url)
    db.drop_all()
    db.dispose()
    yield postgres_server_url
    db = Database(postgres_server_url)
    db.drop_all()
    db.dispose()


def fixture_bytes(platform: str, name: str) -> bytes:
    return (FIXTURES / platform / name).read_bytes()


@pytest.fixture(params=["sqlite", "postgres"])
def bridge(request, tmp_path):
    """The bridge with the in-process runner, once on SQLite and once on PostgreSQL: every test
    that uses it runs on both databases."""
    from tests.harness import Harness

    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    harness = Harness(tmp_path, database_url=url)
    yield harness
    harness.close()
