"""The conversation list and the live-update stream (server-sent events)."""

from __future__ import annotations

import hashlib
import time

from flask import Response, current_app, g, render_template, request, stream_with_context
from sqlalchemy import func, select

from core.store import session_scope
from core.store.models import Conversation, Message
from bridge.inbox import bp
from bridge.inbox.queries import FILTERS, conversation_rows
from bridge.inbox.security import login_required
from bridge.inbox.util import ago, rt

__all__ = ["index", "events", "change_stamp"]

RECENT = 200  # the newest messages whose statuses the stream watches


@bp.get("/")
@login_required
def index():
    kind = request.args.get("filter", "all")
    kind = kind if kind in FILTERS else "all"
    search = request.args.get("q", "")[:100]
    runtime = rt()
    with session_scope(runtime.db) as s:
        rows = conversation_rows(s, workspace_id=g.agent.workspace_id, agent_id=g.agent.id, me=g.agent.email,
                                 kind=kind, search=search)
    now = runtime.clock.now()
    page = "inbox/_list.html" if request.args.get("partial") else "inbox/list.html"
    return render_template(page, rows=rows, kind=kind, q=search, filters=FILTERS,
                           age=lambda at: ago((now - at).total_seconds()))


def change_stamp(s, workspace_id: int) -> str:
    """Moves whenever a message arrives, a recent message changes status or a conversation changes
    hands. (Status times come from the platform and may repeat, so the recent statuses are counted.)"""
    newest = s.scalar(select(func.max(Message.id)).where(Message.workspace_id == workspace_id)) or 0
    recent = select(Message.status).where(Message.workspace_id == workspace_id, Message.id > newest - RECENT).subquery()
    statuses = sorted(s.execute(select(recent.c.status, func.count()).group_by(recent.c.status)).all())
    conv = s.scalar(select(func.max(Conversation.updated_at)).where(Conversation.workspace_id == workspace_id))
    digest = hashlib.sha1(repr(statuses).encode()).hexdigest()[:10]
    return f"{newest}-{digest}-{int(conv.timestamp() * 1000) if conv else 0}"


@bp.get("/events")
@login_required
def events():
    """Server-sent events: ``change`` whenever the stamp moves. Polls the database every
    INBOX_SSE_POLL seconds and ends after INBOX_SSE_MAX seconds (the browser reconnects)."""
    runtime, workspace_id = rt(), g.agent.workspace_id
    poll = float(current_app.config.get("INBOX_SSE_POLL", 1.0))
    limit = float(current_app.config.get("INBOX_SSE_MAX", 300.0))
    cursor = request.headers.get("Last-Event-ID") or request.args.get("cursor") or ""

    def stream():
        nonlocal cursor
        started = last_beat = time.monotonic()
        yield "retry: 1000\n\n"
        while time.monotonic() - started < limit:
            with session_scope(runtime.db) as s:
                stamp = change_stamp(s, workspace_id)
            if stamp != cursor:
                if cursor:
                    yield f"id: {stamp}\nevent: change\ndata: {stamp}\n\n"
                else:
                    yield f"id: {stamp}\nevent: ready\ndata: {stamp}\n\n"
                cursor = stamp
            elif time.monotonic() - last_beat > 15:
                yield ": keep-alive\n\n"
                last_beat = time.monotonic()
            time.sleep(poll)  # a poll interval, not a wait for time in a test

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return Response(stream_with_context(stream()), mimetype="text/event-stream", headers=headers)
