"""Abandoned carts and their recovery: the record the cart flow and the metrics read."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.events import Cart as CartValue, Order
from core.store.models import Cart, Contact

__all__ = ["CLOSED", "upsert_cart", "mark_recovered", "close_others", "display_total"]

CLOSED = ("recovered", "ordered")  # ordered = bought without a reminder having gone out


def display_total(amount, currency: str) -> str:
    return f"{amount:,.2f} {currency}"


def _get(s: Session, workspace_id: int, platform: str, token: str) -> Cart | None:
    return s.scalar(select(Cart).where(Cart.workspace_id == workspace_id, Cart.platform == platform,
                                       Cart.token == token))


def upsert_cart(
    s: Session,
    workspace_id: int,
    platform: str,
    value: CartValue,
    contact: Contact | None,
    problems: list[str],
    occurred_at: datetime,
    now: datetime,
) -> tuple[Cart, bool]:
    """Record or update the cart; returns (cart, still_open). An update replaces, never duplicates;
    an update for a cart whose order already arrived (or that is older than what we hold) changes nothing."""
    cart = _get(s, workspace_id, platform, value.token)
    if cart is None:
        cart = Cart(workspace_id=workspace_id, platform=platform, token=value.token, total=value.total,
                    currency=value.currency, created_at=now, last_event_at=occurred_at)
        s.add(cart)
    elif cart.status in CLOSED or occurred_at < cart.last_event_at:
        return cart, False
    cart.total, cart.currency, cart.last_event_at = value.total, value.currency, occurred_at
    cart.recovery_url = value.recovery_url or cart.recovery_url
    cart.contact_id = contact.id if contact else cart.contact_id
    if value.completed:
        cart.status, cart.problem = "completed", None
    elif contact is None:
        cart.status, cart.problem = "not_contactable", "; ".join(problems) or "no phone number"
    else:
        cart.status, cart.problem = "open", None
    s.flush()
    return cart, cart.status == "open"


def mark_recovered(
    s: Session, workspace_id: int, platform: str, order: Order, now: datetime, *, attributed: bool
) -> Cart | None:
    """The order that closes a cart; idempotent (a second delivery changes nothing).
    ``attributed``: a reminder reached the contact before the order, so the revenue counts as
    recovered; otherwise the cart is closed as ``ordered``."""
    if not order.checkout_token:
        return None  # POS/API orders have no checkout: nothing to recover
    cart = _get(s, workspace_id, platform, order.checkout_token)
    if cart is None:  # the order came first (webhooks out of order): a late checkout update finds it closed
        cart = Cart(workspace_id=workspace_id, platform=platform, token=order.checkout_token, total=order.total,
                    currency=order.currency, created_at=now, last_event_at=now, status="ordered",
                    order_id=order.order_id, order_total=order.total, order_currency=order.currency,
                    recovered_at=now)
        s.add(cart)
        s.flush()
        return cart
    if cart.status in CLOSED:
        return cart
    cart.status, cart.problem = ("recovered" if attributed else "ordered"), None
    cart.order_id, cart.order_total, cart.order_currency = order.order_id, order.total, order.currency
    cart.recovered_at = now
    s.flush()
    return cart


def close_others(s: Session, workspace_id: int, platform: str, contact_id: int, order: Order, now: datetime) -> list[Cart]:
    """The buyer's other open carts on the platform: closed as ``ordered`` (someone who just paid,
    e.g. a guest who came back with an account and a new order, gets no reminder for an old cart)."""
    carts = list(s.scalars(select(Cart).where(Cart.workspace_id == workspace_id, Cart.platform == platform,
                                              Cart.contact_id == contact_id, Cart.status == "open",
                                              Cart.token != (order.checkout_token or ""))))
    for cart in carts:
        cart.status, cart.problem = "ordered", f"the customer placed order {order.name or order.order_id}"
        cart.recovered_at = now
    s.flush()
    return carts
