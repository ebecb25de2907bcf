"""Sign in, sign out, change your password (the admin's page of agents is agents_view)."""

from __future__ import annotations

from flask import flash, g, redirect, render_template, request, session, url_for

from core.store import session_scope
from core.store.models import Agent
from bridge.inbox import bp, sessions, throttle
from bridge.inbox.accounts import AccountError, WrongPassword, authenticate, change_password, check_new_password
from bridge.inbox.security import login_required, safe_next, start_session
from bridge.inbox.util import rt

__all__ = ["login", "logout", "password"]


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
                token = sessions.open_session(s, agent.id, now, user_agent=request.headers.get("User-Agent", ""),
                                              address=address)
        if agent is None:
            flash("Wrong email or password.", "error")
            return render_template("inbox/login.html", next=target), 401
        start_session(agent, token)
        return redirect(target or url_for("inbox.index"))
    return render_template("inbox/login.html", next=target)


@bp.post("/logout")
def logout():
    """This session ends on the server too: a copy of the cookie (a shared computer, a stolen
    cookie) is signed out with it. The agent's other sessions stay."""
    token = session.get("sid")
    if isinstance(token, str):
        with session_scope(rt().db) as s:
            sessions.end(s, token, rt().clock.now())
    session.clear()
    return redirect(url_for("inbox.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def password():
    """The agent's own password: the current one first (counted by the sign-in throttle, so a
    borrowed session cannot guess it), then the new one twice. The agent's other sessions end."""
    if request.method == "GET":
        return render_template("inbox/password.html")
    runtime, now = rt(), rt().clock.now()
    email, address = g.agent.email, request.remote_addr or "unknown"
    current, new = request.form.get("current_password", ""), request.form.get("new_password", "")
    try:
        if new != request.form.get("confirm_password", ""):
            raise AccountError("the two new passwords differ")
        check_new_password(current, new)  # before the throttle: a mistake here is no guess
    except AccountError as exc:
        flash(f"Not changed: {exc}.", "error")
        return render_template("inbox/password.html"), 400
    with session_scope(runtime.db) as s:
        refusal = throttle.attempt(s, email=email, address=address, now=now)
    if refusal is not None:
        flash(f"Not changed: {refusal.message}", "error")
        return render_template("inbox/password.html"), 429, {"Retry-After": str(refusal.retry_after(now))}
    try:
        with session_scope(runtime.db) as s:
            agent = s.get(Agent, g.agent.id)
            change_password(s, agent, current, new, now=now, keep=g.session_id)
            throttle.succeeded(s, email=email, address=address, at=now)
            version = agent.session_version
    except WrongPassword as exc:  # counted as a failed sign-in
        flash(f"Not changed: {exc}.", "error")
        return render_template("inbox/password.html"), 400
    except AccountError as exc:  # another session changed it first: this one is signed out
        session.clear()
        flash(f"Not changed: {exc}.", "error")
        return redirect(url_for("inbox.login"))
    session["agent_version"] = version  # this session stays signed in; the others are not
    flash("Password changed. Your other sessions are signed out.", "ok")
    return redirect(url_for("inbox.password"))
