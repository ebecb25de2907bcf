"""WooCommerce reconciliation: what webhooks lost, read back through the REST API.

WooCommerce never retries a failed delivery and disables a webhook after more than 5 failures in a
row, and a block-checkout draft may never send an update at all. So every ``interval`` the sweeper
asks each connected store for its orders that are unpaid (``pending``, ``failed``, ``checkout-draft``),
paid (``processing``, ``completed``, ``on-hold``) or ``cancelled``, modified in the lookback window,, and records
each as if its ``order.updated`` webhook had arrived. The de-duplication key is the one a webhook
for the same change has (order id, ``date_modified_gmt``, status), so what a webhook already
brought is not recorded twice; new rows go through the same job as webhooks. Our webhooks that
WooCommerce disabled after failed deliveries are re-activated first.

With ``bookings`` on (``replyflow connect woocommerce --bookings``), paid or confirmed WooCommerce
Bookings that start within ``booking_remind_before`` (default 24h) are recorded as
``booking.upcoming`` once per start time: the appointment-reminder flow's trigger.

Installation config: ``reconcile_every`` (default 15m), ``reconcile_lookback`` (default 24h: stale
drafts are purged daily by WooCommerce), ``reconciled_at`` (when it was last tried), ``reconciled_ok_at`` (the last complete pass: the next
one reads from an hour before it, not the whole lookback).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from connectors.woocommerce import mapper
from connectors.woocommerce.client import WooClient
from connectors.woocommerce.events import dedupe_key, parse_booking, parse_order
from core.errors import PayloadError
from core.flows.definition import parse_duration
from core.installations import active, info_of
from core.store import session_scope
from bridge.runtime import Runtime

__all__ = ["reconcile", "due_accounts", "STATUSES", "BOOKING_STATUSES"]

_log = logging.getLogger(__name__)
STATUSES = mapper.CART_STATUSES + mapper.PAID_STATUSES + ("cancelled",)
BOOKING_STATUSES = ("paid", "confirmed")
OVERLAP = timedelta(hours=1)  # re-read before the last complete pass: clocks and slow saves


def _seconds(value, default: str) -> float:
    return parse_duration(str(value or default)).total_seconds()


def due_accounts(s: Session, now: datetime) -> list[str]:
    """Connected stores whose last reconciliation is older than their interval."""
    out = []
    for inst in active(s, mapper.PLATFORM):
        if not inst.credentials:  # a store known only from webhooks signed with WOOCOMMERCE_WEBHOOK_SECRET
            continue
        config = inst.config or {}
        last = config.get("reconciled_at")
        every = timedelta(seconds=_seconds(config.get("reconcile_every"), "15m"))
        if last is None or datetime.fromisoformat(last) + every <= now:
            out.append(inst.account)
    return out


def _upcoming_bookings(client: WooClient, account: str, headers: dict, now: datetime,
                       before: timedelta) -> list[dict]:
    """Paid or confirmed bookings starting within ``before``: one ``booking.upcoming`` each (per start)."""
    rows = []
    for raw in client.bookings():
        try:
            booking = parse_booking(raw)
        except PayloadError as exc:
            _log.warning("woocommerce %s: booking skipped: %s", account, exc)
            continue
        if booking.status not in BOOKING_STATUSES or not now < booking.start <= now + before:
            continue
        body = client.booking_with_buyer(booking.id)
        rows.append(dict(platform=mapper.PLATFORM, kind="booking.upcoming", account=account, subject=booking.id,
                         dedupe_key=dedupe_key(account, "booking.upcoming", booking),
                         headers={**headers, "X-WC-Webhook-Topic": "booking.upcoming"},
                         body=json.dumps(body, ensure_ascii=False), received_at=now))
    return rows


def _revive_webhooks(client: WooClient, delivery_url: str) -> int:
    """Re-activate our webhooks WooCommerce disabled after failed deliveries (what they missed is
    read back below)."""
    revived = 0
    for hook in client.webhooks():
        if hook.get("delivery_url") == delivery_url and hook.get("status") == "disabled":
            client.update_webhook(int(hook["id"]), status="active")
            _log.warning("woocommerce webhook %s (%s) was disabled after failed deliveries; re-activated",
                         hook.get("id"), hook.get("topic"))
            revived += 1
    return revived


def reconcile(rt: Runtime, account: str) -> dict[str, int]:
    """Record the store's recent unpaid and paid orders that no webhook brought; returns counts."""
    from bridge.webhooks import record_events  # the webhook path's recorder: one code path

    now = rt.clock.now()
    with session_scope(rt.db) as s:  # stamped first: a failing store is tried again next interval, not each sweep
        info = info_of(s, mapper.PLATFORM, account, rt.sealer)
        inst = active(s, mapper.PLATFORM, account)[0]
        inst.config = {**(inst.config or {}), "reconciled_at": now.isoformat()}
    url = info.config.get("url") or f"https://{account}"
    since = now - timedelta(seconds=_seconds(info.config.get("reconcile_lookback"), "24h"))
    if info.config.get("reconciled_ok_at"):  # what the last complete pass saw need not be read again
        since = max(since, datetime.fromisoformat(info.config["reconciled_ok_at"]) - OVERLAP)
    with WooClient(url, info.credentials["consumer_key"], info.credentials["consumer_secret"]) as client:
        revived = _revive_webhooks(client, f"{rt.settings.public_url}/webhooks/woocommerce")
        rows, malformed = [], 0
        headers = {"X-WC-Webhook-Topic": "order.updated", "X-WC-Webhook-Source": f"{url}/",
                   "X-Replyflow-Source": "reconcile"}
        for raw in client.orders(STATUSES, since):
            try:
                order = parse_order(raw)
            except PayloadError as exc:
                malformed += 1
                _log.warning("woocommerce %s: order skipped by reconciliation: %s", account, exc)
                continue
            rows.append(dict(platform=mapper.PLATFORM, dedupe_key=dedupe_key(account, "order.updated", order),
                             kind="order.updated", account=account, subject=order.id, headers=headers,
                             body=json.dumps(raw, ensure_ascii=False), received_at=now))
        if info.config.get("bookings"):
            rows.extend(_upcoming_bookings(client, account, headers, now,
                                           timedelta(seconds=_seconds(info.config.get("booking_remind_before"), "24h"))))
    new = record_events(rt, rows)
    for event_id in new:
        rt.queue.enqueue("handle_event", event_id)
    with session_scope(rt.db) as s:
        for inst in active(s, mapper.PLATFORM, account)[:1]:  # none if the store was uninstalled meanwhile
            inst.config = {**(inst.config or {}), "reconciled_ok_at": now.isoformat()}
    return {"seen": len(rows), "recorded": len(new), "malformed": malformed, "revived_webhooks": revived}
