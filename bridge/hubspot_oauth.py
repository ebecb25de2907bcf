"""The HubSpot OAuth install: ``GET /hubspot/install`` sends the admin to HubSpot's authorize page
(scopes, and a signed, timestamped state nonce also kept in a cookie); ``GET /hubspot/oauth/callback``
checks the state, exchanges the code, creates the contact properties and stores the sealed tokens.

Starting an install needs the admin API token (``?key=`` or a Bearer header): the state it issues
is what lets the callback connect a portal to this workspace.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, current_app, jsonify, make_response, redirect, request
from sqlalchemy import select

from connectors.hubspot import install as hs_install
from connectors.hubspot.client import API_BASE
from core.errors import ReplyflowError
from core.store import session_scope
from core.store.models import Workspace
from bridge.runtime import Runtime

__all__ = ["bp", "CALLBACK_PATH"]

bp = Blueprint("hubspot_oauth", __name__, url_prefix="/hubspot")
CALLBACK_PATH = "/hubspot/oauth/callback"
_COOKIE = "replyflow_hubspot_state"


def _rt() -> Runtime:
    return current_app.extensions["replyflow"]


def _configured(rt: Runtime) -> tuple[str, str] | None:
    s = rt.settings
    return (s.hubspot_client_id, s.hubspot_client_secrets[0]) if s.hubspot_client_id and s.hubspot_client_secrets else None


@bp.get("/install")
def start():
    rt = _rt()
    app = _configured(rt)
    if app is None:
        return jsonify(error="set HUBSPOT_CLIENT_ID and HUBSPOT_CLIENT_SECRET to install the HubSpot app"), 503
    given = request.args.get("key") or request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not rt.settings.api_token or not hmac.compare_digest(given, rt.settings.api_token):
        return jsonify(error="starting an install needs the admin API token (?key=...)"), 401
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
    if not code or not cookie or not hmac.compare_digest(state, cookie) or not hs_install.check_state(
            state, app[1], rt.clock.now().timestamp()):
        return jsonify(error="unknown or expired install state: start again from /hubspot/install"), 400
    now = rt.clock.now()
    try:
        with session_scope(rt.db) as s:
            ws = s.scalar(select(Workspace).where(Workspace.slug == "default"))
            done = hs_install.connect_oauth(s, ws, code=code, redirect_uri=rt.settings.public_url + CALLBACK_PATH,
                                            client_id=app[0], client_secret=app[1], sealer=rt.sealer, now=now,
                                            api_base=rt.settings.hubspot_api_base or API_BASE)
    except ReplyflowError as exc:
        return jsonify(error=f"HubSpot refused the install: {exc}"), 502
    response = make_response(jsonify(connected=done.portal_id, created_properties=list(done.created_properties)))
    response.delete_cookie(_COOKIE, path="/hubspot")
    return response
