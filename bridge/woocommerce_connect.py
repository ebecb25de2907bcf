"""Connecting a WooCommerce store to the bridge: with keys made by hand (``replyflow connect
woocommerce --url --key --secret``) or through WooCommerce's authorize flow:

    GET  /woocommerce/install?store=https://shop.example&invite=...  -> 302 to the store's /wc-auth/v1/authorize
    POST /woocommerce/callback                                         <- the store posts the new keys (JSON)
    GET  /woocommerce/installed                                        <- the admin's browser comes back here

Only an admin starts it: ``replyflow connect woocommerce --url`` makes an invitation (a random
nonce, kept hashed in a ``pending`` installation row, single use, 30 minutes) and prints the
link. The nonce travels through WooCommerce as the ``user_id`` it posts back with the keys, so keys
are taken only for a store an admin invited, once. The store must be HTTPS (the keys and the
webhook secret travel to and from it); plain http only for a loopback store in sandbox mode.

Either way the keys are stored sealed (core/installations.install) with a webhook secret generated
here, then the webhooks are registered through the REST API (the store pings each new one; the
webhook endpoint answers the ping 200). Registration runs as a job after the callback, so the store
gets its answer at once.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from flask import Blueprint, current_app, jsonify, redirect, request
from sqlalchemy import select, update

from connectors.woocommerce import install as woo
from connectors.woocommerce.client import WooClient
from connectors.woocommerce.events import account_of
from connectors.woocommerce.mapper import PLATFORM
from core.errors import PayloadError
from core.installations import info_of, install
from core.store import session_scope
from core.store.models import Installation, Workspace
from bridge.runtime import Runtime

__all__ = ["bp", "store_keys", "register", "connect", "invite", "INVITE_TTL"]

_log = logging.getLogger(__name__)
bp = Blueprint("woocommerce", __name__, url_prefix="/woocommerce")
INVITE_TTL = timedelta(minutes=30)
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


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
    """Register (or refresh) the store's webhooks; idempotent. The calls are made with no
    transaction open, so the ids are recorded only on the installation as it was read: one
    uninstalled meanwhile stays uninstalled, one connected again with new keys keeps them (its own
    registration records its webhooks)."""
    with session_scope(rt.db) as s:
        info = info_of(s, PLATFORM, account, rt.sealer)
        sealed = s.scalar(select(Installation.credentials).where(Installation.id == info.id))
    creds, url = info.credentials, info.config["url"]
    with WooClient(url, creds["consumer_key"], creds["consumer_secret"]) as client:
        ids = woo.register_webhooks(client, _delivery_url(rt), creds["webhook_secret"],
                                    bookings=bool(info.config.get("bookings")))
    with session_scope(rt.db) as s:
        # the row is written first (locked until commit, on SQLite too), and only if unchanged
        unchanged = s.execute(update(Installation).where(Installation.id == info.id, Installation.status == "active",
                                                         Installation.credentials == sealed)
                              .values(updated_at=rt.clock.now()).execution_options(synchronize_session=False)).rowcount
        if unchanged != 1:
            _log.warning("woocommerce store %s was uninstalled or given new keys while its webhooks were "
                         "registered: not recorded", account)
            return ids
        inst = s.get(Installation, info.id)
        inst.config = {**(inst.config or {}), "webhooks": ids}
    return ids


def connect(rt: Runtime, store_url: str, consumer_key: str, consumer_secret: str, **config: Any) -> dict[str, int]:
    """Keys made by hand: tried first (a wrong key stores nothing), then stored and the webhooks registered."""
    store_url = woo.store_address(store_url)
    with WooClient(store_url, consumer_key, consumer_secret) as client:
        client.webhooks()
    return register(rt, store_keys(rt, store_url, consumer_key, consumer_secret, **config))


def _rt() -> Runtime:
    return current_app.extensions["replyflow"]


def _digest(nonce: str) -> str:
    return hashlib.sha256(nonce.encode("utf-8")).hexdigest()


def _secure_store(rt: Runtime, store_url: str) -> str:
    store = woo.store_address(store_url)
    parts = urlsplit(store)
    if parts.scheme != "https" and not (rt.settings.sandbox and parts.hostname in _LOOPBACK):
        raise PayloadError(f"{store} is not HTTPS: the store's keys and the webhook secret must not travel in clear")
    return store


def invite(rt: Runtime, store_url: str) -> str:
    """The single-use link (30 minutes) that sends the store's admin through WooCommerce's approval."""
    store, now = _secure_store(rt, store_url), rt.clock.now()
    account, nonce = account_of(store), secrets.token_urlsafe(24)
    with session_scope(rt.db) as s:
        inst = s.scalar(select(Installation).where(Installation.platform == PLATFORM, Installation.account == account))
        if inst is None:
            ws = s.scalar(select(Workspace).where(Workspace.slug == "default"))
            inst = Installation(workspace_id=ws.id, platform=PLATFORM, account=account, status="pending", config={})
            s.add(inst)
        state = {"nonce_sha256": _digest(nonce), "expires_at": (now + INVITE_TTL).isoformat(), "store": store}
        inst.config, inst.updated_at = {**(inst.config or {}), "oauth_state": state}, now
    return f"{rt.settings.public_url}/woocommerce/install?store={quote(store, safe=':/')}&invite={nonce}"


def _invited(rt: Runtime, account: str, nonce: str, now: datetime, *, consume: bool) -> str:
    """The invited store's address; ``PayloadError`` with the reason when the nonce is not a live invitation."""
    with session_scope(rt.db) as s:
        inst = s.scalar(select(Installation).where(Installation.platform == PLATFORM, Installation.account == account))
        state = (inst.config or {}).get("oauth_state") if inst is not None else None
        if not state or not hmac.compare_digest(_digest(nonce), state.get("nonce_sha256", "")):
            raise PayloadError("not an invitation this bridge issued (run `replyflow connect woocommerce --url ...`)")
        if now > datetime.fromisoformat(state["expires_at"]):
            raise PayloadError("the invitation expired: run `replyflow connect woocommerce --url ...` again")
        if consume:
            inst.config = {k: v for k, v in inst.config.items() if k != "oauth_state"}  # single use
    return state["store"]


@bp.get("/install")
def start():
    rt = _rt()
    try:
        store = _secure_store(rt, request.args.get("store") or "")
    except PayloadError as exc:
        return jsonify(error=f"store: {exc}"), 400
    nonce = request.args.get("invite") or ""
    try:
        _invited(rt, account_of(store), nonce, rt.clock.now(), consume=False)
    except PayloadError as exc:
        return jsonify(error=f"invite: {exc}"), 401
    base = rt.settings.public_url
    return redirect(woo.authorize_url(store, callback_url=f"{base}/woocommerce/callback",
                                      return_url=f"{base}/woocommerce/installed",
                                      state=f"{account_of(store)}|{nonce}"), code=302)


@bp.post("/callback")
def callback():
    rt = _rt()
    try:
        keys = woo.parse_callback(request.get_data(cache=False))
        account, _, nonce = keys.state.rpartition("|")
        store = _invited(rt, account, nonce, rt.clock.now(), consume=True)
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
