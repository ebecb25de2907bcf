"""Webhook endpoints: verify → parse → record → enqueue → answer. No other work happens here.

401 for a missing signature (and, as Shopify requires, for any bad Shopify HMAC), 403 for a
wrong WhatsApp signature, 400 with the reason for a malformed body, 413 for an oversized one,
200 for everything else — duplicates and events we do not act on included, and WooCommerce's
unsigned ping (``webhook_id=N``), which records nothing. A connector that generates a webhook secret
per store (WooCommerce) has it checked beside the configured ones (``account_of`` names the store).
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping

from flask import Blueprint, Response, current_app, jsonify, request

from connectors import REGISTRY
from connectors.base import Delivery
from connectors.whatsapp import events as wa
from core.errors import PayloadError, SignatureError
from core.events import DeliveryStatus
from core.installations import NotInstalled, info_of
from core.sealed import SealError
from core.store import inbound as inbound_store, session_scope
from bridge.runtime import Runtime

__all__ = ["bp", "record_events", "enqueue_recorded"]

_log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")


def _rt() -> Runtime:
    return current_app.extensions["replyflow"]


def _refuse(status: int, reason: str) -> tuple[Response, int]:
    _log.info("webhook refused (%s): %s", status, reason)
    return jsonify(error=reason), status


def record_events(rt: Runtime, rows: Iterable[Mapping[str, Any]]) -> list[int]:
    """Record each delivery unless its dedupe key is already known; returns the new rows' ids."""
    rows = [{"status": "pending", "attempts": 0, **row} for row in rows]
    new = inbound_store.record(rt.db.engine, rows)
    if len(new) < len(rows):
        _log.info("%d duplicate deliveries acknowledged", len(rows) - len(new))
    return sorted(new)


def enqueue_recorded(rt: Runtime, ids: list[int]) -> None:
    """Hand recorded events to the jobs; with deferred ingest the dispatcher does it instead."""
    if rt.settings.ingest == "deferred":
        return  # the dispatcher in `replyflow worker` hands them on (bridge/dispatch.py)
    try:
        rt.queue.enqueue_new("handle_event", ids)
    except Exception:  # recorded already: the sweeper will enqueue them again
        _log.exception("could not enqueue events %s; the sweeper will pick them up", ids)


@bp.get("/whatsapp")
def whatsapp_handshake():
    try:
        challenge = wa.verify_handshake(request.args, _rt().settings.whatsapp_verify_token)
    except SignatureError as exc:
        return _refuse(403, str(exc))
    return Response(challenge, status=200, mimetype="text/plain")


@bp.post("/whatsapp")
def whatsapp():
    rt, raw = _rt(), request.get_data(cache=False)
    try:
        wa.verify(raw, request.headers, rt.settings.whatsapp_app_secrets)
        updates = wa.parse_webhook(raw)
    except SignatureError as exc:
        return _refuse(401 if exc.missing else 403, str(exc))
    except PayloadError as exc:
        return _refuse(400, str(exc))
    now = rt.clock.now()
    rows = [dict(platform="whatsapp", dedupe_key=u.dedupe_key, kind=type(u.event).__name__,
                 account=getattr(u.event, "channel", None), headers=None,
                 subject=u.event.message_id if isinstance(u.event, DeliveryStatus) else None,
                 body=wa.envelope_text(u.envelope), received_at=now)
            for u in updates]
    new = record_events(rt, rows)
    enqueue_recorded(rt, new)
    return jsonify(received=len(updates), new=len(new)), 200


def _installation_secrets(rt: Runtime, platform: str, connector) -> tuple[str, ...]:
    """The webhook secret replyflow generated when it connected this store (WooCommerce), if any."""
    account = connector.account_of(request.headers) if getattr(connector, "account_of", None) else None
    if not account:
        return ()
    try:
        with session_scope(rt.db) as s:
            secret = info_of(s, platform, account, rt.sealer).credentials.get("webhook_secret")
    except (NotInstalled, SealError):
        return ()
    return (secret,) if secret else ()


@bp.post("/<platform>")
def platform_webhook(platform: str):
    connector = REGISTRY.get(platform)
    if connector is None:
        return _refuse(404, f"no connector named {platform!r} (known: {', '.join(sorted(REGISTRY))})")
    rt, raw = _rt(), request.get_data(cache=False)
    if getattr(connector, "is_ping", None) and connector.is_ping(raw, request.headers):
        return jsonify(ping=True), 200  # WooCommerce's unsigned ping on webhook creation: nothing recorded
    secrets = rt.settings.connector_secrets(platform) + _installation_secrets(rt, platform, connector)
    if not secrets:
        return _refuse(503, f"{platform} is not configured: set {connector.secret_setting}")
    try:
        verify_request = getattr(connector, "verify_request", None)
        if verify_request is not None:  # signed over the public URL and a timestamp (HubSpot v3)
            url = rt.settings.public_url + request.full_path.rstrip("?")
            verify_request(raw, request.headers, secrets, method=request.method, url=url, now=rt.clock.now())
        else:
            connector.verify(raw, request.headers, secrets)
        parsed = connector.delivery(raw, request.headers)
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return _refuse(400, "body is not UTF-8")
    except SignatureError as exc:
        return _refuse(401, str(exc))
    except PayloadError as exc:
        return _refuse(400, str(exc))
    deliveries = [parsed] if isinstance(parsed, Delivery) else list(parsed)  # HubSpot: one per batched event
    now = rt.clock.now()
    rows = [dict(platform=platform, dedupe_key=d.dedupe_key, kind=d.kind, account=d.account, subject=d.subject,
                 headers=dict(d.headers), body=text if d.body is None else d.body, received_at=now)
            for d in deliveries]
    new = record_events(rt, rows)
    enqueue_recorded(rt, new)
    return jsonify(received=len(rows), new=len(new)), 200
