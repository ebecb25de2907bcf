"""`replyflow serve` with REDIS_URL: gunicorn sync workers (a process each) answer webhooks, record
them in the database and hand them to RQ; nothing runs the jobs in the server itself."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from connectors.whatsapp.events import sign

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "whatsapp" / "inbound_text.json"
SECRET = "serve-test-app-secret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def _wait_until_up(proc: subprocess.Popen, base: str, seconds: float = 60) -> float:
    """Until the bridge's /healthz answers 200 (the process must not die meanwhile); returns the deadline."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return deadline
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "the bridge did not come up"
        time.sleep(0.2)


def test_serve_with_redis_runs_gunicorn_workers_that_record_and_enqueue(tmp_path, redis_url):
    from redis import Redis
    from rq import Queue
    from rq.serializers import JSONSerializer

    port, db = _free_port(), tmp_path / "serve.db"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}", "REDIS_URL": redis_url,
           "WHATSAPP_APP_SECRET": SECRET, "WHATSAPP_ACCESS_TOKEN": "serve-test-token",
           "WHATSAPP_API_BASE": "http://127.0.0.1:9", "REPLYFLOW_SECRET_KEY": "serve-test-secret-key-0123456789",
           "WHATSAPP_VERIFY_TOKEN": "serve-verify", "WHATSAPP_PHONE_NUMBER_ID": "106000000000002",
           "REPLYFLOW_ACTION_SECRET": "serve-action-secret", "REPLYFLOW_ERASE_SALT": "serve-erase-salt"}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "replyflow"), "serve", "--port", str(port), "--workers", "3"],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = _wait_until_up(proc, f"http://127.0.0.1:{port}")
        while len(_children(proc.pid)) < 3 and time.monotonic() < deadline:  # the first may answer already
            time.sleep(0.1)
        assert len(_children(proc.pid)) == 3  # the gunicorn arbiter and its three sync workers
        body = FIXTURE.read_bytes()
        answer = httpx.post(f"http://127.0.0.1:{port}/webhooks/whatsapp", content=body,
                            headers={"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, SECRET)})
        assert answer.status_code == 200, answer.text
        bad = httpx.post(f"http://127.0.0.1:{port}/webhooks/whatsapp", content=body,
                         headers={"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=" + "0" * 64})
        assert bad.status_code == 403, bad.text
        # /metrics on any worker counts every worker's requests (prometheus_client multiprocess mode)
        from concurrent.futures import ThreadPoolExecutor

        def post(_):
            return httpx.post(f"http://127.0.0.1:{port}/webhooks/whatsapp", content=body,
                              headers={"Content-Type": "application/json",
                                       "X-Hub-Signature-256": sign(body, SECRET)}).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(post, range(29))) == {200}  # a redelivery is answered 200 too
        for _ in range(6):
            scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
            assert 'replyflow_webhook_requests_total{platform="whatsapp",status="200"} 30.0' in scraped, scraped
            assert 'replyflow_webhook_requests_total{platform="whatsapp",status="403"} 1.0' in scraped
            assert 'replyflow_webhook_seconds_count{platform="whatsapp"} 31.0' in scraped
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert "gunicorn, 3 sync workers" in out
    assert "ingest: direct: each webhook enqueues its job on RQ" in out
    assert "warning: no `replyflow worker` is running: jobs wait in Redis until one starts" in out, out
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM inbound_event WHERE platform = 'whatsapp'")).scalar() == 1
    engine.dispose()
    inbound = Queue("inbound", connection=Redis.from_url(redis_url), serializer=JSONSerializer)
    assert [job.func_name for job in inbound.get_jobs()] == ["bridge.jobs.handle_event"]  # no job ran here


def test_serve_prints_no_password_and_warns_about_inbox_streams_that_hold_workers(tmp_path, monkeypatch):
    """What `serve` prints lands in terminals and service logs: Redis and the database are named
    as `replyflow worker` names them (bridge.health.describe_url), never with their passwords."""
    from click.testing import CliRunner

    from bridge import gunicorn_serve, runtime
    from bridge.cli import main

    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}", "REDIS_URL": "redis://:redis-s3cret@127.0.0.1:1/0",
           "WHATSAPP_APP_SECRET": SECRET, "WHATSAPP_ACCESS_TOKEN": "serve-test-token",
           "WHATSAPP_API_BASE": "http://127.0.0.1:9", "REPLYFLOW_SECRET_KEY": "serve-test-secret-key-0123456789",
           "WHATSAPP_VERIFY_TOKEN": "serve-verify", "WHATSAPP_PHONE_NUMBER_ID": "106000000000002",
           "REPLYFLOW_ACTION_SECRET": "serve-action-secret", "REPLYFLOW_ERASE_SALT": "serve-erase-salt"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(gunicorn_serve, "serve", lambda *args, **kwargs: None)  # everything but gunicorn itself
    runtime.set_runtime(None)
    result = CliRunner().invoke(main, ["serve", "--port", str(_free_port())])
    assert result.exit_code == 0, result.output
    assert "redis-s3cret" not in result.output, result.output
    assert "jobs on RQ at redis://:***@127.0.0.1:1/0" in result.output, result.output
    assert "REPLYFLOW_INBOX_STREAM_SECONDS" not in result.output  # the default: nothing to warn about

    monkeypatch.setenv("REPLYFLOW_INBOX_STREAM_SECONDS", "300")  # a stream that would hold a sync worker
    runtime.set_runtime(None)
    held = CliRunner().invoke(main, ["serve", "--port", str(_free_port()), "--workers", "2"])
    assert held.exit_code == 0, held.output
    assert ("warning: REPLYFLOW_INBOX_STREAM_SECONDS=300: each open inbox page holds one of the 2 sync workers"
            in held.output), held.output


def test_open_inbox_pages_do_not_hold_the_sync_workers_that_answer_webhooks(tmp_path, redis_url):
    """Under `replyflow serve` (gunicorn sync workers) more inbox pages than workers stay open, each
    reconnecting its live-update stream at once whenever it ends, and a signed WhatsApp webhook is
    still answered. A stream that stayed open held its worker for minutes: the webhook waited."""
    import re
    import threading

    port, db = _free_port(), tmp_path / "streams.db"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}", "REDIS_URL": redis_url,
           "WHATSAPP_APP_SECRET": SECRET, "WHATSAPP_ACCESS_TOKEN": "serve-test-token",
           "WHATSAPP_API_BASE": "http://127.0.0.1:9", "REPLYFLOW_SECRET_KEY": "serve-test-secret-key-0123456789",
           "WHATSAPP_VERIFY_TOKEN": "serve-verify", "WHATSAPP_PHONE_NUMBER_ID": "106000000000002",
           "REPLYFLOW_ACTION_SECRET": "serve-action-secret", "REPLYFLOW_ERASE_SALT": "serve-erase-salt",
           "REPLYFLOW_SECURE_COOKIES": "false", "REPLYFLOW_AGENT_PASSWORD": "agent-password-1"}
    env.pop("REPLYFLOW_INBOX_STREAM_SECONDS", None)  # the default under gunicorn is what is tested
    cli = str(Path(sys.executable).parent / "replyflow")
    subprocess.run([cli, "agents", "add", "ada@example.com"], env=env, cwd=ROOT, check=True, capture_output=True)
    proc = subprocess.Popen([cli, "serve", "--port", str(port), "--workers", "2"],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base, stop, streams = f"http://127.0.0.1:{port}", threading.Event(), []
    started = threading.Semaphore(0)

    def page() -> None:
        try:
            open_page()
        except httpx.HTTPError:
            if not stop.is_set():  # the server going away at the end is no failure
                raise

    def open_page() -> None:  # one open inbox page: its EventSource, reconnecting at once each time a stream ends
        with httpx.Client(base_url=base, timeout=httpx.Timeout(10, read=None)) as client:
            token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/inbox/login").text).group(1)
            signed = client.post("/inbox/login", data={"email": "ada@example.com", "password": "agent-password-1",
                                                       "csrf_token": token})
            assert signed.status_code == 302, signed.text
            while not stop.is_set():
                with client.stream("GET", "/inbox/events") as stream:
                    assert stream.status_code == 200
                    for n, chunk in enumerate(stream.iter_text()):
                        if n == 0:
                            started.release()
                        if stop.is_set():
                            break

    try:
        _wait_until_up(proc, base)
        for _ in range(4):  # twice as many pages as workers
            streams.append(threading.Thread(target=page, daemon=True))
            streams[-1].start()
        for _ in range(2):  # both workers have answered a stream: before the fix, both are held by one now
            assert started.acquire(timeout=30), "no inbox stream was answered"
        body = FIXTURE.read_bytes()
        answer = httpx.post(f"{base}/webhooks/whatsapp", content=body, timeout=10,  # streams lasted 300 s
                            headers={"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, SECRET)})
        assert answer.status_code == 200, answer.text
    finally:
        stop.set()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        for thread in streams:
            thread.join(timeout=10)
    assert "WORKER TIMEOUT" not in out, out  # no worker was killed for holding a request too long


def test_serve_under_gunicorn_in_sandbox_mode_says_where_messages_go(tmp_path, monkeypatch):
    """Gunicorn beside a sandbox (no WHATSAPP_ACCESS_TOKEN, WHATSAPP_API_BASE set) printed nothing
    about WhatsApp: an admin could not tell that sends go to that sandbox, not to Meta."""
    from click.testing import CliRunner

    from bridge import gunicorn_serve, runtime
    from bridge.cli import main

    for name in [k for k in os.environ if k.startswith(("WHATSAPP_", "REPLYFLOW_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'serve.db'}")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("WHATSAPP_API_BASE", "http://127.0.0.1:9")
    monkeypatch.setattr(gunicorn_serve, "serve", lambda *args, **kwargs: None)  # everything but gunicorn itself
    runtime.set_runtime(None)
    result = CliRunner().invoke(main, ["serve", "--port", str(_free_port()), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert ("WhatsApp: no WHATSAPP_ACCESS_TOKEN set (sandbox values), so messages go to the sandbox at "
            "WHATSAPP_API_BASE=http://127.0.0.1:9") in result.output, result.output
