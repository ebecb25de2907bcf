"""Shopify checkouts and orders (``checkouts/create|update``, ``orders/create|paid``) and their
line items. Private to ``connectors.shopify.events``, which exports these names.
"""

from __future__ import annotations

__all__ = ["ShopifyLineItem", "ShopifyCheckout", "ShopifyOrder", "parse_line_items", "parse_checkout",
           "parse_order"]

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Mapping

from connectors.shopify._customers import ShopifyAddress, ShopifyCustomer, parse_address, parse_customer
from connectors.shopify._reader import RAW, Obj


@dataclass(frozen=True, slots=True, kw_only=True)
class ShopifyLineItem:
    title: str
    quantity: int
    price: Decimal
    variant_title: str | None = None
    sku: str | None = None
    product_id: str | None = None
    variant_id: str | None = None
    raw: Mapping[str, Any] | None = field(default=None, **RAW)


@dataclass(frozen=True, slots=True, kw_only=True)
class ShopifyCheckout:
    token: str  # the stable checkout key; orders carry it as checkout_token
    total_price: Decimal
    currency: str
    id: str | None = None
    cart_token: str | None = None
    email: str | None = None
    phone: str | None = None
    sms_marketing_phone: str | None = None
    buyer_accepts_marketing: bool = False
    buyer_accepts_sms_marketing: bool = False
    customer: ShopifyCustomer | None = None
    shipping_address: ShopifyAddress | None = None
    billing_address: ShopifyAddress | None = None
    line_items: tuple[ShopifyLineItem, ...] = ()
    presentment_currency: str | None = None
    abandoned_checkout_url: str | None = None
    completed_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    customer_locale: str | None = None
    raw: Mapping[str, Any] | None = field(default=None, **RAW)


@dataclass(frozen=True, slots=True, kw_only=True)
class ShopifyOrder:
    id: str
    total_price: Decimal
    currency: str
    name: str | None = None  # "#1051"
    checkout_token: str | None = None  # null for POS/API orders: no checkout to cancel
    checkout_id: str | None = None
    cart_token: str | None = None
    email: str | None = None  # email, else contact_email
    phone: str | None = None
    buyer_accepts_marketing: bool = False
    customer: ShopifyCustomer | None = None
    shipping_address: ShopifyAddress | None = None
    billing_address: ShopifyAddress | None = None
    customer_locale: str | None = None
    financial_status: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    raw: Mapping[str, Any] | None = field(default=None, **RAW)


def parse_line_items(r: Obj) -> tuple[ShopifyLineItem, ...]:
    items = []
    for i, value in enumerate(r.array("line_items")):
        item = Obj(value, f"{r.where}.line_items[{i}]")
        items.append(
            ShopifyLineItem(
                title=item.text("title") or "",
                quantity=item.count("quantity"),
                price=item.money("price", required=True),
                **item.texts("variant_title", "sku"),
                product_id=item.ident("product_id"),
                variant_id=item.ident("variant_id"),
                raw=item.data,
            )
        )
    return tuple(items)


def parse_checkout(r: Obj) -> ShopifyCheckout:
    return ShopifyCheckout(
        id=r.ident("id"),
        token=r.text("token", required=True),
        total_price=r.money("total_price", required=True),
        currency=r.text("currency", required=True),
        **r.texts("cart_token", "email", "phone", "sms_marketing_phone"),
        **r.texts("presentment_currency", "abandoned_checkout_url", "customer_locale"),
        buyer_accepts_marketing=r.flag("buyer_accepts_marketing"),
        buyer_accepts_sms_marketing=r.flag("buyer_accepts_sms_marketing"),
        customer=parse_customer(r.obj("customer")),
        shipping_address=parse_address(r.obj("shipping_address")),
        billing_address=parse_address(r.obj("billing_address")),
        line_items=parse_line_items(r),
        completed_at=r.time("completed_at"),
        created_at=r.time("created_at"),
        updated_at=r.time("updated_at"),
        raw=r.data,
    )


def parse_order(r: Obj) -> ShopifyOrder:
    return ShopifyOrder(
        id=r.ident("id", required=True),
        total_price=r.money("total_price", required=True),
        currency=r.text("currency", required=True),
        **r.texts("name", "checkout_token", "cart_token", "phone"),
        **r.texts("customer_locale", "financial_status"),
        checkout_id=r.ident("checkout_id"),
        email=r.text("email") or r.text("contact_email"),
        buyer_accepts_marketing=r.flag("buyer_accepts_marketing"),
        customer=parse_customer(r.obj("customer")),
        shipping_address=parse_address(r.obj("shipping_address")),
        billing_address=parse_address(r.obj("billing_address")),
        created_at=r.time("created_at"),
        updated_at=r.time("updated_at"),
        raw=r.data,
    )
