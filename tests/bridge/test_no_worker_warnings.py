"""With REDIS_URL set and no `replyflow worker` running, `campaign send` once printed "done: 4
queued" and `agent reply` "message 7 queued", and nothing was sent; `serve` started without a word.
Each now says that the work waits for a worker (or that Redis cannot be reached)."""

from __future__ import annotations

import socket

import pytest
from click.testing import CliRunner
from rq import Worker
from rq.serializers import JSONSerializer
from sqlalchemy import select

from bridge.cli import main
from bridge.config import Settings
from bridge.health import NO_WORKER, jobs_warning
from core.store.models import Message
from tests.bridge.test_campaigns import LINK, MISSING_PARAM, OPTED_IN, _opt_in, _segment
from tests.harness import FIXTURES, Harness

pytestmark = pytest.mark.redis


@pytest.fixture
def h(tmp_path, redis_url):
    harness = Harness(tmp_path, runner="rq", redis_url=redis_url)
    yield harness
    harness.close()


def _a_worker(h: Harness) -> Worker:
    """A worker registered in Redis as `replyflow worker` registers itself (not working here)."""
    worker = Worker(list(h.rt.queue.queues.values()), connection=h.rt.queue.redis, serializer=JSONSerializer)
    worker.register_birth()
    return worker


def _campaign(tmp_path):
    return CliRunner().invoke(main, ["campaign", "send", "cart_reminder", "--segment", str(tmp_path / "segment.csv"),
                                     "--param", f"recovery_link={LINK}", "--param", "first_name=there"])


def test_campaign_send_says_no_worker_is_running(h: Harness, tmp_path):
    _opt_in(h, OPTED_IN + [MISSING_PARAM])
    _segment(tmp_path)
    result = _campaign(tmp_path)
    assert result.exit_code == 0, result.output
    assert "queued 16" in result.stdout
    assert f"warning: {NO_WORKER}" in result.stderr
    worker = _a_worker(h)
    _segment(tmp_path)
    again = CliRunner().invoke(main, ["campaign", "send", "cart_reminder", "--segment", str(tmp_path / "segment.csv"),
                                      "--name", "second", "--param", f"recovery_link={LINK}",
                                      "--param", "first_name=there"])
    assert again.exit_code == 0, again.output
    assert "warning" not in again.stderr, again.stderr  # a worker runs: nothing to warn about
    worker.register_death()


def _conversation(h: Harness) -> int:
    h.whatsapp((FIXTURES / "whatsapp" / "inbound_text.json").read_bytes())
    with h.session() as s:
        return s.scalar(select(Message.conversation_id))


def test_agent_reply_says_no_worker_is_running(h: Harness):
    conv = _conversation(h)
    result = CliRunner().invoke(main, ["agent", "reply", str(conv), "Hi, Sam here."])
    assert result.exit_code == 0, result.output
    assert "queued" in result.stdout and f"warning: {NO_WORKER}" in result.stderr
    worker = _a_worker(h)
    again = CliRunner().invoke(main, ["agent", "reply", str(conv), "Still there?"])
    assert again.exit_code == 0 and again.stderr == "", again.output
    worker.register_death()


def test_the_warning_when_redis_cannot_be_reached():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    warning = jobs_warning(Settings(redis_url=f"redis://:pw@127.0.0.1:{port}/0"))
    assert warning.startswith(f"cannot reach Redis at redis://:***@127.0.0.1:{port}/0 (")
    assert warning.endswith("no job is queued or run until Redis is reachable")
    assert jobs_warning(Settings()) is None  # no REDIS_URL: serve runs the jobs itself
