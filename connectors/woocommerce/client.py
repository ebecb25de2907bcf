"""The WooCommerce REST API v3 (and WooCommerce Bookings v1) through the ``woocommerce`` package:
the only module that talks to a store.

The store URL is configurable (tests point it at the local emulator). Over https the package sends
HTTP Basic auth; over plain http it signs each request with one-legged OAuth 1.0a in the query
string (WooCommerce's rule for non-TLS stores). Answers are mapped to errors by what to do about
them: 429, 5xx and network failures are ``RetryableError`` (with Retry-After when given); other
4xx are ``PermanentError`` naming the status and WooCommerce's error code.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterator, Mapping

import requests
from woocommerce import API

from core.errors import PermanentError, RetryableError

__all__ = ["WooClient", "NotFound"]

PAGE = 100


_NETWORK = {"ConnectionError": "cannot connect to the store", "ConnectTimeout": "the store did not answer in time",
            "ReadTimeout": "the store did not answer in time", "SSLError": "the store's TLS certificate was refused"}


class NotFound(PermanentError):
    """The order, booking or customer does not exist (deleted, or purged like a stale draft)."""


def _retry_after(response: requests.Response) -> float | None:
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None


def _check(response: requests.Response, what: str) -> Any:
    status = response.status_code
    if 200 <= status < 300:
        return response.json() if response.content else None
    try:
        code = (response.json() or {}).get("code", "")
    except ValueError:
        code = ""
    message = f"{what}: WooCommerce answered {status} {code}".strip()
    if status == 429 or status >= 500:
        raise RetryableError(message, retry_after=_retry_after(response))
    if status == 404:
        raise NotFound(message)
    raise PermanentError(message)


class WooClient:
    def __init__(self, url: str, consumer_key: str, consumer_secret: str, *, timeout: float = 10) -> None:
        self.url = url.rstrip("/")
        self._api = API(url=self.url, consumer_key=consumer_key, consumer_secret=consumer_secret,
                        version="wc/v3", timeout=timeout, user_agent="replyflow (woocommerce)")
        self._bookings = API(url=self.url, consumer_key=consumer_key, consumer_secret=consumer_secret,
                             version="wc-bookings/v1", timeout=timeout, user_agent="replyflow (woocommerce)")

    def _call(self, api: API, method: str, endpoint: str, what: str, data: Any = None, **params: Any) -> Any:
        try:
            if method in ("post", "put"):
                response = getattr(api, method)(endpoint, data, params=params or None)
            else:
                response = getattr(api, method)(endpoint, params=params or None)
        except (requests.exceptions.InvalidSchema, requests.exceptions.MissingSchema,
                requests.exceptions.InvalidURL) as exc:
            raise PermanentError(f"{what}: {self.url!r:.80} is not an http(s) store address") from exc
        except requests.RequestException as exc:  # the text would hold the signed URL: name the kind only
            raise RetryableError(f"{what}: {_NETWORK.get(type(exc).__name__, type(exc).__name__)} "
                                 f"({self.url:.80})") from exc
        return _check(response, what)

    # orders
    def orders(self, statuses: tuple[str, ...], modified_after: datetime) -> Iterator[Mapping[str, Any]]:
        """Every order in ``statuses`` modified after ``modified_after`` (UTC), newest first, page by page."""
        after = modified_after.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        page = 1
        while True:
            rows = self._call(self._api, "get", "orders", "list orders", status=",".join(statuses),
                              modified_after=after, dates_are_gmt="true", per_page=PAGE, page=page)
            yield from rows or ()
            if not rows or len(rows) < PAGE:
                return
            page += 1

    def order(self, order_id: str | int) -> Mapping[str, Any]:
        return self._call(self._api, "get", f"orders/{int(order_id)}", f"get order {order_id}")

    def add_private_note(self, order_id: str | int, text: str) -> str:
        """A private order note (``customer_note`` false: the customer is not emailed); its id."""
        note = self._call(self._api, "post", f"orders/{int(order_id)}/notes", f"note on order {order_id}",
                          {"note": text, "customer_note": False, "added_by_user": False})
        return str(note["id"])

    # customers
    def customer(self, customer_id: str | int) -> Mapping[str, Any]:
        return self._call(self._api, "get", f"customers/{int(customer_id)}", f"get customer {customer_id}")

    # webhooks
    def webhooks(self) -> list[Mapping[str, Any]]:
        return list(self._call(self._api, "get", "webhooks", "list webhooks", status="all", per_page=PAGE) or ())

    def create_webhook(self, name: str, topic: str, delivery_url: str, secret: str) -> Mapping[str, Any]:
        return self._call(self._api, "post", "webhooks", f"create webhook {topic}",
                          {"name": name, "topic": topic, "delivery_url": delivery_url, "secret": secret,
                           "status": "active"})

    def update_webhook(self, webhook_id: int, **fields: Any) -> Mapping[str, Any]:
        return self._call(self._api, "put", f"webhooks/{int(webhook_id)}", f"update webhook {webhook_id}", fields)

    # WooCommerce Bookings
    def bookings(self) -> Iterator[Mapping[str, Any]]:
        """Every booking, newest first, page by page (the Bookings API has no date filter)."""
        page = 1
        while True:
            rows = self._call(self._bookings, "get", "bookings", "list bookings", per_page=PAGE, page=page)
            yield from rows or ()
            if not rows or len(rows) < PAGE:
                return
            page += 1

    def booking(self, booking_id: str | int) -> Mapping[str, Any]:
        return self._call(self._bookings, "get", f"bookings/{int(booking_id)}", f"get booking {booking_id}")

    def booking_with_buyer(self, booking_id: str | int) -> dict[str, Any]:
        """The booking, the order that paid for it (or, without one, the customer): who to remind."""
        booking = dict(self.booking(booking_id))
        order = self.order(booking["order_id"]) if booking.get("order_id") else None
        customer = self.customer(booking["customer_id"]) if not order and booking.get("customer_id") else None
        return {"booking": booking, "order": order, "customer": customer}

    def update_booking(self, booking_id: str | int, **fields: Any) -> Mapping[str, Any]:
        return self._call(self._bookings, "put", f"bookings/{int(booking_id)}", f"update booking {booking_id}",
                          fields)

    def close(self) -> None:
        """Nothing held today: the ``woocommerce`` package opens and closes a ``requests`` session per
        call. Callers close the client anyway (``with WooClient(...) as client``), so a client that
        keeps connections alive between calls needs no change to them."""

    def __enter__(self) -> "WooClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
