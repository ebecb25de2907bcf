"""The one strict JSON loader for everything that arrives from outside (webhooks, the agent API,
triggers, the sandbox): bytes in, a decoded value of the expected top-level type out, or
``PayloadError`` saying why not.

Strict means: UTF-8 only; no ``NaN``/``Infinity`` and no number too big for a float; no lone
surrogates; nesting deep enough to exhaust the interpreter's stack is a ``PayloadError``, never a
``RecursionError``. orjson does the common case; the standard library decides what orjson
refuses and explains it.
"""

from __future__ import annotations

__all__ = ["loads", "kind_of"]

import json
import math
from typing import Any

from core.errors import PayloadError

try:  # orjson is faster; json is the reference and the fallback
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None

_KINDS = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean",
          type(None): "null"}


def kind_of(value: Any) -> str:
    """The JSON name of a decoded value's type (``object``, ``array``, ``string``...)."""
    return _KINDS.get(type(value), type(value).__name__)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:40]} is not a finite number")
    return value


def _fallback(raw: bytes, what: str) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"{what} is not JSON: not UTF-8 (byte 0x{raw[exc.start]:02x} at {exc.start})") from None
    if not text.strip():
        raise PayloadError(f"{what} is not JSON: it is empty")
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite)
    except RecursionError:
        raise PayloadError(f"{what} is not JSON: nested too deeply") from None
    except ValueError as exc:
        raise PayloadError(f"{what} is not JSON: {str(exc)[:120]}") from None
    try:  # what orjson refused and json took: a lone surrogate ("\ud800") cannot be stored or sent
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise PayloadError(f"{what} is not JSON: a string holds a lone surrogate") from None
    except (ValueError, RecursionError):
        raise PayloadError(f"{what} is not JSON: nested too deeply") from None
    return value


def loads(raw: bytes | bytearray | memoryview | str, *, expect: type | tuple[type, ...] | None = None,
          what: str = "body") -> Any:
    """Decode ``raw`` strictly; with ``expect`` (``dict``, ``list``...) the top level must be one.

    Every failure is a ``PayloadError`` whose message starts with ``what`` and gives the reason.
    """
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    elif type(raw) is not bytes:
        raw = bytes(raw)
    value: Any
    try:
        if _orjson is None:
            raise ValueError("no orjson")
        value = _orjson.loads(raw)
    except ValueError:  # orjson.JSONDecodeError is a ValueError
        value = _fallback(raw, what)
    if expect is not None and not isinstance(value, expect):
        wanted = " or ".join(sorted({_KINDS.get(t, t.__name__) for t in (expect if isinstance(expect, tuple)
                                                                         else (expect,))}))
        raise PayloadError(f"{what}: expected a JSON {wanted}, got {kind_of(value)}")
    return value
