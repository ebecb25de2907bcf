"""WhatsApp Cloud API error codes -> what the bridge does about them.

Meta says to act on ``error.code`` (plus ``error_data.details``), not on HTTP status or titles;
the table follows platform-notes/whatsapp.md section 10. The same codes arrive synchronously
(Graph error responses: ``WhatsAppApiError.from_response``) and asynchronously (failed status
webhooks, ``value.errors``: ``classify(api_error.code)``).
"""

from __future__ import annotations

__all__ = [
    "Reaction",
    "RETRYABLE",
    "classify",
    "retry_after_hint",
    "WhatsAppApiError",
    "RetryableWhatsAppError",
    "PermanentWhatsAppError",
]

import enum
import json
import logging
import re
from typing import Any, Mapping

from core.errors import PermanentError, ReplyflowError, RetryableError

_log = logging.getLogger(__name__)


class Reaction(str, enum.Enum):
    """What to do after an error, for this message and for its channel."""

    RETRY = "retry"  # transient: retry with backoff + jitter, capped
    NEVER_RETRY = "never_retry"  # terminal for this message (fix the payload)
    NEEDS_TEMPLATE = "needs_template"  # 131047: outside the 24 h window; free-form will never go
    OPTED_OUT = "opted_out"  # 131050: user stopped marketing; record the opt-out
    PER_USER_LIMIT = "per_user_limit"  # 131049: not an opt-out; one new attempt after >= 24 h
    UNDELIVERABLE = "undeliverable"  # 131026: flag the contact, no immediate retry
    TEMPLATE_BROKEN = "template_broken"  # 132xxx: fix/resync the template, then send again
    PAUSE_CHANNEL = "pause_channel"  # auth, permission, policy, billing, registration: stop the tenant/number
    PAIR_RATE_LIMIT = "pair_rate_limit"  # 131056: same recipient too fast; retry after >= 6 s
    THROTTLED = "throttled"  # 130429 / 4 / 80007: slow down, retry later

    def __str__(self) -> str:
        return self.value


RETRYABLE = frozenset({Reaction.RETRY, Reaction.THROTTLED, Reaction.PAIR_RATE_LIMIT})
"""Reactions a job runner may retry on its own (codes 4, 80007, 130429, 131000, 131016,
131056, 131057, 2, 133004 and transient 5xx). PER_USER_LIMIT is not in it: it is terminal for
this attempt, and the caller may schedule a single new one after ``retry_after_hint``."""

_CODES: dict[int, Reaction] = {
    131047: Reaction.NEEDS_TEMPLATE,
    131050: Reaction.OPTED_OUT,
    131049: Reaction.PER_USER_LIMIT,
    131026: Reaction.UNDELIVERABLE,
    **dict.fromkeys((132000, 132001, 132005, 132007, 132008, 132012, 132015, 132016), Reaction.TEMPLATE_BROKEN),
    **dict.fromkeys((0, 190, 10, 368, 131031, 131042, 133010, 131045), Reaction.PAUSE_CHANNEL),
    131056: Reaction.PAIR_RATE_LIMIT,
    **dict.fromkeys((130429, 4, 80007), Reaction.THROTTLED),
    **dict.fromkeys((131000, 131016, 131057, 2, 133004), Reaction.RETRY),
}
_PERMISSION_CODES = range(200, 300)  # 200-299: permission not granted / removed

# Seconds to wait at least before the next attempt, where the cause suggests one.
_CODE_DELAYS: dict[int, float] = {
    131056: 6.0,  # pair rate limit: 1 message / 6 s per user (then 4^X backoff)
    131057: 60.0,  # account maintenance, e.g. throughput upgrade (<= 1 min)
    131049: 24 * 3600.0,  # per-user marketing limit: no sooner than 24 h, once
    130429: 1.0,  # throughput is per second
    4: 60.0,  # app call-rate limit
    80007: 60.0,  # WABA management rate limit (hourly budget)
}


def classify(code: int | None, http_status: int | None = None) -> Reaction:
    """The reaction to an error code; ``http_status`` only decides when the code is unknown."""
    if code is not None:
        if code in _CODES:
            return _CODES[code]
        if code in _PERMISSION_CODES:
            return Reaction.PAUSE_CHANNEL
    if http_status == 429:
        return Reaction.THROTTLED
    if code is None and (http_status is None or http_status == 408):
        return Reaction.RETRY  # no usable answer at all (network-level or timeout)
    if http_status is not None and http_status >= 500:
        return Reaction.RETRY
    return Reaction.NEVER_RETRY


def retry_after_hint(code: int | None) -> float | None:
    """Minimum seconds before retrying after ``code``, when the code implies one."""
    return _CODE_DELAYS.get(code) if code is not None else None


_TITLE_PREFIX = re.compile(r"^\(#\d+\)\s*")


class WhatsAppApiError(ReplyflowError):
    """A Graph API error. Raised as ``RetryableWhatsAppError`` or ``PermanentWhatsAppError``
    (built by ``from_response``/``build``) so job runners can catch by core error type."""

    def __init__(
        self,
        code: int | None,
        title: str = "",
        details: str = "",
        *,
        http_status: int | None = None,
        fbtrace_id: str | None = None,
        subcode: int | None = None,
        reaction: Reaction | None = None,
    ) -> None:
        self.code = code
        self.title = title
        self.details = details
        self.http_status = http_status
        self.fbtrace_id = fbtrace_id
        self.subcode = subcode
        self.reaction = reaction if reaction is not None else classify(code, http_status)
        self.retry_after = retry_after_hint(code)
        label = f"#{code}" if code is not None else f"HTTP {http_status}"
        text = f"WhatsApp API error {label} ({self.reaction}): {title}"
        Exception.__init__(self, text + (f" - {details}" if details else ""))

    @property
    def is_retryable(self) -> bool:
        return self.reaction in RETRYABLE

    def __reduce__(self) -> Any:  # keep keyword fields across pickling (RQ stores exceptions)
        fields = dict(http_status=self.http_status, fbtrace_id=self.fbtrace_id, subcode=self.subcode)
        return (_rebuild, (type(self), self.code, self.title, self.details, fields, self.reaction))

    @classmethod
    def build(cls, code: int | None, title: str = "", details: str = "", **kwargs: Any) -> WhatsAppApiError:
        """The right leaf class for ``code``: RetryableWhatsAppError or PermanentWhatsAppError."""
        reaction = kwargs.pop("reaction", None)
        if reaction is None:
            reaction = classify(code, kwargs.get("http_status"))
        leaf = RetryableWhatsAppError if reaction in RETRYABLE else PermanentWhatsAppError
        return leaf(code, title, details, reaction=reaction, **kwargs)

    @classmethod
    def from_response(cls, status_code: int, body: bytes | str | Mapping[str, Any] | None) -> WhatsAppApiError:
        """Build from a Graph error response; copes with non-JSON bodies (e.g. an HTML 502)."""
        error = _error_object(body)
        if error is None:
            return cls.build(None, f"HTTP {status_code}", "non-JSON or unexpected error body", http_status=status_code)
        code = _int(error.get("code"))
        data = error.get("error_data") if isinstance(error.get("error_data"), dict) else {}
        reaction = classify(code, status_code)
        if reaction is Reaction.NEVER_RETRY and code not in _CODES and error.get("is_transient") is True:
            reaction = Reaction.RETRY  # an unknown code that Meta itself marks transient
        return cls.build(
            code,
            _TITLE_PREFIX.sub("", _str(error.get("message")) or _str(error.get("error_user_title"))),
            _str(data.get("details")) or _str(error.get("error_user_msg")),
            http_status=status_code,
            fbtrace_id=_str(error.get("fbtrace_id")) or None,
            subcode=_int(error.get("error_subcode")),
            reaction=reaction,
        )


class RetryableWhatsAppError(WhatsAppApiError, RetryableError):
    """Worth retrying later; ``retry_after`` is a minimum delay hint when known."""


class PermanentWhatsAppError(WhatsAppApiError, PermanentError):
    """Retrying the same request will not help; ``reaction`` says what to do instead."""


def _rebuild(
    cls: type[WhatsAppApiError], code: Any, title: str, details: str, fields: dict[str, Any], reaction: Reaction
) -> WhatsAppApiError:
    return cls(code, title, details, reaction=reaction, **fields)


def _error_object(body: bytes | str | Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if isinstance(body, (bytes, bytearray, memoryview, str)):
        try:
            body = json.loads(bytes(body) if not isinstance(body, str) else body)
        except (ValueError, RecursionError):
            _log.debug("non-JSON error body from the Graph API")
            return None
    error = body.get("error") if isinstance(body, Mapping) else None
    return error if isinstance(error, Mapping) else None


def _int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""
