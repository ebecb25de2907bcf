"""Secrets at rest: platform tokens and keys are sealed (Fernet: AES-128-CBC + HMAC-SHA256)
before they reach the database, and opened only by the code that calls the platform.

Keys come from ``REPLYFLOW_SECRET_KEY`` (comma-separated: the first seals, all open, so a key can
be rotated without losing what the old one sealed). Any string works as a key; it is stretched to
Fernet's 32 bytes with SHA-256.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, Mapping, Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

__all__ = ["Sealer", "SealError"]


class SealError(Exception):
    """A sealed value that none of the keys opens (wrong or rotated-away key, or tampering)."""


def _fernet(key: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(key.encode("utf-8")).digest()))


class Sealer:
    def __init__(self, keys: Sequence[str]) -> None:
        keys = [k for k in keys if k]
        if not keys:
            raise ValueError("no secret key: set REPLYFLOW_SECRET_KEY")
        self._box = MultiFernet([_fernet(k) for k in keys])

    def seal(self, value: Mapping[str, Any]) -> str:
        return self._box.encrypt(json.dumps(dict(value), sort_keys=True).encode("utf-8")).decode("ascii")

    def open(self, sealed: str) -> dict[str, Any]:
        try:
            return json.loads(self._box.decrypt(sealed.encode("ascii")))
        except (InvalidToken, ValueError) as exc:
            raise SealError("cannot open sealed credentials: REPLYFLOW_SECRET_KEY changed or the value "
                            "was altered; reconnect the platform or restore the old key") from exc
