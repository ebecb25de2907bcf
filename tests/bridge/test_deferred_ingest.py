"""Deferred ingest: webhooks only record; the dispatcher hands new records to the workers, and a
lost cursor or a lost queue loses nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete, insert, select

from core.store import inbound as inbound_store
from core.store.models import InboundEvent
from bridge.config import Settings
from bridge.dispatch import CURSOR_KEY, GAP_WATCH_SECONDS, GAPS_KEY, MAX_GAPS, dispatch_once
from bridge.queue import job_id_for
from tests.harness import START, Harness


@pytest.fixture
def h(tmp_path, redis_url):
    harness = Harness(tmp_path, runner="rq", redis_url=redis_url, settings={"ingest": "deferred"})
    yield harness
    harness.close()


def _statuses(h: Harness) -> list[str]:
    with h.session() as s:
        return list(s.scalars(select(InboundEvent.status).order_by(InboundEvent.id)))


def test_the_webhook_only_records_and_the_dispatcher_hands_on(h: Harness):
    h.sandbox.customer_sends("15550002222", "Maya", text="hello")
    assert h.rt.queue.queues["inbound"].count == 0  # no Redis work in the request
    assert _statuses(h) == ["pending"]
    assert dispatch_once(h.rt) == 1
    assert dispatch_once(h.rt) == 0  # the cursor moved past it
    h.settle()
    assert _statuses(h) == ["done"]


def test_the_trigger_api_only_records_too(h: Harness):
    response = h.api("POST", "/triggers", json={"event": "booking_upcoming", "subject": "booking:1",
                                                "contact": {"phone": "+15550002222"}})
    assert response.status_code == 202
    assert h.rt.queue.queues["inbound"].count == 0  # recorded only, like the webhooks
    assert _statuses(h) == ["pending"]
    assert dispatch_once(h.rt) == 1
    h.settle()
    assert _statuses(h) == ["done"]


def test_a_lost_cursor_restarts_from_the_oldest_pending_record(h: Harness):
    h.sandbox.customer_sends("15550002222", "Maya", text="one")
    dispatch_once(h.rt)
    h.settle()
    h.sandbox.customer_sends("15550002222", "Maya", text="two")
    h.sandbox.customer_sends("15550002222", "Maya", text="three")
    h.rt.queue.redis.flushdb()  # Redis loses the cursor (and any queued jobs)
    assert h.rt.queue.redis.get(CURSOR_KEY) is None
    assert dispatch_once(h.rt) == 2  # the two pending ones, not the one already done
    h.settle()
    assert _statuses(h) == ["done", "done", "done"]


def test_deferred_ingest_needs_redis():
    with pytest.raises(ValueError, match="needs REDIS_URL"):
        Settings.from_env({"REPLYFLOW_INGEST": "deferred"})
    with pytest.raises(ValueError, match="'direct' or 'deferred'"):
        Settings.from_env({"REPLYFLOW_INGEST": "later", "REDIS_URL": "redis://x"})
    assert Settings.from_env({"REPLYFLOW_INGEST": "deferred", "REDIS_URL": "redis://x"}).ingest == "deferred"


@pytest.fixture
def pg(tmp_path, redis_url, postgres_url):
    harness = Harness(tmp_path, runner="rq", redis_url=redis_url, database_url=postgres_url,
                      settings={"ingest": "deferred"})
    yield harness
    harness.close()


def _row(key: str) -> dict:
    return dict(platform="whatsapp", dedupe_key=key, kind="InboundMessage", account=None, headers=None,
                subject=None, body="{}", received_at=START, status="pending", attempts=0)


def test_a_record_committed_after_a_newer_one_is_still_dispatched(pg: Harness):
    """PostgreSQL hands out ids when a row is inserted, not when it is committed: with several
    bridges, a row can become visible after a row with a higher id. The dispatcher must not step
    over it (before, it waited for the sweeper, a minute later)."""
    inbound_store.record(pg.rt.db.engine, [_row("before")])
    assert dispatch_once(pg.rt) == 1  # the dispatcher is running: its cursor is set
    slow = pg.rt.db.engine.connect()
    late = slow.begin()
    first = slow.scalar(insert(InboundEvent).values(_row("late")).returning(InboundEvent.id))
    [second] = inbound_store.record(pg.rt.db.engine, [_row("early")])
    assert second > first
    assert dispatch_once(pg.rt) == 1  # only the committed one is visible
    late.commit()
    slow.close()
    pg.clock.advance(timedelta(seconds=1))
    assert dispatch_once(pg.rt) == 1  # the late one, found in the gap the first round left
    assert dispatch_once(pg.rt) == 0
    assert {job_id_for("handle_event", first), job_id_for("handle_event", second)} <= set(
        pg.rt.queue.queues["inbound"].job_ids)


def test_a_gap_is_watched_for_a_while_then_left_to_the_sweeper(pg: Harness):
    _, two, _ = (inbound_store.record(pg.rt.db.engine, [_row(key)])[0] for key in ("one", "two", "three"))
    with pg.rt.db.engine.begin() as conn:  # 'two' never becomes visible, like a rolled-back insert
        conn.execute(delete(InboundEvent).where(InboundEvent.id == two))
    assert dispatch_once(pg.rt) == 2
    assert [int(g) for g in pg.rt.queue.redis.zrange(GAPS_KEY, 0, -1)] == [two]  # watched ...
    pg.clock.advance(timedelta(seconds=GAP_WATCH_SECONDS + 1))
    assert dispatch_once(pg.rt) == 0
    assert pg.rt.queue.redis.zcard(GAPS_KEY) == 0  # ... and forgotten once too old to come


def test_huge_id_gaps_round_after_round_keep_the_watched_gaps_bounded(pg: Harness):
    """Ids that jump by 20,000 in nine rounds within the watch (duplicates and rollbacks use ids up
    on PostgreSQL): each round watched up to MAX_GAPS more ids, so the set grew past 65,535 and the
    lookup of late records failed every round ("number of parameters must be between 0 and 65535")
    until the gaps aged out: no webhook was dispatched meanwhile."""
    next_id = 1
    for round_ in range(9):
        with pg.rt.db.engine.begin() as conn:
            conn.execute(insert(InboundEvent).values(
                platform="whatsapp", dedupe_key=f"r{round_}", kind="InboundMessage", account=None, headers=None,
                subject=None, body="{}", received_at=START, status="pending", attempts=0, id=next_id))
        pg.clock.advance(timedelta(seconds=1))
        assert dispatch_once(pg.rt) == 1, f"round {round_}"
        next_id += 20_000
    assert pg.rt.queue.redis.zcard(GAPS_KEY) == MAX_GAPS
