"""`GET /metrics`: webhook traffic measured at the edge, and gauges read from the database and the
queues when scraped, so they always agree with what is stored."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, update

from core.store.models import ActionTask, FlowRun, InboundEvent, Message
from bridge.app import create_app
from bridge.observability import METRICS_TOKEN_ENV, STATE_MAX_AGE
from tests.harness import Harness, triggered_at


def _scrape(h: Harness, **headers) -> dict[tuple, float]:
    """Every sample as {(name, sorted label pairs): value}."""
    response = h.http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def _by_name(samples: dict, name: str) -> dict[tuple, float]:
    return {labels: value for (n, labels), value in samples.items() if n == name and value}


def _grouped(h: Harness, *columns) -> dict[tuple, float]:
    with h.session() as s:
        rows = s.execute(select(*columns, func.count()).group_by(*columns)).all()
    names = [c.key for c in columns]
    return {tuple(sorted(zip(names, map(str, key)))): float(count) for *key, count in rows}


@pytest.fixture(autouse=True)
def _open_metrics(monkeypatch):
    monkeypatch.delenv(METRICS_TOKEN_ENV, raising=False)


def test_webhooks_are_timed_and_gauges_match_the_database(bridge: Harness):
    h = bridge
    assert h.shopify("checkouts_create").status_code == 200
    h.clock.set(triggered_at("checkouts_update"))
    assert h.shopify("checkouts_update").status_code == 200
    h.at(triggered_at("checkouts_update") + timedelta(hours=1))  # the reminder goes out
    assert len(h.sandbox.sent) == 1
    h.sandbox.deliver_statuses("delivered")
    h.settle()

    samples = _scrape(h)
    shopify = (("platform", "shopify"),)
    assert samples[("replyflow_webhook_seconds_count", shopify)] == 2
    assert samples[("replyflow_webhook_seconds_bucket", (("le", "1.0"), ("platform", "shopify")))] == 2
    assert samples[("replyflow_webhook_requests_total", (("platform", "shopify"), ("status", "200")))] == 2
    assert samples[("replyflow_webhook_requests_total", (("platform", "whatsapp"), ("status", "200")))] >= 1

    messages = _by_name(samples, "replyflow_messages")
    assert messages == _grouped(h, Message.direction, Message.status)
    assert messages == {(("direction", "out"), ("status", "delivered")): 1.0}
    assert samples[("replyflow_messages", (("direction", "out"), ("status", "failed")))] == 0  # seeded
    assert _by_name(samples, "replyflow_inbound_events") == _grouped(h, InboundEvent.platform, InboundEvent.status)
    assert _by_name(samples, "replyflow_flow_runs") == _grouped(h, FlowRun.status) == {(("status", "waiting"),): 1}
    assert _by_name(samples, "replyflow_action_tasks") == _grouped(h, ActionTask.status)
    assert samples[("replyflow_queue_depth", (("queue", "inprocess"),))] == 0
    assert samples[("replyflow_scrape_ok", (("source", "database"),))] == 1
    assert samples[("replyflow_scrape_ok", (("source", "queue"),))] == 1


def test_refused_and_unknown_webhooks_are_counted_with_bounded_labels(bridge: Harness):
    h = bridge
    assert h.shopify("checkouts_create", secret=None).status_code == 401
    assert h.http.post("/webhooks/no-such-platform", content=b"{}").status_code == 404
    assert h.http.get("/healthz").status_code == 200  # not a webhook: not measured
    samples = _scrape(h)
    requests = _by_name(samples, "replyflow_webhook_requests_total")
    assert requests == {(("platform", "shopify"), ("status", "401")): 1,
                        (("platform", "other"), ("status", "404")): 1}


def test_a_token_guards_metrics_when_configured(tmp_path, monkeypatch):
    monkeypatch.setenv(METRICS_TOKEN_ENV, "scrape-secret")
    h = Harness(tmp_path)
    try:
        assert h.http.get("/metrics").status_code == 401
        assert h.http.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert _scrape(h, Authorization="Bearer scrape-secret")[("replyflow_flow_runs", (("status", "waiting"),))] == 0
    finally:
        h.close()


def test_rq_queue_depth_and_failed_registry_are_scraped(tmp_path, redis_url):
    from rq import SimpleWorker
    from rq.serializers import JSONSerializer

    h = Harness(tmp_path, runner="rq", redis_url=redis_url)
    try:
        inbound = h.rt.queue.queues["inbound"]
        inbound.enqueue("tests.rq_fixtures.always_fails")
        inbound.enqueue("tests.rq_fixtures.always_fails")
        assert _scrape(h)[("replyflow_queue_depth", (("queue", "inbound"),))] == 2
        SimpleWorker([inbound], connection=h.rt.queue.redis, serializer=JSONSerializer).work(burst=True)
        samples = _scrape(h)
        assert _by_name(samples, "replyflow_queue_failed") == {(("queue", "inbound"),): 2}
        assert samples[("replyflow_queue_depth", (("queue", "sends"),))] == 0
        assert samples[("replyflow_queue_depth", (("queue", "inbound"),))] == 0
    finally:
        h.close()


def test_an_unreachable_redis_does_not_break_the_scrape(tmp_path):
    h = Harness(tmp_path, runner="rq", redis_url="redis://127.0.0.1:1/0")  # nothing listens on port 1
    try:
        samples = _scrape(h)
        assert samples[("replyflow_scrape_ok", (("source", "queue"),))] == 0
        assert samples[("replyflow_scrape_ok", (("source", "database"),))] == 1
        assert _by_name(samples, "replyflow_queue_depth") == {}
    finally:
        h.close()


def test_with_redis_unreachable_the_database_counts_are_still_reused(tmp_path):
    """Redis down: this process keeps its own read for STATE_MAX_AGE seconds, as without Redis,
    instead of counting the whole history again on every scrape."""
    h = Harness(tmp_path, runner="rq", redis_url="redis://127.0.0.1:1/0")  # nothing listens on port 1
    try:
        assert _scrape(h)[("replyflow_state_age_seconds", ())] == 0
        h.clock.set(h.clock.now() + timedelta(seconds=5))
        samples = _scrape(h)
        assert samples[("replyflow_scrape_ok", (("source", "database"),))] == 1
        assert samples[("replyflow_state_age_seconds", ())] == 5
    finally:
        h.close()


def _waiting_runs(samples: dict) -> float:
    return samples[("replyflow_flow_runs", (("status", "waiting"),))]


@pytest.mark.parametrize("runner", ["inprocess", "rq"])
def test_the_database_counts_are_read_at_most_every_30_seconds_across_bridges(tmp_path, request, runner):
    """The counts read the whole history (bench/housekeeping.py): one read serves every scrape for
    STATE_MAX_AGE seconds, and with Redis every bridge process shares it."""
    redis_url = request.getfixturevalue("redis_url") if runner == "rq" else None
    h = Harness(tmp_path, runner=runner, redis_url=redis_url)
    try:
        assert _waiting_runs(_scrape(h)) == 0
        assert h.shopify("checkouts_create").status_code == 200
        h.clock.set(triggered_at("checkouts_update"))
        assert h.shopify("checkouts_update").status_code == 200
        h.settle()  # a cart reminder run now waits
        h.clock.set(triggered_at("checkouts_update") + timedelta(seconds=1))
        first_read = h.clock.now()
        fresh = _scrape(h)
        assert _waiting_runs(fresh) == 1 and fresh[("replyflow_state_age_seconds", ())] == 0
        with h.session() as s:
            s.execute(update(FlowRun).values(status="cancelled"))
        h.clock.set(first_read + timedelta(seconds=STATE_MAX_AGE - 1))
        reused = _scrape(h)
        assert _waiting_runs(reused) == 1 and reused[("replyflow_state_age_seconds", ())] == STATE_MAX_AGE - 1
        if runner == "rq":  # another bridge process: a second app on the same Redis reuses the same read
            other = create_app(h.rt)
            with other.test_client() as client:
                text = client.get("/metrics").get_data(as_text=True)
            assert 'replyflow_flow_runs{status="waiting"} 1.0' in text
        h.clock.set(first_read + timedelta(seconds=STATE_MAX_AGE))
        assert _waiting_runs(_scrape(h)) == 0  # read again
    finally:
        h.close()


@pytest.mark.parametrize("garbage", [b"not json", b'{"rows": {}}', b'{"at": "yesterday", "rows": []}'])
def test_a_damaged_snapshot_in_redis_is_read_again_and_replaced(tmp_path, redis_url, garbage):
    h = Harness(tmp_path, runner="rq", redis_url=redis_url)
    try:
        h.rt.queue.redis.set("replyflow:metrics:database", garbage)
        samples = _scrape(h)
        assert samples[("replyflow_scrape_ok", (("source", "database"),))] == 1
        assert samples[("replyflow_flow_runs", (("status", "waiting"),))] == 0
        assert h.rt.queue.redis.get("replyflow:metrics:database") != garbage  # overwritten with a good one
    finally:
        h.close()
