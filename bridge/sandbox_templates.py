"""The sandbox's template management: ``POST`` and ``GET /{waba_id}/message_templates`` as the
Cloud API answers them, and a reviewer a test (or the demo) drives.

A created template is ``PENDING``; ``review(name, language, status, reason=...)`` approves, rejects,
pauses or disables it and, when the sandbox has a webhook URL, posts the signed
``message_template_status_update`` webhook to the bridge, as Meta does. ``quality(...)`` does the
same for ``message_template_quality_update``. Sends of a submitted template are checked against
its reviewed status (132001 not approved, 132015 paused, 132016 disabled) and its body variables.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, jsonify, request

from core import jsonwire
from core.errors import PayloadError

__all__ = ["SandboxTemplate", "TemplateDesk", "mount_templates", "request_json"]

_VAR = re.compile(r"\{\{([^{}]*)\}\}")
_REJECT_INFO = {"INVALID_FORMAT": "Your template has a formatting problem."}


def _error(code: int, title: str, details: str, subcode: int | None = None) -> dict:
    error: dict[str, Any] = {"message": f"(#{code}) {title}", "type": "OAuthException", "code": code,
                             "error_data": {"messaging_product": "whatsapp", "details": details},
                             "fbtrace_id": "SANDBOX"}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


@dataclass
class SandboxTemplate:
    id: str
    name: str
    language: str
    category: str
    components: list[dict[str, Any]]
    status: str = "PENDING"
    quality: str = "UNKNOWN"
    rejected_reason: str = "NONE"
    history: list[str] = field(default_factory=list)

    @property
    def body_variables(self) -> int:
        body = next((c.get("text") or "" for c in self.components if str(c.get("type")).upper() == "BODY"), "")
        return len(dict.fromkeys(_VAR.findall(body)))

    def listed(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "language": self.language, "status": self.status,
                "category": self.category, "quality_score": {"score": self.quality},
                "rejected_reason": self.rejected_reason, "components": self.components}


class TemplateDesk:
    """The account's templates, and the reviewer."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.templates: dict[tuple[str, str], SandboxTemplate] = {}
        self.calls: list[tuple[str, str]] = []  # (method, path) of every management call, for tests
        self._ids = itertools.count(1500000000000101)
        self._lock = threading.Lock()

    def get(self, name: str, language: str) -> SandboxTemplate | None:
        return self.templates.get((name, language.replace("-", "_")))

    # ------------------------------------------------------------ the API

    def _refuse(self, waba_id: str, auth: str | None) -> tuple[dict, int] | None:
        if auth != f"Bearer {self.sandbox.access_token}":
            return _error(190, "Invalid OAuth access token", "token missing or wrong"), 401
        if waba_id != self.sandbox.waba_id:
            return _error(100, "Invalid parameter", f"unknown WhatsApp Business Account {waba_id}"), 400
        return None

    def create(self, waba_id: str, auth: str | None, body: Any) -> tuple[dict, int]:
        self.calls.append(("POST", f"{waba_id}/message_templates"))
        refused = self._refuse(waba_id, auth)
        if refused:
            return refused
        if not isinstance(body, dict) or not all(isinstance(body.get(k), str) for k in ("name", "language", "category")):
            return _error(100, "Invalid parameter", "name, language and category are required"), 400
        components = body.get("components")
        if not isinstance(components, list) or not any(str(c.get("type")).upper() == "BODY" for c in components):
            return _error(100, "Invalid parameter", "components must include exactly one BODY"), 400
        key = (body["name"], body["language"])
        with self._lock:
            if key in self.templates:
                return _error(100, "Invalid parameter", f"Content in this language already exists: "
                                                        f"{body['name']} [{body['language']}]", 2388024), 400
            t = SandboxTemplate(id=str(next(self._ids)), name=key[0], language=key[1],
                                category=body["category"].upper(), components=components)
            self.templates[key] = t
        return {"id": t.id, "status": t.status, "category": t.category}, 200

    def edit(self, template_id: str, auth: str | None, body: Any) -> tuple[dict, int]:
        self.calls.append(("POST", template_id))
        refused = self._refuse(self.sandbox.waba_id, auth)
        if refused:
            return refused
        t = next((t for t in self.templates.values() if t.id == template_id), None)
        if t is None:
            return _error(100, "Invalid parameter", f"Unsupported post request. Object with ID '{template_id}' "
                                                    "does not exist"), 400
        if t.status not in ("APPROVED", "REJECTED", "PAUSED"):
            return _error(100, "Invalid parameter", f"a {t.status} template cannot be edited"), 400
        if not isinstance(body, dict) or not isinstance(body.get("components"), list):
            return _error(100, "Invalid parameter", "components are required"), 400
        t.components, t.status, t.rejected_reason = body["components"], "PENDING", "NONE"
        return {"success": True}, 200

    def listing(self, waba_id: str, auth: str | None, limit: int, after: str | None) -> tuple[dict, int]:
        self.calls.append(("GET", f"{waba_id}/message_templates"))
        refused = self._refuse(waba_id, auth)
        if refused:
            return refused
        items = sorted(self.templates.values(), key=lambda t: int(t.id))
        start = next((i + 1 for i, t in enumerate(items) if t.id == after), 0) if after else 0
        page = items[start:start + limit]
        paging: dict[str, Any] = {"cursors": {"before": page[0].id if page else "", "after": page[-1].id if page else ""}}
        if start + limit < len(items):
            paging["next"] = f"/message_templates?after={page[-1].id}"
        return {"data": [t.listed() for t in page], "paging": paging}, 200

    def check_send(self, name: str, language: str, body_params: int) -> tuple[dict, int] | None | bool:
        """False: not a submitted template (the catalogue decides); None: fine; else the error."""
        t = self.get(name, language)
        if t is None:
            return False
        if t.status == "PAUSED":
            return _error(132015, "Template is Paused", "Template is paused due to low quality so it cannot be "
                                                         "sent in a template message."), 400
        if t.status == "DISABLED":
            return _error(132016, "Template is disabled", "Template has been disabled permanently"), 400
        if t.status != "APPROVED":
            return _error(132001, "Template name does not exist in the translation",
                          f"template name ({name}) does not exist in {language}"), 404
        if body_params != t.body_variables:
            return _error(132000, "Number of parameters does not match the expected number of params",
                          f"body: number of localizable_params ({body_params}) does not match the expected "
                          f"number of params ({t.body_variables})"), 400
        return None

    # ------------------------------------------------------------ the reviewer

    def _webhook(self, field_name: str, t: SandboxTemplate, value: dict[str, Any]) -> Any:
        if not self.sandbox.webhook_url:
            return None
        value = {"message_template_id": int(t.id), "message_template_name": t.name,
                 "message_template_language": t.language, **value}
        entry = {"id": self.sandbox.waba_id, "time": int(self.sandbox.clock.now().timestamp()),
                 "changes": [{"value": value, "field": field_name}]}
        body = json.dumps({"entry": [entry], "object": "whatsapp_business_account"}).encode()
        return self.sandbox._post(body)

    def review(self, name: str, language: str, status: str, *, reason: str = "NONE", info: str | None = None) -> Any:
        """Move a template to ``status`` (APPROVED, REJECTED, PAUSED, DISABLED, REINSTATED ...) and tell the bridge."""
        t = self.get(name, language)
        if t is None:
            raise KeyError(f"no template {name} [{language}] was submitted")
        status = status.upper()
        t.status = "APPROVED" if status == "REINSTATED" else status
        t.rejected_reason = reason if status == "REJECTED" else "NONE"
        t.history.append(status)
        value: dict[str, Any] = {"event": status, "reason": reason, "message_template_category": t.category}
        if status == "REJECTED" and (info or reason in _REJECT_INFO):  # Meta explains INVALID_FORMAT only
            value["rejection_info"] = {"reason": info or _REJECT_INFO.get(reason, reason), "recommendation": "Edit it."}
        elif status in ("PAUSED", "DISABLED"):
            value["other_info"] = {"title": "FIRST_PAUSE" if status == "PAUSED" else "DISABLED",
                                   "description": info or f"Your template has been {status.lower()}."}
        return self._webhook("message_template_status_update", t, value)

    def quality(self, name: str, language: str, score: str) -> Any:
        t = self.get(name, language)
        if t is None:
            raise KeyError(f"no template {name} [{language}] was submitted")
        previous, t.quality = t.quality, score.upper()
        return self._webhook("message_template_quality_update", t,
                             {"previous_quality_score": previous, "new_quality_score": t.quality})


def request_json() -> Any:
    """The request body decoded strictly, or None when it is not JSON (the caller answers as Meta would)."""
    try:
        return jsonwire.loads(request.get_data(cache=False))
    except PayloadError:
        return None


def mount_templates(app: Flask, desk: TemplateDesk) -> None:
    @app.post("/_sandbox/templates/<name>/<language>/review")
    def review(name: str, language: str):
        """Play Meta's reviewer: {"status": "APPROVED" | "REJECTED" | "PAUSED" | ..., "reason": ...};
        the bridge hears it through the same status webhook."""
        given = request_json()
        status = given.get("status") if isinstance(given, dict) else None
        if not isinstance(status, str) or status.upper() not in ("APPROVED", "REJECTED", "PAUSED", "DISABLED",
                                                                   "REINSTATED"):
            return jsonify(error='give {"status": "APPROVED"} (or REJECTED, PAUSED, DISABLED, REINSTATED)'), 400
        try:
            answer = desk.review(name, language, status, reason=str(given.get("reason") or "NONE"))
        except KeyError as exc:
            return jsonify(error=exc.args[0]), 404
        return jsonify(status=status.upper(), bridge_status=getattr(answer, "status_code", None)), 200

    @app.post("/<version>/<waba_id>/message_templates")
    def create_template(version: str, waba_id: str):
        body, status = desk.create(waba_id, request.headers.get("Authorization"), request_json())
        return jsonify(body), status

    @app.post("/<version>/<template_id>")
    def edit_template(version: str, template_id: str):
        body, status = desk.edit(template_id, request.headers.get("Authorization"), request_json())
        return jsonify(body), status

    @app.get("/<version>/<waba_id>/message_templates")
    def list_templates(version: str, waba_id: str):
        limit = max(1, min(int(request.args.get("limit", 25)), 1000))
        body, status = desk.listing(waba_id, request.headers.get("Authorization"), limit, request.args.get("after"))
        return jsonify(body), status
