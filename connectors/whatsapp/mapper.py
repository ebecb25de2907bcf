"""Outbox rows ↔ Cloud API request bodies (golden shapes in tests/fixtures/whatsapp/request_*)."""

from __future__ import annotations

from typing import Any, Mapping

__all__ = ["recipient", "message_body", "mark_read_body"]


def recipient(phone_e164: str | None, user_id: str | None) -> dict[str, str]:
    """``to`` with a + and country code (never bare digits: Meta would prepend our own country),
    or ``recipient`` for a username user known only by business-scoped id."""
    if phone_e164:
        return {"to": phone_e164 if phone_e164.startswith("+") else "+" + phone_e164}
    if user_id:
        return {"recipient": user_id}
    raise ValueError("contact has neither a phone number nor a WhatsApp user id")


def _template(request: Mapping[str, Any]) -> dict[str, Any]:
    params = request.get("params") or {}
    components: list[dict[str, Any]] = []
    if params:
        components.append({"type": "body", "parameters": [
            {"type": "text", "parameter_name": name, "text": value} for name, value in params.items()]})
    for index, (payload, _label) in enumerate(request.get("buttons") or ()):
        components.append({"type": "button", "sub_type": "quick_reply", "index": str(index),
                           "parameters": [{"type": "payload", "payload": payload}]})
    return {"type": "template", "template": {"name": request["template"], "language": {"code": request["language"]},
                                             "components": components}}


def _list(spec: Mapping[str, Any]) -> dict[str, Any]:
    sections = [{**({"title": sec["title"]} if sec.get("title") else {}),
                 "rows": [{k: v for k, v in row.items() if v} for row in sec["rows"]]} for sec in spec["sections"]]
    return {"type": "interactive", "interactive": {"type": "list", "body": {"text": spec["text"]},
                                                   "action": {"button": spec["button"], "sections": sections}}}


def _text(request: Mapping[str, Any]) -> dict[str, Any]:
    if "list" in request:
        return _list(request["list"])
    buttons = request.get("buttons") or ()
    if not buttons:
        return {"type": "text", "text": {"preview_url": True, "body": request["text"]}}
    return {"type": "interactive", "interactive": {
        "type": "button", "body": {"text": request["text"]},
        "action": {"buttons": [{"type": "reply", "reply": {"id": i, "title": t}} for i, t in buttons]}}}


def message_body(request: Mapping[str, Any], *, to: Mapping[str, str], callback_data: str | None = None,
                 reply_to: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual", **to}
    body.update(_template(request) if "template" in request else _text(request))
    if callback_data:
        body["biz_opaque_callback_data"] = callback_data
    if reply_to:
        body["context"] = {"message_id": reply_to}
    return body


def mark_read_body(wamid: str) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "status": "read", "message_id": wamid}
