"""A worker started on another database than the bridge's (a terminal without DATABASE_URL opens
./replyflow.db) once took every job and "completed" it against the wrong database, and nothing was
sent. Now it says which database, Redis and queues it uses; it refuses to start when the bridge
recorded another database in Redis; and a job whose row is not there says so, naming the database."""

from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bridge import jobs
from bridge.app import create_app
from bridge.config import Settings
from bridge.runtime import build_runtime, set_runtime
from tests.harness import Harness

ROOT = Path(__file__).resolve().parents[2]
REPLYFLOW = str(Path(sys.executable).parent / "replyflow")


@pytest.fixture
def h(tmp_path):
    harness = Harness(tmp_path)
    yield harness
    harness.close()


def test_a_job_whose_row_is_not_in_the_database_warns_naming_the_database(h: Harness, caplog):
    caplog.set_level(logging.WARNING)
    jobs.handle_event(987654)
    jobs.send_message(987655)
    jobs.wake_run(987656)
    database = h.rt.settings.database_url
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for kind, row_id in (("webhook record", 987654), ("message", 987655), ("flow run", 987656)):
        assert any(f"{kind} {row_id} is not in the database {database}" in line
                   and "the same DATABASE_URL as `replyflow serve`" in line for line in lines), lines


def test_a_send_batch_whose_messages_are_not_in_the_database_warns_naming_how_many_and_which(h: Harness, caplog):
    """A campaign's batch skipped ids it could not find without a word (a worker on another database
    "sent" whole campaigns that way)."""
    from tests.bridge.test_bulk_send import queued

    sent = queued(h, ["+15550001201"])
    caplog.set_level(logging.WARNING)
    gone = list(range(987001, 987008))
    jobs.send_batch([*gone[:3], *sent, *gone[3:]])
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert lines == [f"7 of the 8 messages this job was given are not in the database {h.rt.settings.database_url} "
                     "(ids 987001, 987002, 987003, 987004, 987005, ...), so this job skips them: if that is not "
                     "the bridge's database, start this worker with the same DATABASE_URL as `replyflow serve`"]
    assert [m.to for m in h.sandbox.sent] == ["+15550001201"]  # the one that is there went out
    caplog.clear()
    jobs.send_batch(sent)  # run again: the row is there (already sent), so nothing to say
    assert [r for r in caplog.records if r.levelno == logging.WARNING] == []


def _worker_env(database_url: str | None, redis_url: str) -> dict[str, str]:
    """The worker's environment; without ``database_url``, no DATABASE_URL (./replyflow.db)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_", "REPLYFLOW_", "DATABASE_URL"))}
    env.update(REDIS_URL=redis_url, WHATSAPP_API_BASE="http://127.0.0.1:9")
    return {**env, "DATABASE_URL": database_url} if database_url else env


def _first_lines(env: dict[str, str], cwd: Path, until: str, timeout: float = 60.0) -> str:
    """Start `replyflow worker`, read its output up to a line containing ``until`` (or its exit, or
    ``timeout`` seconds), then stop it."""
    proc = subprocess.Popen([REPLYFLOW, "worker"], env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout] and None, daemon=True).start()
    seen, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not any(until in line for line in seen):
            try:
                seen.append(lines.get(timeout=0.2))
            except queue.Empty:
                if proc.poll() is not None and lines.empty():
                    break
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    while not lines.empty():
        seen.append(lines.get())
    return "".join(seen)


@pytest.mark.redis
def test_the_worker_says_which_database_redis_and_queues_it_uses_without_the_password(tmp_path, redis_url,
                                                                                     postgres_url):
    with_password = make_url(postgres_url).set(password="s3cret-pw")  # the test server trusts loopback
    url = with_password.render_as_string(hide_password=False)
    out = _first_lines(_worker_env(url, redis_url), tmp_path, until="replyflow worker:")
    shown = with_password.render_as_string(hide_password=True)
    assert f"replyflow worker: database {shown}, Redis {redis_url}, queues inbound, flows, sends, writebacks" in out, out
    assert "s3cret-pw" not in out


@pytest.fixture
def bridge_on(redis_url):
    """Start a bridge's app on a database with REDIS_URL (it records its database in Redis)."""
    started = []

    def start(database_url: str):
        rt = build_runtime(Settings(database_url=database_url, redis_url=redis_url))
        started.append(rt)
        create_app(rt)
        return rt

    yield start
    for rt in started:
        rt.close()
    set_runtime(None)


@pytest.mark.redis
def test_a_worker_on_another_database_than_the_bridges_refuses_to_start(tmp_path, redis_url, bridge_on):
    (tmp_path / "shop").mkdir()
    (tmp_path / "elsewhere").mkdir()
    bridge_on(f"sqlite:///{tmp_path / 'shop' / 'replyflow.db'}")
    out = _first_lines(_worker_env(None, redis_url), tmp_path / "elsewhere", until="Listening on")
    assert (f"this worker's database sqlite:///replyflow.db ({tmp_path / 'elsewhere' / 'replyflow.db'}) is not the "
            f"bridge's (sqlite:///{tmp_path / 'shop' / 'replyflow.db'}): start it with the same DATABASE_URL as "
            "`replyflow serve`") in out, out
    assert "Listening on" not in out and "Traceback" not in out


@pytest.mark.redis
def test_a_worker_on_the_bridges_database_by_another_url_starts(tmp_path, redis_url, bridge_on):
    (tmp_path / "shop").mkdir()
    bridge_on(f"sqlite:///{tmp_path / 'shop' / 'replyflow.db'}")  # the worker names it relative to its folder
    out = _first_lines(_worker_env(None, redis_url), tmp_path / "shop", until="Listening on")
    assert f"the bridge uses the same database (sqlite:///{tmp_path / 'shop' / 'replyflow.db'})" in out, out
    assert "Listening on inbound, flows, sends, writebacks" in out, out


@pytest.mark.redis
def test_a_worker_started_before_any_bridge_says_it_cannot_check(tmp_path, redis_url):
    out = _first_lines(_worker_env(f"sqlite:///{tmp_path / 'x.db'}", redis_url), tmp_path, until="Listening on")
    assert "no bridge has recorded its database in this Redis yet" in out, out
    assert "Listening on" in out


@pytest.mark.redis
def test_an_unreadable_bridge_record_is_a_note_not_a_crash(tmp_path, redis_url):
    from redis import Redis

    from bridge.health import BRIDGE_DATABASE_KEY

    Redis.from_url(redis_url).set(BRIDGE_DATABASE_KEY, b"{not json")
    out = _first_lines(_worker_env(f"sqlite:///{tmp_path / 'x.db'}", redis_url), tmp_path, until="Listening on")
    assert "the bridge's record in Redis (replyflow:bridge-database) is unreadable" in out, out
    assert "Listening on" in out and "Traceback" not in out


@pytest.mark.redis
def test_a_running_worker_stops_when_the_bridge_is_restarted_on_another_database(tmp_path, redis_url, postgres_url,
                                                                                bridge_on):
    """The database was checked only at start: a bridge restarted on another DATABASE_URL (or a
    REDIS_URL re-pointed at another bridge's Redis) left the worker running jobs against the wrong
    database. Its sweeper now asks Redis each round, and the worker stops, exit 3, naming both."""
    url = make_url(postgres_url).set(password="s3cret-pw").render_as_string(hide_password=False)
    bridge_on(url)  # the bridge and the worker start on the same database
    proc = subprocess.Popen([REPLYFLOW, "worker", "--sweep-every", "0.2"], env=_worker_env(url, redis_url),
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout] and None, daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("Listening on" in line for line in seen) and proc.poll() is None:
            try:
                seen.append(lines.get(timeout=0.2))
            except queue.Empty:
                pass
        assert any("Listening on" in line for line in seen), "".join(seen)
        bridge_on(f"sqlite:///{tmp_path / 'other.db'}")  # the bridge restarted on another database
        code = proc.wait(timeout=60)  # the sweeper asks every 0.2 s; 60 s is only a bound
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    reader.join(timeout=10)  # it ends with the process's output
    while not lines.empty():
        seen.append(lines.get())
    out = "".join(seen)
    shown = make_url(url).render_as_string(hide_password=True)
    assert code == 3, out
    assert (f"the bridge now records its database as sqlite:///{tmp_path / 'other.db'}, not this worker's {shown}"
            in out), out
    assert "this worker stops instead of running jobs against the wrong database" in out
    assert "s3cret-pw" not in out and "Traceback" not in out


@pytest.mark.redis
def test_the_periodic_check_is_quiet_while_the_bridge_keeps_the_workers_database(tmp_path, redis_url, bridge_on):
    from redis import Redis

    from bridge.health import database_moved
    from core.store.identity import database_id

    redis = Redis.from_url(redis_url)
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    rt = bridge_on(url)
    own = database_id(rt.db)
    assert database_moved(redis, own, url) is None  # the same database
    bridge_on(f"sqlite:///{tmp_path / '.' / 'shop.db'}")  # restarted on the same database by another URL
    assert database_moved(redis, own, url) is None
    redis.flushdb()  # a flushed Redis has no record: not another database
    assert database_moved(redis, own, url) is None
    bridge_on(f"sqlite:///{tmp_path / 'other.db'}")
    assert database_moved(redis, own, url).startswith(f"the bridge now records its database as "
                                                      f"sqlite:///{tmp_path / 'other.db'}, not this worker's {url}")


@pytest.mark.redis
def test_the_worker_logs_what_the_flows_decide(tmp_path, redis_url):
    """The README sends the admin to the worker's log to see why a flow did not start or a send
    waits (quiet hours); those `flows:` lines are INFO, and the worker showed only warnings."""
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    rt = build_runtime(Settings(database_url=url, redis_url=redis_url, api_token="walk-token"))
    try:
        accepted = create_app(rt).test_client().post(
            "/api/triggers", headers={"Authorization": "Bearer walk-token"},
            json={"event": "booking_upcoming", "subject": "booking:7", "contact": {"phone": "+15550002222"},
                  "data": {"service": "tea tasting", "starts_at": "Tuesday 10:00"}})
        assert accepted.status_code == 202, accepted.get_data(as_text=True)
    finally:
        rt.close()
        set_runtime(None)
    out = _first_lines(_worker_env(url, redis_url), tmp_path, until="flows: ", timeout=30)
    assert "INFO bridge.jobs: flows: " in out, out[-1500:]
