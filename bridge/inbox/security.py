"""The inbox's web security: the secret key, session cookies, CSRF tokens, sign-in checks."""

from __future__ import annotations

import hmac
import secrets
import logging
from functools import wraps

from flask import Flask, abort, g, redirect, request, session, url_for

from core.store import session_scope
from core.store.models import Agent
from bridge.inbox import sessions
from bridge.config import Settings
from bridge.secret_keys import SecretKeyMissing, secret_key_for

__all__ = ["secret_key_for", "configure", "csrf_token", "check_csrf", "load_agent", "login_required",
           "admin_required", "safe_next", "start_session", "SecretKeyMissing"]

_log = logging.getLogger(__name__)


def configure(app: Flask, settings: Settings) -> None:
    app.secret_key = secret_key_for(settings)
    secure = settings.secure_cookies if settings.secure_cookies is not None else not settings.sandbox
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_SECURE=secure,
                      SESSION_COOKIE_NAME="replyflow_session")


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def check_csrf() -> None:
    """Every state-changing request carries the session's token (form field or X-CSRF-Token)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    given = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    expected = session.get("csrf")
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        abort(400, description="missing or wrong CSRF token: reload the page and try again")


def safe_next(target: str | None) -> str | None:
    """Only a path on this site (no scheme, no //host) may be a redirect after login. A browser
    drops tabs and line breaks from a URL ("/\\t/evil.example" is "//evil.example" to it), so a
    control character refuses the target too."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target \
            or any(ord(ch) < 32 or ord(ch) == 127 for ch in target):
        return None
    return target


def start_session(agent: Agent, token: str) -> None:
    """A new cookie for ``agent`` (no fixation), naming its session row by ``token`` and carrying
    its session version."""
    session.clear()
    session["agent_id"], session["agent_version"], session["sid"] = agent.id, agent.session_version, token
    csrf_token()


def load_agent(rt) -> Agent | None:
    """The signed-in agent, from the session row the cookie names: one indexed lookup that
    brings the agent's row with it. The session version is checked as well as the row: it costs
    nothing here, and a version raised by any path (a new password, a deactivation) still signs
    out every session even where that path did not end the rows."""
    agent_id, token = session.get("agent_id"), session.get("sid")
    if agent_id is None:
        return None
    with session_scope(rt.db) as s:
        found = sessions.current(s, token, rt.clock.now()) if isinstance(token, str) else None
        agent, row = found if found is not None else (None, None)
        # signed out (here or in another browser), expired, deactivated, or signed out everywhere
        # since (a new password): this cookie no longer counts
        if agent is None or agent.id != agent_id or not agent.active \
                or session.get("agent_version") != agent.session_version:
            session.clear()
            return None
        g.session_id = row.id
        s.expunge(agent)
        return agent


def login_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        from bridge.inbox.util import rt

        agent = load_agent(rt())
        if agent is None:
            if request.method != "GET":
                abort(401)
            return redirect(url_for("inbox.login", next=request.full_path.rstrip("?")))
        g.agent = agent
        return view(*args, **kwargs)

    return wrapper


def admin_required(view):
    @wraps(view)
    @login_required
    def wrapper(*args, **kwargs):
        if g.agent.role != "admin":
            abort(403, description="only an admin may do this")
        return view(*args, **kwargs)

    return wrapper
