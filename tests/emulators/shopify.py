"""A local stand-in for one shop's Shopify Admin API, served on loopback for tests.

It speaks what replyflow's Shopify client uses, in Shopify's shapes:

- ``POST /admin/oauth/access_token`` exchanges an authorization code (issued with ``grant``)
  for an offline token, checking ``client_id`` / ``client_secret``; a code works once.
- ``POST /admin/api/<version>/graphql.json`` with ``X-Shopify-Access-Token`` answers the
  operations by name: ``shop``, ``webhookSubscriptions``, ``webhookSubscriptionCreate``,
  ``webhookSubscriptionDelete``, ``tagsAdd``, ``metafieldsSet``. Every answer carries
  ``extensions.cost`` (requestedQueryCost, actualQueryCost, throttleStatus); mistakes come back as
  ``userErrors`` (HTTP 200), a bad token as HTTP 401 ``{"errors": "[API] Invalid API key or access
  token ..."}``, as Shopify does.
- ``throttle(n)`` makes the next ``n`` GraphQL calls answer ``THROTTLED`` (HTTP 200, top-level
  ``errors`` with ``extensions.code``), with ``currentlyAvailable`` below the query's cost.

State for assertions: ``subscriptions`` (id -> {topic, uri}), ``tags`` (gid -> set),
``metafields`` (gid -> {namespace.key: {type, value}}), ``calls`` (operation names in order),
``tokens`` (valid access tokens).

It is not a GraphQL server: an operation is recognised by the first known field name in the
query text, and its arguments are read from ``variables`` (which is how replyflow's client sends
them).
"""

from __future__ import annotations

import itertools
import re
import secrets
import threading
from typing import Any, Callable

from flask import Flask, jsonify, request

__all__ = ["ShopifyEmulator", "create_shopify_app", "TOPICS"]

# WebhookSubscriptionTopic values the emulator accepts (a subset of Shopify's enum)
TOPICS = {"CHECKOUTS_CREATE", "CHECKOUTS_UPDATE", "CHECKOUTS_DELETE", "ORDERS_CREATE", "ORDERS_PAID",
          "CUSTOMERS_CREATE", "CUSTOMERS_UPDATE", "APP_UNINSTALLED", "CUSTOMERS_MARKETING_CONSENT_UPDATE"}
_OPERATIONS = ("webhookSubscriptionCreate", "webhookSubscriptionDelete", "webhookSubscriptions", "tagsAdd",
               "metafieldsSet", "shop")
_GID = re.compile(r"^gid://shopify/(Order|Customer)/[0-9]+$")
_COST = {"webhookSubscriptionCreate": 10, "webhookSubscriptionDelete": 10, "webhookSubscriptions": 12,
         "tagsAdd": 10, "metafieldsSet": 10, "shop": 1}
MAXIMUM_AVAILABLE, RESTORE_RATE = 2000.0, 100.0


class ShopifyEmulator:
    def __init__(self, *, shop: str = "lumen-tea-co.myshopify.com", client_id: str = "test-client-id",
                 client_secret: str = "test-shopify-client-secret") -> None:
        self.shop, self.client_id, self.client_secret = shop, client_id, client_secret
        self.codes: dict[str, str] = {}  # authorization code -> scopes granted
        self.tokens: set[str] = set()
        self.subscriptions: dict[str, dict[str, str]] = {}
        self.tags: dict[str, set[str]] = {}
        self.metafields: dict[str, dict[str, dict[str, str]]] = {}
        self.calls: list[str] = []
        self.throttled = 0
        self.on_call: list[Callable[[str, str], None]] = []  # run with (method, path) while a call is answered
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    # -------------------------------------------------------------- driving it from a test

    def grant(self, scopes: str) -> str:
        """An authorization code, as Shopify gives the app's callback after the merchant approves."""
        code = secrets.token_hex(16)
        self.codes[code] = scopes
        return code

    def add_token(self, token: str) -> None:
        """A custom app's Admin API access token, created by the merchant in the admin."""
        self.tokens.add(token)

    def throttle(self, times: int) -> None:
        self.throttled = times

    def drop_subscription(self, topic: str) -> None:
        """What Shopify does after repeated delivery failures to an Admin-API subscription."""
        for sub_id, sub in list(self.subscriptions.items()):
            if sub["topic"] == topic:
                del self.subscriptions[sub_id]

    def topics(self) -> set[str]:
        return {s["topic"] for s in self.subscriptions.values()}

    # -------------------------------------------------------------- the API

    def _cost(self, op: str, available: float | None = None) -> dict[str, Any]:
        cost = _COST[op]
        throttled = available is not None
        return {"cost": {
            "requestedQueryCost": cost, "actualQueryCost": None if throttled else cost,
            "throttleStatus": {"maximumAvailable": MAXIMUM_AVAILABLE,
                               "currentlyAvailable": available if throttled else MAXIMUM_AVAILABLE - cost,
                               "restoreRate": RESTORE_RATE}}}

    def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        op = next((name for name in _OPERATIONS if re.search(rf"\b{name}\b", query)), None)
        if op is None:
            return {"errors": [{"message": "Field doesn't exist on type 'QueryRoot'",
                                "extensions": {"code": "undefinedField"}}]}
        with self._lock:
            self.calls.append(op)
            if self.throttled:
                self.throttled -= 1
                return {"errors": [{"message": "Throttled", "extensions": {
                    "code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
                        "extensions": self._cost(op, available=4.0)}
            data = getattr(self, f"_{op}")(variables)
        return {"data": {op: data}, "extensions": self._cost(op)}

    def _shop(self, v: dict) -> dict:
        return {"name": "Lumen Tea Co.", "myshopifyDomain": self.shop}

    def _webhookSubscriptions(self, v: dict) -> dict:
        return {"edges": [{"node": {"id": i, "topic": s["topic"], "uri": s["uri"]}}
                          for i, s in self.subscriptions.items()],
                "pageInfo": {"hasNextPage": False, "endCursor": None}}

    def _webhookSubscriptionCreate(self, v: dict) -> dict:
        topic, sub = v.get("topic"), v.get("webhookSubscription") or {}
        uri = sub.get("uri") or ""
        errors = []
        if topic not in TOPICS:
            errors.append({"field": ["topic"], "message": f"Topic {topic!r} is not valid"})
        if not uri.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            errors.append({"field": ["webhookSubscription", "uri"], "message": "Address is invalid"})
        if any(s["topic"] == topic and s["uri"] == uri for s in self.subscriptions.values()):
            errors.append({"field": ["webhookSubscription", "uri"],
                           "message": "Address for this topic has already been taken"})
        if errors:
            return {"webhookSubscription": None, "userErrors": errors}
        sub_id = f"gid://shopify/WebhookSubscription/{next(self._ids)}"
        self.subscriptions[sub_id] = {"topic": topic, "uri": uri}
        return {"webhookSubscription": {"id": sub_id, "topic": topic, "uri": uri}, "userErrors": []}

    def _webhookSubscriptionDelete(self, v: dict) -> dict:
        sub_id = v.get("id")
        if self.subscriptions.pop(sub_id, None) is None:
            return {"deletedWebhookSubscriptionId": None,
                    "userErrors": [{"field": ["id"], "message": "Webhook subscription does not exist"}]}
        return {"deletedWebhookSubscriptionId": sub_id, "userErrors": []}

    def _tagsAdd(self, v: dict) -> dict:
        gid, tags = v.get("id") or "", v.get("tags") or []
        if not _GID.match(gid):
            return {"node": None, "userErrors": [{"field": ["id"], "message": "Invalid global id"}]}
        if not tags or any(not isinstance(t, str) or not t.strip() or len(t) > 255 for t in tags):
            return {"node": None, "userErrors": [{"field": ["tags"], "message": "Tags are invalid"}]}
        self.tags.setdefault(gid, set()).update(t.strip() for t in tags)
        return {"node": {"id": gid}, "userErrors": []}

    def _metafieldsSet(self, v: dict) -> dict:
        out, errors = [], []
        for i, m in enumerate(v.get("metafields") or []):
            owner = m.get("ownerId") or ""
            if not _GID.match(owner):
                errors.append({"field": ["metafields", str(i), "ownerId"], "message": "Owner does not exist",
                               "code": "INVALID"})
                continue
            if not m.get("namespace") or not m.get("key") or not m.get("type") or m.get("value") is None:
                errors.append({"field": ["metafields", str(i)], "message": "namespace, key, type and value are required",
                               "code": "BLANK"})
                continue
            self.metafields.setdefault(owner, {})[f"{m['namespace']}.{m['key']}"] = {"type": m["type"],
                                                                                     "value": m["value"]}
            out.append({"id": f"gid://shopify/Metafield/{next(self._ids)}", "namespace": m["namespace"],
                        "key": m["key"], "value": m["value"]})
        return {"metafields": [] if errors else out, "userErrors": errors}


def create_shopify_app(emu: ShopifyEmulator) -> Flask:
    app = Flask("shopify-emulator")

    @app.before_request
    def watched():
        for watcher in emu.on_call:
            watcher(request.method, request.path)

    @app.post("/admin/oauth/access_token")
    def access_token():
        body = request.get_json(silent=True) or request.form.to_dict()
        if body.get("client_id") != emu.client_id or body.get("client_secret") != emu.client_secret:
            return jsonify(error="invalid_client", error_description="Client credentials are invalid"), 400
        scopes = emu.codes.pop(body.get("code") or "", None)
        if scopes is None:
            return jsonify(error="invalid_request",
                           error_description="The authorization code was not found or was already used"), 400
        token = f"shpat_{secrets.token_hex(16)}"
        emu.tokens.add(token)
        return jsonify(access_token=token, scope=scopes)

    @app.post("/admin/api/<version>/graphql.json")
    def graphql(version: str):
        if request.headers.get("X-Shopify-Access-Token") not in emu.tokens:
            return jsonify(errors="[API] Invalid API key or access token (unrecognized login or wrong password)"), 401
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return jsonify(errors={"query": "Required parameter missing or invalid"}), 400
        return jsonify(emu.graphql(body["query"], body.get("variables") or {}))

    return app
