"""Platform events → flow runs: trigger filters, re-entry, priority, and cancel events."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.flows import engine
from core.flows.assign import assignment_vars
from core.flows.definition import Flow
from core.outbox import check_for
from core.store.models import Cart, Contact, Conversation, FlowRun, Message, Workspace
from core.flows.runbase import Context, Effects, advance_run, apply, context_values, values_for

__all__ = ["on_trigger", "on_cancel_event", "on_cart"]

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
                advance_run(s, run, engine.Start(), ctx, now, fx)
                return False
            if flow.trigger.reentry == "ignore":
                fx.notes.append(f"[{flow.name}] not started: a run is active and re-entry is 'ignore'")
                return False
            advance_run(s, run, engine.Cancel(f"replaced by a newer {flow.trigger.event}"), ctx, now, fx)
        elif other is not None and other.trigger.priority >= flow.trigger.priority:
            fx.notes.append(f"[{flow.name}] not started: the contact is in {run.flow_name} (priority "
                            f"{other.trigger.priority} >= {flow.trigger.priority})")
            return False
        else:
            advance_run(s, run, engine.Cancel(f"replaced by {flow.name} (higher priority)"), ctx, now, fx)
    return True


def on_trigger(s: Session, ws: Workspace, event: str, subject: str, contact: Contact, conv: Conversation,
               data: Mapping[str, Any], occurred_at: datetime, ctx: Context, now: datetime) -> Effects:
    """A platform event for a contact: start the highest-priority flow it triggers (filters, re-entry
    and priority decide), or restart the abandonment wait of the run it already has."""
    fx = Effects()
    probe = context_values(s, ws.id, contact, subject, {"_event": dict(data)}, ctx)
    flows = sorted((f for f in ctx.flows_for(event) if _passes(f, probe)), key=lambda f: (-f.trigger.priority, f.name))
    if not flows:
        return fx
    flow, base = flows[0], min(occurred_at, now)
    if not _make_room(s, flow, contact, subject, ctx, base, fx):
        return fx
    if flow.trigger.reentry != "restart" and s.scalar(select(FlowRun.id).where(
            FlowRun.workspace_id == ws.id, FlowRun.subject == subject, FlowRun.flow_name == flow.name)) is not None:
        return fx  # this subject already had its run; it ended, and an update does not restart it
    groups = assignment_vars(flow, contact.id)  # hold-out and A/B arms, recorded on the run
    run = FlowRun(workspace_id=ws.id, contact_id=contact.id, flow_name=flow.name, flow_version=flow.version,
                  subject=subject, active_key=f"{flow.name}:contact:{contact.id}", status="waiting",
                  vars={"_event": dict(data), **groups}, started_at=now, updated_at=now)
    s.add(run)
    s.flush()
    if groups.get("_holdout"):  # the control group: the run is recorded, nothing is sent
        run.status, run.outcome, run.active_key, run.ended_at, run.step = "completed", "held out", None, now, None
        fx.notes.append(f"[{flow.name}#{run.id}] held out: no message (control group of {flow.holdout:.0%})")
        return fx
    adv = engine.start(flow, values_for(s, run, ctx), base, check_for(s, contact, conv, ctx.catalogue, base, ctx.policy))
    kept = {"_event": dict(data), **groups, **dict(adv.state.vars)}
    apply(s, run, replace(adv, state=replace(adv.state, vars=kept)), ctx, now, fx)
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
            advance_run(s, run, engine.Cancel(event), ctx, now, fx)
    return fx


def on_cart(s: Session, ws: Workspace, cart: Cart, contact: Contact, conv: Conversation, occurred_at: datetime,
            ctx: Context, now: datetime) -> Effects:
    """An abandoned (or updated) cart."""
    return on_trigger(s, ws, "cart_abandoned", f"cart:{cart.token}", contact, conv, {}, occurred_at, ctx, now)

