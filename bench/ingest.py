"""Webhook ingest: POST /webhooks/whatsapp (signature, parse, durable insert, enqueue) beside a
no-op route on the same app, same client, same run. Prints requests/s, p50/p99 and the ratio.

    .venv/bin/python bench/ingest.py [N]

In-process (Flask test client, no network): it measures the bridge's own work per request.
Load over loopback under gunicorn is issue 5's benchmark.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.whatsapp.events import parse_webhook, sign  # noqa: E402
from bridge.app import create_app  # noqa: E402
from bridge.config import Settings  # noqa: E402
from bridge.runtime import build_runtime  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "whatsapp" / "inbound_text.json"


class CountingRunner:
    """Accepts jobs and drops them: the benchmark measures the request path only."""

    def __init__(self) -> None:
        self.enqueued = 0

    def enqueue(self, name, *args) -> None:
        self.enqueued += 1

    def enqueue_new(self, name, ids) -> None:
        self.enqueued += len(ids)

    def close(self) -> None:
        pass


def _bodies(n: int) -> list[bytes]:
    template = json.loads(FIXTURE.read_bytes())
    bodies = []
    for i in range(n):
        template["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = f"wamid.BENCH{i:010d}"
        bodies.append(json.dumps(template).encode())
    return bodies


def _measure(call, items) -> tuple[float, list[float]]:
    latencies = []
    started = time.perf_counter()
    for item in items:
        t = time.perf_counter()
        call(item)
        latencies.append(time.perf_counter() - t)
    return len(items) / (time.perf_counter() - started), latencies


def _pct(values: list[float], q: float) -> float:
    return sorted(values)[int(q * (len(values) - 1))] * 1000


def main(n: int = 2000) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite:///{tmp}/bench.db", whatsapp_app_secrets=("bench-secret",))
        runner = CountingRunner()
        app = create_app(build_runtime(settings, queue=runner))
        app.add_url_rule("/noop", "noop", lambda: ("ok", 200), methods=["POST"])
        client = app.test_client()
        bodies = _bodies(n)
        signed = [(b, {"X-Hub-Signature-256": sign(b, "bench-secret"), "Content-Type": "application/json"})
                  for b in bodies]
        noop_rate, noop_lat = _measure(lambda bh: client.post("/noop", data=bh[0], headers=bh[1]), signed)
        hook_rate, hook_lat = _measure(lambda bh: client.post("/webhooks/whatsapp", data=bh[0], headers=bh[1]),
                                       signed)
        assert runner.enqueued == n, runner.enqueued
        parse_rate, _ = _measure(parse_webhook, bodies)
        loads_rate, _ = _measure(json.loads, bodies)
    print(f"requests: {n} per case, in-process Flask test client, SQLite file, Python {sys.version.split()[0]}")
    print(f"no-op route           {noop_rate:9.0f} req/s  p50 {_pct(noop_lat, .5):6.2f} ms  p99 {_pct(noop_lat, .99):6.2f} ms")
    print(f"POST /webhooks/whatsapp {hook_rate:7.0f} req/s  p50 {_pct(hook_lat, .5):6.2f} ms  p99 {_pct(hook_lat, .99):6.2f} ms"
          f"  ({hook_rate / noop_rate:.2f}× the no-op route)")
    print(f"parse_webhook         {parse_rate:9.0f} /s      ({parse_rate / loads_rate:.2f}× plain json.loads of the same bodies)")
    print(f"median webhook latency {statistics.median(hook_lat) * 1000:.2f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
