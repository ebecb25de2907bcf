"""`replyflow db prune`: handled webhook copies go after their time; nothing else does."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, update

from core.store.models import InboundEvent, Message
from core.store.retention import RetentionError, count_prunable, prune_inbound
from bridge import runtime
from bridge.cli import main
from tests.harness import Harness
from tests.inbox_support import add_agents, signed_in


def _statuses(h: Harness) -> list[str]:
    with h.session() as s:
        return list(s.scalars(select(InboundEvent.status).order_by(InboundEvent.id)))


def test_handled_copies_older_than_the_cut_off_go_and_nothing_else(bridge: Harness):
    h = bridge
    for text in ("old one", "old two", "old three", "old four"):
        h.sandbox.customer_sends("15550002222", "Maya", text=text)
    h.settle()
    with h.session() as s:  # one old copy that failed, one still pending: they stay whatever their age;
        # one that needed nothing (ignored: handled, like done) goes
        first, second, third = s.scalars(select(InboundEvent).order_by(InboundEvent.id).limit(3)).all()
        first.status, second.status, third.status = "failed", "pending", "ignored"
    h.clock.advance(timedelta(days=31))
    h.sandbox.customer_sends("15550002222", "Maya", text="new")
    h.settle()
    messages_before = _count(h, Message)
    assert _statuses(h) == ["failed", "pending", "ignored", "done", "done"]
    assert count_prunable(h.rt.db.engine, h.clock.now(), timedelta(days=30)) == 2
    assert list(prune_inbound(h.rt.db.engine, h.clock.now(), timedelta(days=30), batch=1)) == [1, 1]
    assert _statuses(h) == ["failed", "pending", "done"]
    assert _count(h, Message) == messages_before  # the conversation is not touched


def _count(h: Harness, model) -> int:
    with h.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_copies_younger_than_whatsapps_redelivery_window_are_never_pruned(bridge: Harness):
    with pytest.raises(RetentionError, match="at least 7 days"):
        list(prune_inbound(bridge.rt.db.engine, bridge.clock.now(), timedelta(days=6)))


def test_the_command_deletes_in_batches_with_its_count(tmp_path, monkeypatch):
    db = tmp_path / "shop.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{db}")
    h = Harness(tmp_path, database_url=f"sqlite:///{db}")
    try:
        for i in range(7):
            h.sandbox.customer_sends("15550002222", "Maya", text=f"hello {i}")
        h.settle()
        with h.session() as s:
            s.execute(update(InboundEvent).values(received_at=h.clock.now() - timedelta(days=40)))
        add_agents(h)
        browser = signed_in(h)
        browser.post("/inbox/logout", data={"csrf_token": browser.csrf})  # an ended session, long ago
        signed_in(h)  # and one never signed out, that ended by itself
    finally:
        h.close()
    runner = CliRunner()
    try:
        _prune_commands(runner)
    finally:
        runtime.get_runtime().close()
        runtime.set_runtime(None)


def _prune_commands(runner: CliRunner) -> None:
    dry = runner.invoke(main, ["db", "prune", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "7 handled webhook copies received before" in dry.output and "would be deleted" in dry.output
    assert "2 inbox sessions that ended before" in dry.output
    done = runner.invoke(main, ["db", "prune", "--older-than", "30d"])
    assert done.exit_code == 0, done.output
    assert "deleted 7 handled webhook copies" in done.output and "deleted 2 inbox sessions that ended before" \
        in done.output
    again = runner.invoke(main, ["db", "prune"])
    assert "nothing to delete" in again.output and "sessions" not in again.output
    refused = runner.invoke(main, ["db", "prune", "--older-than", "2d"])
    assert refused.exit_code == 2 and "at least 7 days" in refused.output
