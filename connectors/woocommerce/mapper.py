"""WooCommerce records -> core values. Pure functions.

- A cart is an unpaid storefront order (``pending``, ``failed``, or the block checkout's
  ``checkout-draft``; not one made in the admin or through the API): its token is
  the order id, so the order that pays it later (same id, whatever the customer did meanwhile,
  e.g. create an account) closes it. The recovery link is the order's ``payment_url``.
- Phones are free text in the address's country: ``billing.phone`` (with ``billing.country``),
  then ``shipping.phone``. ``phone_problem`` says why none can be used, so the order gets a note.
- A registered customer is linked by customer id; a guest by the order (``order:<id>``), so shop
  notes can still be written for them. Marketing consent: WooCommerce has none of its own; a
  checkout checkbox saved as order meta ``whatsapp_opt_in`` (yes/1/true/on) is taken as an opt-in.
"""

from __future__ import annotations

__all__ = ["PLATFORM", "CART_STATUSES", "CLOSED_STATUSES", "CART_SOURCES", "PAID_STATUSES", "CONSENT_META_KEYS",
           "contact_ref", "customer_ref", "phone_candidates", "phone_problem", "cart", "order", "consent", "booking_contact", "booking_data"]

import json
from datetime import datetime


from connectors.woocommerce.events import WooBooking, WooCustomer, WooOrder
from core import phones
from core.errors import PhoneError
from core.zones import read_zone
from core.events import (Cart, CartLine, ConsentAction, ConsentPurpose, ConsentSignal, ContactRef, Order,
                         PhoneCandidate)

PLATFORM = "woocommerce"
CART_STATUSES = ("pending", "checkout-draft", "failed")  # failed: the payment failed; it can be paid again
CLOSED_STATUSES = ("cancelled", "refunded", "trash")  # e.g. an unpaid order cancelled after "hold stock"
CART_SOURCES = ("checkout", "store-api", "")  # the storefront; an order made in the admin is no cart
# on-hold: placed with a manual payment method (bank transfer, cheque, cash on delivery): bought,
# not abandoned; it closes the cart like processing and completed
PAID_STATUSES = ("processing", "completed", "on-hold")
CONSENT_META_KEYS = ("whatsapp_opt_in", "_whatsapp_opt_in")
_YES = ("yes", "1", "true", "on")


def phone_candidates(o: WooOrder) -> tuple[PhoneCandidate, ...]:
    found = []
    for source, address in (("billing.phone", o.billing), ("shipping.phone", o.shipping)):
        if address.phone and address.phone not in (c.raw for c in found):
            found.append(PhoneCandidate(raw=address.phone, source=source,
                                        country=address.country or o.billing.country or None))
    return tuple(found)


def phone_problem(o: WooOrder) -> str | None:
    """Why no phone on the order can be used (no digits in the reason), or None when one can."""
    candidates = phone_candidates(o)
    if not candidates:
        return "the order has no billing phone"
    reasons = []
    for c in candidates:
        try:
            phones.normalize(c.raw, c.country)
            return None
        except PhoneError as exc:
            reasons.append(f"{c.source} ({c.country or 'no country'}): {exc}")
    return "; ".join(reasons)


def contact_ref(o: WooOrder) -> ContactRef:
    return ContactRef(platform=PLATFORM, external_id=o.customer_id or f"order:{o.id}",
                      first_name=o.billing.first_name or o.shipping.first_name or None,
                      last_name=o.billing.last_name or o.shipping.last_name or None,
                      email=o.billing.email or None, phones=phone_candidates(o))


def customer_ref(c: WooCustomer) -> ContactRef:
    phones_ = (PhoneCandidate(raw=c.billing.phone, source="customer.billing.phone", country=c.billing.country or None),
               ) if c.billing.phone else ()
    return ContactRef(platform=PLATFORM, external_id=c.id, first_name=c.first_name or c.billing.first_name or None,
                      last_name=c.last_name or c.billing.last_name or None, email=c.email or c.billing.email or None,
                      phones=phones_)


def cart(o: WooOrder) -> Cart:
    return Cart(token=o.id, total=o.total, currency=o.currency, recovery_url=o.payment_url,
                lines=tuple(CartLine(title=i.name, quantity=i.quantity, price=i.price) for i in o.line_items),
                completed=o.status not in CART_STATUSES)  # cancelled, refunded: closed, no reminder


def order(o: WooOrder) -> Order:
    return Order(order_id=o.id, name=f"#{o.number}", total=o.total, currency=o.currency, checkout_token=o.id)


def consent(o: WooOrder, at: datetime) -> tuple[ConsentSignal, ...]:
    for meta in o.raw.get("meta_data") or ():
        if isinstance(meta, dict) and meta.get("key") in CONSENT_META_KEYS \
                and str(meta.get("value", "")).strip().lower() in _YES:
            evidence = json.dumps({"order_id": o.id, "meta_key": meta["key"], "value": meta.get("value")},
                                  sort_keys=True, separators=(",", ":"))
            return (ConsentSignal(purpose=ConsentPurpose.MARKETING, action=ConsentAction.OPT_IN,
                                  source="woocommerce.checkout", evidence=evidence, at=at),)
    return ()


def booking_contact(b: WooBooking) -> ContactRef | None:
    if b.order is not None:
        return contact_ref(b.order)
    return customer_ref(b.customer) if b.customer is not None else None


def _service(b: WooBooking) -> str:
    items = (b.order.raw.get("line_items") or ()) if b.order else ()
    item_id = str(b.raw.get("order_item_id") or "")
    named = [i for i in items if isinstance(i, dict) and (str(i.get("id")) == item_id
                                                          or str(i.get("product_id")) == (b.product_id or ""))]
    return str(named[0].get("name") or "appointment") if named else "appointment"


def booking_data(b: WooBooking, account: str) -> dict[str, str]:
    """What the appointment flow reads as ``event.*``; the start shown in the shop's timezone."""
    zone = read_zone(b.local_timezone)
    local = b.start.astimezone(zone) if zone else b.start
    display = f"{local:%a} {local.day} {local:%b}, {local:%H:%M}"
    return {"booking_id": b.id, "service": _service(b), "starts_at": b.start.isoformat(),
            "starts_at_display": display, "status": b.status, "platform": PLATFORM, "account": account}
