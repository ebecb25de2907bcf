"""Flow runs against the store: load, advance with the pure engine, persist, queue the sends.

Each function is one unit of work inside the caller's transaction; the run's new state and
its outbox rows commit together, so a job that runs twice finds the run already moved on and
the engine refuses the stale event (TransitionNotAllowed) instead of sending twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import carts as cart_rules
from core.commands import CallAction, HandOff, ResumeBot, SendText, SetContact
from core.conversations import note
from core.events import InboundMessage, Order
from core.flows import engine, versions
from core.flows.definition import Flow
from core.flows.expressions import normalise_words
from core.gate import Policy
from core.handoff import hand_off
from core.outbox import check_for, queue
from core.store.models import ActionTask, Cart, Contact, Conversation, FlowRun, Message, Workspace
from core.templates import Catalogue

__all__ = ["Effects", "Context", "on_trigger", "on_cancel_event", "on_cart", "on_order", "on_reply", "on_consent_message", "on_release", "wake"]

_log = logging.getLogger(__name__)
_SENT = ("accepted", "sent", "delivered", "read", "played")


@dataclass
class Effects:
    """What a unit of work produced: outbox rows to send, and lines for a transcript."""

    outbox: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    actions: list[int] = field(default_factory=list)  # ActionTask ids to carry out

    def merge(self, other: "Effects") -> "Effects":
        self.outbox += other.outbox
        self.notes += other.notes
        self.actions += other.actions
        return self


@dataclass(frozen=True)
class Context:
    """What every run function needs besides the session: flows, templates, settings."""

    flows: Mapping[str, Flow]
    catalogue: Catalogue
    settings: Mapping[str, Any]

    def flow_for(self, s: Session, run: FlowRun) -> Flow | None:
        """The definition a run started with: runs keep their version when the flow changes or goes."""
        current = self.flows.get(run.flow_name)
        if current is not None and current.version == run.flow_version:
            return current
        return versions.load(s, run.flow_name, run.flow_version)

    def flows_for(self, event: str) -> list[Flow]:
        return [f for f in self.flows.values() if f.trigger.event == event]

    @property
    def policy(self) -> Policy:
        return Policy.from_settings(self.settings)

    def cancelled_by(self, event: str) -> list[Flow]:
        return [f for f in self.flows.values() if event in f.trigger.cancel_on]


def _context_values(s: Session, workspace_id: int, contact: Contact | None, subject: str,
                    run_vars: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    """What a flow's expressions and a trigger's filters can see."""
    values: dict[str, Any] = {"settings": dict(ctx.settings), "vars": dict(run_vars),
                              "event": dict(run_vars.get("_event") or {})}
    if contact is not None:
        values["contact"] = {"first_name": contact.first_name or contact.profile_name,
                             "last_name": contact.last_name, "email": contact.email,
                             **{k: v for k, v in (contact.properties or {}).items() if isinstance(k, str)}}
    if subject.startswith("cart:"):
        cart = s.scalar(select(Cart).where(Cart.workspace_id == workspace_id, Cart.token == subject.removeprefix("cart:")))
        if cart is not None:
            values["cart"] = {"token": cart.token, "recovery_url": cart.recovery_url,
                              "total": str(cart.total), "currency": cart.currency,
                              "total_display": cart_rules.display_total(cart.total, cart.currency)}
    return values


def _values(s: Session, run: FlowRun, ctx: Context) -> dict[str, Any]:
    contact = s.get(Contact, run.contact_id) if run.contact_id else None
    return _context_values(s, run.workspace_id, contact, run.subject, run.vars or {}, ctx)


def _conversation(s: Session, run: FlowRun) -> Conversation:
    conv = s.scalar(select(Conversation).where(Conversation.contact_id == run.contact_id))
    if conv is None:
        raise LookupError(f"run {run.id} has no conversation")
    return conv


def _side_effect(s: Session, run: FlowRun, command: object, contact: Contact, conv: Conversation,
                 now: datetime, fx: Effects) -> bool:
    """Carry out a command that is not a send; False when it is a send."""
    if isinstance(command, CallAction):
        task = ActionTask(workspace_id=run.workspace_id, flow_run_id=run.id, contact_id=contact.id, name=command.name,
                          params=dict(command.params), status="pending", created_at=now, updated_at=now)
        s.add(task)
        s.flush()
        fx.actions.append(task.id)
    elif isinstance(command, HandOff):
        hand_off(s, conv, command.reason, now, run_id=run.id)
    elif isinstance(command, SetContact):
        contact.properties = {**(contact.properties or {}), **command.properties}
        contact.updated_at = now
    elif isinstance(command, ResumeBot):
        conv.mode, conv.assignee, conv.updated_at = "bot", None, now
        note(s, conv, f"Back to the bot: {command.reason}", now, kind="release", run_id=run.id)
    else:
        return False
    return True


def _apply(s: Session, run: FlowRun, adv: engine.Advance, ctx: Context, now: datetime, fx: Effects) -> None:
    state = adv.state
    run.status, run.step, run.waiting_for, run.wake_at = state.status, state.step, state.waiting_for, state.wake_at
    run.outcome, run.updated_at = state.outcome, now
    run.vars = {**dict(state.vars), "_sends": (run.vars or {}).get("_sends", 0)}
    if state.ended:
        run.active_key, run.ended_at = None, now
    fx.notes.extend(f"[{run.flow_name}#{run.id}] {n}" for n in adv.notes)
    if not adv.commands:
        return
    contact, conv = s.get(Contact, run.contact_id), _conversation(s, run)
    for command in adv.commands:
        if _side_effect(s, run, command, contact, conv, now, fx):
            continue
        sends = dict(run.vars or {}).get("_sends", 0) + 1
        run.vars = {**(run.vars or {}), "_sends": sends}
        msg, decision = queue(s, contact=contact, conv=conv, command=command, author=f"bot:{run.flow_name}",
                              catalogue=ctx.catalogue, now=now, key=f"run:{run.id}:send:{sends}", run_id=run.id,
                              policy=ctx.policy)
        if msg.status == "queued":
            fx.outbox.append(msg.id)
    s.flush()


def _advance(s: Session, run: FlowRun, event: object, ctx: Context, now: datetime, fx: Effects) -> bool:
    flow = ctx.flow_for(s, run)
    if flow is None:
        fx.notes.append(f"[{run.flow_name}#{run.id}] flow v{run.flow_version} is not known; run left as it is")
        return False
    state = engine.RunState(step=run.step, status=run.status, waiting_for=run.waiting_for, wake_at=run.wake_at,
                            outcome=run.outcome, vars={k: v for k, v in (run.vars or {}).items() if k != "_sends"})
    contact, conv = s.get(Contact, run.contact_id), _conversation(s, run)
    try:
        adv = engine.advance(flow, state, event, _values(s, run, ctx), now,
                             check_for(s, contact, conv, ctx.catalogue, now, ctx.policy))
    except engine.TransitionNotAllowed as exc:
        _log.info("run %s: %s dropped: %s", run.id, type(event).__name__, exc)
        return False
    _apply(s, run, adv, ctx, now, fx)
    return True


def _lookup(values: Mapping[str, Any], path: str) -> Any:
    value: Any = values
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _passes(flow: Flow, values: Mapping[str, Any]) -> bool:
    """A trigger's filters, e.g. cart.total at_least 50: all must hold."""
    for f in flow.trigger.filters:
        value = _lookup(values, f.field)
        try:
            ok = {"at_least": lambda: Decimal(str(value)) >= Decimal(str(f.value)),
                  "at_most": lambda: Decimal(str(value)) <= Decimal(str(f.value)),
                  "equals": lambda: str(value) == str(f.value),
                  "one_of": lambda: str(value) in {str(v) for v in (f.value or ())}}[f.op]()
        except (InvalidOperation, TypeError, ValueError):
            ok = False
        if not ok:
            return False
    return True


def _make_room(s: Session, flow: Flow, contact: Contact, subject: str, ctx: Context, now: datetime,
               fx: Effects) -> bool:
    """Re-entry and priority: may ``flow`` start a run for this contact now? Cancels what it replaces."""
    for run in s.scalars(select(FlowRun).where(FlowRun.contact_id == contact.id, FlowRun.active_key.is_not(None))):
        other = ctx.flow_for(s, run)
        if run.flow_name == flow.name:
            if run.subject == subject and flow.trigger.reentry == "restart_wait":
                _advance(s, run, engine.Start(), ctx, now, fx)
                return False
            if flow.trigger.reentry == "ignore":
                fx.notes.append(f"[{flow.name}] not started: a run is active and re-entry is 'ignore'")
                return False
            _advance(s, run, engine.Cancel(f"replaced by a newer {flow.trigger.event}"), ctx, now, fx)
        elif other is not None and other.trigger.priority >= flow.trigger.priority:
            fx.notes.append(f"[{flow.name}] not started: the contact is in {run.flow_name} (priority "
                            f"{other.trigger.priority} >= {flow.trigger.priority})")
            return False
        else:
            _advance(s, run, engine.Cancel(f"replaced by {flow.name} (higher priority)"), ctx, now, fx)
    return True


def on_trigger(s: Session, ws: Workspace, event: str, subject: str, contact: Contact, conv: Conversation,
               data: Mapping[str, Any], occurred_at: datetime, ctx: Context, now: datetime) -> Effects:
    """A platform event for a contact: start the highest-priority flow it triggers (filters, re-entry
    and priority decide), or restart the abandonment wait of the run it already has."""
    fx = Effects()
    probe = _context_values(s, ws.id, contact, subject, {"_event": dict(data)}, ctx)
    flows = sorted((f for f in ctx.flows_for(event) if _passes(f, probe)), key=lambda f: (-f.trigger.priority, f.name))
    if not flows:
        return fx
    flow, base = flows[0], min(occurred_at, now)
    if not _make_room(s, flow, contact, subject, ctx, base, fx):
        return fx
    if flow.trigger.reentry != "restart" and s.scalar(select(FlowRun.id).where(
            FlowRun.workspace_id == ws.id, FlowRun.subject == subject, FlowRun.flow_name == flow.name)) is not None:
        return fx  # this subject already had its run; it ended, and an update does not restart it
    run = FlowRun(workspace_id=ws.id, contact_id=contact.id, flow_name=flow.name, flow_version=flow.version,
                  subject=subject, active_key=f"{flow.name}:contact:{contact.id}", status="waiting",
                  vars={"_event": dict(data)}, started_at=now, updated_at=now)
    s.add(run)
    s.flush()
    adv = engine.start(flow, _values(s, run, ctx), base, check_for(s, contact, conv, ctx.catalogue, base, ctx.policy))
    _apply(s, run, replace(adv, state=replace(adv.state, vars={"_event": dict(data), **dict(adv.state.vars)})),
           ctx, now, fx)
    return fx


def on_cancel_event(s: Session, ws: Workspace, event: str, subject: str, ctx: Context, now: datetime) -> Effects:
    """An event some flows list under ``cancel_on`` (e.g. booking_cancelled): their runs about it stop."""
    fx = Effects()
    for run in s.scalars(select(FlowRun).where(FlowRun.workspace_id == ws.id, FlowRun.subject == subject,
                                               FlowRun.active_key.is_not(None))):
        flow = ctx.flow_for(s, run)
        if flow is not None and event in flow.trigger.cancel_on:
            for queued in s.scalars(select(Message).where(Message.flow_run_id == run.id, Message.status == "queued")):
                queued.status, queued.error_details = "cancelled", f"{event} arrived first"
            _advance(s, run, engine.Cancel(event), ctx, now, fx)
    return fx


def on_cart(s: Session, ws: Workspace, cart: Cart, contact: Contact, conv: Conversation, occurred_at: datetime,
            ctx: Context, now: datetime) -> Effects:
    """An abandoned (or updated) cart."""
    return on_trigger(s, ws, "cart_abandoned", f"cart:{cart.token}", contact, conv, {}, occurred_at, ctx, now)


def on_order(s: Session, ws: Workspace, platform: str, order: Order, ctx: Context, now: datetime,
             contact: Contact | None = None, conv: Conversation | None = None) -> Effects:
    """An order: close its cart (recovered when a reminder went out first), cancel its runs, and
    start any flow triggered by ``order_created`` (e.g. a thank-you) for the buyer."""
    fx = Effects()
    if contact is not None and conv is not None and ctx.flows_for("order_created"):
        fx.merge(on_trigger(s, ws, "order_created", f"order:{order.order_id}", contact, conv,
                            {"order_id": order.order_id, "name": order.name or "", "total": str(order.total),
                             "currency": order.currency}, now, ctx, now))
    if not order.checkout_token:
        return fx
    subject = f"cart:{order.checkout_token}"
    runs = s.scalars(select(FlowRun).where(FlowRun.workspace_id == ws.id, FlowRun.subject == subject)).all()
    reminded = bool(runs) and s.scalar(select(Message.id).where(
        Message.flow_run_id.in_([r.id for r in runs]), Message.status.in_(_SENT))) is not None
    cart = cart_rules.mark_recovered(s, ws.id, platform, order, now, attributed=reminded)
    for run in runs:
        if run.active_key is None:
            continue
        for msg in s.scalars(select(Message).where(Message.flow_run_id == run.id, Message.status == "queued")):
            msg.status, msg.error_details = "cancelled", f"order {order.name or order.order_id} placed first"
        _advance(s, run, engine.Cancel(f"order {order.name or order.order_id} placed"), ctx, now, fx)
    if cart is not None and cart.contact_id is not None:
        conv = s.scalar(select(Conversation).where(Conversation.contact_id == cart.contact_id))
        if conv is not None:
            what = "recovered" if cart.status == "recovered" else "ordered without a reminder"
            text = f"Order {order.name or order.order_id} placed: cart {what} ({cart_rules.display_total(order.total, order.currency)})"
            note(s, conv, text, now, kind="outcome")
            fx.notes.append(text)
    return fx


def on_reply(s: Session, conv: Conversation, msg: InboundMessage, ctx: Context, now: datetime) -> Effects:
    """A customer's message in a conversation the bot owns: the waiting run takes it."""
    fx = Effects()
    if conv.mode != "bot":
        fx.notes.append(f"conversation is with {conv.mode}: the bot stays quiet")
        return fx
    run = s.scalar(select(FlowRun).where(FlowRun.contact_id == conv.contact_id, FlowRun.status == "waiting",
                                         FlowRun.waiting_for == "reply").order_by(FlowRun.id.desc()))
    if run is not None:
        media = msg.kind.value in ("image", "video", "audio", "document", "sticker")
        _advance(s, run, engine.Reply(reply_id=msg.reply_id, text=msg.text, media=media), ctx, now, fx)
        return fx
    return _inbound_trigger(s, conv, msg, ctx, now)


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
    if run.status == "handed_off" and _conversation(s, run).assignee:
        run.wake_at, run.waiting_for = None, None  # an agent took it in time: no timeout any more
        return fx
    _advance(s, run, engine.Wake(run.step), ctx, now, fx)
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
        _advance(s, run, engine.Release(summary), ctx, now, fx)
        where = f"the flow resumes at '{run.step}'" if run.active_key else f"the flow ended ({run.outcome})"
        note(s, conv, f"Context for the bot: {summary}; {where}", now, kind="release", run_id=run.id)
    return fx



OPT_OUT_CONFIRMATION = ("You will not receive marketing messages from us on WhatsApp any more. "
                        "Reply START if you change your mind.")
OPT_OUT_ALL_CONFIRMATION = ("You will not receive any more messages from us on WhatsApp. "
                            "Reply START if you change your mind.")
OPT_IN_CONFIRMATION = "Welcome back: you will receive our offers on WhatsApp again. Reply STOP to opt out."


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
            _advance(s, run, engine.Cancel("contact opted out"), ctx, now, fx)
    changed = (after.marketing_opt_out and not before.marketing_opt_out) or (
        after.all_opt_out and not before.all_opt_out) if opting_out else (
        after.marketing_opt_in and not before.marketing_opt_in)
    if changed:  # confirmed once per change of state, and only when it took effect
        text = {"opt_out": OPT_OUT_CONFIRMATION, "opt_out_all": OPT_OUT_ALL_CONFIRMATION}.get(intent,
                                                                                         OPT_IN_CONFIRMATION)
        row, _ = queue(s, contact=contact, conv=conv, command=SendText(text=text, compliance=opting_out),
                       author="bot:consent",
                       catalogue=ctx.catalogue, now=now, key=f"consent:{msg.message_id}")
        if row.status == "queued":
            fx.outbox.append(row.id)
    note(s, conv, fx.notes[0], now, kind="consent")
    return fx
