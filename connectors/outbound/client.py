"""Signed outbound webhooks (Saleor-style): one POST, an HMAC of the body, errors by what to do.

The receiver checks ``X-Replyflow-Signature: sha256=<hex HMAC-SHA256 of the raw body>`` with the
shared secret. 2xx is success; 4xx is permanent (never retried); 5xx, 429 and network errors are
retryable.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Mapping

import httpx

from core.errors import PermanentError, RetryableError

__all__ = ["sign", "post_signed", "SIGNATURE_HEADER"]

SIGNATURE_HEADER = "X-Replyflow-Signature"


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_signed(url: str, payload: Mapping[str, Any], secret: str, *, idempotency_key: str,
                timeout: float = 10.0, http: httpx.Client | None = None) -> int:
    if not url.startswith(("https://", "http://")):
        raise PermanentError(f"not an http(s) URL: {url!r}")
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(body, secret),
               "Idempotency-Key": idempotency_key}
    client = http or httpx.Client(timeout=timeout, follow_redirects=False)
    try:
        response = client.post(url, content=body, headers=headers)
    except httpx.TransportError as exc:
        raise RetryableError(f"webhook not delivered: {exc}") from exc
    finally:
        if http is None:
            client.close()
    if response.status_code == 429 or response.status_code >= 500:
        raise RetryableError(f"webhook answered {response.status_code}")
    if response.status_code >= 300:
        raise PermanentError(f"webhook answered {response.status_code}: {response.text[:200]}")
    return response.status_code
