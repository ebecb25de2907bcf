"""What belongs to one platform account (a shop, a portal) inside a workspace.

Several shops of one platform can share a workspace, and a platform's customer ids only mean
something inside their shop, so connectors that serve several accounts link contacts with
account-scoped keys: ``ContactLink(platform, external_id=account_key(account, id))``, e.g.
``shopify`` / ``lumen-tea-co.myshopify.com:7700000000101``. A shop's contacts are then the ones
linked by such a key, plus the ones whose carts that shop's webhooks delivered (guest checkouts
carry no customer id). ``stop_account`` ends everything running for them when the shop leaves.
"""

from __future__ import annotations

__all__ = ["account_key", "split_key", "contacts_of", "carts_of", "stop_account"]

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.store.models import Cart, ContactLink, FlowRun, InboundEvent, Message


def account_key(account: str, external_id: str) -> str:
    return f"{account}:{external_id}"


def split_key(key: str | None) -> tuple[str | None, str | None]:
    """(account, id) of an account-scoped key; (None, key) for a key without an account."""
    if not key:
        return None, None
    account, sep, rest = key.rpartition(":")
    return (account, rest) if sep and account else (None, key)


def carts_of(s: Session, workspace_id: int, platform: str, account: str) -> list[Cart]:
    tokens = select(InboundEvent.subject).where(InboundEvent.platform == platform, InboundEvent.account == account,
                                                InboundEvent.subject.is_not(None))
    return list(s.scalars(select(Cart).where(Cart.workspace_id == workspace_id, Cart.platform == platform,
                                             Cart.token.in_(tokens)).order_by(Cart.id)))


def contacts_of(s: Session, workspace_id: int, platform: str, account: str) -> list[int]:
    """Ids of the contacts that came from ``account``: linked by its keys, or owners of its carts."""
    linked = s.scalars(select(ContactLink.contact_id).where(
        ContactLink.workspace_id == workspace_id, ContactLink.platform == platform,
        ContactLink.external_id.startswith(f"{account}:", autoescape=True)))
    carts = (c.contact_id for c in carts_of(s, workspace_id, platform, account) if c.contact_id is not None)
    return sorted({*linked, *carts})


def stop_account(s: Session, workspace_id: int, platform: str, account: str, now: datetime, reason: str) -> int:
    """Cancel the active flow runs of the account's contacts and the messages still queued for
    them; returns how many runs were cancelled."""
    ids = contacts_of(s, workspace_id, platform, account)
    if not ids:
        return 0
    runs = s.scalars(select(FlowRun).where(FlowRun.contact_id.in_(ids), FlowRun.active_key.is_not(None))).all()
    for run in runs:
        run.status, run.active_key, run.outcome = "cancelled", None, reason
        run.waiting_for, run.wake_at, run.ended_at, run.updated_at = None, None, now, now
    for msg in s.scalars(select(Message).where(Message.contact_id.in_(ids), Message.direction == "out",
                                               Message.status == "queued")):
        msg.status, msg.status_at, msg.error_details = "cancelled", now, reason
    s.flush()
    return len(runs)
