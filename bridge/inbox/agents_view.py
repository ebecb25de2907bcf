"""The admin's page of agents: add one, deactivate or activate one."""

from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for
from sqlalchemy import select

from core.store import session_scope
from core.store.models import Agent
from bridge.inbox import bp
from bridge.inbox.accounts import ROLES, AccountError, activate, agents_of, create_agent, deactivate
from bridge.inbox.security import admin_required
from bridge.inbox.util import rt

__all__ = ["agents", "deactivate_agent", "activate_agent"]


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
        rows = [(a.id, a.email, a.name, a.role, a.active) for a in agents_of(s, g.agent.workspace_id)]
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
