"""Checked reading of Shopify's decoded webhook JSON (private to ``connectors.shopify.events``).

``Obj`` wraps one JSON object with typed getters (text, ids, flags, counts, money as ``Decimal``,
RFC 3339 timestamps as aware UTC datetimes); every failure is a ``PayloadError`` naming the path.
``RAW`` is the ``field()`` options for the decoded body every payload keeps in ``raw``.
"""

from __future__ import annotations

__all__ = ["RAW", "Obj", "timestamp"]

import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from core.clock import utc
from core.errors import PayloadError

RAW = dict(repr=False, compare=False, hash=False)
_DECIMAL = re.compile(r"-?[0-9]{1,30}(?:\.[0-9]{1,30})?\Z")
_FRACTION = re.compile(r"(\.[0-9]{6})[0-9]+")


def timestamp(text: str, where: str) -> datetime:
    """RFC 3339 (Shopify sends nanoseconds; Python keeps microseconds) -> aware UTC."""
    try:
        return utc(datetime.fromisoformat(_FRACTION.sub(r"\1", text.strip())))
    except (ValueError, OverflowError):
        raise PayloadError(f"{where}: {text!r:.60} is not an RFC 3339 timestamp") from None


class Obj:
    """A JSON object with typed getters; every failure is a ``PayloadError`` naming the path."""

    __slots__ = ("data", "where")

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise PayloadError(f"{where}: expected an object, got {type(data).__name__}")
        self.data: dict[str, Any] = data
        self.where = where

    def _fail(self, key: str, what: str) -> PayloadError:
        return PayloadError(f"{self.where}.{key}: {what}")

    def _get(self, key: str, types: tuple[type, ...], what: str, required: bool = False) -> Any:
        return self._check(key, self.data.get(key), types, what, required)

    def _check(self, key: str, value: Any, types: tuple[type, ...], what: str, required: bool) -> Any:
        if value is None:
            if required:
                raise self._fail(key, "missing")
        elif not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise self._fail(key, f"expected {what}, got {type(value).__name__}")
        if required and value == "":
            raise self._fail(key, "empty")
        return value

    def text(self, key: str, required: bool = False) -> str | None:
        return self._get(key, (str,), "a string", required)

    def texts(self, *keys: str) -> dict[str, str | None]:
        return {k: self.text(k) for k in keys}

    def ident(self, key: str, required: bool = False) -> str | None:
        value = self._get(key, (int, str), "an id", required)
        return None if value is None or value == "" else str(value)

    def idents(self, key: str) -> tuple[str, ...]:
        values = enumerate(self.array(key))
        return tuple(str(self._check(f"{key}[{i}]", v, (int, str), "an id", True)) for i, v in values)

    def flag(self, key: str) -> bool:
        return bool(self._get(key, (bool,), "true/false"))

    def count(self, key: str) -> int:
        value = self._get(key, (int,), "an integer", True)
        if value < 0:
            raise self._fail(key, f"{value} is negative")
        return value

    def money(self, key: str, required: bool = False) -> Decimal | None:
        """Shopify sends money as strings like ``"82.00"``; JSON numbers are tolerated."""
        value = self._get(key, (str, int, float), "a decimal string", required)
        if value is None:
            return None
        text = value.strip() if isinstance(value, str) else repr(value)
        if isinstance(value, str) and not _DECIMAL.match(text):
            raise self._fail(key, f"{value!r:.40} is not a decimal")
        amount = Decimal(text)
        if not amount.is_finite():
            raise self._fail(key, f"{value!r:.40} is not a finite decimal")
        return amount

    def time(self, key: str) -> datetime | None:
        value = self.text(key)
        return timestamp(value, f"{self.where}.{key}") if value else None

    def obj(self, key: str) -> Obj | None:
        """A nested object; ``null`` and ``[]`` (seen in public payloads) mean absent."""
        value = self.data.get(key)
        return None if value is None or value == [] else Obj(value, f"{self.where}.{key}")

    def array(self, key: str) -> list[Any]:
        return self._get(key, (list,), "a list") or []
