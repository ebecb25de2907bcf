"""Shopify's mandatory privacy (compliance) topics, ``customers/data_request``,
``customers/redact`` and ``shop/redact``, and ``app/uninstalled``: the deliveries after which we
export or forget a customer's or a shop's data. Private to ``connectors.shopify.events``, which
exports these names.
"""

from __future__ import annotations

__all__ = ["ShopifyPrivacyRequest", "ShopifyShop", "privacy_parser", "parse_shop"]

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from connectors.shopify._reader import RAW, Obj
from core.errors import PayloadError


@dataclass(frozen=True, slots=True, kw_only=True)
class ShopifyPrivacyRequest:
    """customers/data_request, customers/redact and shop/redact (mandatory compliance topics)."""

    topic: str
    shop_id: str
    shop_domain: str
    customer_id: str | None = None
    customer_email: str | None = None
    customer_phone: str | None = None
    orders: tuple[str, ...] = ()  # orders_requested or orders_to_redact
    data_request_id: str | None = None
    raw: Mapping[str, Any] | None = field(default=None, **RAW)


@dataclass(frozen=True, slots=True, kw_only=True)
class ShopifyShop:
    """app/uninstalled: the body is the Shop resource."""

    id: str
    myshopify_domain: str | None = None
    domain: str | None = None
    name: str | None = None
    raw: Mapping[str, Any] | None = field(default=None, **RAW)


def privacy_parser(topic: str) -> Callable[[Obj], ShopifyPrivacyRequest]:
    orders_key = "orders_to_redact" if topic == "customers/redact" else "orders_requested"

    def parse_privacy(r: Obj) -> ShopifyPrivacyRequest:
        customer, request = r.obj("customer"), r.obj("data_request")
        if customer is None and topic.startswith("customers/"):
            raise PayloadError(f"{r.where}.customer: missing")
        return ShopifyPrivacyRequest(
            topic=topic,
            shop_id=r.ident("shop_id", required=True),
            shop_domain=r.text("shop_domain", required=True),
            customer_id=customer.ident("id") if customer else None,
            customer_email=customer.text("email") if customer else None,
            customer_phone=customer.text("phone") if customer else None,
            orders=r.idents(orders_key),
            data_request_id=request.ident("id") if request else None,
            raw=r.data,
        )

    return parse_privacy


def parse_shop(r: Obj) -> ShopifyShop:
    return ShopifyShop(id=r.ident("id", required=True), **r.texts("myshopify_domain", "domain", "name"), raw=r.data)
