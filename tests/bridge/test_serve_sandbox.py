"""`replyflow serve` without a WhatsApp number: the built-in sandbox listens on --port + 1 every
time (an exported WHATSAPP_API_BASE stays right across restarts), reports sent/delivered/read for
what it accepted by itself, and remembers open 24-hour windows across a restart (it seeds them
from the customers' messages on record)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from core.store import Database, session_scope
from core.store.models import Conversation, Message

ROOT = Path(__file__).resolve().parents[2]
REPLYFLOW = str(Path(sys.executable).parent / "replyflow")


def _free_pair() -> int:
    for _ in range(50):
        with socket.socket() as a, socket.socket() as b:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            try:
                b.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise AssertionError("no two free ports in a row")


def _serve(env: dict, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([REPLYFLOW, "serve", "--port", str(port)], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "the bridge did not come up"
        time.sleep(0.2)


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    return proc.communicate(timeout=30)[0]


def _wait_for(check, what: str, seconds: float = 20.0):
    deadline = time.monotonic() + seconds
    while (found := check()) is None:
        assert time.monotonic() < deadline, what
        time.sleep(0.2)
    return found


def test_the_serve_sandbox_keeps_its_port_reports_statuses_and_remembers_windows(tmp_path):
    port = _free_pair()
    sandbox = f"http://127.0.0.1:{port + 1}"
    url = f"sqlite:///{tmp_path / 'sandbox.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_", "REDIS_URL"))}
    env.update(DATABASE_URL=url, PYTHONPATH=str(ROOT))
    db = Database(url)
    proc = _serve(env, port)
    try:
        said = httpx.post(f"{sandbox}/_sandbox/customers/15550002222/messages", json={"text": "hello"}, timeout=10)
        assert said.status_code == 200 and said.json()["bridge_status"] == 200, said.text

        def conversation():
            with session_scope(db) as s:
                return s.scalar(select(Conversation.id))

        conv = _wait_for(conversation, "the customer's message was not recorded")
        reply = subprocess.run([REPLYFLOW, "agent", "reply", str(conv), "Hi, how can I help?"], capture_output=True,
                               text=True, env={**env, "WHATSAPP_API_BASE": sandbox}, cwd=ROOT)
        assert reply.returncode == 0, reply.stdout + reply.stderr

        def read():  # nobody flushed the sandbox: it reported the ticks itself
            with session_scope(db) as s:
                status = s.scalar(select(Message.status).where(Message.direction == "out", Message.author != "bot"))
            return status if status == "read" else None

        _wait_for(read, "the agent's reply never reached 'read'")
    finally:
        out = _stop(proc)
    assert f"built-in sandbox at {sandbox}" in out
    assert "sandbox mode: one process with the built-in development server, not gunicorn" in out
    subprocess.run([REPLYFLOW, "agents", "add", "ada@example.com"], env={**env, "REPLYFLOW_AGENT_PASSWORD": "agent-pass-1"},
                   cwd=ROOT, check=True, capture_output=True)
    proc = _serve(env, port)  # a restart: same sandbox address, the customer's window still open
    try:
        _an_inbox_stream_stays_open(f"http://127.0.0.1:{port}", "ada@example.com", "agent-pass-1")
        again = subprocess.run([REPLYFLOW, "agent", "reply", str(conv), "Still there?"], capture_output=True,
                               text=True, env={**env, "WHATSAPP_API_BASE": sandbox}, cwd=ROOT)
        assert again.returncode == 0, again.stdout + again.stderr
        with session_scope(db) as s:
            last = s.scalars(select(Message).where(Message.body == "Still there?")).one()
            assert last.status in ("accepted", "sent", "delivered", "read"), (last.status, last.error_details)
    finally:
        _stop(proc)
        db.dispose()


def _an_inbox_stream_stays_open(base: str, email: str, password: str) -> None:
    """The built-in server has a thread per request: an inbox page's live-update stream stays open
    there (under gunicorn's sync workers it looks once and ends)."""
    with httpx.Client(base_url=base, timeout=httpx.Timeout(10, read=2)) as client:
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/inbox/login").text).group(1)
        assert client.post("/inbox/login", data={"email": email, "password": password,
                                                 "csrf_token": token}).status_code == 302
        events = re.search(r'data-events="([^"]+)"', client.get("/inbox/").text).group(1).replace("&amp;", "&")
        with client.stream("GET", events) as stream:
            chunks = stream.iter_text()
            assert next(chunks).startswith("retry: ")
            with pytest.raises(httpx.ReadTimeout):  # nothing changed, and the stream is still open
                next(chunks)


def test_serve_says_how_it_ingests_and_why_it_is_not_gunicorn():
    from bridge.cli import mode_lines
    from bridge.config import Settings

    deferred = Settings.from_env({"REDIS_URL": "redis://127.0.0.1:6379/0", "REPLYFLOW_INGEST": "deferred"})
    lines = mode_lines(deferred, gunicorn=False, sandboxed=True)
    assert lines[0].startswith("ingest: deferred (REPLYFLOW_INGEST): webhooks are only recorded")
    assert lines[1].startswith("sandbox mode: one process with the built-in development server, not gunicorn")
    assert "REDIS_URL is set and so is WHATSAPP_ACCESS_TOKEN, or WHATSAPP_API_BASE" in lines[1]
    direct = Settings.from_env({"REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert [x.split(":")[:2] for x in mode_lines(direct, gunicorn=True, sandboxed=False)] == [["ingest", " direct"]]
    embedded = Settings.from_env({"WHATSAPP_API_BASE": "http://127.0.0.1:9"})
    assert mode_lines(embedded, gunicorn=False, sandboxed=False) == [
        "no REDIS_URL: one process with the built-in development server that runs the jobs too "
        "(gunicorn runs when REDIS_URL is set)"]


def test_the_one_process_serve_logs_what_the_flows_decide(tmp_path):
    """Without REDIS_URL `serve` runs the jobs, so its output is where the flows' `flows:` lines
    (why a flow did not start, a send deferred by quiet hours) belong; it showed only warnings."""
    port = _free_pair()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_", "REDIS_URL", "REPLYFLOW_"))}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'flows.db'}", PYTHONPATH=str(ROOT), REPLYFLOW_API_TOKEN="t")
    proc = _serve(env, port)
    try:
        accepted = httpx.post(f"http://127.0.0.1:{port}/api/triggers", headers={"Authorization": "Bearer t"},
                              json={"event": "booking_upcoming", "subject": "booking:7",
                                    "contact": {"phone": "+15550002222"},
                                    "data": {"service": "tea tasting", "starts_at": "Tuesday 10:00"}}, timeout=10)
        assert accepted.status_code == 202, accepted.text
        time.sleep(2)
    finally:
        out = _stop(proc)
    assert "INFO bridge.jobs: flows: [appointment_reminder" in out, out[-1500:]
