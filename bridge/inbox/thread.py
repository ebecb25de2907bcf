"""One conversation: history, context, composer; take, assign, release, close."""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select

from core import handoff
from core.commands import SendTemplate
from core.conversations import note
from core.errors import PayloadError, TemplateError
from core.flows import runs
from core.outbox import queue
from core.store import session_scope
from core.store.models import Agent, Contact, Conversation, Message, Workspace
from core.templates import render
from bridge.inbox import bp
from bridge.inbox.accounts import agents_of
from bridge.inbox.queries import context_of, mark_read
from bridge.inbox.security import login_required
from bridge.inbox.util import ago, rt
from bridge.inbox.views import page_cursor
from bridge.jobs import enqueue_effects

__all__ = ["conversation", "reply", "send_template", "preview", "take", "assign", "release", "close"]

TICKS = {"queued": "🕓", "sending": "🕓", "unknown": "?", "accepted": "✓", "sent": "✓", "delivered": "✓✓",
         "read": "✓✓", "played": "✓✓", "failed": "✗", "blocked": "✗", "cancelled": "–"}


def _conv(s, conv_id: int) -> Conversation:
    conv = s.get(Conversation, conv_id)
    if conv is None or conv.workspace_id != g.agent.workspace_id:
        abort(404)
    return conv


def _hold(s, conv_id: int) -> Conversation:
    """The conversation, for a view that makes the agent its owner: a 401 when the agent was
    deactivated (or signed out) since the request began, so their conversations, just put back in
    the queue, are not taken again. The agent's row is locked until the end (PostgreSQL), so a
    deactivation either comes first or sees this one's owner."""
    conv = _conv(s, conv_id)
    me = s.scalar(select(Agent).where(Agent.id == g.agent.id).with_for_update())
    if me is None or not me.active or me.session_version != g.agent.session_version:
        abort(401)
    return conv


def approved_templates():
    return [t for t in rt().catalogue.templates if t.status.value == "APPROVED"]


@bp.get("/conversations/<int:conv_id>")
@login_required
def conversation(conv_id: int):
    runtime = rt()
    now = runtime.clock.now()
    if not request.args.get("partial"):
        page_cursor()
    with session_scope(runtime.db) as s:
        conv = _conv(s, conv_id)
        messages = s.scalars(select(Message).where(Message.conversation_id == conv_id).order_by(Message.id)).all()
        ctx = context_of(s, conv, now)
        mark_read(s, g.agent.id, conv_id)
        agents = [(a.email, a.name) for a in agents_of(s, g.agent.workspace_id) if a.active]
        s.expunge_all()
    part = request.args.get("partial")
    page = {"thread": "inbox/_thread.html", "composer": "inbox/_composer.html"}.get(part, "inbox/thread.html")
    return render_template(page, conv=conv, messages=messages, ctx=ctx, ticks=TICKS, agents=agents,
                           templates=approved_templates(), left=ago(ctx["window_left"]),
                           mine=conv.assignee == g.agent.email)


def _back(conv_id: int):
    return redirect(url_for("inbox.conversation", conv_id=conv_id))


@bp.post("/conversations/<int:conv_id>/reply")
@login_required
def reply(conv_id: int):
    runtime, text = rt(), request.form.get("text", "").strip()
    with session_scope(runtime.db) as s:
        conv = _hold(s, conv_id)
        try:
            msg, decision = handoff.agent_reply(s, conv, g.agent.email, text, runtime.catalogue, runtime.clock.now())
        except PayloadError as exc:  # empty or too long: nothing was changed
            flash(f"Not sent: {exc}", "error")
            return _back(conv_id)
        message_id, status = msg.id, msg.status
    return _queued(conv_id, message_id, status, decision)


def _queued(conv_id: int, message_id: int, status: str, decision):
    if status == "queued":
        rt().queue.enqueue("send_message", message_id)
        if decision.until is not None:
            flash(f"Deferred until {decision.until:%Y-%m-%d %H:%M} UTC: {decision.reason}", "ok")
    else:
        flash(f"Not sent: {decision.reason}", "error")
    return _back(conv_id)


def _template_params(template) -> dict[str, str]:
    return {key: request.values.get(f"param_{key}", "") for key in template.all_params}


@bp.post("/conversations/<int:conv_id>/template")
@login_required
def send_template(conv_id: int):
    runtime = rt()
    now = runtime.clock.now()
    try:
        template = runtime.catalogue.get(request.form.get("template", ""), request.form.get("language") or None)
    except TemplateError as exc:
        flash(f"Not sent: {exc}", "error")
        return _back(conv_id)
    command = SendTemplate(template=template.name, language=template.language, params=_template_params(template))
    with session_scope(runtime.db) as s:
        conv = _hold(s, conv_id)
        if conv.mode != "agent" or not conv.assignee:
            handoff.take(s, conv, g.agent.email, now)
        contact = s.get(Contact, conv.contact_id)
        policy = runtime.flow_context(s.get(Workspace, conv.workspace_id)).policy
        msg, decision = queue(s, contact=contact, conv=conv, command=command, author=f"agent:{g.agent.email}",
                              catalogue=runtime.catalogue, now=now, policy=policy)
        message_id, status = msg.id, msg.status
    return _queued(conv_id, message_id, status, decision)


@bp.get("/templates/preview")
@login_required
def preview():
    try:
        template = rt().catalogue.get(request.args.get("template", ""), request.args.get("language") or None)
        rendered = render(template, _template_params(template))
    except TemplateError as exc:
        return {"ok": False, "text": str(exc)}, 200
    text = "\n".join(p for p in (rendered.header, rendered.body, rendered.footer) if p)
    return {"ok": True, "text": text}, 200


@bp.post("/conversations/<int:conv_id>/take")
@login_required
def take(conv_id: int):
    runtime = rt()
    with session_scope(runtime.db) as s:
        handoff.take(s, _hold(s, conv_id), g.agent.email, runtime.clock.now())
    return _back(conv_id)


@bp.post("/conversations/<int:conv_id>/assign")
@login_required
def assign(conv_id: int):
    runtime, email = rt(), request.form.get("agent", "")
    with session_scope(runtime.db) as s:
        target = s.scalar(select(Agent).where(Agent.email == email, Agent.workspace_id == g.agent.workspace_id,
                                              Agent.active.is_(True)))
        if target is None:
            flash(f"No active agent {email!r}.", "error")
        else:
            handoff.take(s, _conv(s, conv_id), target.email, runtime.clock.now())
            flash(f"Assigned to {target.name}.", "ok")
    return _back(conv_id)


@bp.post("/conversations/<int:conv_id>/release")
@login_required
def release(conv_id: int):
    runtime = rt()
    now = runtime.clock.now()
    with session_scope(runtime.db) as s:
        conv = _conv(s, conv_id)
        if conv.mode == "closed":
            conv.mode, conv.updated_at = "agent", now  # reopened, then given back like any handoff
        handoff.release(s, conv, g.agent.email, now)
        fx = runs.on_release(s, conv, g.agent.email, runtime.flow_context(s.get(Workspace, conv.workspace_id)), now)
    enqueue_effects(runtime, fx)
    flash("Released to the bot.", "ok")
    return _back(conv_id)


@bp.post("/conversations/<int:conv_id>/close")
@login_required
def close(conv_id: int):
    """Done: nobody owns the conversation and the bot stays quiet until an agent takes or releases it."""
    runtime = rt()
    now = runtime.clock.now()
    with session_scope(runtime.db) as s:
        conv = _conv(s, conv_id)
        if conv.mode != "closed":
            conv.mode, conv.assignee, conv.updated_at = "closed", None, now
            note(s, conv, f"Closed by {g.agent.email}", now, kind="close")
    flash("Conversation closed.", "ok")
    return _back(conv_id)
