"""`GET /healthz` once answered 200 {"status": "ok"} with the worker stopped or REDIS_URL wrong,
while nothing was sent. It reports its checks now: 503 only when the database is unreachable (the
bridge cannot take webhooks); a missing worker or Redis is "degraded" with 200, so a load balancer
does not pull every bridge at once."""

from __future__ import annotations

import socket

import pytest
from rq import Worker
from rq.serializers import JSONSerializer

from bridge.app import create_app
from bridge.config import Settings
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
