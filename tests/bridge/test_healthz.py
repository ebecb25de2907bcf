"""`GET /healthz` once answered 200 {"status": "ok"} with the worker stopped or REDIS_URL wrong,
while nothing was sent. It reports its checks now: 503 only when the database is unreachable (the
bridge cannot take webhooks); a missing worker or Redis is "degraded" with 200, so a load balancer
does not pull every bridge at once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from rq import Worker
from rq.serializers import JSONSerializer
from rq.utils import utcformat

from bridge.app import create_app
from bridge.config import Settings
from bridge.health import WORKER_HEARTBEAT_SECONDS, WORKER_STALE_SECONDS, live_workers
from bridge.queue import InProcessRunner
from bridge.runtime import Runtime, set_runtime
from core.clock import ManualClock
from core.store import Database
from core.templates import default_catalogue
from tests.harness import START, Harness


def _closed_port() -> int:
    with socket.socket() as sock:  # bound, then closed: nothing listens there
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_embedded_the_database_is_checked_and_jobs_run_in_process(tmp_path):
    h = Harness(tmp_path)
    try:
        answer = h.http.get("/healthz")
        assert (answer.status_code, answer.json()) == (200, {"status": "ok", "database": "ok", "jobs": "in-process"})
    finally:
        h.close()


@pytest.mark.redis
def test_with_redis_it_counts_the_live_workers(tmp_path, redis_url):
    h = Harness(tmp_path, runner="rq", redis_url=redis_url)
    try:
        answer = h.http.get("/healthz")
        assert (answer.status_code, answer.json()) == (200, {"status": "degraded", "database": "ok", "redis": "ok",
                                                             "workers": 0})
        worker = Worker(list(h.rt.queue.queues.values()), connection=h.rt.queue.redis, serializer=JSONSerializer)
        worker.register_birth()
        answer = h.http.get("/healthz")
        assert (answer.status_code, answer.json()) == (200, {"status": "ok", "database": "ok", "redis": "ok",
                                                             "workers": 1})
        worker.register_death()
        assert h.http.get("/healthz").json()["workers"] == 0
    finally:
        h.close()


def test_with_redis_unreachable_it_is_degraded_not_down(tmp_path):
    h = Harness(tmp_path, runner="rq", redis_url=f"redis://127.0.0.1:{_closed_port()}/0")
    try:
        answer = h.http.get("/healthz")
        assert (answer.status_code, answer.json()) == (200, {"status": "degraded", "database": "ok",
                                                             "redis": "unreachable", "workers": None})
    finally:
        h.close()


def test_with_the_database_unreachable_it_is_503():
    dead = Database(f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/nothing")
    runner = InProcessRunner()
    rt = Runtime(settings=Settings(database_url=dead.url), db=dead, clock=ManualClock(START),
                 catalogue=default_catalogue(), flows={}, queue=runner)
    try:
        answer = create_app(rt).test_client().get("/healthz")
        assert (answer.status_code, answer.get_json()) == (503, {"status": "failing", "database": "unreachable",
                                                                 "jobs": "in-process"})
    finally:
        rt.close()
        set_runtime(None)


def _registered(redis, pid: int, timeout: float = 60.0) -> Worker:
    """The RQ worker record of process ``pid``, once it has registered (at most ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [w for w in Worker.all(connection=redis, serializer=JSONSerializer) if w.pid == pid]
        if found and found[0].last_heartbeat is not None:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"worker {pid} did not register within {timeout} s")


@pytest.mark.redis
def test_a_worker_killed_with_sigkill_stops_counting_once_its_heartbeat_is_stale(tmp_path, redis_url):
    """A SIGKILLed worker cannot remove its RQ key, which lived on for about 7 minutes (RQ's
    default worker TTL), so /healthz said "ok" with no worker. Now a worker counts only while its
    last heartbeat is recent, and `replyflow worker` beats every WORKER_HEARTBEAT_SECONDS."""
    from redis import Redis

    redis = Redis.from_url(redis_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_", "REPLYFLOW_", "DATABASE_URL"))}
    env.update(REDIS_URL=redis_url, DATABASE_URL=f"sqlite:///{tmp_path / 'w.db'}", WHATSAPP_API_BASE="http://127.0.0.1:9")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "replyflow"), "worker"], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        first = _registered(redis, proc.pid).last_heartbeat
        assert live_workers(redis, now=first + timedelta(seconds=1)) == 1
        # An idle worker must beat again within the interval, or /healthz would drop live workers.
        # This waits for a real beat (bounded: the interval plus 10 s); the assertion is on the
        # timestamps RQ wrote, not on how long we waited.
        deadline = time.monotonic() + WORKER_HEARTBEAT_SECONDS + 10
        beat = first
        while beat == first and time.monotonic() < deadline:
            time.sleep(0.5)
            beat = _registered(redis, proc.pid).last_heartbeat
        assert first < beat <= first + timedelta(seconds=WORKER_HEARTBEAT_SECONDS + 2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the worker and any process it started (its scheduler)
        proc.wait(timeout=30)
    last = _registered(redis, proc.pid).last_heartbeat  # its key is still there after SIGKILL
    assert live_workers(redis, now=last + timedelta(seconds=WORKER_STALE_SECONDS)) == 1
    assert live_workers(redis, now=last + timedelta(seconds=WORKER_STALE_SECONDS + 1)) == 0


@pytest.mark.redis
def test_healthz_does_not_count_a_worker_whose_last_heartbeat_is_old(tmp_path, redis_url):
    h = Harness(tmp_path, runner="rq", redis_url=redis_url)
    try:
        worker = Worker(list(h.rt.queue.queues.values()), connection=h.rt.queue.redis, serializer=JSONSerializer)
        worker.register_birth()  # what a worker SIGKILLed a few minutes after its last beat leaves
        stale = datetime.now(timezone.utc) - timedelta(seconds=WORKER_STALE_SECONDS + 5)
        h.rt.queue.redis.hset(worker.key, "last_heartbeat", utcformat(stale))
        answer = h.http.get("/healthz")
        assert (answer.status_code, answer.json()) == (200, {"status": "degraded", "database": "ok", "redis": "ok",
                                                             "workers": 0})
        worker.heartbeat()
        assert h.http.get("/healthz").json()["workers"] == 1
    finally:
        h.close()
