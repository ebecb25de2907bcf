"""Prometheus metrics at ``GET /metrics``: webhook traffic, and the pipeline's state read at scrape time.

``init_app(app)`` gives each app its own ``CollectorRegistry`` (tests build many apps), times every
``/webhooks/*`` request with before/after-request hooks, and registers a collector that counts
rows by status with GROUP BY queries and asks the job runner for its queue depths when scraped:
gauges of what the database and Redis hold, never counters that drift from them. The database
counts read the whole history, so they are read at most every ``STATE_MAX_AGE`` seconds across the
deployment (shared through Redis) and ``replyflow_state_age_seconds`` says how old they are.

Set ``REPLYFLOW_METRICS_TOKEN`` to require ``Authorization: Bearer <token>`` on ``/metrics``;
without it the endpoint is open (keep it off the public internet with network policy).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import time
from typing import Any, Iterator

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from connectors import REGISTRY
from core.conversations import STATUS_RANK
from core.store import session_scope
from core.store.models import ActionTask, FlowRun, InboundEvent, Message
from bridge.runtime import Runtime

__all__ = ["init_app", "bp", "METRICS_TOKEN_ENV", "WEBHOOK_BUCKETS", "StateCollector"]

_log = logging.getLogger(__name__)
METRICS_TOKEN_ENV = "REPLYFLOW_METRICS_TOKEN"
WEBHOOK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_EXTENSION = "replyflow.metrics"
_WEBHOOK_PREFIX = "/webhooks/"
STATE_MAX_AGE = 30.0  # seconds the database counts are reused for
_SNAPSHOT_KEY = "replyflow:metrics:database"

# statuses reported as 0 when no row has them, so an alert on e.g. failed events has a series
_ACTION_STATUSES = ("pending", "done", "failed")
_RUN_STATUSES = ("waiting", "handed_off", "completed", "cancelled", "failed")

bp = Blueprint("observability", __name__)


class _Metrics:
    """One app's registry and the request metrics in it."""

    def __init__(self, runtime: Runtime, token: str | None) -> None:
        self.token = token
        self.registry = CollectorRegistry()
        self.requests = Counter("replyflow_webhook_requests", "Webhook requests answered, by platform and status.",
                                ["platform", "status"], registry=self.registry)
        self.seconds = Histogram("replyflow_webhook_seconds", "Time to answer a webhook request, in seconds.",
                                 ["platform"], buckets=WEBHOOK_BUCKETS, registry=self.registry)
        self.state = StateCollector(runtime)
        self.registry.register(self.state)


# ---------------------------------------------------------------- scrape-time state


def _family(name: str, doc: str, labels: list[str], rows, seed: dict[tuple, int] | None = None) -> GaugeMetricFamily:
    values = dict(seed or {})
    for *key, count in rows:
        values[tuple(str(k) for k in key)] = count
    family = GaugeMetricFamily(name, doc, labels=labels)
    for key, count in sorted(values.items()):
        family.add_metric(list(key), count)
    return family


def _database_rows(runtime: Runtime) -> dict[str, list[list]]:
    """Row counts by status, as JSON-ready lists ``[label, ..., count]``."""
    with session_scope(runtime.db) as s:
        def grouped(*columns) -> list[list]:
            return [[*map(str, key), count] for *key, count in s.execute(select(*columns, func.count())
                                                                           .group_by(*columns)).all()]

        return {"messages": grouped(Message.direction, Message.status),
                "inbound": grouped(InboundEvent.platform, InboundEvent.status),
                "actions": grouped(ActionTask.status), "runs": grouped(FlowRun.status)}


class _DatabaseSnapshot:
    """The database's counts, read at most once per ``STATE_MAX_AGE`` seconds for the whole
    deployment: they count the whole history (0.47 s a read at a million messages and three million
    webhooks, bench/housekeeping.py), and several bridges, workers and scrapers must not each pay
    that on every scrape. With Redis, the snapshot is shared through it; without (or while Redis
    is unreachable), kept here."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._local: dict[str, Any] = {}

    def read(self) -> tuple[dict[str, list[list]], float]:
        """(rows, age in seconds)."""
        now = self.runtime.clock.now().timestamp()
        redis = getattr(self.runtime.queue, "redis", None)
        snapshot = self._local
        if redis is not None:
            try:
                raw = redis.get(_SNAPSHOT_KEY)
            except Exception:  # noqa: BLE001 - Redis down: this process's own snapshot (the queue gauges say so)
                redis = None
            else:
                try:
                    snapshot = json.loads(raw) if raw else {}
                except ValueError:
                    snapshot = {}  # not ours: read again and overwrite it
        if _usable(snapshot) and 0 <= now - snapshot["at"] < STATE_MAX_AGE:
            return snapshot["rows"], now - snapshot["at"]
        snapshot = {"at": now, "rows": _database_rows(self.runtime)}
        if redis is not None:
            try:
                redis.set(_SNAPSHOT_KEY, json.dumps(snapshot), ex=int(STATE_MAX_AGE * 4))
            except Exception:  # noqa: BLE001 - the figures are still right; the next scrape reads again
                _log.warning("metrics: could not share the database snapshot through Redis")
        self._local = snapshot
        return snapshot["rows"], 0.0


def _usable(snapshot: Any) -> bool:
    """A snapshot as this code writes it (anything else in the key is read again and overwritten)."""
    return (isinstance(snapshot, dict) and isinstance(snapshot.get("at"), (int, float))
            and isinstance(snapshot.get("rows"), dict) and set(_FAMILIES) <= set(snapshot["rows"]))


_FAMILIES = ("messages", "inbound", "actions", "runs")


def _database_families(snapshot: _DatabaseSnapshot) -> list[GaugeMetricFamily]:
    rows, age = snapshot.read()
    return [
        _family("replyflow_messages", "Messages by direction and status (outbound rows are the outbox).",
                ["direction", "status"], rows["messages"], {("out", st): 0 for st in STATUS_RANK}),
        _family("replyflow_inbound_events", "Recorded webhook deliveries by platform and status.",
                ["platform", "status"], rows["inbound"]),
        _family("replyflow_action_tasks", "Flow actions (outgoing webhooks, connector calls) by status.",
                ["status"], rows["actions"], {(st,): 0 for st in _ACTION_STATUSES}),
        _family("replyflow_flow_runs", "Flow runs by status.",
                ["status"], rows["runs"], {(st,): 0 for st in _RUN_STATUSES}),
        GaugeMetricFamily("replyflow_state_age_seconds", f"How old the database counts above are (read at most "
                          f"every {STATE_MAX_AGE:.0f} s across the deployment).", value=age),
    ]


def _queue_counts(runner: Any) -> tuple[dict[str, int], dict[str, int]]:
    """(depth, failed) per queue: RQ's queues and failed registries, or the in-process runner's backlog."""
    queues = getattr(runner, "queues", None)
    if isinstance(queues, dict):
        depth = {name: len(q) for name, q in queues.items()}
        failed = {name: q.failed_job_registry.count for name, q in queues.items()}
        return depth, failed
    backlog = getattr(getattr(runner, "_q", None), "qsize", None)
    return {"inprocess": backlog() if callable(backlog) else 0}, {}


def _queue_families(runner: Any) -> list[GaugeMetricFamily]:
    depth, failed = _queue_counts(runner)
    return [
        _family("replyflow_queue_depth", "Jobs waiting in each queue.", ["queue"], list(depth.items())),
        _family("replyflow_queue_failed", "Jobs in each queue's failed registry (RQ only; see `replyflow jobs`).",
                ["queue"], list(failed.items())),
    ]


class StateCollector(Collector):
    """Gauges read from the database and the job runner each time Prometheus scrapes."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.snapshot = _DatabaseSnapshot(runtime)

    def describe(self) -> list:
        return []  # computed at scrape time; nothing to check for clashes at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        ok = GaugeMetricFamily("replyflow_scrape_ok", "1 if this part of the scrape could be read, else 0.",
                               labels=["source"])
        readers = (("database", lambda: _database_families(self.snapshot)),
                   ("queue", lambda: _queue_families(self.runtime.queue)))
        for source, read in readers:
            try:
                families = read()
            except Exception:  # noqa: BLE001 - a scrape must still answer when Redis or the database is down
                _log.exception("metrics: could not read the %s", source)
                ok.add_metric([source], 0)
                continue
            yield from families
            ok.add_metric([source], 1)
        yield ok


# ---------------------------------------------------------------- request hooks and the endpoint


def _platform(path: str) -> str:
    name = path[len(_WEBHOOK_PREFIX):].split("/", 1)[0]
    return name if name == "whatsapp" or name in REGISTRY else "other"  # bounded label values


def _start_timer() -> None:
    if request.path.startswith(_WEBHOOK_PREFIX):
        g.replyflow_webhook_started = time.perf_counter()


def _record(response: Response) -> Response:
    started = g.pop("replyflow_webhook_started", None)
    if started is not None:
        metrics: _Metrics = current_app.extensions[_EXTENSION]
        platform = _platform(request.path)
        metrics.seconds.labels(platform).observe(time.perf_counter() - started)
        metrics.requests.labels(platform, str(response.status_code)).inc()
    return response


def init_app(app: Flask) -> None:
    """Metrics for ``app`` (call after ``app.extensions["replyflow"]`` holds the runtime)."""
    token = os.environ.get(METRICS_TOKEN_ENV) or None
    app.extensions[_EXTENSION] = _Metrics(app.extensions["replyflow"], token)
    app.before_request(_start_timer)
    app.after_request(_record)
    app.register_blueprint(bp)


def _exposed(m: _Metrics) -> CollectorRegistry:
    """This process's registry; under gunicorn (PROMETHEUS_MULTIPROC_DIR set) the request metrics
    of every worker, summed from their files, beside this worker's state collector."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return m.registry
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    registry.register(m.state)
    return registry


@bp.get("/metrics")
def metrics():
    m: _Metrics = current_app.extensions[_EXTENSION]
    if m.token:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {m.token}".encode()):
            return jsonify(error=f"missing or wrong bearer token (see {METRICS_TOKEN_ENV})"), 401
    return Response(generate_latest(_exposed(m)), status=200, headers={"Content-Type": CONTENT_TYPE_LATEST})
