"""Sign in, sign out, and the admin's page of agents."""

from __future__ import annotations

from flask import flash, g, redirect, render_template, request, session, url_for

from core.store import session_scope
from bridge.inbox import bp, throttle
from bridge.inbox.accounts import ROLES, AccountError, agents_of, authenticate, create_agent
from bridge.inbox.security import admin_required, csrf_token, safe_next
from bridge.inbox.util import rt

__all__ = ["login", "logout", "agents"]


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
                agent_id = agent.id
        if agent is None:
            flash("Wrong email or password.", "error")
            return render_template("inbox/login.html", next=target), 401
        session.clear()  # a new session on sign-in (no fixation)
        session["agent_id"] = agent_id
        csrf_token()
        return redirect(target or url_for("inbox.index"))
    return render_template("inbox/login.html", next=target)


@bp.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("inbox.login"))


@bp.route("/admin/agents", methods=["GET", "POST"])
@admin_required
def agents():
    status = 200
    with session_scope(rt().db) as s:
        if request.method == "POST":
            try:
                added = create_agent(s, email=request.form.get("email", ""), password=request.form.get("password", ""),
                                     role=request.form.get("role", "agent"), name=request.form.get("name") or None,
                                     now=rt().clock.now())
                flash(f"Added {added.email} ({added.role}).", "ok")
            except AccountError as exc:
                flash(str(exc), "error")
                status = 400
        rows = [(a.email, a.name, a.role, a.active) for a in agents_of(s, g.agent.workspace_id)]
    return render_template("inbox/agents.html", agents=rows, roles=ROLES), status
