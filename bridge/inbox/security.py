"""The inbox's web security: the secret key, session cookies, CSRF tokens, sign-in checks."""

from __future__ import annotations

import hmac
import logging
import secrets
from functools import wraps
from pathlib import Path

from flask import Flask, abort, g, redirect, request, session, url_for
from sqlalchemy.engine import make_url

from core.store import session_scope
from core.store.models import Agent
from bridge.config import Settings

__all__ = ["secret_key_for", "configure", "csrf_token", "check_csrf", "login_required", "admin_required",
           "safe_next", "SecretKeyMissing"]

_log = logging.getLogger(__name__)


class SecretKeyMissing(RuntimeError):
    pass


def secret_key_for(settings: Settings) -> str:
    """REPLYFLOW_SECRET_KEY; in sandbox mode a generated key kept in a file beside the SQLite
    database (per process for other databases); with a real WhatsApp number, an error."""
    if settings.secret_key:
        return settings.secret_key
    if not settings.sandbox:
        raise SecretKeyMissing("REPLYFLOW_SECRET_KEY is not set: the agent inbox signs its session cookies with it. "
                               "Set it to a long random value (python -c 'import secrets; print(secrets.token_hex(32))')")
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        path = Path(url.database).with_name(Path(url.database).name + ".secret-key")
        if path.exists():
            return path.read_text().strip()
        key = secrets.token_hex(32)
        path.touch(mode=0o600)
        path.write_text(key)
        return key
    _log.warning("REPLYFLOW_SECRET_KEY is not set: inbox sessions last until this process stops")
    return secrets.token_hex(32)


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
    """Only a path on this site (no scheme, no //host) may be a redirect after login."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


def _load_agent(rt) -> Agent | None:
    agent_id = session.get("agent_id")
    if agent_id is None:
        return None
    with session_scope(rt.db) as s:
        agent = s.get(Agent, agent_id)
        if agent is None or not agent.active:
            session.clear()
            return None
        s.expunge(agent)
        return agent


def login_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        from bridge.inbox.util import rt

        agent = _load_agent(rt())
        if agent is None:
            if request.method != "GET" or request.path.endswith("/events"):
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
