"""The HubSpot OAuth install: ``GET /hubspot/install`` sends the admin to HubSpot's authorize page
(scopes, and a signed, timestamped state nonce also kept in a cookie); ``GET /hubspot/oauth/callback``
checks the state, exchanges the code, creates the contact properties and stores the sealed tokens.

Starting an install needs an invitation: ``replyflow connect hubspot --oauth`` makes a single-use
link that lives 30 minutes (its nonce kept only as a SHA-256 in a pending installation row, consumed
when the install starts), or a script sends the admin API token as a Bearer header. The token never
goes in the address, where proxies and access logs would keep it. The state the install issues is
what lets the callback connect a portal to this workspace.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from flask import Blueprint, current_app, jsonify, make_response, redirect, request
from sqlalchemy import delete, select

from connectors.hubspot import install as hs_install
from connectors.hubspot.client import API_BASE
from connectors.hubspot.mapper import PLATFORM
from core.errors import ReplyflowError
from core.store import session_scope
from core.store.models import Installation, Workspace
from bridge.runtime import Runtime

__all__ = ["bp", "CALLBACK_PATH", "invite", "INVITE_TTL"]

bp = Blueprint("hubspot_oauth", __name__, url_prefix="/hubspot")
CALLBACK_PATH = "/hubspot/oauth/callback"
_COOKIE = "replyflow_hubspot_state"
INVITE_TTL = timedelta(minutes=30)
_INVITE = "invite:"  # the pending row's account: "invite:" + the nonce's SHA-256 (never a portal id)


def _rt() -> Runtime:
    return current_app.extensions["replyflow"]


def _configured(rt: Runtime) -> tuple[str, str] | None:
    s = rt.settings
    return (s.hubspot_client_id, s.hubspot_client_secrets[0]) if s.hubspot_client_id and s.hubspot_client_secrets else None


def _account(nonce: str) -> str:
    return _INVITE + hashlib.sha256(nonce.encode()).hexdigest()


def invite(rt: Runtime) -> str:
    """The single-use link (30 minutes) that starts the HubSpot app's install for the default workspace."""
    nonce, now = secrets.token_urlsafe(24), rt.clock.now()
    with session_scope(rt.db) as s:
        ws = s.scalar(select(Workspace).where(Workspace.slug == "default"))
        s.add(Installation(workspace_id=ws.id, platform=PLATFORM, account=_account(nonce), status="pending",
                           config={"expires_at": (now + INVITE_TTL).isoformat()}, updated_at=now))
    return f"{rt.settings.public_url}/hubspot/install?invite={nonce}"


def _consume(rt: Runtime, nonce: str) -> str | None:
    """None when ``nonce`` is a live invitation (now used up), else why not."""
    if not nonce:
        return "starting an install needs an invitation: run `replyflow connect hubspot --oauth`"
    with session_scope(rt.db) as s:
        row = s.scalar(select(Installation).where(Installation.platform == PLATFORM,
                                                  Installation.account == _account(nonce)))
        if row is None:
            return "not an invitation this bridge issued, or one already used: run `replyflow connect hubspot --oauth`"
        taken = s.execute(delete(Installation).where(Installation.id == row.id)).rowcount  # single use
        if taken != 1:  # a request at the same moment used it first
            return "not an invitation this bridge issued, or one already used: run `replyflow connect hubspot --oauth`"
        if rt.clock.now() > datetime.fromisoformat(row.config["expires_at"]):
            return "the invitation expired: run `replyflow connect hubspot --oauth` again"
    return None


def _bearer_ok(rt: Runtime) -> bool:
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    return bool(given and rt.settings.api_token and hmac.compare_digest(given.encode(), rt.settings.api_token.encode()))


@bp.get("/install")
def start():
    rt = _rt()
    app = _configured(rt)
    if app is None:
        return jsonify(error="set HUBSPOT_CLIENT_ID and HUBSPOT_CLIENT_SECRET to install the HubSpot app"), 503
    if "key" in request.args:
        return jsonify(error="the API token does not go in an address (logs keep it): "
                             "run `replyflow connect hubspot --oauth` for a single-use link"), 400
    if not _bearer_ok(rt) and (why := _consume(rt, request.args.get("invite", ""))):
        return jsonify(error=why), 401
    state = hs_install.new_state(app[1], rt.clock.now().timestamp())
    url = hs_install.authorize_url(client_id=app[0], redirect_uri=rt.settings.public_url + CALLBACK_PATH, state=state,
                                   base=rt.settings.hubspot_authorize_url)
    response = make_response(redirect(url, code=302))
    response.set_cookie(_COOKIE, state, max_age=hs_install.STATE_MAX_AGE, httponly=True, samesite="Lax",
                        secure=rt.settings.public_url.startswith("https://"), path="/hubspot")
    return response


@bp.get("/oauth/callback")
def callback():
    rt = _rt()
    app = _configured(rt)
    if app is None:
        return jsonify(error="HubSpot app is not configured"), 503
    state, code = request.args.get("state", ""), request.args.get("code", "")
    cookie = request.cookies.get(_COOKIE, "")
    if not code or not cookie or not hmac.compare_digest(state.encode(), cookie.encode()) or not hs_install.check_state(
            state, app[1], rt.clock.now().timestamp()):
        return jsonify(error="unknown or expired install state: start again from /hubspot/install"), 400
    now = rt.clock.now()
    try:  # HubSpot's calls first, with no transaction open: a slow portal holds no database connection
        ready = hs_install.prepare_oauth(code=code, redirect_uri=rt.settings.public_url + CALLBACK_PATH,
                                         client_id=app[0], client_secret=app[1], now=now,
                                         api_base=rt.settings.hubspot_api_base or API_BASE)
    except ReplyflowError as exc:
        return jsonify(error=f"HubSpot refused the install: {exc}"), 502
    with session_scope(rt.db) as s:
        ws = s.scalar(select(Workspace).where(Workspace.slug == "default"))
        done = hs_install.save(s, ws, ready, sealer=rt.sealer, now=now)
    response = make_response(jsonify(connected=done.portal_id, created_properties=list(done.created_properties)))
    response.delete_cookie(_COOKIE, path="/hubspot")
    return response
