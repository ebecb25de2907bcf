"""The conversation list and the live-update stream (server-sent events)."""

from __future__ import annotations

import hashlib
import time

from flask import Response, current_app, g, render_template, request, stream_with_context
from sqlalchemy import func, select

from core.store import session_scope
from core.store.models import Conversation, Message
from bridge.inbox import bp, sessions
from bridge.inbox.queries import FILTERS, conversation_rows
from bridge.inbox.security import load_agent, login_required
from bridge.inbox.util import ago, rt

__all__ = ["index", "events", "change_stamp", "page_cursor", "SHORT_STREAM", "LONG_STREAM"]

RECENT = 200  # the newest messages whose statuses the stream watches


@bp.get("/")
@login_required
def index():
    kind = request.args.get("filter", "all")
    kind = kind if kind in FILTERS else "all"
    search = request.args.get("q", "")[:100]
    runtime = rt()
    if not request.args.get("partial"):
        page_cursor()
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


SHORT_STREAM = 0.0  # seconds: one look, then the response ends (the default; gunicorn's sync workers)
LONG_STREAM = 300.0  # the built-in development server: a thread per open page costs little
RETRY = 2.0  # seconds the browser waits before it asks again (EventSource's ``retry``)
SIGNED_OUT = "event: signed-out\ndata: \n\n"


def page_cursor() -> None:
    """The live stream's cursor for the page about to be rendered, read before the page reads its
    own data: whatever changes after this moves the stamp, so the stream reports it to the page.
    (Pages that do not call this get a cursor read while rendering, after their data.)"""
    with session_scope(rt().db) as s:
        g.stamp = change_stamp(s, g.agent.workspace_id)


@bp.get("/events")
def events():
    """Server-sent events: ``change`` whenever the stamp moves past the page's cursor (the
    ``cursor`` it was rendered with, then the browser's Last-Event-ID), and ``signed-out`` once the
    session is over (signed out, expired, deactivated), which ends the stream.

    A stream looks every INBOX_SSE_POLL seconds for INBOX_SSE_MAX seconds, then ends and the browser
    asks again after RETRY seconds. Under gunicorn's sync workers a worker serves one request at a
    time, so the default is one look (SHORT_STREAM): each open page costs one quick request every
    couple of seconds instead of holding a worker that webhooks need. ``replyflow serve``'s
    built-in threaded server keeps streams open (LONG_STREAM); REPLYFLOW_INBOX_STREAM_SECONDS
    chooses."""
    runtime = rt()
    retry = f"retry: {int(float(current_app.config.get('INBOX_SSE_RETRY', RETRY)) * 1000)}\n\n"
    agent = load_agent(runtime)
    if agent is None:  # a 401 would only make EventSource give up without saying why
        return _event_stream(iter([retry, SIGNED_OUT]))
    workspace_id, session_id, version = agent.workspace_id, g.session_id, agent.session_version
    poll = float(current_app.config.get("INBOX_SSE_POLL", 1.0))
    limit = float(current_app.config.get("INBOX_SSE_MAX", SHORT_STREAM))
    cursor = request.headers.get("Last-Event-ID") or request.args.get("cursor") or ""

    def stream():
        nonlocal cursor
        started = last_beat = time.monotonic()
        yield retry
        while True:
            with session_scope(runtime.db) as s:  # the session and the stamp in one short transaction
                stamp = change_stamp(s, workspace_id) \
                    if sessions.still_open(s, session_id, version, runtime.clock.now()) else None
            if stamp is None:
                yield SIGNED_OUT
                return
            if stamp != cursor:
                if cursor:
                    yield f"id: {stamp}\nevent: change\ndata: {stamp}\n\n"
                else:
                    yield f"id: {stamp}\nevent: ready\ndata: {stamp}\n\n"
                cursor = stamp
            elif time.monotonic() - last_beat > 15:
                yield ": keep-alive\n\n"
                last_beat = time.monotonic()
            if time.monotonic() - started + poll > limit:
                return  # the next look would be past the stream's length: the browser asks again
            time.sleep(poll)  # a poll interval, not a wait for time in a test

    return _event_stream(stream_with_context(stream()))


def _event_stream(body) -> Response:
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return Response(body, mimetype="text/event-stream", headers=headers)
