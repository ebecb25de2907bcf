"""Deferred ingest: webhooks only record; the dispatcher hands new records to the workers, and a
lost cursor or a lost queue loses nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.store.models import InboundEvent
from bridge.config import Settings
from bridge.dispatch import CURSOR_KEY, dispatch_once
from tests.harness import Harness


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
