"""The order-note writer against the store emulator: which lines become private notes, how they are
grouped, and what a 404, a 429 or a 5xx from the store turns into."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from connectors.base import WriteTask
from connectors.woocommerce.client import WooClient
from connectors.woocommerce.notes import OrderNotes
from core.clock import ManualClock
from tests.conftest import FIXTURES
from tests.emulators.woocommerce import WooStore

CONTACT = {"phone": "+15550006666", "first_name": "José", "last_name": "Ferreira"}


@pytest.fixture
def store():
    store = WooStore(ManualClock(datetime(2025, 11, 3, 16, 0, tzinfo=timezone.utc)), keys={"ck_test": "cs_test"})
    store.put_order(json.loads((FIXTURES / "woocommerce" / "order_checkout_draft.json").read_bytes()), topic=None)
    yield store
    store.close()


def task(id: int, kind: str = "message", direction: str | None = "in", text: str = "hi", order: str | None = "5124",
         **extra) -> WriteTask:
    payload = {"kind": kind, "direction": direction, "text": text, "data": extra.pop("data", {}),
               "cart": {"token": order, "order_id": None} if order else None}
    return WriteTask(id=id, kind=kind, key=f"message:{id}", account="shop", payload=payload, contact_ref=None,
                     external_id=extra.pop("external_id", None), conversation_url="https://bridge.example/inbox/1",
                     contact=CONTACT, **extra)


def write(store: WooStore, tasks):
    writer = OrderNotes(WooClient(store.url, "ck_test", "cs_test"))
    try:
        return {r.task_id: r for r in writer.write(tasks)}
    finally:
        writer.close()


def test_replies_sent_together_are_one_note_and_bot_lines_none(store):
    results = write(store, [task(1, direction="out", text="Hi José"), task(2, text="Is it in stock?"),
                            task(3, text="In sage?")])
    assert store.private_notes(5124) == ['WhatsApp replies from José Ferreira: "Is it in stock?" / "In sage?"\n'
                                         "Open the conversation: https://bridge.example/inbox/1"]
    assert results[1].outcome == "done" and results[1].external_id is None
    assert results[2].external_id == results[3].external_id == "5124/3391"


def test_a_handoff_quotes_the_replies_of_its_batch_and_an_outcome_uses_its_order(store):
    transcript = ({"direction": "out", "text": "reminder"}, {"direction": "in", "text": "help"})
    results = write(store, [task(1, text="help"), task(2, kind="handoff", direction="sys", text="Handed off",
                                                       data={"reason": "Customer asked for help"},
                                                       transcript=transcript),
                            task(3, kind="outcome", direction="sys", order=None, text="Order #5124 placed",
                                 data={"order_id": "5124"})])
    handoff, outcome = store.private_notes(5124)
    assert handoff.startswith("WhatsApp: José Ferreira was handed to an agent. Reason: Customer asked for help\n"
                              'Customer wrote: "help"')
    assert outcome.startswith("WhatsApp cart recovery: Order #5124 placed")
    assert results[1].external_id == results[2].external_id != results[3].external_id


def test_written_lines_are_not_written_again_and_lines_without_an_order_are_skipped(store):
    results = write(store, [task(1, external_id="5124/1"), task(2, order=None)])
    assert store.private_notes(5124) == []
    assert results[1].external_id == "5124/1" and results[2].detail.startswith("skipped")


def test_a_missing_order_fails_and_a_throttled_or_failing_store_is_retried(store):
    assert write(store, [task(1, order="999")])[1].outcome == "failed"
    store.throttle = [429, 503]
    throttled = write(store, [task(2)])[2]
    assert (throttled.outcome, throttled.retry_after) == ("retry", 7.0)
    assert write(store, [task(3)])[3].outcome == "retry"
    assert write(store, [task(4)])[4].outcome == "done"
