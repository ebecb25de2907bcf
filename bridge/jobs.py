"""Job functions: ids in, idempotent, safe to run twice. RQ and the in-process runner call these.

- ``handle_event(event_id)``: a recorded webhook update, handed to core.
- ``wake_run(run_id)``: a flow run whose timer is due.
- ``send_message(message_id)``: one outbox row to the Cloud API.
- ``send_batch(message_ids)``: many outbox rows (a campaign's), sent concurrently (bridge.bulk).
- ``sweep()``: re-derive pending work from the database (due timers, queued sends, webhook
  records nobody processed); the database is the record, the queue only carries work.
"""

from __future__ import annotations


import logging
from datetime import timedelta
from typing import Callable

from sqlalchemy import or_, select
from sqlalchemy import update as sql_update
from sqlalchemy.orm import Session

from connectors import REGISTRY
from connectors.whatsapp.events import parse_webhook
from core import accounts, contacts, conversations, installations, phones, privacy, template_status
from core.carts import upsert_cart
from core.consent import message_intent
from core.errors import PayloadError, PermanentError
from core.events import (
    ConsentAction, ConsentPurpose, ConsentSignal, ContactRef, PhoneCandidate, DeliveryStatus, InboundMessage, MarketingPreference, MessageKind,
    PrivacyRequest, TemplateStatusUpdate, Trigger,
    TriggerKind,
)
from core.flows import runs
from core.flows.runs import Effects
from core.installations import NotInstalled, info_of
from core.outbox import consent_of, record_consent
from core.sealed import SealError
from core.writeback import queue as writeback_queue
from core.store import session_scope
from core.store.models import ActionTask, Channel, FlowRun, InboundEvent, Installation, Message, Workspace, WritebackTask
from bridge import bulk, woocommerce_sync, writeback
from bridge.actions import perform_action
from bridge.executor import learn_from_status, send_outbox_message
from bridge.installs import opened
from bridge.runtime import Runtime, get_runtime
from bridge.triggers_api import parse_trigger

__all__ = ["handle_event", "wake_run", "send_message", "send_batch", "run_action", "flush_writebacks",
           "reconcile_woocommerce", "register_woocommerce_webhooks", "sweep", "enqueue_effects"]

_log = logging.getLogger(__name__)
Handler = Callable[[Runtime, Session, InboundEvent], list[int]]


# ---------------------------------------------------------------- WhatsApp


_WORDS = (MessageKind.TEXT, MessageKind.BUTTON, MessageKind.INTERACTIVE)


def _channel(s: Session, phone_number_id: str) -> Channel | None:
    return s.scalar(select(Channel).where(Channel.phone_number_id == phone_number_id))


def _inbound(rt: Runtime, s: Session, event: InboundEvent, msg: InboundMessage) -> Effects:
    channel = _channel(s, msg.channel)
    if channel is None:
        event.status, event.error = "ignored", "message for a phone number id that is not configured"
        return Effects()
    now = rt.clock.now()
    contact = contacts.resolve_whatsapp(s, channel.workspace_id, wa_id=msg.wa_id, user_id=msg.user_id,
                                        profile_name=msg.profile_name, now=now)
    conv = conversations.conversation_for(s, contact, channel.id, now)
    if conversations.record_inbound(s, conv, msg, now) is None:
        return Effects()  # this wamid was already handled
    ws = s.get(Workspace, channel.workspace_id)
    intent = message_intent(msg.text, msg.reply_id) if msg.kind in _WORDS else None
    if intent is not None:  # opt-out and opt-in sit in front of all routing
        return runs.on_consent_message(s, conv, msg, intent, rt.flow_context(ws), now)
    return runs.on_reply(s, conv, msg, rt.flow_context(ws), now)


def _status(rt: Runtime, s: Session, event: InboundEvent, status: DeliveryStatus) -> Effects:
    msg, moved = conversations.apply_status(s, status)
    if msg is None and conversations.adopt_by_callback(s, status) is not None:
        msg, moved = conversations.apply_status(s, status)  # an unknown-outcome send, reconciled
    if msg is None:
        event.status = "orphan"  # applied when the send that produced this wamid is recorded
    elif moved:
        learn_from_status(s, msg, status, rt.clock.now())
    return Effects()


def _preference(rt: Runtime, s: Session, event: InboundEvent, pref: MarketingPreference) -> Effects:
    channel = _channel(s, pref.channel)
    action = {"stop": ConsentAction.OPT_OUT, "resume": ConsentAction.OPT_IN}.get(pref.value)
    if channel is None or action is None:
        event.status, event.error = "ignored", f"preference {pref.value!r} not acted on"
        return Effects()
    contact = contacts.resolve_whatsapp(s, channel.workspace_id, wa_id=pref.wa_id, user_id=pref.user_id,
                                        profile_name=None, now=rt.clock.now())
    record_consent(s, contact, ConsentSignal(purpose=ConsentPurpose.MARKETING, action=action,
                                             source="whatsapp.user_preferences", evidence=pref.detail,
                                             at=pref.timestamp), rt.clock.now())
    return Effects()


def _template_update(rt: Runtime, s: Session, event: InboundEvent, update: TemplateStatusUpdate) -> Effects:
    ws = s.scalar(select(Channel.workspace_id).where(Channel.waba_id == update.account).order_by(Channel.id))
    if ws is None or template_status.apply_update(s, ws, update, rt.clock.now()) is None:
        event.status, event.error = "ignored", "template update for an unknown account or template"
    return Effects()


_WHATSAPP: dict[type, Callable] = {InboundMessage: _inbound, DeliveryStatus: _status, MarketingPreference: _preference,
                                   TemplateStatusUpdate: _template_update}


def _whatsapp(rt: Runtime, s: Session, event: InboundEvent) -> Effects:
    fx = Effects()
    for update in parse_webhook(event.body.encode()):
        handler = _WHATSAPP.get(type(update.event))
        if handler is None:
            event.status = "ignored"
            continue
        fx.merge(handler(rt, s, event, update.event))
    return fx


# ---------------------------------------------------------------- shops and CRMs


def _workspace_for(s: Session, platform: str, account: str) -> Workspace:
    """The installation's workspace; an unknown shop whose webhook was signed with our secret
    joins the default workspace (single-business mode), with no token: nothing is written back."""
    inst = s.scalar(select(Installation).where(Installation.platform == platform, Installation.account == account))
    if inst is None:
        ws = s.scalar(select(Workspace).where(Workspace.slug == "default"))
        s.add(Installation(workspace_id=ws.id, platform=platform, account=account, config={"write_kinds": []}))
        s.flush()
        return ws
    return s.get(Workspace, inst.workspace_id)


def _record_platform_consent(rt: Runtime, s: Session, ws: Workspace, contact, signals, now) -> None:
    """Consent a platform reports; an erased phone is never silently subscribed again by an import."""
    erased = contact.phone_e164 is not None and privacy.was_erased(
        s, ws.id, phones.match_keys(contact.phone_e164), rt.settings.erase_salt)
    for signal in signals:
        if erased and signal.action is ConsentAction.OPT_IN:
            continue
        record_consent(s, contact, signal, now)


def _cart(rt: Runtime, s: Session, ws: Workspace, trigger: Trigger) -> Effects:
    now = rt.clock.now()
    resolved = contacts.resolve_ref(s, ws.id, trigger.contact, now) if trigger.contact else None
    contact = resolved.contact if resolved else None
    if contact is not None:
        _record_platform_consent(rt, s, ws, contact, trigger.consent, now)
    cart, still_open = upsert_cart(s, ws.id, trigger.platform, trigger.cart, contact,
                                   resolved.problems if resolved else ["no contact in the event"],
                                   trigger.occurred_at, now)
    if cart.status == "not_contactable" and trigger.contact is not None and trigger.contact.phones:
        _report_cart_problem(s, ws, trigger, cart, now)  # a phone was given and cannot be used
    if cart.status == "completed":  # closed without an order here (checkout completed, order cancelled)
        return runs.on_cart_closed(s, ws, cart, rt.flow_context(ws), now)
    if not still_open or contact is None:
        return Effects()
    channel = s.scalar(select(Channel).where(Channel.workspace_id == ws.id).order_by(Channel.id))
    conv = conversations.conversation_for(s, contact, channel.id, now)
    return runs.on_cart(s, ws, cart, contact, conv, trigger.occurred_at, rt.flow_context(ws), now)


def _report_cart_problem(s: Session, ws: Workspace, trigger: Trigger, cart, now) -> None:
    """Tell the shop why this cart gets no reminder (e.g. a billing phone that is not a number), once,
    where its installation shows replyflow's ``note`` lines (WooCommerce: a private order note)."""
    inst = s.scalar(select(Installation).where(Installation.platform == trigger.platform,
                                               Installation.account == trigger.account,
                                               Installation.status == "active"))
    if inst is None or "note" not in ((inst.config or {}).get("write_kinds") or ()):
        return
    key = f"cart-problem:{cart.token}"
    if s.scalar(select(WritebackTask.id).where(WritebackTask.platform == inst.platform,
                                               WritebackTask.account == inst.account, WritebackTask.key == key)):
        return
    writeback_queue(s, workspace_id=ws.id, platform=inst.platform, account=inst.account, kind="note", key=key,
                    payload={"text": f"no WhatsApp reminder for this order: {cart.problem}",
                             "cart": {"token": cart.token, "order_id": None}, "data": {}}, now=now)


def _order(rt: Runtime, s: Session, ws: Workspace, trigger: Trigger) -> Effects:
    now, contact, conv = rt.clock.now(), None, None
    ctx = rt.flow_context(ws)
    if trigger.contact is not None and ctx.flows_for("order_created"):
        contact = contacts.resolve_ref(s, ws.id, trigger.contact, now).contact
        if contact is not None:
            channel = s.scalar(select(Channel).where(Channel.workspace_id == ws.id).order_by(Channel.id))
            conv = conversations.conversation_for(s, contact, channel.id, now)
    elif trigger.contact is not None:  # known buyers only: their other open carts close
        contact = contacts.find_ref(s, ws.id, trigger.contact)
    return runs.on_order(s, ws, trigger.platform, trigger.order, ctx, now, contact=contact, conv=conv)


def _privacy(rt: Runtime, s: Session, request: PrivacyRequest) -> Effects:
    ws = _workspace_for(s, request.platform, request.account)
    privacy.handle_request(s, ws, request, rt.clock.now(), export_dir=rt.settings.export_dir,
                           salt=rt.settings.erase_salt)
    return Effects()


_BOOKINGS = (TriggerKind.BOOKING_CREATED, TriggerKind.BOOKING_UPCOMING)


def _about_contact(rt: Runtime, s: Session, ws: Workspace, trigger: Trigger) -> Effects:
    """A platform event about one contact (created or changed, a consent change, a deal stage, a
    booking): record the consent it carries, then start the flows that listen to it (``trigger.kind``
    names the event; an opt-in that is the contact's latest word also starts ``contact_opted_in``)."""
    now = rt.clock.now()
    ctx = rt.flow_context(ws)
    names = [trigger.kind.value]
    resolved = contacts.resolve_ref(s, ws.id, trigger.contact, now) if trigger.contact else None
    if resolved is None or resolved.contact is None:
        if not ctx.flows_for(trigger.kind.value) and trigger.kind not in _BOOKINGS:
            return Effects()  # a customer with no usable phone, and nothing waits for them
        raise PayloadError(f"{trigger.kind.value} {trigger.subject or ''}: no contact to reach "
                           f"({'; '.join(resolved.problems) if resolved else 'the event names no contact'})")
    contact = resolved.contact
    if trigger.consent:
        _record_platform_consent(rt, s, ws, contact, trigger.consent, now)
        state = consent_of(s, contact.id)
        newest = max(trigger.consent, key=lambda c: c.at)
        if (newest.action is ConsentAction.OPT_IN and newest.welcomes and state.marketing_opt_in
                and state.marketing_at == min(newest.at, now)):
            names.append("contact_opted_in")  # this opt-in is the latest word: the welcome flow may start
    channel = s.scalar(select(Channel).where(Channel.workspace_id == ws.id).order_by(Channel.id))
    conv = conversations.conversation_for(s, contact, channel.id, now)
    # a booking is about the future: its flow's clock starts when it is seen, not when it was paid
    started = now if trigger.kind in _BOOKINGS else trigger.occurred_at
    fx = Effects()
    for name in names:
        fx.merge(runs.on_cancel_event(s, ws, name, trigger.subject, ctx, now))
        fx.merge(runs.on_trigger(s, ws, name, trigger.subject, contact, conv, dict(trigger.data), started, ctx, now))
    return fx


def _cancelled(rt: Runtime, s: Session, ws: Workspace, trigger: Trigger) -> Effects:
    """A platform event that only cancels (a meeting deleted): the runs about its subject stop."""
    return runs.on_cancel_event(s, ws, trigger.kind.value, trigger.subject, rt.flow_context(ws), rt.clock.now())


def _uninstalled(rt: Runtime, s: Session, platform: str, account: str) -> Effects:
    """The app was removed: forget the token, stop every flow of the account's contacts."""
    inst = s.scalar(select(Installation).where(Installation.platform == platform, Installation.account == account))
    if inst is None or inst.status == "erased":
        return Effects()
    now = rt.clock.now()
    installations.uninstall(s, inst, now)
    stopped = accounts.stop_account(s, inst.workspace_id, platform, account, now, f"{account} uninstalled the app")
    _log.info("%s %s uninstalled: token removed, %d runs stopped", platform, account, stopped)
    return Effects()


_TRIGGERS = {TriggerKind.CART_ABANDONED: _cart, TriggerKind.ORDER_CREATED: _order,
             TriggerKind.BOOKING_CANCELLED: _cancelled,
             TriggerKind.CONTACT_CREATED: _about_contact, TriggerKind.CONTACT_CHANGED: _about_contact,
             TriggerKind.DEAL_STAGE_CHANGED: _about_contact,
             TriggerKind.BOOKING_CREATED: _about_contact, TriggerKind.BOOKING_UPCOMING: _about_contact}


def _expanded(rt: Runtime, s: Session, connector, event: InboundEvent) -> tuple[bytes, dict]:
    """A connector may complete a thin delivery through its API first (a WooCommerce booking id);
    it asks for the installation (credentials opened) only when it needs it."""
    body, headers = event.body.encode(), event.headers or {}
    expand = getattr(connector, "expand", None)
    if expand is None or not event.account:
        return body, headers
    try:
        return expand(body, headers, lambda: info_of(s, event.platform, event.account, rt.sealer))
    except (NotInstalled, SealError) as exc:
        raise PermanentError(f"cannot read {event.platform} {event.account}: {exc}") from None


def _completed(rt: Runtime, s: Session, connector, trigger: Trigger | None) -> Trigger | None:
    """Connectors whose events carry ids only (HubSpot) read the rest through their API, here in the job."""
    complete = getattr(connector, "complete", None)
    if trigger is None or complete is None:
        return trigger
    return complete(trigger, opened(rt, s, trigger.platform, trigger.account))


def _shop(rt: Runtime, s: Session, event: InboundEvent) -> Effects:
    connector = REGISTRY[event.platform]
    body, headers = _expanded(rt, s, connector, event)
    trigger = connector.trigger(body, headers)
    if trigger is not None and _TRIGGERS.get(trigger.kind) is not None:
        try:
            trigger = _completed(rt, s, connector, trigger)
        except NotInstalled as exc:
            event.status, event.error = "ignored", str(exc)
            return Effects()
    handler = _TRIGGERS.get(trigger.kind) if trigger else None
    if handler is None:
        request = connector.privacy_request(body, headers)
        if request is not None:
            return _privacy(rt, s, request)
        gone = getattr(connector, "uninstalled", None)
        account = gone(event.body.encode(), event.headers or {}) if gone else None
        if account:
            return _uninstalled(rt, s, event.platform, account)
        event.status = "ignored"
        return Effects()
    inst = s.scalar(select(Installation).where(Installation.platform == trigger.platform,
                                               Installation.account == trigger.account))
    if inst is not None and inst.status in ("uninstalled", "erased"):
        event.status, event.error = "ignored", f"{trigger.account} is {inst.status}: nothing starts for it"
        return Effects()
    return handler(rt, s, _workspace_for(s, trigger.platform, trigger.account), trigger)


# ---------------------------------------------------------------- the trigger API


def _api(rt: Runtime, s: Session, event: InboundEvent) -> Effects:
    t = parse_trigger(event.body.encode(), event.dedupe_key.removeprefix("api:"))
    now = rt.clock.now()
    ws = s.scalar(select(Workspace).where(Workspace.slug == "default"))
    ref = ContactRef(platform="api", external_id=t.contact.get("external_id"), first_name=t.contact.get("first_name"),
                     last_name=t.contact.get("last_name"), email=t.contact.get("email"), locale=t.contact.get("locale"),
                     phones=(PhoneCandidate(raw=t.contact["phone"], source="api", country=t.contact.get("country")),))
    resolved = contacts.resolve_ref(s, ws.id, ref, now)
    if resolved.contact is None:
        raise PayloadError(f"contact.phone: {'; '.join(resolved.problems)}")
    contact = resolved.contact
    if t.consent is not None:
        _record_platform_consent(rt, s, ws, contact, (ConsentSignal(
            purpose=ConsentPurpose.MARKETING, action=ConsentAction(t.consent), source="api", evidence=t.evidence,
            at=t.occurred_at or now),), now)
    channel = s.scalar(select(Channel).where(Channel.workspace_id == ws.id).order_by(Channel.id))
    conv = conversations.conversation_for(s, contact, channel.id, now)
    ctx = rt.flow_context(ws)
    fx = runs.on_cancel_event(s, ws, t.event, t.subject, ctx, now)
    fx.merge(runs.on_trigger(s, ws, t.event, t.subject, contact, conv, t.data, t.occurred_at or now, ctx, now))
    return fx


# ---------------------------------------------------------------- the jobs


def handle_event(event_id: int) -> None:
    rt = get_runtime()
    fx = Effects()
    with session_scope(rt.db) as s:
        event = s.get(InboundEvent, event_id)
        if event is None or event.status != "pending":
            return
        event.attempts += 1
        handler: Handler = {"whatsapp": _whatsapp, "api": _api}.get(event.platform, _shop)
        try:
            with s.begin_nested():
                fx = handler(rt, s, event)
        except PermanentError as exc:  # bad data: recorded on the event, never retried
            event.status, event.error = "failed", f"{type(exc).__name__}: {exc}"
            _log.warning("event %s failed: %s", event_id, event.error)
            return
        if event.status == "pending":
            event.status = "done"
        event.processed_at = rt.clock.now()
    enqueue_effects(rt, fx)


def wake_run(run_id: int) -> None:
    rt = get_runtime()
    with session_scope(rt.db) as s:
        run = s.get(FlowRun, run_id)
        if run is None:
            return
        fx = runs.wake(s, run_id, rt.flow_context(s.get(Workspace, run.workspace_id)), rt.clock.now())
    enqueue_effects(rt, fx)


def enqueue_effects(rt: Runtime, fx: Effects) -> None:
    """After the unit of work committed: send what it queued, run the actions it asked for."""
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
        # a worker died mid-call (kill -9, OOM): the outcome is unknown; never re-send it blindly
        s.execute(sql_update(Message).where(Message.status == "sending", Message.status_at <= stale)
                  .values(status="unknown", error_details="sender stopped during the API call"))
        due = s.scalars(select(FlowRun.id).where(FlowRun.status.in_(("waiting", "handed_off")),
                                                 FlowRun.wake_at <= now)).all()
        queued = s.scalars(select(Message.id).where(
            Message.status == "queued", Message.direction == "out",
            or_(Message.idempotency_key.is_(None), ~_CAMPAIGN),
            or_(Message.not_before.is_(None), Message.not_before <= now))).all()
        # campaign rows go in batches: retries when due, and rows a lost batch job left behind
        batched = s.scalars(select(Message.id).where(
            Message.status == "queued", Message.direction == "out", _CAMPAIGN,
            or_(Message.not_before <= now, Message.status_at <= stale)).order_by(Message.id)).all()
        pending = s.scalars(select(InboundEvent.id).where(InboundEvent.status == "pending",
                                                          InboundEvent.received_at <= stale)).all()
        actions = s.scalars(select(ActionTask.id).where(ActionTask.status == "pending",
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



