"""Platform-neutral inputs to core: what happened, as frozen, typed values.

Connectors parse platform payloads into these at the edge; code past the edge never indexes
into wire dicts. Every value keeps the wire payload it came from in ``raw`` (excluded from
``repr`` and comparisons) for evidence and debugging.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Mapping

__all__ = [
    "WireEnum",
    "TriggerKind",
    "ConsentPurpose",
    "ConsentAction",
    "PhoneCandidate",
    "ConsentSignal",
    "ContactRef",
    "CartLine",
    "Cart",
    "Order",
    "Trigger",
    "PrivacyRequest",
    "MessageKind",
    "ApiError",
    "InboundMessage",
    "DeliveryState",
    "DeliveryStatus",
    "MarketingPreference",
    "TemplateStatusUpdate",
    "SystemError_",
    "IgnoredUpdate",
    "ChannelEvent",
]

_log = logging.getLogger(__name__)
_RAW = dict(repr=False, compare=False, hash=False)


class WireEnum(str, enum.Enum):
    """A string enum for values that come off the wire: case-insensitive, and a value we do
    not know yet becomes ``UNKNOWN`` (logged) instead of crashing the parser."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if isinstance(value, str):
            for member in cls:
                if member.value == value.lower():
                    return member
        _log.warning("unknown %s value %r", cls.__name__, value)
        return cls["UNKNOWN"]

    def __str__(self) -> str:
        return self.value


# ---------------------------------------------------------------- shop and CRM triggers


class TriggerKind(WireEnum):
    CART_ABANDONED = "cart_abandoned"  # a checkout with contact details and no order (yet)
    ORDER_CREATED = "order_created"
    CONTACT_CHANGED = "contact_changed"
    BOOKING_CREATED = "booking_created"
    CONTACT_CREATED = "contact_created"  # a CRM contact was created (HubSpot contact.creation)
    DEAL_STAGE_CHANGED = "deal_stage_changed"  # data: stage, deal_id
    BOOKING_UPCOMING = "booking_upcoming"  # a booking soon or a meeting booked; data: service, starts_at
    BOOKING_CANCELLED = "booking_cancelled"  # cancels the runs about that booking (cancel_on)
    UNKNOWN = "unknown"


class ConsentPurpose(WireEnum):
    MARKETING = "marketing"
    UTILITY = "utility"
    UNKNOWN = "unknown"


class ConsentAction(WireEnum):
    OPT_IN = "opt_in"
    OPT_OUT = "opt_out"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True, kw_only=True)
class PhoneCandidate:
    """A phone number as a platform holds it, with where it was found and the country that
    gives a national number its meaning."""

    raw: str
    source: str  # e.g. "checkout.sms_marketing_phone", "shipping_address.phone"
    country: str | None = None  # ISO 3166-1 alpha-2 of the address it sits on, if any


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentSignal:
    purpose: ConsentPurpose
    action: ConsentAction
    source: str  # e.g. "shopify.checkout", "whatsapp.user_preferences", "keyword"
    evidence: str  # the text or payload fragment that shows it
    at: datetime
    # an opt-in given for WhatsApp itself (HubSpot's whatsapp_marketing_opt_in): the welcome flow
    # (``contact_opted_in``) may greet the contact; one borrowed from another channel (Shopify's SMS
    # consent) is permission only and starts nothing
    welcomes: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactRef:
    """Who a platform event is about, as the platform knows them."""

    platform: str
    external_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    locale: str | None = None
    phones: tuple[PhoneCandidate, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class CartLine:
    title: str
    quantity: int
    price: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class Cart:
    token: str  # the platform's stable checkout/cart key; orders reference it
    total: Decimal
    currency: str
    recovery_url: str | None = None
    lines: tuple[CartLine, ...] = ()
    completed: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Order:
    order_id: str
    name: str | None
    total: Decimal
    currency: str
    checkout_token: str | None = None  # the cart this order recovers, when there was one


@dataclass(frozen=True, slots=True, kw_only=True)
class Trigger:
    """A shop or CRM event that can start, advance or cancel flow runs."""

    kind: TriggerKind
    platform: str
    account: str  # which installation: shop domain, portal id
    subject: str  # what the event is about, stable across updates (checkout token, order id)
    occurred_at: datetime
    contact: ContactRef | None = None
    cart: Cart | None = None
    order: Order | None = None
    consent: tuple[ConsentSignal, ...] = ()
    data: Mapping[str, Any] = field(default_factory=dict)  # what flows read as ``event.*`` (bookings)
    raw: Mapping[str, Any] | None = field(default=None, **_RAW)


@dataclass(frozen=True, slots=True, kw_only=True)
class PrivacyRequest:
    """A platform's privacy request: export a customer's data, erase a customer, or erase a shop."""

    kind: str  # "data_request" | "redact_customer" | "redact_account"
    platform: str
    account: str  # shop domain / portal id
    request_id: str | None = None
    customer_external_id: str | None = None
    phones: tuple[PhoneCandidate, ...] = ()
    email: str | None = None
    orders: tuple[str, ...] = ()
    raw: Mapping[str, Any] | None = field(default=None, **_RAW)


# ---------------------------------------------------------------- the WhatsApp channel


class MessageKind(WireEnum):
    TEXT = "text"
    BUTTON = "button"  # tap on a template quick-reply button
    INTERACTIVE = "interactive"  # reply button, list row or WhatsApp Flow reply
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    DOCUMENT = "document"
    STICKER = "sticker"
    LOCATION = "location"
    CONTACTS = "contacts"
    REACTION = "reaction"
    ORDER = "order"
    SYSTEM = "system"
    REQUEST_WELCOME = "request_welcome"
    UNSUPPORTED = "unsupported"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiError:
    code: int
    title: str = ""
    details: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundMessage:
    """A message a user sent to one of our WhatsApp numbers."""

    channel: str  # metadata.phone_number_id
    message_id: str  # wamid
    timestamp: datetime
    kind: MessageKind
    wa_id: str | None = None  # digits, no "+"; absent for username-only users
    user_id: str | None = None  # business-scoped user id (BSUID)
    username: str | None = None
    profile_name: str | None = None
    text: str | None = None  # body, caption, or the tapped button/row title
    reply_id: str | None = None  # button payload, reply-button id or list-row id
    context_message_id: str | None = None  # the message this one replies to
    media_id: str | None = None
    from_ad: bool = False  # first message from a click-to-WhatsApp ad (72h free entry point)
    wire_type: str = ""  # the type string as sent (kept when kind is UNKNOWN)
    errors: tuple[ApiError, ...] = ()
    raw: Mapping[str, Any] | None = field(default=None, **_RAW)


class DeliveryState(WireEnum):
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    PLAYED = "played"
    FAILED = "failed"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryStatus:
    """What happened to a message we sent."""

    channel: str
    message_id: str  # wamid of our message
    state: DeliveryState
    timestamp: datetime
    recipient: str | None = None  # recipient_id (digits) or None
    recipient_user_id: str | None = None
    errors: tuple[ApiError, ...] = ()
    pricing_category: str | None = None
    callback_data: str | None = None  # biz_opaque_callback_data echoed back
    raw: Mapping[str, Any] | None = field(default=None, **_RAW)


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketingPreference:
    """WhatsApp's own marketing stop/resume control (the ``user_preferences`` webhook)."""

    channel: str
    wa_id: str | None
    user_id: str | None
    value: str  # "stop", "resume", ...
    detail: str
    timestamp: datetime
    raw: Mapping[str, Any] | None = field(default=None, **_RAW)


@dataclass(frozen=True, slots=True, kw_only=True)
class TemplateStatusUpdate:
    """message_template_status_update / quality / category webhooks, one shape."""

    account: str  # WABA id
    field: str  # which webhook field
    template_id: str | None
    name: str | None
    language: str | None
    event: str | None = None  # APPROVED, REJECTED, PAUSED, ... (status updates)
    reason: str | None = None
    new_quality: str | None = None
    new_category: str | None = None
    timestamp: datetime | None = None
    detail: str | None = None  # rejection_info.reason, or other_info's title and description (pauses)
    raw: Mapping[str, Any] | None = field(default=None, **_RAW)


@dataclass(frozen=True, slots=True, kw_only=True)
class SystemError_:
    """An account- or app-level error delivered in ``value.errors``."""

    channel: str | None
    errors: tuple[ApiError, ...]
    raw: Mapping[str, Any] | None = field(default=None, **_RAW)


@dataclass(frozen=True, slots=True, kw_only=True)
class IgnoredUpdate:
    """A webhook field we do not act on (yet); recorded, acknowledged, not processed."""

    field: str
    raw: Mapping[str, Any] | None = field(default=None, **_RAW)


ChannelEvent = (
    InboundMessage | DeliveryStatus | MarketingPreference | TemplateStatusUpdate | SystemError_ | IgnoredUpdate
)
