"""The agent API: read conversations, reply inside the window, release to the bot.

Every call needs ``Authorization: Bearer <REPLYFLOW_API_TOKEN>``; without a configured token
the API refuses everything (secure by default). Bodies are read by ``core.jsonwire``: a malformed
one is a 400 with the reason, never a 500.
"""

from __future__ import annotations

import hmac
from functools import wraps
from typing import Any

from flask import Blueprint, abort, current_app, jsonify, make_response, request
from sqlalchemy import select

from core import handoff, jsonwire
from core.errors import PayloadError, PhoneError
from core.flows import runs
from core.conversations import MODES, window_of
from core.session import closes_at, is_open
from core.store import session_scope
from core.store.models import Contact, Conversation, InboundEvent, Message, Workspace
from bridge.jobs import enqueue_effects
from bridge.runtime import Runtime
from bridge.triggers_api import parse_trigger
from bridge.webhooks import enqueue_recorded, record_events

__all__ = ["bp"]

bp = Blueprint("api", __name__, url_prefix="/api")


def _rt() -> Runtime:
    return current_app.extensions["replyflow"]


@bp.errorhandler(PayloadError)
@bp.errorhandler(PhoneError)
def _bad_request(exc: Exception):
    return jsonify(error=str(exc)), 400


def _body(*, optional: bool = False) -> dict:
    """The request's JSON object; an empty body is ``{}`` when ``optional``. PayloadError otherwise."""
    raw = request.get_data(cache=False)
    if optional and not raw.strip():
        return {}
    return jsonwire.loads(raw, expect=dict)


def _agent(data: dict) -> str:
    agent = data.get("agent")
    if agent is not None and not isinstance(agent, str):
        raise PayloadError("agent: expected a name (a string)")
    return (agent or "agent")[:100]


def _authorised(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        token = _rt().settings.api_token
        if not token:
            return jsonify(error="the agent API is disabled: set REPLYFLOW_API_TOKEN"), 403
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return jsonify(error="missing or wrong bearer token"), 401
        return view(*args, **kwargs)

    return wrapper


def _message(m: Message) -> dict:
    return {"id": m.id, "direction": m.direction, "author": m.author, "kind": m.kind, "body": m.body,
            "template": m.template_name, "status": m.status, "error_code": m.error_code,
            "error": m.error_details, "at": m.created_at.isoformat()}


def _conversation(s, conv: Conversation, now) -> dict:
    contact = s.get(Contact, conv.contact_id)
    window = window_of(conv)
    ends = closes_at(window)
    return {"id": conv.id, "mode": conv.mode, "assignee": conv.assignee, "handoff_reason": conv.handoff_reason,
            "contact": {"id": contact.id, "name": contact.first_name or contact.profile_name,
                        "phone": contact.phone_e164},
            "window_open": is_open(window, now), "window_closes_at": ends.isoformat() if ends else None}


def _conversation_or_404(s, conv_id: int) -> Conversation:
    conv = s.get(Conversation, conv_id)
    if conv is None:
        abort(make_response(jsonify(error=f"no conversation {conv_id}"), 404))
    return conv


@bp.get("/conversations")
@_authorised
def conversations():
    rt = _rt()
    with session_scope(rt.db) as s:
        query = select(Conversation).order_by(Conversation.updated_at.desc())
        mode = request.args.get("mode")
        if mode and mode not in MODES:
            raise PayloadError(f"mode: expected one of {', '.join(MODES)}, got {mode[:40]!r}")
        if mode:
            query = query.where(Conversation.mode == mode)
        return jsonify([_conversation(s, c, rt.clock.now()) for c in s.scalars(query.limit(200))])


@bp.get("/conversations/<int:conv_id>")
@_authorised
def conversation(conv_id: int):
    rt = _rt()
    with session_scope(rt.db) as s:
        conv = _conversation_or_404(s, conv_id)
        messages = s.scalars(select(Message).where(Message.conversation_id == conv_id).order_by(Message.id))
        return jsonify({**_conversation(s, conv, rt.clock.now()), "messages": [_message(m) for m in messages]})


@bp.post("/conversations/<int:conv_id>/messages")
@_authorised
def reply(conv_id: int):
    rt = _rt()
    data = _body()
    if not isinstance(data.get("text"), str):
        return jsonify(error="expected JSON {\"text\": \"...\", \"agent\": \"name\"}"), 400
    agent = _agent(data)
    with session_scope(rt.db) as s:
        conv = _conversation_or_404(s, conv_id)
        msg, decision = handoff.agent_reply(s, conv, agent, data["text"], rt.catalogue, rt.clock.now())
        message_id, status = msg.id, msg.status
    if status != "queued":
        return jsonify(error=decision.reason, verdict=decision.verdict.value, message_id=message_id), 409
    rt.queue.enqueue("send_message", message_id)
    return jsonify(message_id=message_id, status="queued"), 202


@bp.post("/conversations/<int:conv_id>/release")
@_authorised
def release(conv_id: int):
    rt, agent = _rt(), _agent(_body(optional=True))
    with session_scope(rt.db) as s:
        conv = _conversation_or_404(s, conv_id)
        handoff.release(s, conv, agent, rt.clock.now())
        ws = s.get(Workspace, conv.workspace_id)
        fx = runs.on_release(s, conv, agent, rt.flow_context(ws), rt.clock.now())
        mode = conv.mode
    enqueue_effects(rt, fx)
    return jsonify(mode=mode), 200


@bp.post("/conversations/<int:conv_id>/take")
@_authorised
def take(conv_id: int):
    """An agent takes the conversation: it is theirs, and a handoff timeout no longer applies."""
    rt = _rt()
    agent = _agent(_body(optional=True))
    with session_scope(rt.db) as s:
        conv = _conversation_or_404(s, conv_id)
        handoff.take(s, conv, agent, rt.clock.now())
        return jsonify(mode=conv.mode, assignee=conv.assignee), 200


@bp.post("/triggers")
@_authorised
def trigger():
    """Start (or cancel) flows from any system: recorded, de-duplicated, then handled by a job."""
    rt, raw = _rt(), request.get_data(cache=False)
    parsed = parse_trigger(raw, request.headers.get("Idempotency-Key"))  # PayloadError: 400 with the reason
    row = dict(platform="api", dedupe_key=parsed.dedupe_key, kind=parsed.event, account="api",
               subject=parsed.subject, headers=None, body=raw.decode("utf-8"), received_at=rt.clock.now())
    new = record_events(rt, [row])
    if not new and request.headers.get("Idempotency-Key"):
        with session_scope(rt.db) as s:
            first = s.scalar(select(InboundEvent.body).where(InboundEvent.dedupe_key == parsed.dedupe_key))
        if first is not None and first != row["body"]:  # a client bug: the same key for another request
            return jsonify(error="Idempotency-Key was already used for a different request; nothing recorded"), 422
    enqueue_recorded(rt, new)  # as the webhooks do: nothing here with deferred ingest
    heard = {f.name: (f.trigger.event, *f.trigger.cancel_on) for f in rt.flows.values()}  # start or cancel
    listening = sorted(name for name, events in heard.items() if parsed.event in events)
    answer: dict[str, Any] = dict(accepted=True, new=len(new), flows=listening)
    if not listening:  # recorded all the same (a flow may be added later), but a typo should not pass unseen
        known = sorted({e for events in heard.values() for e in events})
        answer["warning"] = f"no flow starts or is cancelled by {parsed.event!r}; flows listen to: {', '.join(known)}"
    return jsonify(answer), 202
