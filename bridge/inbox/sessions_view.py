"""The agent's own sessions (/inbox/account/sessions): where they are signed in, a button per other
browser that signs out just that one, and one that signs out every other browser (a shared shop
computer, a lost phone) without changing the password."""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, url_for

from core.store import session_scope
from bridge.inbox import bp, sessions
from bridge.inbox.security import login_required
from bridge.inbox.util import rt

__all__ = ["account_sessions", "end_one_session", "end_other_sessions"]


@bp.get("/account/sessions")
@login_required
def account_sessions():
    with session_scope(rt().db) as s:
        rows = [(row.id, row.id == g.session_id, row.client, row.address, row.created_at, row.last_seen_at)
                for row in sessions.open_sessions(s, g.agent.id, rt().clock.now())]
    return render_template("inbox/sessions.html", sessions=rows, max_days=sessions.SESSION_MAX_AGE.days,
                           idle_days=sessions.SESSION_IDLE.days)


@bp.post("/account/sessions/others/end")
@login_required
def end_other_sessions():
    with session_scope(rt().db) as s:
        ended = sessions.end_all(s, g.agent.id, rt().clock.now(), keep=g.session_id)
    flash(f"Signed out everywhere else ({ended} session(s)).", "ok")
    return redirect(url_for("inbox.account_sessions"))


@bp.post("/account/sessions/<int:session_id>/end")
@login_required
def end_one_session(session_id: int):
    """One of the agent's other browsers signs out. Only the agent's own sessions are found: an id
    of someone else's (or of one already ended) is a 404, the same answer either way."""
    with session_scope(rt().db) as s:
        if not sessions.end_one(s, g.agent.id, session_id, rt().clock.now()):
            abort(404, description="no open session of yours with that number")
    flash("Signed out that browser.", "ok")
    return redirect(url_for("inbox.account_sessions"))
