"""The agent inbox: server-rendered pages where agents take handoffs from the bot.

Registered on the bridge with one line (``app.register_blueprint(inbox.bp)``); the blueprint
sets the app's secret key and cookie flags when it is registered.
"""

from __future__ import annotations

from flask import Blueprint, abort, g, request

from bridge.inbox.security import check_csrf, configure, csrf_token

__all__ = ["bp"]

bp = Blueprint("inbox", __name__, url_prefix="/inbox", template_folder="templates", static_folder="static")


@bp.record_once
def _setup(state) -> None:
    from bridge.inbox.views import SHORT_STREAM

    settings = state.app.extensions["replyflow"].settings
    configure(state.app, settings)
    # one look per request unless told otherwise: ``replyflow serve``'s threaded server says LONG_STREAM
    state.app.config.setdefault("INBOX_SSE_MAX", SHORT_STREAM if settings.inbox_stream_seconds is None
                                else settings.inbox_stream_seconds)


@bp.before_request
def _csrf() -> None:
    check_csrf()


@bp.before_request
def _no_nul() -> None:
    """PostgreSQL stores no NUL character: a field holding one is a 400, not the database's 500."""
    if any("\x00" in value for values in request.values.listvalues() for value in values):
        abort(400, description="a field holds a NUL character")


@bp.app_context_processor
def _globals() -> dict:
    from core.store import session_scope
    from bridge.inbox.util import rt
    from bridge.inbox.views import change_stamp

    agent, stamp = g.get("agent"), g.get("stamp", "")
    if agent is not None and not stamp:
        with session_scope(rt().db) as s:
            stamp = change_stamp(s, agent.workspace_id)
    return {"csrf_token": csrf_token, "current_agent": agent, "sandbox_on": rt().settings.sandbox, "stamp": stamp}


from bridge.inbox import agents_view, auth_views, metrics_view, phone, sessions_view, thread, views  # noqa: E402,F401  (routes)
