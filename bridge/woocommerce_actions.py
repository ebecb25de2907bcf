"""Flow actions on WooCommerce Bookings: the appointment reminder's Confirm and Reschedule.

``woocommerce.confirm_booking`` sets the booking ``confirmed``; ``woocommerce.reschedule_booking``
sets it ``pending-confirmation`` (the shop agrees a new time with the customer, who asked on
WhatsApp) and says so in a private note on the booking's order. Params: ``booking_id``,
``platform`` and ``account`` (the shipped flow passes the trigger's ``event.*``); a booking that came
from elsewhere (the trigger API, another platform) is skipped with that reason.
"""

from __future__ import annotations

from connectors.woocommerce import client_for
from connectors.woocommerce.mapper import PLATFORM
from core.errors import PermanentError
from core.installations import NotInstalled, info_of
from core.store import session_scope
from core.store.models import ActionTask, Contact, FlowRun
from bridge.runtime import Runtime

__all__ = ["ACTIONS"]


def _update(rt: Runtime, task: ActionTask, status: str, note: str | None) -> str:
    params = dict(task.params or {})
    booking_id, account = params.get("booking_id"), params.get("account")
    if params.get("platform") != PLATFORM or not booking_id or not account:
        return "skipped: not a WooCommerce booking"
    try:
        with session_scope(rt.db) as s:
            info = info_of(s, PLATFORM, account, rt.sealer)
    except NotInstalled as exc:
        raise PermanentError(str(exc)) from None
    client = client_for(info)
    try:
        booking = client.update_booking(booking_id, status=status)
        if note and booking.get("order_id"):
            client.add_private_note(booking["order_id"], note.format(booking=booking_id))
    finally:
        client.close()
    return f"booking {booking_id} is {status}"


def confirm(rt: Runtime, task: ActionTask, contact: Contact | None, run: FlowRun | None) -> str:
    return _update(rt, task, "confirmed", None)


def reschedule(rt: Runtime, task: ActionTask, contact: Contact | None, run: FlowRun | None) -> str:
    return _update(rt, task, "pending-confirmation",
                   "WhatsApp: the customer asked to move booking #{booking}; it is pending confirmation "
                   "until a new time is agreed.")


ACTIONS = {"woocommerce.confirm_booking": confirm, "woocommerce.reschedule_booking": reschedule}
