"""Shopify customers and what they carry: addresses and SMS marketing consent (the
``customers/create`` and ``customers/update`` bodies, and the customer inside checkouts and
orders). Private to ``connectors.shopify.events``, which exports these names.
"""

from __future__ import annotations

__all__ = ["ShopifyAddress", "ShopifySmsConsent", "ShopifyCustomer", "parse_address", "parse_sms_consent",
           "parse_customer"]

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from connectors.shopify._reader import RAW, Obj


@dataclass(frozen=True, slots=True, kw_only=True)
class ShopifyAddress:
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    city: str | None = None
    province_code: str | None = None
    zip: str | None = None
    country_code: str | None = None  # ISO 3166-1 alpha-2, upper-case
    phone: str | None = None
    raw: Mapping[str, Any] | None = field(default=None, **RAW)


@dataclass(frozen=True, slots=True, kw_only=True)
class ShopifySmsConsent:
    state: str | None = None  # not_subscribed | pending | subscribed | unsubscribed | redacted
    opt_in_level: str | None = None  # single_opt_in | confirmed_opt_in | unknown
    consent_updated_at: datetime | None = None
    collected_from: str | None = None  # consent_collected_from, e.g. "SHOPIFY", "OTHER"
    raw: Mapping[str, Any] | None = field(default=None, **RAW)


@dataclass(frozen=True, slots=True, kw_only=True)
class ShopifyCustomer:
    id: str
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    sms_marketing_consent: ShopifySmsConsent | None = None
    default_address: ShopifyAddress | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    raw: Mapping[str, Any] | None = field(default=None, **RAW)


def parse_address(r: Obj | None) -> ShopifyAddress | None:
    if r is None:
        return None
    values = r.texts(*(f for f in ShopifyAddress.__dataclass_fields__ if f != "raw"))
    values["country_code"] = (values["country_code"] or "").strip().upper() or None
    return ShopifyAddress(**values, raw=r.data)


def parse_sms_consent(r: Obj | None) -> ShopifySmsConsent | None:
    if r is None:
        return None
    state, level = r.text("state"), r.text("opt_in_level")
    return ShopifySmsConsent(
        state=state.lower() if state else None,
        opt_in_level=level.lower() if level else None,
        consent_updated_at=r.time("consent_updated_at"),
        collected_from=r.text("consent_collected_from"),
        raw=r.data,
    )


def parse_customer(r: Obj | None) -> ShopifyCustomer | None:
    if r is None:
        return None
    return ShopifyCustomer(
        id=r.ident("id", required=True),
        **r.texts("first_name", "last_name", "email", "phone"),
        sms_marketing_consent=parse_sms_consent(r.obj("sms_marketing_consent")),
        default_address=parse_address(r.obj("default_address")),
        created_at=r.time("created_at"),
        updated_at=r.time("updated_at"),
        raw=r.data,
    )
