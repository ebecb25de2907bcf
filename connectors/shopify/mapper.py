"""Shopify payload objects -> core values. Pure functions, one per target field group.

Phones are collected, not normalised: core turns ``PhoneCandidate``s into E.164 later, using
the ``country`` carried with each candidate for national formats like ``(555) 000-4444``.
"""

from __future__ import annotations

__all__ = ["PLATFORM", "customer_key", "contact_ref", "customer_ref", "phone_candidates", "cart", "order", "consent",
           "customer_consent", "privacy_request"]

import json
from datetime import datetime
from typing import Any

from connectors.shopify.events import (
    ShopifyAddress, ShopifyCheckout, ShopifyCustomer, ShopifyOrder, ShopifyPrivacyRequest,
)
from core.accounts import account_key
from core.events import (
    PrivacyRequest,
    Cart,
    CartLine,
    ConsentAction,
    ConsentPurpose,
    ConsentSignal,
    ContactRef,
    Order,
    PhoneCandidate,
)

PLATFORM = "shopify"

CheckoutOrOrder = ShopifyCheckout | ShopifyOrder


def _addresses(p: CheckoutOrOrder) -> tuple[ShopifyAddress | None, ...]:
    """Billing, shipping, then the customer's default address: the order countries are tried."""
    default = p.customer.default_address if p.customer else None
    return (p.billing_address, p.shipping_address, default)


def _first(*values: str | None) -> str | None:
    return next((v for v in values if v), None)


def _fallback_country(p: CheckoutOrOrder) -> str | None:
    return _first(*(a.country_code for a in _addresses(p) if a))


def phone_candidates(p: CheckoutOrOrder) -> tuple[PhoneCandidate, ...]:
    """Every phone on the payload, in preference order, without empties or repeated strings.

    Order: ``sms_marketing_phone`` (the number the buyer opted in with), the checkout/order
    ``phone``, ``customer.phone``, ``customer.default_address.phone``, ``billing_address.phone``,
    ``shipping_address.phone``. Address phones carry their own address's country; the others
    carry the first country of billing, shipping or default address.
    """
    kind = "checkout" if isinstance(p, ShopifyCheckout) else "order"
    sms = p.sms_marketing_phone if isinstance(p, ShopifyCheckout) else None
    customer, fallback = p.customer, _fallback_country(p)
    default = customer.default_address if customer else None
    found: list[tuple[str | None, str, str | None]] = [
        (sms, f"{kind}.sms_marketing_phone", fallback),
        (p.phone, f"{kind}.phone", fallback),
        (customer.phone if customer else None, "customer.phone", fallback),
    ]
    for source, address in (
        ("customer.default_address", default),
        ("billing_address", p.billing_address),
        ("shipping_address", p.shipping_address),
    ):
        if address is not None:
            found.append((address.phone, f"{source}.phone", address.country_code or fallback))
    return _dedupe(found)


def _dedupe(found: list[tuple[str | None, str, str | None]]) -> tuple[PhoneCandidate, ...]:
    seen: set[str] = set()
    out: list[PhoneCandidate] = []
    for raw, source, country in found:
        text = (raw or "").strip()
        if text and text not in seen:
            seen.add(text)
            out.append(PhoneCandidate(raw=text, source=source, country=country))
    return tuple(out)


def _names(p: CheckoutOrOrder) -> tuple[str | None, str | None]:
    people = [p.customer, *_addresses(p)]
    first = _first(*(x.first_name for x in people if x))
    last = _first(*(x.last_name for x in people if x))
    return first, last


def customer_key(shop: str, customer_id: str) -> str:
    """The contact link of a Shopify customer: ``<shop>:<customer id>`` (ids belong to a shop, and
    one workspace can hold several shops; see core/accounts.py)."""
    return account_key(shop, customer_id)


def contact_ref(p: CheckoutOrOrder, shop: str) -> ContactRef:
    """Who the checkout or order is about. With protected customer data withheld this can
    carry no phone and no email at all; core records such contacts as not contactable."""
    first, last = _names(p)
    return ContactRef(
        platform=PLATFORM,
        external_id=customer_key(shop, p.customer.id) if p.customer else None,
        first_name=first,
        last_name=last,
        email=_first(p.email, p.customer.email if p.customer else None),
        locale=p.customer_locale or None,
        phones=phone_candidates(p),
    )


def customer_ref(c: ShopifyCustomer, shop: str) -> ContactRef:
    """A customer record (customers/create, customers/update) as a contact reference."""
    default = c.default_address
    found = [(c.phone, "customer.phone", default.country_code if default else None)]
    if default is not None:
        found.append((default.phone, "customer.default_address.phone", default.country_code))
    return ContactRef(platform=PLATFORM, external_id=customer_key(shop, c.id), first_name=c.first_name,
                      last_name=c.last_name, email=c.email, phones=_dedupe(found))


def cart(checkout: ShopifyCheckout) -> Cart:
    return Cart(
        token=checkout.token,
        total=checkout.total_price,
        currency=checkout.presentment_currency or checkout.currency,
        recovery_url=checkout.abandoned_checkout_url,
        lines=tuple(
            CartLine(title=item.title, quantity=item.quantity, price=item.price)
            for item in checkout.line_items
        ),
        completed=checkout.completed_at is not None,
    )


def order(o: ShopifyOrder) -> Order:
    return Order(
        order_id=o.id,
        name=o.name,
        total=o.total_price,
        currency=o.currency,
        checkout_token=o.checkout_token,
    )


def _evidence(fields: dict[str, Any]) -> str:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)


def _checkout_consent(p: CheckoutOrOrder, at: datetime) -> tuple[ConsentSignal, ...]:
    if not isinstance(p, ShopifyCheckout):
        return ()
    phone = (p.sms_marketing_phone or "").strip()
    if not (p.buyer_accepts_sms_marketing and phone):
        return ()
    evidence = {"buyer_accepts_sms_marketing": True, "sms_marketing_phone": phone, "token": p.token}
    return (
        ConsentSignal(
            purpose=ConsentPurpose.MARKETING,
            action=ConsentAction.OPT_IN,
            source="shopify.checkout",
            evidence=_evidence(evidence),
            # the checkout's start: every later checkouts/update repeats the ticked box, and must not
            # outrank a STOP the buyer sent on WhatsApp in between
            at=p.created_at or at,
        ),
    )


_SMS_STATES = {"subscribed": ConsentAction.OPT_IN, "unsubscribed": ConsentAction.OPT_OUT}


def customer_consent(customer: ShopifyCustomer | None, at: datetime) -> tuple[ConsentSignal, ...]:
    """The customer's SMS marketing consent state as a signal (customer webhooks, and the customer
    embedded in checkouts and orders), dated ``consent_updated_at`` (else ``at``)."""
    sms = customer.sms_marketing_consent if customer else None
    action = _SMS_STATES.get(sms.state or "") if sms else None
    if sms is None or action is None:
        return ()  # not_subscribed, pending, redacted, absent: no signal either way
    updated = sms.consent_updated_at.isoformat() if sms.consent_updated_at else None
    evidence = {
        "customer_id": customer.id,
        "state": sms.state,
        "opt_in_level": sms.opt_in_level,
        "consent_updated_at": updated,
        "consent_collected_from": sms.collected_from,
    }
    return (
        ConsentSignal(
            purpose=ConsentPurpose.MARKETING,
            action=action,
            source="shopify.customer",
            evidence=_evidence(evidence),
            # when the customer gave (or withdrew) it, not when a webhook repeated it: a STOP sent on
            # WhatsApp after that is not undone by the next checkout or customer update
            at=sms.consent_updated_at or at,
        ),
    )


def consent(p: CheckoutOrOrder, at: datetime) -> tuple[ConsentSignal, ...]:
    """Marketing consent signals the payload proves, dated when they were given (the checkout's
    start, the customer's ``consent_updated_at``), else ``at``.

    Shopify has no WhatsApp-specific consent: SMS marketing consent is the nearest signal, so
    it is reported as (channel-neutral) marketing consent and core's policy decides whether it
    covers WhatsApp. The checkout's SMS box ticked with an ``sms_marketing_phone`` is an opt-in
    (``shopify.checkout``); the customer's ``sms_marketing_consent.state`` gives an opt-in
    (``subscribed``) or opt-out (``unsubscribed``) from ``shopify.customer``.
    """
    return _checkout_consent(p, at) + customer_consent(p.customer, at)


_PRIVACY_KINDS = {"customers/data_request": "data_request", "customers/redact": "redact_customer",
                  "shop/redact": "redact_account"}


def privacy_request(p: ShopifyPrivacyRequest) -> PrivacyRequest:
    """Shopify's mandatory compliance webhooks as a platform-neutral privacy request."""
    phones = (PhoneCandidate(raw=p.customer_phone, source="customer.phone"),) if p.customer_phone else ()
    return PrivacyRequest(kind=_PRIVACY_KINDS[p.topic], platform=PLATFORM, account=p.shop_domain,
                          request_id=p.data_request_id, phones=phones,
                          customer_external_id=customer_key(p.shop_domain, p.customer_id) if p.customer_id else None,
                          email=p.customer_email, orders=p.orders, raw=p.raw)
