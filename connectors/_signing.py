"""What every webhook verifier needs: a case-insensitive header and the configured secrets."""

from __future__ import annotations

import hmac
from typing import Mapping, Sequence

__all__ = ["header", "secret_list", "same"]


def same(given: str, expected: str) -> bool:
    """``hmac.compare_digest`` for text from a request: it raises TypeError on a non-ASCII str, so
    one such character in a header or a query would be a 500; compared as UTF-8 bytes it is a mismatch."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


def header(headers: Mapping[str, str], name: str) -> str | None:
    """The header's value, stripped; works for Flask's headers and for a plain dict alike."""
    value = headers.get(name)
    if value is None:
        wanted = name.lower()
        value = next((v for k, v in headers.items() if str(k).lower() == wanted), None)
    return value.strip() if isinstance(value, str) else None


def secret_list(secrets: Sequence[str] | str, what: str) -> list[str]:
    """Every configured secret (several during a rotation); ``ValueError`` when there is none."""
    keys = [k for k in ([secrets] if isinstance(secrets, str) else list(secrets)) if k]
    if not keys:
        raise ValueError(f"no {what} configured")
    return keys
