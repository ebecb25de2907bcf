"""Job functions: ids in, idempotent, safe to run twice. RQ and the in-process runner call these
by name (``bridge.jobs.<name>``, see bridge/queue.py), so their names and arguments stay fixed.

- ``handle_event(event_id)``: a recorded webhook update, handed to core (WhatsApp updates in
  bridge/whatsapp_inbound.py; shop, CRM and trigger-API events in bridge/platform_events.py).
- ``wake_run(run_id)``: a flow run whose timer is due.
- ``send_message(message_id)``: one outbox row to the Cloud API.
- ``send_batch(message_ids)``: many outbox rows (a campaign's), sent concurrently (bridge.bulk).
- ``run_action(task_id)``, ``flush_writebacks(platform, account)``, ``reconcile_woocommerce(account)``,
  ``register_woocommerce_webhooks(account)``: a flow's action, write-backs, WooCommerce upkeep.
- ``sweep()``: re-derive pending work from the database (due timers, queued sends, webhook
  records nobody processed); the database is the record, the queue only carries work.
"""

from __future__ import annotations


import logging
from datetime import timedelta
from functools import partial
from typing import Callable

from sqlalchemy import or_, select
from sqlalchemy import update as sql_update
from sqlalchemy.orm import Session

from core.errors import PermanentError
from core.flows import runs
from core.flows.runs import Effects
from core.store import in_status, session_scope
from core.store.models import ActionTask, FlowRun, InboundEvent, Message, Workspace, WritebackTask
from core.writeback import message_changed
from bridge import bulk, platform_events, whatsapp_inbound, woocommerce_sync, writeback
from bridge.actions import perform_action
from bridge.executor import send_outbox_message
from bridge.health import missing_row
from bridge.runtime import Runtime, get_runtime

__all__ = ["handle_event", "wake_run", "send_message", "send_batch", "run_action", "flush_writebacks",
           "reconcile_woocommerce", "register_woocommerce_webhooks", "sweep", "enqueue_effects"]

_log = logging.getLogger(__name__)
Handler = Callable[[Runtime, Session, InboundEvent], Effects]


# ---------------------------------------------------------------- the jobs


def handle_event(event_id: int) -> None:
    """A recorded delivery, handled once. A delivery that may need its platform's API (a WooCommerce
    booking id, a HubSpot object id) is handled in three steps, so that no transaction is open while
    the shop or CRM answers (on PostgreSQL a slow platform would keep pooled connections idle in a
    transaction up to its timeout, and hold back vacuum): read the event and close; make the calls;
    then record the outcome in the write transaction, where the event is locked and checked to be
    still pending (a second run, or one after a crash between the steps, does nothing twice).
    Other deliveries (WhatsApp, the trigger API, Shopify) are one transaction."""
    rt = get_runtime()
    with session_scope(rt.db) as s:
        event = _pending(rt, s, event_id)
        if event is None:
            return
        here = _handled_here(rt, event)
        if here is not None:
            fx = _process(rt, s, event, here)
        else:
            delivery = (event.platform, event.account, event.body.encode(), dict(event.headers or {}))
    if here is None:
        fetched = platform_events.fetch(rt, *delivery)  # no transaction open: the platform may be slow
        with session_scope(rt.db) as s:
            event = _pending(rt, s, event_id, lock=True)
            if event is None:
                return  # handled meanwhile by another run of this job
            fx = _process(rt, s, event, partial(platform_events.handle, fetched=fetched))
    enqueue_effects(rt, fx)


_LOCAL: dict[str, Handler] = {"whatsapp": whatsapp_inbound.handle, "api": platform_events.handle_api}


def _handled_here(rt: Runtime, event: InboundEvent) -> Handler | None:
    """The handler when the event needs nothing from its platform (WhatsApp, the trigger API,
    Shopify), run in the transaction that read it; None when the platform's API may be needed."""
    if event.platform in _LOCAL:
        return _LOCAL[event.platform]
    if platform_events.calls_out(event.platform):
        return None
    fetched = platform_events.fetch(rt, event.platform, event.account, event.body.encode(), event.headers or {})
    return partial(platform_events.handle, fetched=fetched)


def _pending(rt: Runtime, s: Session, event_id: int, *, lock: bool = False) -> InboundEvent | None:
    """The event when it still waits to be handled (``lock``: held until the transaction ends, so two
    runs of the job record one outcome)."""
    event = s.get(InboundEvent, event_id, with_for_update=lock)
    if event is None:
        _log.warning(missing_row("webhook record", event_id, rt.settings.database_url))
        return None
    return event if event.status == "pending" else None


def _process(rt: Runtime, s: Session, event: InboundEvent, handler: Handler) -> Effects:
    """Hand the event to core; bad data (``PermanentError``) is recorded on it and never retried,
    anything else raises and rolls back for the queue's retry."""
    event.attempts += 1
    try:
        with s.begin_nested():
            fx = handler(rt, s, event)
    except PermanentError as exc:
        event.status, event.error = "failed", f"{type(exc).__name__}: {exc}"
        _log.warning("event %s failed: %s", event.id, event.error)
        return Effects()
    if event.status == "pending":
        event.status = "done"
    event.processed_at = rt.clock.now()
    return fx


def wake_run(run_id: int) -> None:
    rt = get_runtime()
    with session_scope(rt.db) as s:
        run = s.get(FlowRun, run_id)
        if run is None:
            _log.warning(missing_row("flow run", run_id, rt.settings.database_url))
            return
        fx = runs.wake(s, run_id, rt.flow_context(s.get(Workspace, run.workspace_id)), rt.clock.now())
    enqueue_effects(rt, fx)


def enqueue_effects(rt: Runtime, fx: Effects) -> None:
    """After the unit of work committed: send what it queued, run the actions it asked for, and log
    what the flows decided (why a flow did not start, which reply matched, what the gate refused)."""
    for line in fx.notes:
        _log.info("flows: %s", line)
    for message_id in fx.outbox:
        rt.queue.enqueue("send_message", message_id)
    for task_id in fx.actions:
        rt.queue.enqueue("run_action", task_id)


def run_action(task_id: int) -> None:
    perform_action(get_runtime(), task_id)


def flush_writebacks(platform: str, account: str) -> None:
    """Write one installation's due write-back tasks (timeline entries, notes, tasks) in batches."""
    writeback.flush(get_runtime(), platform, account)


def reconcile_woocommerce(account: str) -> dict[str, int]:
    """Read back a WooCommerce store's recent orders that no webhook brought (bridge/woocommerce_sync.py)."""
    return woocommerce_sync.reconcile(get_runtime(), account)


def register_woocommerce_webhooks(account: str) -> dict[str, int]:
    """After the authorize callback stored a store's keys: its webhooks, through the REST API."""
    from bridge.woocommerce_connect import register

    return register(get_runtime(), account)


def send_message(message_id: int) -> None:
    send_outbox_message(get_runtime(), message_id)


def send_batch(message_ids: list[int]) -> None:
    bulk.send_batch(get_runtime(), message_ids)


_CAMPAIGN = Message.idempotency_key.like("campaign:%")


def sweep(stale_after_seconds: float = 60.0) -> dict[str, int]:
    """Enqueue whatever the database says is due; cheap to run every few seconds."""
    rt = get_runtime()
    now = rt.clock.now()
    stale = now - timedelta(seconds=stale_after_seconds)
    with session_scope(rt.db) as s:
        # a worker died mid-call (kill -9, OOM): the outcome is unknown; never re-send it blindly.
        # One guarded UPDATE: a row its sender settled meanwhile (or another sweeper moved) keeps that
        stuck = s.scalars(sql_update(Message).where(in_status(Message.status, "sending"), Message.status_at <= stale)
                          .values(status="unknown", status_at=now, error_details="sender stopped during the API call")
                          .returning(Message.id).execution_options(synchronize_session=False)).all()
        for msg in s.scalars(select(Message).where(Message.id.in_(stuck))) if stuck else ():
            message_changed(s, msg, now)  # the CRM's copy of the line says so too
        due = s.scalars(select(FlowRun.id).where(FlowRun.status.in_(("waiting", "handed_off")),
                                                 FlowRun.wake_at <= now)).all()
        queued = s.scalars(select(Message.id).where(
            in_status(Message.status, "queued"), Message.direction == "out",
            or_(Message.idempotency_key.is_(None), ~_CAMPAIGN),
            or_(Message.not_before.is_(None), Message.not_before <= now))).all()
        # campaign rows go in batches: retries when due, and rows a lost batch job left behind
        batched = sorted(s.scalars(select(Message.id).where(  # sorted here: ORDER BY id would walk the whole table
            in_status(Message.status, "queued"), Message.direction == "out", _CAMPAIGN,
            or_(Message.not_before <= now, Message.status_at <= stale))))
        pending = s.scalars(select(InboundEvent.id).where(in_status(InboundEvent.status, "pending"),
                                                          InboundEvent.received_at <= stale)).all()
        actions = s.scalars(select(ActionTask.id).where(in_status(ActionTask.status, "pending"),
                                                        ActionTask.updated_at <= stale)).all()
        # a writer that died mid-batch: its tasks are due again (connectors update by external_id)
        s.execute(sql_update(WritebackTask).where(WritebackTask.status == "writing", WritebackTask.updated_at <= stale)
                  .values(status="pending"))
        writebacks = s.execute(select(WritebackTask.platform, WritebackTask.account).where(
            WritebackTask.status == "pending",
            or_(WritebackTask.not_before.is_(None), WritebackTask.not_before <= now)).distinct()).all()
        stores = woocommerce_sync.due_accounts(s, now)
    for run_id in due:
        rt.queue.enqueue("wake_run", run_id)
    for message_id in queued:
        rt.queue.enqueue("send_message", message_id)
    for ids in bulk.chunks(batched):
        rt.queue.enqueue("send_batch", ids)
    for event_id in pending:
        rt.queue.enqueue("handle_event", event_id)
    for task_id in actions:
        rt.queue.enqueue("run_action", task_id)
    for platform, account in writebacks:
        rt.queue.enqueue("flush_writebacks", platform, account)
    for account in stores:
        rt.queue.enqueue("reconcile_woocommerce", account)
    return {"due_runs": len(due), "queued_messages": len(queued) + len(batched), "pending_events": len(pending),
            "pending_actions": len(actions), "writeback_installations": len(writebacks),
            "woocommerce_reconciles": len(stores)}



