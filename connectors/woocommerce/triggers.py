"""WooCommerce deliveries -> core ``Trigger``s.

WooCommerce has no abandoned-cart event: a storefront order that is still ``pending``, ``failed``
or ``checkout-draft`` is a ``CART_ABANDONED`` trigger about ``cart:<order id>`` (the cart flow
waits the configured delay from the order's last change, and each later save restarts that wait);
the same order reaching ``processing``, ``completed`` or ``on-hold`` is an ``ORDER_CREATED`` that
closes that cart (a recovery when a reminder went out first). ``cancelled``/``refunded``/``trash``
is the same cart closed (``completed``): its reminders stop, since its payment link no longer
works. Orders made in the admin or through the API, and deletions, start nothing. A customer
created or updated is a ``CONTACT_CHANGED`` (links the customer id to the contact with that phone:
a guest who registers stays the same person). Bookings (WooCommerce Bookings): ``booking.created`` (after ``action.woocommerce_new_booking``, the booking fetched) and
``booking.upcoming`` (found starting soon by the reconciliation) about ``booking:<id>``, with the
service, the start and the store in ``data`` for the appointment-reminder flow.
"""

from __future__ import annotations

__all__ = ["to_trigger"]

from connectors.woocommerce import mapper
from connectors.woocommerce.events import WebhookHeaders, WooBooking, WooCustomer, WooOrder, WooPayload
from core.events import Trigger, TriggerKind


def _order(headers: WebhookHeaders, o: WooOrder) -> Trigger | None:
    common = dict(platform=mapper.PLATFORM, account=headers.account, subject=o.id, occurred_at=o.modified_at,
                  contact=mapper.contact_ref(o), consent=mapper.consent(o, o.modified_at), raw=o.raw)
    if o.status in mapper.CART_STATUSES + mapper.CLOSED_STATUSES and o.created_via in mapper.CART_SOURCES:
        return Trigger(kind=TriggerKind.CART_ABANDONED, cart=mapper.cart(o), **common)
    if o.status in mapper.PAID_STATUSES:
        return Trigger(kind=TriggerKind.ORDER_CREATED, order=mapper.order(o), **common)
    return None


_BOOKING_KINDS = {"booking.created": TriggerKind.BOOKING_CREATED, "booking.upcoming": TriggerKind.BOOKING_UPCOMING}


def _booking(headers: WebhookHeaders, b: WooBooking) -> Trigger:
    at = b.order.modified_at if b.order else b.start
    return Trigger(kind=_BOOKING_KINDS[headers.topic], platform=mapper.PLATFORM, account=headers.account,
                   subject=f"booking:{b.id}", occurred_at=at, contact=mapper.booking_contact(b),
                   data=mapper.booking_data(b, headers.account), raw=b.raw)


def to_trigger(headers: WebhookHeaders, payload: WooPayload) -> Trigger | None:
    if isinstance(payload, WooBooking) and headers.topic in _BOOKING_KINDS:
        return _booking(headers, payload)
    if isinstance(payload, WooOrder) and headers.topic.startswith("order."):
        return _order(headers, payload)
    if isinstance(payload, WooCustomer) and headers.topic.startswith("customer.") and payload.modified_at:
        return Trigger(kind=TriggerKind.CONTACT_CHANGED, platform=mapper.PLATFORM, account=headers.account,
                       subject=f"customer:{payload.id}", occurred_at=payload.modified_at,
                       contact=mapper.customer_ref(payload), raw=payload.raw)
    return None
