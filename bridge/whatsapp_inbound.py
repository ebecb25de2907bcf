"""A recorded WhatsApp Cloud API webhook, handled in the ``handle_event`` job (bridge/jobs.py).

``handle(rt, s, event)`` parses the stored body and hands each update to its handler: an
inbound message (consent keywords first, then the contact's flow), a delivery status, a
marketing-preference change, a template status update.
"""

from __future__ import annotations

from typing import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.whatsapp.events import parse_webhook
from core import contacts, conversations, template_status
from core.consent import message_intent
from core.events import (
    ConsentAction, ConsentPurpose, ConsentSignal, DeliveryStatus, InboundMessage, MarketingPreference, MessageKind,
    TemplateStatusUpdate,
)
from core.flows import runs
from core.flows.runs import Effects
from core.outbox import record_consent
from core.store.models import Channel, InboundEvent, Workspace
from bridge.executor import learn_from_status
from bridge.runtime import Runtime

__all__ = ["handle"]

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
    # a typed button title counts as the tap, an opt-out button's included ("Stop promotions")
    tapped = msg.reply_id or (runs.typed_button(s, conv, msg.text) if msg.kind in _WORDS else None)
    intent = message_intent(msg.text, tapped) if msg.kind in _WORDS else None
    if intent is not None:  # opt-out and opt-in sit in front of all routing
        return runs.on_consent_message(s, conv, msg, intent, rt.flow_context(ws), now)
    return runs.on_reply(s, conv, msg, rt.flow_context(ws), now, tapped=tapped)


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


def handle(rt: Runtime, s: Session, event: InboundEvent) -> Effects:
    fx = Effects()
    for update in parse_webhook(event.body.encode()):
        handler = _WHATSAPP.get(type(update.event))
        if handler is None:
            event.status = "ignored"
            continue
        fx.merge(handler(rt, s, event, update.event))
    return fx
