"""Deferred ingest: the webhook only records; a dispatcher hands new records to the workers.

With ``REPLYFLOW_INGEST=deferred`` (RQ mode), ``POST /webhooks/*`` does no Redis work at all: it
checks the signature, parses, inserts and answers. ``replyflow worker`` runs a dispatcher that
every ``interval`` seconds reads the inbound records newer than its cursor and enqueues them in
one pipeline. One dispatcher works at a time across machines (a Redis lease); its cursor lives in
Redis, and if Redis loses it the dispatcher starts again from the oldest pending record (a second
job for a record is harmless: ``handle_event`` skips what is no longer pending).

PostgreSQL hands out an id when a row is inserted, not when it is committed, so with several
bridge processes a record can become visible after one with a higher id: the cursor has already
passed it. Every id the cursor steps over without seeing is therefore watched (a Redis sorted set,
scored by when it was first missed) for ``GAP_WATCH_SECONDS``, and looked up again each round;
most gaps are ids an ``ON CONFLICT DO NOTHING`` duplicate used up and never come. The sweeper still
catches anything older than a minute. The cost is up to ``interval`` seconds of added latency before
a reply is processed, for a webhook path that no longer depends on Redis being up.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

from sqlalchemy import func, select

from core.store import session_scope
from core.store.models import InboundEvent
from bridge.runtime import Runtime

__all__ = ["dispatch_once", "start_dispatcher", "CURSOR_KEY", "GAPS_KEY", "LEASE_KEY", "GAP_WATCH_SECONDS"]

_log = logging.getLogger(__name__)
CURSOR_KEY = "replyflow:dispatch:cursor"
LEASE_KEY = "replyflow:dispatch:lease"
GAPS_KEY = "replyflow:dispatch:gaps"
BATCH = 1000
GAP_WATCH_SECONDS = 30.0  # a commit later than this after its insert is left to the sweeper
MAX_GAPS = 10_000  # ids watched at most, over all rounds (a huge jump in ids is not worth watching id by id)


def dispatch_once(rt: Runtime) -> int:
    """Enqueue the pending inbound records after the cursor, and those that were committed late
    into a gap the cursor stepped over; returns how many."""
    redis = rt.queue.redis
    now = rt.clock.now().timestamp()
    raw = redis.get(CURSOR_KEY)
    gaps = [] if raw is None else [int(g) for g in redis.zrangebyscore(GAPS_KEY, now - GAP_WATCH_SECONDS, "+inf")]
    with session_scope(rt.db) as s:
        if raw is None:  # first start, or Redis lost it: from just before the oldest pending record
            oldest = s.scalar(select(func.min(InboundEvent.id)).where(InboundEvent.status == "pending"))
            cursor = (oldest or s.scalar(select(func.max(InboundEvent.id))) or 1) - 1
        else:
            cursor = int(raw)
        ids = list(s.scalars(select(InboundEvent.id).where(InboundEvent.id > cursor, InboundEvent.status == "pending")
                             .order_by(InboundEvent.id).limit(BATCH)))
        late = list(s.scalars(select(InboundEvent.id).where(InboundEvent.id.in_(gaps),
                                                             InboundEvent.status == "pending"))) if gaps else []
    if late or ids:
        rt.queue.enqueue_new("handle_event", late + ids)
    missed = _missed(cursor, ids)
    with redis.pipeline(transaction=False) as pipe:
        if missed:
            pipe.zadd(GAPS_KEY, dict.fromkeys(missed, now), nx=True)
            pipe.zremrangebyrank(GAPS_KEY, 0, -MAX_GAPS - 1)  # the newest only: the lookup stays one small query
        if late:
            pipe.zrem(GAPS_KEY, *late)
        pipe.zremrangebyscore(GAPS_KEY, "-inf", f"({now - GAP_WATCH_SECONDS}")
        if ids or raw is None:
            pipe.set(CURSOR_KEY, ids[-1] if ids else cursor)
        pipe.execute()
    return len(late) + len(ids)


def _missed(cursor: int, ids: list[int]) -> list[int]:
    """The ids between the cursor and the last one seen that were not seen (newest first, capped)."""
    if not ids or ids[-1] - cursor - len(ids) <= 0:
        return []
    seen = set(ids)
    low = max(cursor, ids[-1] - MAX_GAPS * 2)
    return [i for i in range(ids[-1] - 1, low, -1) if i not in seen][:MAX_GAPS]


def start_dispatcher(rt: Runtime, interval: float = 0.1, stop: threading.Event | None = None) -> threading.Thread:
    """A daemon thread that dispatches while it holds the lease (renewed each round), until ``stop``
    is set (its lease then expires within seconds)."""
    me, lease_ms = uuid.uuid4().hex, max(2000, int(interval * 20_000))

    def holds_lease() -> bool:
        redis = rt.queue.redis
        if redis.set(LEASE_KEY, me, nx=True, px=lease_ms):
            return True
        if redis.get(LEASE_KEY) == me.encode():
            redis.pexpire(LEASE_KEY, lease_ms)
            return True
        return False

    def stopped() -> bool:
        return stop is not None and stop.is_set()

    def loop() -> None:
        while not stopped():
            try:
                while not stopped() and holds_lease() and dispatch_once(rt) >= BATCH:
                    pass  # a backlog: keep going without sleeping
            except Exception:  # keep dispatching; the sweeper covers the gap
                _log.exception("dispatch failed")
            time.sleep(interval)

    thread = threading.Thread(target=loop, name="replyflow-dispatcher", daemon=True)
    thread.start()
    return thread
