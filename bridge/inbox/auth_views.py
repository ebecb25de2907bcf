"""Sign in and sign out (the admin's page of agents is agents_view)."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, session, url_for

from core.store import session_scope
from bridge.inbox import bp, throttle
from bridge.inbox.accounts import authenticate
from bridge.inbox.security import safe_next, start_session
from bridge.inbox.util import rt

__all__ = ["login", "logout"]


@bp.route("/login", methods=["GET", "POST"])
def login():
    target = safe_next(request.values.get("next"))
    if request.method == "POST":
        runtime, now = rt(), rt().clock.now()
        email, address = request.form.get("email", ""), request.remote_addr or "unknown"
        with session_scope(runtime.db) as s:
            refusal = throttle.attempt(s, email=email, address=address, now=now)
        if refusal is not None:
            flash(refusal.message, "error")
            return (render_template("inbox/login.html", next=target), 429,
                    {"Retry-After": str(refusal.retry_after(now))})
        with session_scope(runtime.db) as s:
            agent = authenticate(s, email, request.form.get("password", ""))
            if agent is not None:
                throttle.succeeded(s, email=email, address=address, at=now)
        if agent is None:
            flash("Wrong email or password.", "error")
            return render_template("inbox/login.html", next=target), 401
        start_session(agent)
        return redirect(target or url_for("inbox.index"))
    return render_template("inbox/login.html", next=target)


@bp.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("inbox.login"))
