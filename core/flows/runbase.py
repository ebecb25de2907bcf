"""What every run function shares: the unit of work's effects, the context, and how a run is
advanced with the pure engine and its new state and commands are applied to the store."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import carts as cart_rules
from core.commands import CallAction, HandOff, ResumeBot, SendTemplate, SetContact, SkipTemplate
from core.conversations import note
from core.flows import engine, versions
from core.flows.definition import Flow
from core.gate import Policy
from core.handoff import hand_off
from core.outbox import check_for, queue, resolve_language
from core.store.models import ActionTask, Cart, Contact, Conversation, FlowRun
from core.templates import Catalogue

__all__ = ["Effects", "Context", "context_values", "values_for", "conversation_of", "apply", "advance_run"]

_log = logging.getLogger(__name__)



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


def context_values(s: Session, workspace_id: int, contact: Contact | None, subject: str,
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


def values_for(s: Session, run: FlowRun, ctx: Context) -> dict[str, Any]:
    contact = s.get(Contact, run.contact_id) if run.contact_id else None
    return context_values(s, run.workspace_id, contact, run.subject, run.vars or {}, ctx)


def conversation_of(s: Session, run: FlowRun) -> Conversation:
    conv = s.scalar(select(Conversation).where(Conversation.contact_id == run.contact_id))
    if conv is None:
        raise LookupError(f"run {run.id} has no conversation")
    return conv


def _side_effect(s: Session, run: FlowRun, command: object, contact: Contact, conv: Conversation,
                 now: datetime, fx: Effects, ctx: Context) -> bool:
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
    elif isinstance(command, SkipTemplate):
        chosen = resolve_language(contact, SendTemplate(template=command.template, language=command.language),
                                  ctx.catalogue, ctx.policy)
        label = command.template + (f" [{chosen.language}]" if chosen.language else "")
        note(s, conv, f"Template {label} not sent at step {command.step}: {command.reason}", now,
             kind="template_skipped", run_id=run.id)
    elif isinstance(command, ResumeBot):
        conv.mode, conv.assignee, conv.updated_at = "bot", None, now
        note(s, conv, f"Back to the bot: {command.reason}", now, kind="release", run_id=run.id)
    else:
        return False
    return True


def apply(s: Session, run: FlowRun, adv: engine.Advance, ctx: Context, now: datetime, fx: Effects) -> None:
    state = adv.state
    run.status, run.step, run.waiting_for, run.wake_at = state.status, state.step, state.waiting_for, state.wake_at
    run.outcome, run.updated_at = state.outcome, now
    run.vars = {**dict(state.vars), "_sends": (run.vars or {}).get("_sends", 0)}
    if state.ended:
        run.active_key, run.ended_at = None, now
    fx.notes.extend(f"[{run.flow_name}#{run.id}] {n}" for n in adv.notes)
    if not adv.commands:
        return
    contact, conv = s.get(Contact, run.contact_id), conversation_of(s, run)
    for command in adv.commands:
        if _side_effect(s, run, command, contact, conv, now, fx, ctx):
            continue
        sends = dict(run.vars or {}).get("_sends", 0) + 1
        run.vars = {**(run.vars or {}), "_sends": sends}
        msg, decision = queue(s, contact=contact, conv=conv, command=command, author=f"bot:{run.flow_name}",
                              catalogue=ctx.catalogue, now=now, key=f"run:{run.id}:send:{sends}", run_id=run.id,
                              policy=ctx.policy)
        if msg.status == "queued":
            fx.outbox.append(msg.id)
    s.flush()


def advance_run(s: Session, run: FlowRun, event: object, ctx: Context, now: datetime, fx: Effects) -> bool:
    flow = ctx.flow_for(s, run)
    if flow is None:
        fx.notes.append(f"[{run.flow_name}#{run.id}] flow v{run.flow_version} is not known; run left as it is")
        return False
    state = engine.RunState(step=run.step, status=run.status, waiting_for=run.waiting_for, wake_at=run.wake_at,
                            outcome=run.outcome, vars={k: v for k, v in (run.vars or {}).items() if k != "_sends"})
    contact, conv = s.get(Contact, run.contact_id), conversation_of(s, run)
    try:
        adv = engine.advance(flow, state, event, values_for(s, run, ctx), now,
                             check_for(s, contact, conv, ctx.catalogue, now, ctx.policy))
    except engine.TransitionNotAllowed as exc:
        _log.info("run %s: %s dropped: %s", run.id, type(event).__name__, exc)
        return False
    apply(s, run, adv, ctx, now, fx)
    return True

