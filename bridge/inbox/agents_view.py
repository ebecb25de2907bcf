"""The admin's page of agents: add one, deactivate or activate one, see how many sessions each has
open and when they were last seen, and sign one out everywhere."""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select

from core.store import session_scope
from core.store.models import Agent
from bridge.inbox import bp, sessions
from bridge.inbox.accounts import ROLES, AccountError, activate, agents_of, create_agent, deactivate
from bridge.inbox.security import admin_required
from bridge.inbox.util import rt

__all__ = ["agents", "deactivate_agent", "activate_agent", "sign_out_agent"]


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
        listed = agents_of(s, g.agent.workspace_id)
        seen = sessions.activity(s, [a.id for a in listed], rt().clock.now())
        rows = [(a.id, a.email, a.name, a.role, a.active, *seen[a.id]) for a in listed]
    return render_template("inbox/agents.html", agents=rows, roles=ROLES), status


def _agent_here(s, agent_id: int) -> Agent | None:
    """An agent of the admin's own workspace (another workspace's agents are not found)."""
    return s.scalar(select(Agent).where(Agent.id == agent_id, Agent.workspace_id == g.agent.workspace_id))


@bp.post("/admin/agents/<int:agent_id>/deactivate")
@admin_required
def deactivate_agent(agent_id: int):
    runtime = rt()
    try:
        with session_scope(runtime.db) as s:
            agent = _agent_here(s, agent_id)
            if agent is None:
                raise AccountError(f"no agent #{agent_id}")
            moved = deactivate(s, agent, runtime.clock.now())
            email = agent.email
        flash(f"Deactivated {email}; {moved} conversation(s) went back to the queue.", "ok")
    except AccountError as exc:
        flash(f"Not deactivated: {exc}.", "error")
    return redirect(url_for("inbox.agents"))


@bp.post("/admin/agents/<int:agent_id>/activate")
@admin_required
def activate_agent(agent_id: int):
    try:
        with session_scope(rt().db) as s:
            agent = _agent_here(s, agent_id)
            if agent is None:
                raise AccountError(f"no agent #{agent_id}")
            activate(agent)
            email = agent.email
        flash(f"Activated {email}: they can sign in again.", "ok")
    except AccountError as exc:
        flash(f"Not activated: {exc}.", "error")
    return redirect(url_for("inbox.agents"))


@bp.post("/admin/agents/<int:agent_id>/sign-out")
@admin_required
def sign_out_agent(agent_id: int):
    """Every session of the agent ends (a lost phone, a shared computer left signed in); the password
    and the account stay as they are. The admin's own row signs the admin out too."""
    with session_scope(rt().db) as s:
        agent = _agent_here(s, agent_id)
        if agent is None:
            abort(404, description=f"no agent #{agent_id}")
        ended = sessions.end_all(s, agent.id, rt().clock.now())
        email = agent.email
    flash(f"Signed {email} out everywhere ({ended} session(s)); their password is unchanged.", "ok")
    return redirect(url_for("inbox.agents"))
