"""The Shopify Admin API over HTTP (httpx): the only module of this connector that talks to Shopify.

GraphQL calls go to ``{base}/admin/api/{version}/graphql.json`` with ``X-Shopify-Access-Token``;
``base`` is ``https://{shop}`` unless overridden (tests point it at the local emulator). Errors are
classified: ``RetryableError`` (with ``retry_after``) for throttling, 429, 5xx and network trouble;
``PermanentError`` for a rejected token, a missing shop, a query Shopify refuses, ``userErrors``.

Throttling is cost-based (a leaky bucket per app and shop): a ``THROTTLED`` answer reports the
query's ``requestedQueryCost`` and the bucket's ``currentlyAvailable`` and ``restoreRate``
(points per second), so the wait is ``(requested - available) / restoreRate``. Short waits are
slept here (``sleep`` is injected) and the call retried; a wait beyond ``max_wait`` seconds is
raised as ``RetryableError(retry_after=...)`` for the job runner to schedule.
"""

from __future__ import annotations

__all__ = ["ShopifyClient", "Subscription", "UserErrors", "exchange_code", "shop_base", "throttle_wait"]

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import httpx

from core.errors import PermanentError, RetryableError

_log = logging.getLogger(__name__)
_PERMANENT_STATUS = {400: "bad request", 401: "access token rejected", 402: "shop frozen (payment required)",
                     403: "access denied (missing scope?)", 404: "shop or API version not found",
                     423: "shop locked"}


class UserErrors(PermanentError):
    """A mutation Shopify answered with ``userErrors`` (each ``{field, message}``)."""

    def __init__(self, operation: str, errors: Sequence[Mapping[str, Any]]) -> None:
        self.errors = tuple(errors)
        text = "; ".join(f"{'.'.join(map(str, e.get('field') or []))}: {e.get('message')}" for e in self.errors)
        super().__init__(f"{operation}: {text}")


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    topic: str  # GraphQL enum, e.g. ORDERS_CREATE
    uri: str


def shop_base(shop: str, override: str | None = None) -> str:
    return (override or f"https://{shop}").rstrip("/")


def throttle_wait(extensions: Mapping[str, Any] | None, default: float = 1.0) -> float:
    """Seconds until the bucket holds the query's cost again, from ``extensions.cost``."""
    cost = (extensions or {}).get("cost") or {}
    status = cost.get("throttleStatus") or {}
    try:
        requested = float(cost.get("requestedQueryCost") or 0)
        available = float(status.get("currentlyAvailable") or 0)
        rate = float(status.get("restoreRate") or 0)
    except (TypeError, ValueError):
        return default
    if rate <= 0:
        return default
    return max(requested - available, 1.0) / rate


def _retry_after(response: httpx.Response, default: float) -> float:
    try:
        return max(float(response.headers.get("Retry-After", default)), 0.0)
    except ValueError:
        return default


def _check_status(response: httpx.Response, what: str) -> None:
    code = response.status_code
    if code == 429:
        raise RetryableError(f"{what}: 429 too many requests", retry_after=_retry_after(response, 2.0))
    if code >= 500:
        raise RetryableError(f"{what}: Shopify answered {code}", retry_after=_retry_after(response, 30.0))
    if code in _PERMANENT_STATUS or code >= 400:
        detail = response.text[:200]
        raise PermanentError(f"{what}: {code} {_PERMANENT_STATUS.get(code, 'refused')}: {detail}")


def _network(exc: httpx.TransportError) -> str:
    """What a network failure means to a shop admin, with httpx's name for it."""
    what = ("the shop did not answer in time" if isinstance(exc, httpx.TimeoutException)
            else "cannot connect to the shop" if isinstance(exc, httpx.ConnectError) else "network error")
    return f"{what} ({type(exc).__name__})"


def exchange_code(shop: str, code: str, *, client_id: str, client_secret: str, base_url: str | None = None,
                  timeout: float = 10.0) -> tuple[str, str]:
    """OAuth authorization-code grant: (offline access token, granted scopes)."""
    url = f"{shop_base(shop, base_url)}/admin/oauth/access_token"
    try:
        response = httpx.post(url, json={"client_id": client_id, "client_secret": client_secret, "code": code},
                              timeout=timeout)
    except httpx.TransportError as exc:
        raise RetryableError(f"token exchange with {shop}: {_network(exc)}") from None
    _check_status(response, "token exchange")
    body = response.json()
    token = body.get("access_token") if isinstance(body, dict) else None
    if not token:
        raise PermanentError("token exchange: no access_token in the answer")
    return token, str(body.get("scope") or "")


class ShopifyClient:
    def __init__(self, *, shop: str, token: str, api_version: str, base_url: str | None = None,
                 timeout: float = 10.0, sleep: Callable[[float], None] = time.sleep, max_wait: float = 10.0,
                 max_attempts: int = 5) -> None:
        self.shop = shop
        self.url = f"{shop_base(shop, base_url)}/admin/api/{api_version}/graphql.json"
        self._http = httpx.Client(timeout=timeout, headers={"X-Shopify-Access-Token": token,
                                                            "Content-Type": "application/json"})
        self._sleep, self.max_wait, self.max_attempts = sleep, max_wait, max_attempts
        self.last_cost: Mapping[str, Any] | None = None  # extensions.cost of the last answer

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "ShopifyClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------- the transport

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``data`` of the answer; waits out THROTTLED answers within ``max_wait`` seconds."""
        waited = 0.0
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = self._http.post(self.url, json={"query": query, "variables": dict(variables or {})})
            except httpx.TransportError as exc:
                raise RetryableError(f"Shopify {self.shop}: {_network(exc)}", retry_after=10.0) from None
            _check_status(response, f"Shopify {self.shop}")
            try:
                body = response.json()
            except ValueError:
                raise RetryableError(f"Shopify {self.shop}: the answer is not JSON", retry_after=30.0) from None
            self.last_cost = (body.get("extensions") or {}).get("cost")
            errors = body.get("errors") or []
            codes = {((e.get("extensions") or {}).get("code")) for e in errors if isinstance(e, dict)}
            if "THROTTLED" in codes:
                wait = throttle_wait(body.get("extensions"))
                if waited + wait > self.max_wait or attempt == self.max_attempts:
                    raise RetryableError(f"Shopify {self.shop}: throttled", retry_after=wait)
                _log.info("Shopify %s throttled: waiting %.2f s (attempt %d)", self.shop, wait, attempt)
                self._sleep(wait)
                waited += wait
                continue
            if errors:
                text = "; ".join(str(e.get("message") if isinstance(e, dict) else e) for e in errors)[:300]
                if "INTERNAL_SERVER_ERROR" in codes:
                    raise RetryableError(f"Shopify {self.shop}: {text}", retry_after=30.0)
                raise PermanentError(f"Shopify {self.shop}: {text}")
            return body.get("data") or {}
        raise RetryableError(f"Shopify {self.shop}: throttled", retry_after=1.0)  # not reached

    def _mutation(self, name: str, query: str, variables: Mapping[str, Any]) -> dict[str, Any]:
        result = self.graphql(query, variables).get(name) or {}
        if result.get("userErrors"):
            raise UserErrors(name, result["userErrors"])
        return result

    # -------------------------------------------------------------- operations

    def shop_name(self) -> str:
        return str((self.graphql("query { shop { name myshopifyDomain } }").get("shop") or {}).get("name") or "")

    def subscriptions(self) -> list[Subscription]:
        found: list[Subscription] = []
        after = None
        while True:
            data = self.graphql(
                "query($after: String) { webhookSubscriptions(first: 100, after: $after) {"
                " edges { node { id topic uri } } pageInfo { hasNextPage endCursor } } }", {"after": after})
            page = data.get("webhookSubscriptions") or {}
            found += [Subscription(e["node"]["id"], e["node"]["topic"], e["node"].get("uri") or "")
                      for e in page.get("edges") or []]
            info = page.get("pageInfo") or {}
            if not info.get("hasNextPage"):
                return found
            after = info.get("endCursor")

    def subscribe(self, topic: str, uri: str) -> Subscription:
        result = self._mutation("webhookSubscriptionCreate", (
            "mutation($topic: WebhookSubscriptionTopic!, $webhookSubscription: WebhookSubscriptionInput!) {"
            " webhookSubscriptionCreate(topic: $topic, webhookSubscription: $webhookSubscription) {"
            " webhookSubscription { id topic uri } userErrors { field message } } }"),
            {"topic": topic, "webhookSubscription": {"uri": uri, "format": "JSON"}})
        sub = result["webhookSubscription"]
        return Subscription(sub["id"], sub["topic"], sub.get("uri") or uri)

    def tags_add(self, gid: str, tags: Sequence[str]) -> None:
        """Adds tags; the record's other tags stay (unlike orderUpdate / customerUpdate)."""
        self._mutation("tagsAdd", (
            "mutation($id: ID!, $tags: [String!]!) { tagsAdd(id: $id, tags: $tags) {"
            " node { id } userErrors { field message } } }"), {"id": gid, "tags": list(tags)})

    def metafields_set(self, owner: str, fields: Sequence[tuple[str, str, str, str]]) -> None:
        """Sets ``(namespace, key, type, value)`` metafields on ``owner``; other metafields and the
        merchant's note are untouched."""
        self._mutation("metafieldsSet", (
            "mutation($metafields: [MetafieldsSetInput!]!) { metafieldsSet(metafields: $metafields) {"
            " metafields { id namespace key } userErrors { field message code } } }"),
            {"metafields": [{"ownerId": owner, "namespace": ns, "key": key, "type": kind, "value": value}
                            for ns, key, kind, value in fields]})
