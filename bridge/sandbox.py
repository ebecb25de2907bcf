"""A local stand-in for the WhatsApp Cloud API, for the demo, for tests and for trying flows.

It speaks the Cloud API over HTTP (the real ``CloudApiClient`` talks to it) and keeps the
rules that catch mistakes: a bearer token, approved templates with the right parameters
(132001 / 132000), and the 24-hour window (free-form outside it is refused with 131047, as
the real API does). It also plays the customer: ``customer_sends`` posts a signed webhook,
shaped like Meta's, to the bridge, and ``deliver_statuses`` sends the sent/delivered/read
webhooks for what the bridge sent.

Fault mode (off unless asked for, for fault tests): ``fail_rate`` of the API calls get a random
fault, drawn from ``faults`` with a ``seed``ed generator: ``"500"`` (HTTP 500, Graph code 131000,
nothing sent), ``"429"`` (HTTP 429, code 130429, nothing sent) or ``"slow"`` (the message *is*
sent, but the answer comes ``slow_s`` seconds late, after the client gave up). ``delay_s`` delays
every answer (after the message was recorded). ``faults_seen`` lists ``(fault, to)`` as they happen.
"""

from __future__ import annotations

import base64
import itertools
import json
import random
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from flask import Flask, jsonify, request

from connectors.whatsapp.events import sign
from core.clock import Clock
from core import jsonwire
from core.errors import PayloadError, TemplateError
from core.templates import Catalogue, default_catalogue
from bridge.sandbox_templates import TemplateDesk, mount_templates, request_json

__all__ = ["Sandbox", "SentMessage", "create_sandbox_app", "FAULTS"]

WINDOW = timedelta(hours=24)
FAULTS = ("500", "429", "slow")


@dataclass
class SentMessage:
    wamid: str
    to: str
    body: dict[str, Any]
    at: datetime
    statuses: list[str] = field(default_factory=list)


class Sandbox:
    """The sandbox's state: what was sent, who wrote last, which statuses are still owed."""

    def __init__(self, *, clock: Clock, app_secret: str, access_token: str, phone_number_id: str,
                 display_phone: str = "15550001111", waba_id: str = "109876543210001",
                 catalogue: Catalogue | None = None, webhook_url: str | None = None,
                 fail_rate: float = 0.0, seed: int | None = None, faults: tuple[str, ...] = FAULTS,
                 slow_s: float = 2.0, delay_s: float = 0.0) -> None:
        if not 0.0 <= fail_rate <= 1.0 or not set(faults) <= set(FAULTS) or (fail_rate and not faults):
            raise ValueError(f"fail_rate must be in [0, 1] and faults a non-empty subset of {FAULTS}")
        self.clock, self.app_secret, self.access_token = clock, app_secret, access_token
        self.phone_number_id, self.display_phone, self.waba_id = phone_number_id, display_phone, waba_id
        self.catalogue = catalogue or default_catalogue()
        self.webhook_url = webhook_url
        self.sent: list[SentMessage] = []
        self.last_inbound: dict[str, datetime] = {}
        self._ids = itertools.count(1)
        self._run = secrets.token_hex(6)  # this sandbox's own: a restarted one never repeats a wamid
        self._lock = threading.Lock()
        self.fail_rate, self.faults, self.slow_s, self.delay_s = fail_rate, tuple(faults), slow_s, delay_s
        self.faults_seen: list[tuple[str, str]] = []
        self._random = random.Random(seed)
        self.templates = TemplateDesk(self)  # template management and review (bridge/sandbox_templates.py)

    # ------------------------------------------------------------ Cloud API side

    def _wamid(self, prefix: str) -> str:
        """Unique across processes and restarts: the bridge takes a wamid it has stored for a
        duplicate webhook (and drops it), and keeps each sent message's wamid unique."""
        raw = f"{prefix}:{self._run}:{next(self._ids):012d}".encode()
        return "wamid." + base64.b64encode(raw).decode()

    def _fault(self) -> str | None:
        if not self.fail_rate:
            return None
        with self._lock:
            return self._random.choice(self.faults) if self._random.random() < self.fail_rate else None

    def handle_send(self, phone_number_id: str, auth: str | None, body: Any) -> tuple[dict, int]:
        fault = self._fault()
        to = str(body.get("to") or "") if isinstance(body, dict) else ""
        if fault is not None:
            with self._lock:
                self.faults_seen.append((fault, to))
        if fault == "500":
            return _error(131000, "Something went wrong", "sandbox fault: internal error"), 500
        if fault == "429":
            return _error(130429, "Rate limit hit", "sandbox fault: throughput limit reached"), 429
        answer = self._handle_send(phone_number_id, auth, body)
        late = (self.slow_s if fault == "slow" else 0.0) + self.delay_s
        if late > 0:
            time.sleep(late)
        return answer

    def _handle_send(self, phone_number_id: str, auth: str | None, body: Any) -> tuple[dict, int]:
        if auth != f"Bearer {self.access_token}":
            return _error(190, "Invalid OAuth access token", "token missing or wrong"), 401
        if phone_number_id != self.phone_number_id:
            return _error(100, "Invalid parameter", f"unknown phone number id {phone_number_id}"), 400
        if not isinstance(body, dict) or body.get("messaging_product") != "whatsapp":
            return _error(100, "Invalid parameter", "messaging_product must be 'whatsapp'"), 400
        if body.get("status") == "read":
            return {"success": True}, 200
        to = str(body.get("to") or body.get("recipient") or "")
        if not to:
            return _error(100, "Invalid parameter", "missing 'to'"), 400
        problem = self._check(to.lstrip("+"), body)
        if problem is not None:
            return problem
        with self._lock:
            wamid = self._wamid("out")
            self.sent.append(SentMessage(wamid=wamid, to=to, body=body, at=self.clock.now()))
        message: dict[str, Any] = {"id": wamid}
        if body.get("type") == "template":
            message["message_status"] = "accepted"
        return {"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to.lstrip("+")}],
                "messages": [message]}, 200

    def _check(self, wa_id: str, body: dict) -> tuple[dict, int] | None:
        kind = body.get("type")
        if kind == "template":
            return self._check_template(body.get("template") or {})
        if kind not in ("text", "interactive"):
            return _error(131051, "Unsupported message type", f"type {kind!r}"), 400
        text = body.get("text") if kind == "text" else {"body": "interactive"}
        text = text.get("body") if isinstance(text, dict) else None
        if not isinstance(text, str) or not text or len(text) > 4096:
            return _error(100, "Invalid parameter", "text body must be 1 to 4096 characters"), 400
        last = self.last_inbound.get(wa_id)
        if last is None or self.clock.now() >= last + WINDOW:
            return _error(131047, "Re-engagement message", "Message failed to send because more than 24 hours "
                          "have passed since the customer last replied to this number."), 400
        return None

    def _check_template(self, template: dict) -> tuple[dict, int] | None:
        name, language = template.get("name"), (template.get("language") or {}).get("code")
        body_params = sum(len(c.get("parameters") or ()) for c in template.get("components") or ()
                          if c.get("type") == "body")
        submitted = self.templates.check_send(str(name), str(language), body_params)
        if submitted is not False:
            return submitted
        try:
            known = self.catalogue.get(str(name), language)
        except TemplateError:
            return _error(132001, "Template name does not exist in the translation",
                          f"template name ({name}) does not exist in {language}"), 404
        if known.status.value != "APPROVED":
            return _error(132015, "Template is paused", f"template {name} is {known.status.value}"), 400
        given = [p for c in template.get("components") or () if c.get("type") == "body"
                 for p in c.get("parameters") or ()]
        if len(given) != len(known.params):
            return _error(132000, "Number of parameters does not match the expected number of params",
                          f"body: number of localizable_params ({len(given)}) does not match the expected "
                          f"number of params ({len(known.params)})"), 400
        return None

    # ------------------------------------------------------------ the customer's side

    def _envelope(self, field_name: str, value: dict) -> bytes:
        value = {"messaging_product": "whatsapp",
                 "metadata": {"display_phone_number": self.display_phone, "phone_number_id": self.phone_number_id},
                 **value}
        body = {"object": "whatsapp_business_account",
                "entry": [{"id": self.waba_id, "changes": [{"value": value, "field": field_name}]}]}
        return json.dumps(body, ensure_ascii=False).encode()

    def _post(self, body: bytes) -> httpx.Response:
        if not self.webhook_url:
            raise RuntimeError("the sandbox has no webhook URL to deliver to")
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, self.app_secret)}
        return httpx.post(self.webhook_url, content=body, headers=headers, timeout=10)

    def customer_message(self, wa_id: str, name: str, *, text: str | None = None,
                         button: tuple[str, str] | None = None, choice: tuple[str, str] | None = None,
                         media: str | None = None) -> bytes:
        """The webhook body for what a customer does: a text, a tap on a template quick-reply
        (``button`` = payload, label), a tap on a reply button or list row the bot sent
        (``choice`` = id, title), or a photo/voice note/document (``media`` = image, audio, ...)."""
        now = self.clock.now()
        message: dict[str, Any] = {"from": wa_id, "id": self._wamid("in"), "timestamp": str(int(now.timestamp()))}
        replied_to = next((m.wamid for m in reversed(self.sent) if m.to.lstrip("+") == wa_id), None)
        if (button or choice) and replied_to:
            message["context"] = {"from": self.display_phone, "id": replied_to}
        if button is not None:
            message.update(type="button", button={"payload": button[0], "text": button[1]})
        elif choice is not None:
            kind = self._choice_kind(replied_to)
            message.update(type="interactive", interactive={"type": kind, kind: {"id": choice[0], "title": choice[1]}})
        elif media is not None:
            message.update(type=media, **{media: {"id": "1234500000000099", "mime_type": "application/octet-stream",
                                                  "sha256": "0" * 64}})
        else:
            message.update(type="text", text={"body": text or ""})
        with self._lock:
            self.last_inbound[wa_id] = now
        return self._envelope("messages", {"contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
                                           "messages": [message]})

    def _choice_kind(self, wamid: str | None) -> str:
        sent = next((m for m in self.sent if m.wamid == wamid), None)
        interactive = (sent.body.get("interactive") or {}) if sent else {}
        return "list_reply" if interactive.get("type") == "list" else "button_reply"

    def customer_sends(self, wa_id: str, name: str, **kwargs: Any) -> httpx.Response:
        return self._post(self.customer_message(wa_id, name, **kwargs))

    def deliver_statuses(self, upto: str = "read") -> list[httpx.Response]:
        """Send the status webhooks owed for every sent message, up to ``upto`` (sent < delivered < read)."""
        order = ["sent", "delivered", "read"]
        responses = []
        for msg in list(self.sent):
            for state in order[: order.index(upto) + 1]:
                if state in msg.statuses:
                    continue
                msg.statuses.append(state)
                status = {"id": msg.wamid, "status": state, "timestamp": str(int(self.clock.now().timestamp())),
                          "recipient_id": msg.to.lstrip("+")}
                responses.append(self._post(self._envelope("messages", {"statuses": [status]})))
        return responses


def _error(code: int, title: str, details: str) -> dict:
    return {"error": {"message": f"(#{code}) {title}", "type": "OAuthException", "code": code,
                      "error_data": {"messaging_product": "whatsapp", "details": details},
                      "fbtrace_id": "SANDBOX"}}


def customer_input(wa_id: str, raw: bytes) -> dict[str, Any]:
    """The keyword arguments of ``customer_sends`` for a play-a-customer request; PayloadError says
    what is wrong (exactly one of text, button_payload, choice_id; strings only)."""
    if not wa_id.isdigit() or not 6 <= len(wa_id) <= 15:
        raise PayloadError(f"{wa_id[:20]!r} is not a WhatsApp id (6 to 15 digits, no +)")
    data = jsonwire.loads(raw, expect=dict)
    for key, value in data.items():
        if key not in _CUSTOMER_FIELDS:
            raise PayloadError(f"unknown field {key[:40]!r}; allowed: {', '.join(_CUSTOMER_FIELDS)}")
        if not isinstance(value, str):
            raise PayloadError(f"{key}: expected a string")
    given = [k for k in ("text", "button_payload", "choice_id") if data.get(k, "").strip()]
    if len(given) != 1:
        raise PayloadError('expected exactly one of {"text": "..."}, {"button_payload": "..."}, {"choice_id": "..."}')
    button = (data["button_payload"], data.get("button_text", "")) if "button_payload" in given else None
    choice = (data["choice_id"], data.get("choice_title", "")) if "choice_id" in given else None
    return dict(name=data.get("name") or "Customer", text=data.get("text"), button=button, choice=choice)


_CUSTOMER_FIELDS = ("text", "name", "button_payload", "button_text", "choice_id", "choice_title")


def create_sandbox_app(sandbox: Sandbox) -> Flask:
    app = Flask("replyflow-sandbox")

    @app.post("/<version>/<phone_number_id>/messages")
    def send(version: str, phone_number_id: str):
        body, status = sandbox.handle_send(phone_number_id, request.headers.get("Authorization"), request_json())
        return jsonify(body), status

    mount_templates(app, sandbox.templates)

    @app.get("/_sandbox/messages")
    def transcript():
        return jsonify([{"wamid": m.wamid, "to": m.to, "body": m.body, "at": m.at.isoformat(),
                         "statuses": m.statuses} for m in sandbox.sent])

    @app.post("/_sandbox/customers/<wa_id>/messages")
    def customer(wa_id: str):
        try:
            given = customer_input(wa_id, request.get_data(cache=False))
        except PayloadError as exc:
            return jsonify(error=str(exc)), 400
        response = sandbox.customer_sends(wa_id, given.pop("name"), **given)
        return jsonify({"bridge_status": response.status_code}), 200

    @app.post("/_sandbox/statuses/flush")
    def flush():
        return jsonify({"delivered": len(sandbox.deliver_statuses())}), 200

    return app
