"""Webhook ingest over HTTP: gunicorn (sync workers) + wrk on loopback, the durable path
(signature, parse, insert, enqueue) beside a no-op route of the same app on the same server, and a
bare Flask app's no-op route (the issue's reference) under the same gunicorn settings.

    .venv/bin/python bench/http_ingest.py [--workers 4] [--seconds 10] [--connections 32]
        [--database postgresql+psycopg://postgres@127.0.0.1:5432/test] [--redis redis://127.0.0.1:6379/14]
        [--ingest direct,deferred]

Needs ``gunicorn`` (pip) and ``wrk`` (Debian package). Prints requests/s and latency percentiles
for both routes and their ratio. Every request carries a distinct, correctly signed WhatsApp
message, so each one is a real insert (no duplicate short-cut).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.whatsapp.events import sign  # noqa: E402

SECRET = "bench-secret"
FIXTURE = ROOT / "tests" / "fixtures" / "whatsapp" / "inbound_text.json"


def _lua_requests(path: Path, n: int, tag: str = "") -> None:
    """A wrk script cycling through n distinct signed bodies."""
    template = json.loads(FIXTURE.read_bytes())
    lines = ["local bodies, sigs = {}, {}"]
    for i in range(n):
        template["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = f"wamid.HTTPBENCH{tag}{i:09d}"
        body = json.dumps(template, separators=(",", ":"))
        lines.append(f"bodies[{i + 1}] = [==[{body}]==]; sigs[{i + 1}] = \"{sign(body.encode(), SECRET)}\"")
    lines.append(f"""
local i = 0
request = function()
  i = i % {n} + 1
  return wrk.format("POST", "/webhooks/whatsapp",
    {{["Content-Type"] = "application/json", ["X-Hub-Signature-256"] = sigs[i]}}, bodies[i])
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %.3f %.3f %.3f\\n", summary.requests, summary.errors.status,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.duration / 1e6))
end""")
    path.write_text("\n".join(lines))


def _noop_lua(path: Path) -> None:
    path.write_text("""wrk.method = "POST"
wrk.body = "{}"
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %.3f %.3f %.3f\\n", summary.requests, summary.errors.status,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.duration / 1e6))
end""")


def _wrk(url: str, script: Path, seconds: int, connections: int) -> tuple[float, int, float, float]:
    run = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
                         capture_output=True, text=True, check=True)
    found = re.search(r"RESULT (\d+) (\d+) ([\d.]+) ([\d.]+) ([\d.]+)", run.stdout)
    if found is None:
        sys.exit(f"wrk gave no result:\n{run.stdout}\n{run.stderr}")
    requests, errors, p50, p99, duration = found.groups()
    return int(requests) / float(duration), int(errors), float(p50), float(p99)


def _wait_ready(url: str, timeout: float = 60.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(urllib.request.Request(url, data=b"{}", method="POST"), timeout=2)
            return
        except Exception:
            if time.monotonic() > deadline:
                sys.exit(f"the server at {url} did not come up")
            time.sleep(0.2)


def _fresh_database(url: str) -> str:
    """A database of the benchmark's own on that server, created anew (never the one given)."""
    from sqlalchemy import create_engine, text

    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text('DROP DATABASE IF EXISTS "replyflow_bench" WITH (FORCE)'))
        conn.execute(text('CREATE DATABASE "replyflow_bench"'))
    admin.dispose()
    return url.rsplit("/", 1)[0] + "/replyflow_bench"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--database", default=None)
    ap.add_argument("--redis", default=None)
    ap.add_argument("--ingest", default="direct,deferred",
                    help="with --redis: direct (the webhook enqueues), deferred (the worker's dispatcher does), or both")
    args = ap.parse_args()
    modes = args.ingest.split(",") if args.redis else ["direct"]
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk)")
    database = _fresh_database(args.database) if args.database else None
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "WHATSAPP_APP_SECRET": SECRET, "PYTHONPATH": str(ROOT),
               "DATABASE_URL": database or f"sqlite:///{tmp}/bench.db", "REPLYFLOW_BENCH_NOOP": "1"}
        if args.redis:
            env["REDIS_URL"] = args.redis
        subprocess.run([sys.executable, "-c", "from bridge.config import Settings; from bridge.runtime import "
                        "build_runtime; build_runtime(Settings.from_env())"], env=env, check=True)  # migrate once
        noop = Path(tmp) / "noop.lua"
        _noop_lua(noop)
        bare_server = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "-w", str(args.workers), "-b",
                                        "127.0.0.1:18930", "--log-level", "warning", "bench.bare_wsgi:app"],
                                       env=env, cwd=ROOT)
        try:
            _wait_ready("http://127.0.0.1:18930/noop")
            bare = _wrk("http://127.0.0.1:18930/noop", noop, args.seconds, args.connections)
        finally:
            bare_server.terminate()
            bare_server.wait(timeout=20)
        results = []
        for mode in modes:
            hook = Path(tmp) / f"hook-{mode}.lua"
            _lua_requests(hook, 20_000, tag=mode.upper())  # distinct messages per mode: every one a real insert
            server = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "-w", str(args.workers), "-b",
                                       "127.0.0.1:18931", "--log-level", "warning", "bench.noop_wsgi:app"],
                                      env={**env, "REPLYFLOW_INGEST": mode}, cwd=ROOT)
            try:
                _wait_ready("http://127.0.0.1:18931/noop")
                base = _wrk("http://127.0.0.1:18931/noop", noop, args.seconds, args.connections)
                durable = _wrk("http://127.0.0.1:18931/webhooks/whatsapp", hook, args.seconds, args.connections)
            finally:
                server.terminate()
                server.wait(timeout=20)
            results.append((mode, base, durable))
    jobs = "RQ" if args.redis else "in-process runner (jobs accepted, run in each worker)"
    print(f"gunicorn {args.workers} sync workers, wrk -c{args.connections} {args.seconds}s on loopback; "
          f"database {'PostgreSQL' if args.database else 'SQLite'}; jobs: {jobs}")
    rate, errors, p50, p99 = bare
    print(f"  {'bare Flask app, no-op route':36} {rate:8.0f} req/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms   "
          f"non-2xx {errors}")
    for mode, base, durable in results:
        label = "POST /webhooks/whatsapp" + (f" ({mode})" if args.redis else "")
        for name, (rate, errors, p50, p99) in (("replyflow app, no-op route", base), (label, durable)):
            print(f"  {name:36} {rate:8.0f} req/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms   non-2xx {errors}")
        print(f"  durable path = {durable[0] / base[0]:.2f}x the app's no-op route measured just before it, "
              f"{durable[0] / bare[0]:.2f}x the bare Flask no-op (issue 5's reference: 1,500 of 10,000 = 0.15x)")


if __name__ == "__main__":
    main()
