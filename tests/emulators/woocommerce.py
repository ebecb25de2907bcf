"""A local WooCommerce store for tests: the REST API v3 surface replyflow uses, its webhooks, and the
``/wc-auth/v1/authorize`` key exchange, served on loopback by a threaded werkzeug server.

What it does the way WooCommerce does (see /work/shared/platform-notes/shops-and-crms.md, section 2):
- auth: over plain http the ``woocommerce`` package signs every request with one-legged OAuth 1.0a
  (query parameters, HMAC-SHA256, the consumer secret + "&" as key); the store recomputes that
  signature the way ``WC_REST_Authentication::check_oauth_signature`` does (sorted, normalised
  parameters; last value wins for a repeated one) and refuses a stale timestamp or a reused nonce.
  HTTP Basic (what https uses) is accepted too. Wrong or missing credentials: 401.
- orders: list (``status`` comma list, ``modified_after`` in site time or GMT with
  ``dates_are_gmt``, ``per_page``/``page``), get, update (bumps ``date_modified``, sends
  ``order.updated``); notes: create (``customer_note`` false = private, author ``system``), list.
- webhooks: create (sends the unsigned form-encoded ping ``webhook_id=N`` to the delivery URL at
  once, and records what came back), list, update; deliveries are signed
  ``base64(HMAC-SHA256(secret, body))`` over a body encoded like PHP's ``json_encode`` (``\\/``,
  ``\\uXXXX``), with a fresh delivery id every time and no retry; more than 5 failures in a row
  disable the webhook.
- customers get; WooCommerce Bookings ``wc-bookings/v1/bookings`` list, ``/<id>`` get/update.
- ``GET /wc-auth/v1/authorize``: the store admin approves at once; the keys are POSTed as JSON to
  ``callback_url`` and the browser is redirected to ``return_url``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from datetime import datetime, timedelta
from typing import Any, Callable
from urllib.parse import quote, unquote, urlencode

import httpx
from flask import Flask, jsonify, redirect, request

from bridge.servers import ServerThread

__all__ = ["WooStore", "php_json", "wc_sign"]

SITE_OFFSET = timedelta(hours=-6)  # the fixtures' site timezone
OAUTH_WINDOW = 15 * 60
_AGENT = "WooCommerce/10.3.0 Hookshot (WordPress/6.8.3)"


def php_json(value: Any) -> bytes:
    """``wp_json_encode`` with PHP's default flags: ``/`` escaped, non-ASCII as \\uXXXX, compact."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/").encode()


def wc_sign(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def _wc_date(at: datetime) -> tuple[str, str]:
    """(site-local, GMT) strings as WooCommerce serialises them."""
    return (at + SITE_OFFSET).strftime("%Y-%m-%dT%H:%M:%S"), at.strftime("%Y-%m-%dT%H:%M:%S")


def _rfc3986(text: str) -> str:
    return quote(text, safe="~-._")


class WooStore:
    """The store's state plus the app serving it. ``clock`` (anything with ``now()``) stamps changes."""

    def __init__(self, clock, *, keys: dict[str, str] | None = None) -> None:
        self.clock = clock
        self.keys: dict[str, str] = dict(keys or {})  # consumer key -> consumer secret
        self.orders: dict[int, dict] = {}
        self.notes: dict[int, list[dict]] = {}
        self.customers: dict[int, dict] = {}
        self.bookings: dict[int, dict] = {}
        self.webhooks: dict[int, dict] = {}
        self.pings: list[tuple[int, int]] = []  # (webhook id, status the delivery URL answered)
        self.deliveries: list[dict] = []  # every webhook delivery: topic, webhook id, status
        self.authorized: list[dict] = []  # what /wc-auth/v1/authorize sent to callbacks
        self.requests: list[tuple[str, str]] = []  # (method, path) of authenticated API calls
        self.order_queries: list[dict[str, str]] = []  # the filters of each orders list call
        self.throttle: list[int] = []  # statuses to answer the next API calls with (429 with Retry-After: 7)
        self.on_call: list[Callable[[str, str], None]] = []  # run with (method, path) while a call is answered
        self._ids = iter(range(3391, 10**6))
        self._nonces: set[str] = set()
        self._lock = threading.Lock()
        self.server = ServerThread(self._app())
        self.url = self.server.url

    # ------------------------------------------------------------------ state helpers for tests

    def put_order(self, order: dict, *, topic: str | None = "order.updated", touch: bool = True) -> dict:
        """Store (or replace) an order as the shop saving it; deliver ``topic`` to its webhooks."""
        order = json.loads(json.dumps(order))
        if touch:
            order["date_modified"], order["date_modified_gmt"] = _wc_date(self.clock.now())
        self.orders[int(order["id"])] = order
        if topic:
            self.deliver(topic, order)
        return order

    def private_notes(self, order_id: int) -> list[str]:
        return [n["note"] for n in self.notes.get(int(order_id), []) if not n["customer_note"]]

    def deliver(self, topic: str, payload: dict) -> list[int]:
        """Send ``payload`` to every active webhook for ``topic`` the way WC_Webhook::deliver does."""
        body, statuses = php_json(payload), []
        resource, _, event = topic.partition(".")
        for hook in list(self.webhooks.values()):
            if hook["topic"] != topic or hook["status"] != "active":
                continue
            headers = {"Content-Type": "application/json", "User-Agent": _AGENT,
                       "X-WC-Webhook-Source": f"{self.url}/", "X-WC-Webhook-Topic": topic,
                       "X-WC-Webhook-Resource": resource, "X-WC-Webhook-Event": event,
                       "X-WC-Webhook-Signature": wc_sign(body, hook["secret"]),
                       "X-WC-Webhook-ID": str(hook["id"]), "X-WC-Webhook-Delivery-ID": secrets.token_hex(16)}
            try:
                status = httpx.post(hook["delivery_url"], content=body, headers=headers, timeout=10).status_code
            except httpx.HTTPError:
                status = 0
            ok = 200 <= status < 303
            hook["failure_count"] = 0 if ok else hook["failure_count"] + 1
            if hook["failure_count"] > 5:
                hook["status"] = "disabled"
            self.deliveries.append({"topic": topic, "webhook_id": hook["id"], "status": status})
            statuses.append(status)
        return statuses

    def close(self) -> None:
        self.server.stop()

    # ------------------------------------------------------------------ auth

    def _oauth_ok(self) -> bool:
        params: dict[str, str] = {}
        for key, value in request.args.items(multi=True):
            params[key] = value  # PHP's $_GET: the last of a repeated name wins
        signature = params.pop("oauth_signature", None)
        key = params.get("oauth_consumer_key")
        if not signature or key not in self.keys:
            return False
        method = params.get("oauth_signature_method", "")
        if method not in ("HMAC-SHA1", "HMAC-SHA256"):
            return False
        if abs(time.time() - int(params.get("oauth_timestamp", "0"))) > OAUTH_WINDOW:
            return False
        nonce = f"{key}:{params.get('oauth_nonce')}:{params.get('oauth_timestamp')}"
        base_uri = _rfc3986(f"{request.scheme}://{request.host}{request.path}")
        normal = {_rfc3986(unquote(k)).replace("%", "%25"): _rfc3986(unquote(v)).replace("%", "%25")
                  for k, v in params.items()}
        query = "%26".join(f"{k}%3D{normal[k]}" for k in sorted(normal))
        digest = hashlib.sha256 if method == "HMAC-SHA256" else hashlib.sha1
        expected = base64.b64encode(hmac.new(f"{self.keys[key]}&".encode(),
                                             f"{request.method}&{base_uri}&{query}".encode(), digest).digest()).decode()
        if not hmac.compare_digest(expected, signature.replace(" ", "+")):
            return False
        with self._lock:
            if nonce in self._nonces:
                return False
            self._nonces.add(nonce)
        return True

    def _authenticated(self) -> bool:
        auth = request.authorization
        if auth is not None and auth.type == "basic":
            return self.keys.get(auth.username or "") == auth.password
        return self._oauth_ok()

    # ------------------------------------------------------------------ the app

    def _app(self) -> Flask:
        app = Flask("woocommerce-emulator")
        store = self

        def err(status: int, code: str, message: str):
            return jsonify(code=code, message=message, data={"status": status}), status

        @app.before_request
        def check_auth():
            if request.path.startswith("/wp-json/"):
                if not store._authenticated():
                    return err(401, "woocommerce_rest_authentication_error", "Invalid signature - provided "
                                    "signature does not match.")
                store.requests.append((request.method, request.path))
                for watcher in store.on_call:
                    watcher(request.method, request.path)
                if store.throttle:
                    status = store.throttle.pop(0)
                    response = err(status, "woocommerce_rest_too_many_requests" if status == 429 else "internal_error",
                                   "Slow down.")
                    response[0].headers["Retry-After"] = "7"
                    return response
            return None

        def now_dates() -> tuple[str, str]:
            return _wc_date(store.clock.now())

        @app.get("/wp-json/wc/v3/orders")
        def list_orders():
            store.order_queries.append({k: v for k, v in request.args.items() if not k.startswith("oauth_")})
            wanted = {s for s in request.args.get("status", "any").split(",") if s}
            after = request.args.get("modified_after")
            gmt = request.args.get("dates_are_gmt") in ("1", "true")
            rows = sorted(store.orders.values(), key=lambda o: o["id"], reverse=True)
            if wanted and "any" not in wanted:
                rows = [o for o in rows if o["status"] in wanted]
            if after:
                field = "date_modified_gmt" if gmt else "date_modified"
                rows = [o for o in rows if o[field] > after[:19]]
            per_page, page = int(request.args.get("per_page", 10)), int(request.args.get("page", 1))
            chunk = rows[(page - 1) * per_page: page * per_page]
            response = jsonify(chunk)
            response.headers["X-WP-Total"] = str(len(rows))
            response.headers["X-WP-TotalPages"] = str(max(1, -(-len(rows) // per_page)))
            return response

        @app.get("/wp-json/wc/v3/orders/<int:order_id>")
        def get_order(order_id: int):
            order = store.orders.get(order_id)
            return jsonify(order) if order else err(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")

        @app.put("/wp-json/wc/v3/orders/<int:order_id>")
        def update_order(order_id: int):
            if order_id not in store.orders:
                return err(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
            order = {**store.orders[order_id], **(request.get_json(silent=True) or {})}
            return jsonify(store.put_order(order))

        @app.post("/wp-json/wc/v3/orders/<int:order_id>/notes")
        def add_note(order_id: int):
            if order_id not in store.orders:
                return err(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
            body = request.get_json(silent=True) or {}
            if not str(body.get("note") or "").strip():
                return err(400, "rest_missing_callback_param", "Missing parameter(s): note")
            local, gmt = now_dates()
            note = {"id": next(store._ids), "author": "system" if not body.get("added_by_user") else "admin",
                    "date_created": local, "date_created_gmt": gmt, "note": body["note"],
                    "customer_note": bool(body.get("customer_note", False))}
            store.notes.setdefault(order_id, []).append(note)
            return jsonify(note), 201

        @app.get("/wp-json/wc/v3/orders/<int:order_id>/notes")
        def list_notes(order_id: int):
            return jsonify(list(reversed(store.notes.get(order_id, []))))

        @app.get("/wp-json/wc/v3/customers/<int:customer_id>")
        def get_customer(customer_id: int):
            customer = store.customers.get(customer_id)
            return jsonify(customer) if customer else err(404, "woocommerce_rest_invalid_id", "Invalid resource ID.")

        @app.get("/wp-json/wc/v3/webhooks")
        def list_webhooks():
            status = request.args.get("status")
            rows = [{k: v for k, v in h.items() if k != "secret"} for h in store.webhooks.values()
                    if status in (None, "all", h["status"])]
            return jsonify(rows)

        @app.post("/wp-json/wc/v3/webhooks")
        def create_webhook():
            body = request.get_json(silent=True) or {}
            if not body.get("topic") or not body.get("delivery_url"):
                return err(400, "rest_missing_callback_param", "Missing parameter(s): topic, delivery_url")
            hook_id = max(store.webhooks, default=40) + 1
            hook = {"id": hook_id, "name": body.get("name", ""), "topic": body["topic"],
                    "delivery_url": body["delivery_url"], "status": body.get("status", "active"),
                    "secret": body.get("secret") or hashlib.md5(b"1|admin").hexdigest(), "failure_count": 0}
            store.webhooks[hook_id] = hook
            store._ping(hook)
            return jsonify({k: v for k, v in hook.items() if k != "secret"}), 201

        @app.put("/wp-json/wc/v3/webhooks/<int:hook_id>")
        def update_webhook(hook_id: int):
            hook = store.webhooks.get(hook_id)
            if hook is None:
                return err(404, "woocommerce_rest_webhook_invalid_id", "Invalid ID.")
            body = request.get_json(silent=True) or {}
            hook.update({k: body[k] for k in ("name", "topic", "delivery_url", "status", "secret") if k in body})
            if body.get("status") == "active":
                hook["failure_count"] = 0
            return jsonify({k: v for k, v in hook.items() if k != "secret"})

        @app.get("/wp-json/wc-bookings/v1/bookings")
        def list_bookings():
            per_page, page = int(request.args.get("per_page", 10)), int(request.args.get("page", 1))
            rows = sorted(store.bookings.values(), key=lambda b: b["id"], reverse=True)
            return jsonify(rows[(page - 1) * per_page: page * per_page])

        @app.get("/wp-json/wc-bookings/v1/bookings/<int:booking_id>")
        def get_booking(booking_id: int):
            booking = store.bookings.get(booking_id)
            return jsonify(booking) if booking else err(404, "woocommerce_rest_invalid_id", "Invalid ID.")

        @app.put("/wp-json/wc-bookings/v1/bookings/<int:booking_id>")
        def update_booking(booking_id: int):
            booking = store.bookings.get(booking_id)
            if booking is None:
                return err(404, "woocommerce_rest_invalid_id", "Invalid ID.")
            booking.update(request.get_json(silent=True) or {})
            booking["date_modified"] = int(store.clock.now().timestamp())
            return jsonify(booking)

        @app.get("/wc-auth/v1/authorize")
        def authorize():
            args = request.args
            missing = [k for k in ("app_name", "scope", "user_id", "return_url", "callback_url") if not args.get(k)]
            if missing:
                return err(400, "woocommerce_rest_auth_missing_parameter", f"Missing parameter {missing[0]}")
            key, secret = f"ck_{secrets.token_hex(20)}", f"cs_{secrets.token_hex(20)}"
            store.keys[key] = secret
            payload = {"key_id": len(store.keys), "user_id": args["user_id"], "consumer_key": key,
                       "consumer_secret": secret, "key_permissions": args["scope"]}
            answer = httpx.post(args["callback_url"], json=payload, timeout=30)
            store.authorized.append({**payload, "callback_status": answer.status_code})
            if answer.status_code != 200:  # WooCommerce shows an error and revokes the key
                store.keys.pop(key, None)
                return err(401, "woocommerce_rest_cannot_create_api_keys",
                           f"An error occurred in the request and at the time were unable to send the consumer "
                           f"data (callback answered {answer.status_code})")
            sep = "&" if "?" in args["return_url"] else "?"
            return redirect(f"{args['return_url']}{sep}{urlencode({'success': 1, 'user_id': args['user_id']})}")

        return app

    def _ping(self, hook: dict) -> None:
        try:
            status = httpx.post(hook["delivery_url"], content=f"webhook_id={hook['id']}".encode(), timeout=10,
                                headers={"Content-Type": "application/x-www-form-urlencoded",
                                         "User-Agent": _AGENT}).status_code
        except httpx.HTTPError:
            status = 0
        self.pings.append((hook["id"], status))
