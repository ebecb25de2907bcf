"""Checked access into decoded webhook JSON, and per-message-type content extraction
(private to ``connectors.whatsapp.events``).

Every accessor either returns a value of the promised type or raises ``PayloadError`` naming
the path that is wrong, so no KeyError/TypeError/AttributeError can escape the parser.
"""

from __future__ import annotations

__all__ = [
    "MAX_BODY_BYTES",
    "load_json",
    "canonical_hash",
    "obj",
    "opt_obj",
    "opt_list",
    "req_list",
    "opt_str",
    "req_str",
    "timestamp",
    "epoch",
    "api_errors",
    "Content",
    "content",
    "context_id",
]

import hashlib
import json
import math
from datetime import datetime, timezone
from typing import Any, Callable, NamedTuple

from core import jsonwire
from core.errors import PayloadError
from core.events import ApiError

MAX_BODY_BYTES = 3 * 1024 * 1024  # Meta: webhook payloads are at most 3 MB


def load_json(raw: bytes | bytearray | memoryview | str) -> Any:
    """Decode a webhook body; PayloadError when it is too big or not JSON (``core.jsonwire``)."""
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadError("body larger than 3 MB")
    return jsonwire.loads(raw)


def canonical_hash(value: Any) -> str:
    """sha256 hex of the canonical JSON (sorted keys, compact, ASCII) of ``value``."""
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    except (ValueError, TypeError, RecursionError) as exc:
        raise PayloadError(f"value cannot be canonicalised ({type(exc).__name__})") from None
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(f"{where} is not an object")
    return value


def opt_obj(parent: dict[str, Any], key: str, where: str) -> dict[str, Any] | None:
    value = parent.get(key)
    return None if value is None else obj(value, f"{where}.{key}")


def opt_list(parent: dict[str, Any], key: str, where: str) -> list[Any]:
    value = parent.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise PayloadError(f"{where}.{key} is not a list")
    return value


def req_list(parent: dict[str, Any], key: str, where: str) -> list[Any]:
    if parent.get(key) is None:
        raise PayloadError(f"{where} has no {key}")
    return opt_list(parent, key, where)


def opt_str(parent: dict[str, Any], key: str, where: str) -> str | None:
    """A string field; integers (ids sent as numbers) become strings."""
    value = parent.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise PayloadError(f"{where}.{key} is not a string: {_short(value)}")


def req_str(parent: dict[str, Any], key: str, where: str) -> str:
    value = opt_str(parent, key, where)
    if not value:
        raise PayloadError(f"{where} has no {key}")
    return value


def _number(value: Any, where: str) -> float | int:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number: float | int = value
    elif isinstance(value, str):
        try:
            number = int(value)
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                raise PayloadError(f"{where} is not numeric: {_short(value)}") from None
    else:
        raise PayloadError(f"{where} is not numeric: {_short(value)}")
    if isinstance(number, float) and not math.isfinite(number):
        raise PayloadError(f"{where} is not a finite number")
    return number


def timestamp(parent: dict[str, Any], key: str, where: str) -> datetime:
    """Unix seconds (string or integer) as an aware UTC datetime."""
    if parent.get(key) is None:
        raise PayloadError(f"{where} has no {key}")
    number = _number(parent[key], f"{where}.{key}")
    try:
        return datetime.fromtimestamp(number, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise PayloadError(f"{where}.{key} is out of range") from None


def epoch(moment: datetime) -> str:
    """Whole Unix seconds as text, for dedupe keys."""
    return str(int(moment.timestamp()))


def _code(value: Any, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise PayloadError(f"{where} is not an integer error code")


def api_errors(items: list[Any], where: str) -> tuple[ApiError, ...]:
    """``errors[]`` objects (code, title|message, error_data.details) as ApiError values."""
    out = []
    for i, item in enumerate(items):
        here = f"{where}[{i}]"
        error = obj(item, here)
        if error.get("code") is None:
            raise PayloadError(f"{here} has no code")
        data = opt_obj(error, "error_data", here) or {}
        title = opt_str(error, "title", here) or opt_str(error, "message", here) or ""
        details = opt_str(data, "details", f"{here}.error_data") or ""
        out.append(ApiError(code=_code(error["code"], f"{here}.code"), title=title, details=details))
    return tuple(out)


# ---------------------------------------------------------------- inbound message content


class Content(NamedTuple):
    text: str | None = None
    reply_id: str | None = None
    media_id: str | None = None


def _text(p: dict[str, Any], where: str) -> Content:
    return Content(text=opt_str(p, "body", where))


def _media(p: dict[str, Any], where: str) -> Content:
    return Content(text=opt_str(p, "caption", where), media_id=opt_str(p, "id", where))


def _button(p: dict[str, Any], where: str) -> Content:
    return Content(text=opt_str(p, "text", where), reply_id=opt_str(p, "payload", where))


def _reaction(p: dict[str, Any], where: str) -> Content:
    return Content(text=opt_str(p, "emoji", where))


def _order(p: dict[str, Any], where: str) -> Content:
    return Content(text=opt_str(p, "text", where))


def _location(p: dict[str, Any], where: str) -> Content:
    return Content(text=opt_str(p, "name", where))


def _reply(p: dict[str, Any], where: str) -> Content:
    return Content(text=opt_str(p, "title", where), reply_id=opt_str(p, "id", where))


def _nfm_reply(p: dict[str, Any], where: str) -> Content:
    """A WhatsApp Flow submission; its flow_token (inside response_json) is the reply id."""
    try:
        response = json.loads(opt_str(p, "response_json", where) or "null")
    except (ValueError, RecursionError):
        response = None  # user-submitted form data; a broken one is not a broken webhook
    token = response.get("flow_token") if isinstance(response, dict) else None
    return Content(reply_id=token if isinstance(token, str) else None)


_INTERACTIVE: dict[str, Callable[[dict[str, Any], str], Content]] = {
    "button_reply": _reply,
    "list_reply": _reply,
    "nfm_reply": _nfm_reply,
}


def _interactive(p: dict[str, Any], where: str) -> Content:
    sub = opt_str(p, "type", where)
    parse = _INTERACTIVE.get(sub or "")
    body = opt_obj(p, sub, where) if parse and sub else None
    return parse(body, f"{where}.{sub}") if parse and body is not None else Content()


_CONTENT: dict[str, Callable[[dict[str, Any], str], Content]] = {
    "text": _text,
    "image": _media,
    "video": _media,
    "audio": _media,
    "document": _media,
    "sticker": _media,
    "button": _button,
    "interactive": _interactive,
    "reaction": _reaction,
    "location": _location,
    "order": _order,
    "system": _text,
}


def content(msg: dict[str, Any], wire_type: str, where: str) -> Content:
    parse = _CONTENT.get(wire_type)
    payload = opt_obj(msg, wire_type, where) if parse else None
    return parse(payload, f"{where}.{wire_type}") if parse and payload is not None else Content()


def context_id(msg: dict[str, Any], wire_type: str, where: str) -> str | None:
    """``context.id``; for a reaction, the message reacted to."""
    context = opt_obj(msg, "context", where) or {}
    if wire_type == "reaction" and "id" not in context:
        context = opt_obj(msg, "reaction", where) or {}
        return opt_str(context, "message_id", f"{where}.reaction")
    return opt_str(context, "id", f"{where}.context")
