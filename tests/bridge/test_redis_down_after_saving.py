"""With Redis down, `agent reply` said `Error: cannot reach Redis at REDIS_URL` and exited 1,
though the reply was saved and a worker's sweeper sent it once Redis was back: an agent who tried
again sent the customer the same reply twice. It now says the reply is saved and will go out (exit
0: nothing to do again; 1 stays "refused, nothing saved"). `campaign send` says what it saved and
that running it again continues the rest, none twice."""

from __future__ import annotations

import socket
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from bridge import runtime
from bridge.cli import main
from core.store.models import Message
from tests.bridge.test_campaigns import LINK, MISSING_PARAM, OPTED_IN, _opt_in, _segment
from tests.harness import START, Harness

pytestmark = pytest.mark.redis
CUSTOMER = "15550002222"


def _closed_port() -> int:
    with socket.socket() as sock:  # bound, then closed: nothing listens there
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_agent_reply_with_redis_down_says_it_is_saved_and_it_goes_out_once(tmp_path, redis_url, monkeypatch):
    now = datetime.now(timezone.utc)
    first = Harness(tmp_path, start=now)  # the customer writes; the bridge records the conversation
    first.whatsapp(first.sandbox.customer_message(CUSTOMER, "Maya", text="is my order on its way?"))
    with first.session() as s:
        conv = s.scalar(select(Message.conversation_id))
    database_url = first.rt.settings.database_url
    first.close()

    down = f"redis://127.0.0.1:{_closed_port()}/0"
    for name, value in {"DATABASE_URL": database_url, "REDIS_URL": down,
                        "WHATSAPP_API_BASE": "http://127.0.0.1:9"}.items():
        monkeypatch.setenv(name, value)
    try:
        result = CliRunner().invoke(main, ["agent", "reply", str(conv), "Yes, it left today."])
    finally:
        if runtime._current is not None:
            runtime._current.close()
        runtime.set_runtime(None)
    assert result.exit_code == 0, result.output
    assert f"saved, not yet queued: cannot reach Redis at {down} (" in result.stdout, result.output
    assert "goes out when a `replyflow worker` can reach Redis" in result.stdout
    assert "do not send it again" in result.stdout and "Error:" not in result.output

    back = Harness(tmp_path, runner="rq", redis_url=redis_url, start=now + timedelta(seconds=5))  # Redis is back
    try:
        back.sandbox.last_inbound[CUSTOMER] = now  # this sandbox is new; WhatsApp would remember the window
        back.sweep()
        back.sweep()
        texts = [m.body.get("text", {}).get("body") for m in back.sandbox.sent]
        assert texts.count("Yes, it left today.") == 1, texts
    finally:
        back.close()


def _send(tmp_path):
    return CliRunner().invoke(main, ["campaign", "send", "cart_reminder", "--segment", str(tmp_path / "segment.csv"),
                                     "--name", "spring", "--param", f"recovery_link={LINK}",
                                     "--param", "first_name=there", "--batch-size", "8"])


def test_campaign_send_with_redis_down_says_what_is_saved_and_a_rerun_sends_each_once(tmp_path, redis_url):
    down = f"redis://127.0.0.1:{_closed_port()}/0"
    first = Harness(tmp_path, runner="rq", redis_url=down)
    try:
        _opt_in(first, OPTED_IN + [MISSING_PARAM])
        _segment(tmp_path)
        result = _send(tmp_path)
    finally:
        first.close()
    assert result.exit_code == 1, result.output
    assert f"campaign spring stopped after row 8: cannot reach Redis at {down} (" in result.output, result.output
    assert "message(s) waiting to be sent are saved and go out when a `replyflow worker` can reach Redis" in result.output
    assert "run the same command again once Redis is reachable to decide the remaining rows" in result.output

    back = Harness(tmp_path, runner="rq", redis_url=redis_url)
    try:
        again = _send(tmp_path)
        assert again.exit_code == 0 and "resuming after row 8" in again.output, again.output
        back.settle()
        back.at(START + timedelta(minutes=2))  # the sweeper queues the rows saved while Redis was down
        assert Counter(m.to for m in back.sandbox.sent) == Counter(OPTED_IN)
    finally:
        back.close()
