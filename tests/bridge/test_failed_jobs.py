"""Failed RQ jobs: `bridge.failed_jobs` lists and requeues what RQ's failed registries hold, and
`replyflow jobs failed|retry` wires them to the terminal."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from bridge.cli import main
from bridge.failed_jobs import NOT_KEPT, keeps_failed_jobs, list_failed, retry
from tests.harness import Harness


def _work(h: Harness) -> None:
    from rq import SimpleWorker
    from rq.serializers import JSONSerializer

    queues = list(h.rt.queue.queues.values())
    SimpleWorker(queues, connection=h.rt.queue.redis, serializer=JSONSerializer).work(burst=True)


@pytest.fixture
def rq_bridge(tmp_path, redis_url):
    harness = Harness(tmp_path, runner="rq", redis_url=redis_url)
    yield harness
    harness.close()


def _fail_one(h: Harness, *args) -> str:
    """Enqueue a job that raises a plain RuntimeError and let a worker fail it for good."""
    job = h.rt.queue.queues["inbound"].enqueue("tests.rq_fixtures.always_fails", *args)
    _work(h)
    return job.id


def test_a_failed_job_is_listed_and_retried(rq_bridge: Harness):
    h = rq_bridge
    job_id = _fail_one(h, 42, "cart")
    [failed] = list_failed(h.rt.queue)
    assert (failed.id, failed.queue, failed.function) == (job_id, "inbound", "tests.rq_fixtures.always_fails")
    assert failed.args == (42, "cart") and failed.error == "RuntimeError: boom"
    assert failed.failed_at is not None
    assert list_failed(h.rt.queue, "sends") == []

    assert retry(h.rt.queue, [job_id]) == [job_id]
    queue = h.rt.queue.queues["inbound"]
    assert len(queue) == 1 and queue.job_ids == [job_id]
    assert len(queue.failed_job_registry) == 0 and list_failed(h.rt.queue) == []
    assert retry(h.rt.queue, [job_id]) == []  # no longer failed: nothing to requeue


def test_retry_all_requeues_every_failed_job(rq_bridge: Harness):
    h = rq_bridge
    first, second = _fail_one(h, 1), _fail_one(h, 2)
    assert sorted(retry(h.rt.queue)) == sorted([first, second])
    assert len(h.rt.queue.queues["inbound"]) == 2 and list_failed(h.rt.queue) == []


def test_unknown_queue_is_refused(rq_bridge: Harness):
    with pytest.raises(ValueError, match="no queue named 'nope'"):
        list_failed(rq_bridge.rt.queue, "nope")


def test_cli_lists_and_retries(rq_bridge: Harness):
    h = rq_bridge  # the harness installed its runtime: the CLI's get_runtime() finds it
    job_id = _fail_one(h, 7)
    listed = CliRunner().invoke(main, ["jobs", "failed"])
    assert listed.exit_code == 0, listed.output
    assert job_id in listed.output and "[inbound]" in listed.output
    assert "tests.rq_fixtures.always_fails(7)" in listed.output and "RuntimeError: boom" in listed.output
    assert "1 failed job(s)" in listed.output
    assert "0 failed job(s)" in CliRunner().invoke(main, ["jobs", "failed", "--queue", "sends"]).output

    missing = CliRunner().invoke(main, ["jobs", "retry", job_id, "no-such-job"])
    assert missing.exit_code == 1
    assert f"requeued {job_id}" in missing.output and "not requeued no-such-job" in missing.output
    assert len(h.rt.queue.queues["inbound"]) == 1

    again = CliRunner().invoke(main, ["jobs", "retry", "--all"])
    assert again.exit_code == 0 and "0 job(s) requeued" in again.output


def test_cli_retry_needs_ids_or_all(rq_bridge: Harness):
    assert CliRunner().invoke(main, ["jobs", "retry"]).exit_code == 2
    assert CliRunner().invoke(main, ["jobs", "retry", "x", "--all"]).exit_code == 2


def test_in_process_runner_keeps_no_failed_jobs(tmp_path):
    h = Harness(tmp_path)
    try:
        assert not keeps_failed_jobs(h.rt.queue)
        assert list_failed(h.rt.queue) == [] and retry(h.rt.queue) == []
        for args in (["jobs", "failed"], ["jobs", "retry", "--all"]):
            result = CliRunner().invoke(main, args)
            assert result.exit_code == 0, result.output
            assert result.output.strip() == NOT_KEPT
        named = CliRunner().invoke(main, ["jobs", "retry", "nosuch"])  # a job named and not found: exit 1
        assert named.exit_code == 1 and named.output.strip() == f"Error: {NOT_KEPT}"
    finally:
        h.close()
