"""Connecting a WooCommerce store to the bridge: with keys made by hand (``replyflow connect
woocommerce --url --key --secret``) or through WooCommerce's authorize flow:

    GET  /woocommerce/install?store=https://shop.example   -> 302 to the store's /wc-auth/v1/authorize
    POST /woocommerce/callback                              <- the store posts the new keys (JSON)
    GET  /woocommerce/installed                             <- the admin's browser comes back here

Either way the keys are stored sealed (core/installations.install) with a webhook secret generated
here, then the webhooks are registered through the REST API (the store pings each new one; the
webhook endpoint answers the ping 200). Registration runs as a job after the callback, so the store
gets its answer at once.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, current_app, jsonify, redirect, request
from sqlalchemy import select

from connectors.woocommerce import install as woo
from connectors.woocommerce.client import WooClient
from connectors.woocommerce.events import account_of
from connectors.woocommerce.mapper import PLATFORM
from core.errors import PayloadError
from core.installations import info_of, install
from core.store import session_scope
from core.store.models import Workspace
from bridge.runtime import Runtime

__all__ = ["bp", "store_keys", "register", "connect"]

_log = logging.getLogger(__name__)
bp = Blueprint("woocommerce", __name__, url_prefix="/woocommerce")


def _delivery_url(rt: Runtime) -> str:
    return f"{rt.settings.public_url}/webhooks/woocommerce"


def store_keys(rt: Runtime, store_url: str, consumer_key: str, consumer_secret: str, **config: Any) -> str:
    """Seal the store's keys with a fresh webhook secret; returns the installation's account."""
    account, url = account_of(store_url), store_url.rstrip("/")
    with session_scope(rt.db) as s:
        ws = s.scalar(select(Workspace).where(Workspace.slug == "default"))
        install(s, ws, PLATFORM, account, {"consumer_key": consumer_key, "consumer_secret": consumer_secret,
                                           "webhook_secret": woo.new_webhook_secret()},
                woo.installation_config(url, {}, **config), rt.sealer, rt.clock.now())
    return account


def register(rt: Runtime, account: str) -> dict[str, int]:
    """Register (or refresh) the store's webhooks; idempotent."""
    with session_scope(rt.db) as s:
        info = info_of(s, PLATFORM, account, rt.sealer)
    creds, url = info.credentials, info.config["url"]
    client = WooClient(url, creds["consumer_key"], creds["consumer_secret"])
    ids = woo.register_webhooks(client, _delivery_url(rt), creds["webhook_secret"],
                                bookings=bool(info.config.get("bookings")))
    with session_scope(rt.db) as s:
        ws = s.get(Workspace, info.workspace_id)
        install(s, ws, PLATFORM, account, creds, {"webhooks": ids}, rt.sealer, rt.clock.now())
    return ids


def connect(rt: Runtime, store_url: str, consumer_key: str, consumer_secret: str, **config: Any) -> dict[str, int]:
    """Keys made by hand: tried first (a wrong key stores nothing), then stored and the webhooks registered."""
    store_url = woo.store_address(store_url)
    WooClient(store_url, consumer_key, consumer_secret).webhooks()
    return register(rt, store_keys(rt, store_url, consumer_key, consumer_secret, **config))


def _rt() -> Runtime:
    return current_app.extensions["replyflow"]


def _state_key(rt: Runtime) -> str:
    return rt.settings.sealing_keys()[0]


@bp.get("/install")
def start():
    rt = _rt()
    try:
        store = woo.store_address(request.args.get("store") or "")
    except PayloadError as exc:
        return jsonify(error=f"store: {exc}"), 400
    base = rt.settings.public_url
    return redirect(woo.authorize_url(store, callback_url=f"{base}/woocommerce/callback",
                                      return_url=f"{base}/woocommerce/installed",
                                      state=woo.make_state(store, _state_key(rt))), code=302)


@bp.post("/callback")
def callback():
    rt = _rt()
    try:
        keys = woo.parse_callback(request.get_data(cache=False))
        store = woo.read_state(keys.state, _state_key(rt))
    except PayloadError as exc:
        return jsonify(error=str(exc)), 400
    account = store_keys(rt, store, keys.consumer_key, keys.consumer_secret)
    rt.queue.enqueue("register_woocommerce_webhooks", account)
    _log.info("woocommerce store %s connected; registering webhooks", account)
    return jsonify(connected=account), 200


@bp.get("/installed")
def installed():
    if request.args.get("success") != "1":
        return jsonify(error="the store did not approve the connection"), 400
    return jsonify(status="connected: replyflow registers its webhooks in the background"), 200
