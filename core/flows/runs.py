"""Flow runs against the store: load, advance with the pure engine, persist, queue the sends.

Each function is one unit of work inside the caller's transaction; the run's new state and
its outbox rows commit together, so a job that runs twice finds the run already moved on and
the engine refuses the stale event (TransitionNotAllowed) instead of sending twice.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import carts as cart_rules
from core.commands import SendText
from core.conversations import note
from core.events import InboundMessage, Order
from core.flows import engine
from core.flows.expressions import normalise_words
from core.outbox import queue
from core.store.models import Cart, Contact, Conversation, FlowRun, Message, Workspace
from core.flows.runbase import Context, Effects, advance_run, conversation_of
from core.flows.triggers import on_cancel_event, on_cart, on_trigger

__all__ = ["Effects", "Context", "on_trigger", "on_cancel_event", "on_cart", "on_cart_closed", "on_order", "on_reply",
           "on_consent_message", "on_release", "wake"]

_log = logging.getLogger(__name__)
_SENT = ("accepted", "sent", "delivered", "read", "played")


def on_order(s: Session, ws: Workspace, platform: str, order: Order, ctx: Context, now: datetime,
             contact: Contact | None = None, conv: Conversation | None = None) -> Effects:
    """An order: close its cart (recovered when a reminder went out first), cancel its runs, and
    start any flow triggered by ``order_created`` (e.g. a thank-you) for the buyer."""
    fx = Effects()
    if contact is not None and conv is not None and ctx.flows_for("order_created"):
        fx.merge(on_trigger(s, ws, "order_created", f"order:{order.order_id}", contact, conv,
                            {"order_id": order.order_id, "name": order.name or "", "total": str(order.total),
                             "currency": order.currency}, now, ctx, now))
    if contact is not None:  # the buyer's other open carts: no reminder after paying
        for other in cart_rules.close_others(s, ws.id, platform, contact.id, order, now):
            _cancel_runs(s, ws, f"cart:{other.token}", f"order {order.name or order.order_id} placed", ctx, now, fx)
    if not order.checkout_token:
        return fx
    subject = f"cart:{order.checkout_token}"
    runs = s.scalars(select(FlowRun).where(FlowRun.workspace_id == ws.id, FlowRun.subject == subject)).all()
    reminded = bool(runs) and s.scalar(select(Message.id).where(
        Message.flow_run_id.in_([r.id for r in runs]), Message.status.in_(_SENT))) is not None
    cart = cart_rules.mark_recovered(s, ws.id, platform, order, now, attributed=reminded)
    _cancel_runs(s, ws, subject, f"order {order.name or order.order_id} placed", ctx, now, fx)
    if cart is not None and cart.contact_id is not None:
        conv = s.scalar(select(Conversation).where(Conversation.contact_id == cart.contact_id))
        if conv is not None:
            what = "recovered" if cart.status == "recovered" else "ordered without a reminder"
            text = f"Order {order.name or order.order_id} placed: cart {what} ({cart_rules.display_total(order.total, order.currency)})"
            note(s, conv, text, now, kind="outcome", data={
                "outcome": "cart_recovered" if cart.status == "recovered" else "ordered", "platform": platform,
                "order_id": order.order_id, "order_name": order.name, "amount": str(order.total),
                "currency": order.currency, "cart_token": cart.token})
            fx.notes.append(text)
    return fx


def _cancel_runs(s: Session, ws: Workspace, subject: str, reason: str, ctx: Context, now: datetime,
                 fx: Effects) -> None:
    for run in s.scalars(select(FlowRun).where(FlowRun.workspace_id == ws.id, FlowRun.subject == subject,
                                               FlowRun.active_key.is_not(None))):
        for msg in s.scalars(select(Message).where(Message.flow_run_id == run.id, Message.status == "queued")):
            msg.status, msg.error_details = "cancelled", f"{reason} first"
        advance_run(s, run, engine.Cancel(reason), ctx, now, fx)


def on_cart_closed(s: Session, ws: Workspace, cart: Cart, ctx: Context, now: datetime) -> Effects:
    """A cart the platform closed without an order we saw (checkout completed, order cancelled):
    its reminders stop."""
    fx = Effects()
    _cancel_runs(s, ws, f"cart:{cart.token}", "cart closed by the shop", ctx, now, fx)
    return fx


def on_reply(s: Session, conv: Conversation, msg: InboundMessage, ctx: Context, now: datetime, *,
             tapped: str | None = None) -> Effects:
    """A customer's message in a conversation the bot owns: the waiting run takes it. ``tapped``:
    the button a typed title named (``typed_button``), which the caller has already looked up."""
    fx = Effects()
    if conv.mode != "bot":
        fx.notes.append(f"conversation is with {conv.mode}: the bot stays quiet")
        return fx
    run = s.scalar(select(FlowRun).where(FlowRun.contact_id == conv.contact_id, FlowRun.status == "waiting",
                                         FlowRun.waiting_for == "reply").order_by(FlowRun.id.desc()))
    if run is not None:
        media = msg.kind.value in ("image", "video", "audio", "document", "sticker")
        advance_run(s, run, engine.Reply(reply_id=msg.reply_id or tapped, text=msg.text, media=media), ctx, now, fx)
        return fx
    return _inbound_trigger(s, conv, msg, ctx, now)


def _offered(request: dict | None) -> list[tuple[str, str]]:
    """(id, title) of the reply buttons or list rows a stored outbound request offered."""
    request = request or {}
    pairs = [tuple(b) for b in request.get("buttons") or () if isinstance(b, (list, tuple)) and len(b) == 2]
    for section in (request.get("list") or {}).get("sections") or ():
        pairs += [(row.get("id"), row.get("title")) for row in section.get("rows") or () if isinstance(row, dict)]
    return [(i, t) for i, t in pairs if isinstance(i, str) and isinstance(t, str)]


def typed_button(s: Session, conv: Conversation, text: str | None) -> str | None:
    """A customer who types a button's title ("I need help", "Stop promotions") instead of tapping
    it means that button: the id of the matching button or list row on the conversation's latest
    message that offered some (case, accents and punctuation folded, whole message)."""
    typed = normalise_words(text or "")
    if not typed:
        return None
    for request in s.scalars(select(Message.request).where(Message.conversation_id == conv.id,
                                                           Message.direction == "out")
                             .order_by(Message.id.desc()).limit(5)):
        offered = _offered(request)
        if offered:
            return next((i for i, title in offered if normalise_words(title) == typed), None)
    return None


def _inbound_trigger(s: Session, conv: Conversation, msg: InboundMessage, ctx: Context, now: datetime) -> Effects:
    """A message no run is waiting for can start a flow: ``first_inbound_message`` the first time a
    contact writes, ``inbound_keyword`` after that (filter on ``event.keyword``, the folded text)."""
    inbound = s.scalar(select(func.count()).select_from(Message).where(
        Message.contact_id == conv.contact_id, Message.direction == "in"))
    event = "first_inbound_message" if inbound <= 1 else "inbound_keyword"
    data = {"text": msg.text or "", "keyword": normalise_words(msg.text or ""), "reply_id": msg.reply_id or ""}
    return on_trigger(s, s.get(Workspace, conv.workspace_id), event, f"message:{msg.message_id}",
                      s.get(Contact, conv.contact_id), conv, data, msg.timestamp, ctx, now)


def wake(s: Session, run_id: int, ctx: Context, now: datetime) -> Effects:
    """A due timer: idempotent (a run that is not waiting, or not yet due, is left alone)."""
    fx = Effects()
    run = s.get(FlowRun, run_id)
    if run is None or run.status not in ("waiting", "handed_off") or run.wake_at is None or run.wake_at > now \
            or run.step is None:
        return fx
    if run.status == "handed_off" and conversation_of(s, run).assignee:
        run.wake_at, run.waiting_for = None, None  # an agent took it in time: no timeout any more
        return fx
    advance_run(s, run, engine.Wake(run.step), ctx, now, fx)
    return fx


def on_release(s: Session, conv: Conversation, agent: str, ctx: Context, now: datetime) -> Effects:
    """The agent gave the conversation back: the handed-off run resumes where its flow says."""
    fx = Effects()
    run = s.scalar(select(FlowRun).where(FlowRun.contact_id == conv.contact_id, FlowRun.status == "handed_off")
                   .order_by(FlowRun.id.desc()))
    if run is not None:
        agent_messages = len(s.scalars(select(Message.id).where(
            Message.conversation_id == conv.id, Message.author.like("agent:%"),
            Message.created_at >= (conv.handed_off_at or run.started_at))).all())
        summary = f"{agent} sent {agent_messages} message(s) while the conversation was with an agent"
        advance_run(s, run, engine.Release(summary), ctx, now, fx)
        where = f"the flow resumes at '{run.step}'" if run.active_key else f"the flow ended ({run.outcome})"
        note(s, conv, f"Context for the bot: {summary}; {where}", now, kind="release", run_id=run.id)
    return fx



OPT_OUT_CONFIRMATION = ("You will not receive marketing messages from us on WhatsApp any more. "
                        "Reply START if you change your mind.")
OPT_OUT_ALL_CONFIRMATION = ("You will not receive any more messages from us on WhatsApp. "
                            "Reply START if you change your mind.")
OPT_IN_CONFIRMATION = "Welcome back: you will receive our offers on WhatsApp again. Reply STOP to opt out."
FIRST_OPT_IN_CONFIRMATION = "Thank you: you will receive our offers on WhatsApp. Reply STOP to opt out."


def on_consent_message(s: Session, conv: Conversation, msg: InboundMessage, intent: str, ctx: Context,
                       now: datetime) -> Effects:
    """STOP/START by message or opt-out button: handled before any routing, whoever owns the
    conversation. An opt-out cancels the contact's runs at once and is confirmed once."""
    from core.events import ConsentAction, ConsentPurpose, ConsentSignal
    from core.outbox import consent_of, record_consent

    fx = Effects()
    contact = s.get(Contact, conv.contact_id)
    before = consent_of(s, contact.id)
    opting_out = intent in ("opt_out", "opt_out_all")
    action = ConsentAction.OPT_OUT if opting_out else ConsentAction.OPT_IN
    source = "whatsapp.button" if msg.reply_id else "whatsapp.keyword"
    purposes = [ConsentPurpose.MARKETING]
    if intent == "opt_out_all" or (intent == "opt_in" and before.all_opt_out):
        purposes.append(ConsentPurpose.UTILITY)  # START after STOP ALL lifts both
    # the ledger orders statements by when they were made (the message's time), so a later shop
    # opt-in can outrank an earlier STOP; the confirmation below follows what actually took effect
    for purpose in purposes:
        record_consent(s, contact, ConsentSignal(purpose=purpose, action=action, source=source,
                                                 evidence=f"{msg.message_id}: {msg.text or msg.reply_id}",
                                                 at=min(msg.timestamp, now)), now)
    after = consent_of(s, contact.id)
    what = {"opt_out": "opted out of marketing", "opt_out_all": "opted out of all messages",
            "opt_in": "opted in to marketing"}[intent]
    fx.notes.append(f"contact {what} by message")
    if opting_out:
        for run in s.scalars(select(FlowRun).where(FlowRun.contact_id == contact.id, FlowRun.active_key.is_not(None))):
            for queued in s.scalars(select(Message).where(Message.flow_run_id == run.id, Message.status == "queued")):
                queued.status, queued.error_details = "cancelled", "contact opted out"
            advance_run(s, run, engine.Cancel("contact opted out"), ctx, now, fx)
    changed = (after.marketing_opt_out and not before.marketing_opt_out) or (
        after.all_opt_out and not before.all_opt_out) if opting_out else (
        after.marketing_opt_in and not before.marketing_opt_in)
    if changed:  # confirmed once per change of state, and only when it took effect
        returning = before.marketing_opt_out or before.all_opt_out  # "welcome back" only to who had left
        text = {"opt_out": OPT_OUT_CONFIRMATION, "opt_out_all": OPT_OUT_ALL_CONFIRMATION}.get(
            intent, OPT_IN_CONFIRMATION if returning else FIRST_OPT_IN_CONFIRMATION)
        row, _ = queue(s, contact=contact, conv=conv, command=SendText(text=text, compliance=opting_out),
                       author="bot:consent",
                       catalogue=ctx.catalogue, now=now, key=f"consent:{msg.message_id}")
        if row.status == "queued":
            fx.outbox.append(row.id)
    note(s, conv, fx.notes[0], now, kind="consent")
    return fx
