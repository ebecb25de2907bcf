"""Break-it probe: the deferred ingest dispatcher with huge id gaps, round after round."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert

from core.store.models import InboundEvent
from bridge.dispatch import GAPS_KEY, MAX_GAPS, dispatch_once
from tests.harness import START, Harness


@pytest.fixture
def pg(tmp_path, redis_url, postgres_url):
    harness = Harness(tmp_path, runner="rq", redis_url=redis_url, database_url=postgres_url,
                      settings={"ingest": "deferred"})
    yield harness
    harness.close()


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
