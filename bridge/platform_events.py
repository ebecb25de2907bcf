"""Shop and CRM deliveries (Shopify, WooCommerce, HubSpot) and trigger-API events, handled in the
``handle_event`` job (bridge/jobs.py).

``fetch(rt, ...)`` turns a stored delivery into its connector's ``Trigger``, completing thin
deliveries through the platform's API first, with no database transaction open; then, in the
job's write transaction, ``handle(rt, s, event, fetched)`` hands the trigger on: an abandoned cart,
an order, an event about a contact (created or changed, consent, deal stage, booking), a cancelled booking.
Deliveries that are no trigger may be a privacy request or an app uninstall. ``handle_api(rt, s,
event)`` does the same for an event posted to ``/api/triggers``. Consent a platform reports is
recorded here, never re-subscribing an erased phone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors import REGISTRY
from core import accounts, contacts, conversations, installations, phones, privacy
from core.carts import upsert_cart
from core.errors import PayloadError, PermanentError
from core.events import (
    ConsentAction, ConsentPurpose, ConsentSignal, ContactRef, PhoneCandidate, PrivacyRequest, Trigger, TriggerKind,
)
from core.flows import runs
from core.flows.runs import Effects
from core.installations import InstallationInfo, NotInstalled, info_of
from core.outbox import consent_of, record_consent
from core.sealed import SealError
from core.store import session_scope
from core.writeback import queue as writeback_queue
from core.store.models import Channel, InboundEvent, Installation, Workspace, WritebackTask
from bridge.installs import opened
from bridge.runtime import Runtime
from bridge.triggers_api import parse_trigger

__all__ = ["handle", "handle_api", "fetch", "calls_out", "Fetched"]

_log = logging.getLogger(__name__)


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


@dataclass(frozen=True, slots=True)
class Fetched:
    """A stored delivery as its platform's API completed it, read before the write transaction:
    the body and headers the trigger came from, the trigger, or what decides the event already
    (``failure``: bad data or a broken installation; ``ignored``: the account is not connected)."""

    body: bytes
    headers: Mapping[str, Any]
    trigger: Trigger | None = None
    failure: PermanentError | None = None
    ignored: str | None = None


def calls_out(platform: str) -> bool:
    """Whether the platform's events may need its API in the job (a WooCommerce booking id, a HubSpot
    object id): those jobs make the calls with no transaction open (``fetch``)."""
    connector = REGISTRY[platform]
    return hasattr(connector, "expand") or hasattr(connector, "complete")


def _installation(rt: Runtime, platform: str, account: str) -> InstallationInfo:
    with session_scope(rt.db) as s:
        return info_of(s, platform, account, rt.sealer)


def _expanded(rt: Runtime, connector, platform: str, account: str | None, body: bytes,
              headers: Mapping[str, Any]) -> tuple[bytes, Mapping[str, Any]]:
    """A connector may complete a thin delivery through its API first (a WooCommerce booking id);
    it asks for the installation (credentials opened) only when it needs it."""
    expand = getattr(connector, "expand", None)
    if expand is None or not account:
        return body, headers
    try:
        return expand(body, headers, lambda: _installation(rt, platform, account))
    except (NotInstalled, SealError) as exc:
        raise PermanentError(f"cannot read {platform} {account}: {exc}") from None


def fetch(rt: Runtime, platform: str, account: str | None, body: bytes, headers: Mapping[str, Any]) -> Fetched:
    """Everything a delivery needs from its platform, asked with no database transaction open (each
    credential read is a short transaction of its own): a slow shop or CRM must not keep a pooled
    connection idle in a transaction for as long as its timeout. Retryable errors (network, 5xx,
    429) are raised for the job's retry; the outcome is recorded by ``handle``."""
    connector = REGISTRY[platform]
    try:
        body, headers = _expanded(rt, connector, platform, account, body, headers)
        trigger = connector.trigger(body, headers)
        complete = getattr(connector, "complete", None)
        if trigger is not None and complete is not None and _TRIGGERS.get(trigger.kind) is not None:
            try:  # connectors whose events carry ids only (HubSpot) read the rest through their API
                trigger = complete(trigger, opened(rt, trigger.platform, trigger.account))
            except NotInstalled as exc:
                return Fetched(body, headers, ignored=str(exc))
    except PermanentError as exc:
        return Fetched(body, headers, failure=exc)
    return Fetched(body, headers, trigger)


def handle(rt: Runtime, s: Session, event: InboundEvent, fetched: Fetched) -> Effects:
    """A shop's or CRM's delivery, with what ``fetch`` read: its trigger starts or stops flows, or it
    is a privacy request or an uninstall."""
    if fetched.failure is not None:
        raise fetched.failure
    if fetched.ignored is not None:
        event.status, event.error = "ignored", fetched.ignored
        return Effects()
    connector, trigger, body, headers = REGISTRY[event.platform], fetched.trigger, fetched.body, fetched.headers
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


# ---------------------------------------------------------------- the trigger API (POST /api/triggers)


def handle_api(rt: Runtime, s: Session, event: InboundEvent) -> Effects:
    """An event posted to the trigger API (bridge/triggers_api.py), in the default workspace."""
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
