"""Deferred ingest: the webhook only records; a dispatcher hands new records to the workers.

With ``REPLYFLOW_INGEST=deferred`` (RQ mode), ``POST /webhooks/*`` does no Redis work at all: it
checks the signature, parses, inserts and answers. ``replyflow worker`` runs a dispatcher that
every ``interval`` seconds reads the inbound records newer than its cursor and enqueues them in
one pipeline. One dispatcher works at a time across machines (a Redis lease); its cursor lives in
Redis, and if Redis loses it the dispatcher starts again from the oldest pending record (a second
job for a record is harmless: ``handle_event`` skips what is no longer pending). The sweeper still
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

__all__ = ["dispatch_once", "start_dispatcher", "CURSOR_KEY", "LEASE_KEY"]

_log = logging.getLogger(__name__)
CURSOR_KEY = "replyflow:dispatch:cursor"
LEASE_KEY = "replyflow:dispatch:lease"
BATCH = 1000


def dispatch_once(rt: Runtime) -> int:
    """Enqueue the pending inbound records after the cursor; returns how many."""
    redis = rt.queue.redis
    raw = redis.get(CURSOR_KEY)
    with session_scope(rt.db) as s:
        if raw is None:  # first start, or Redis lost it: from just before the oldest pending record
            oldest = s.scalar(select(func.min(InboundEvent.id)).where(InboundEvent.status == "pending"))
            cursor = (oldest or s.scalar(select(func.max(InboundEvent.id))) or 1) - 1
        else:
            cursor = int(raw)
        ids = list(s.scalars(select(InboundEvent.id).where(InboundEvent.id > cursor, InboundEvent.status == "pending")
                             .order_by(InboundEvent.id).limit(BATCH)))
    if ids:
        rt.queue.enqueue_new("handle_event", ids)
        redis.set(CURSOR_KEY, ids[-1])
    elif raw is None:
        redis.set(CURSOR_KEY, cursor)
    return len(ids)


def start_dispatcher(rt: Runtime, interval: float = 0.1) -> threading.Thread:
    """A daemon thread that dispatches while it holds the lease (renewed each round)."""
    me, lease_ms = uuid.uuid4().hex, max(2000, int(interval * 20_000))

    def holds_lease() -> bool:
        redis = rt.queue.redis
        if redis.set(LEASE_KEY, me, nx=True, px=lease_ms):
            return True
        if redis.get(LEASE_KEY) == me.encode():
            redis.pexpire(LEASE_KEY, lease_ms)
            return True
        return False

    def loop() -> None:
        while True:
            try:
                while holds_lease() and dispatch_once(rt) == BATCH:
                    pass  # a backlog: keep going without sleeping
            except Exception:  # keep dispatching; the sweeper covers the gap
                _log.exception("dispatch failed")
            time.sleep(interval)

    thread = threading.Thread(target=loop, name="replyflow-dispatcher", daemon=True)
    thread.start()
    return thread
