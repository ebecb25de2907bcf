"""Errors classified by what the job runner should do about them.

    ReplyflowError
    ├── RetryableError      try again later (timeouts, 5xx, throttling, lock contention)
    └── PermanentError      never retry (bad input, policy refusals, missing records)
        ├── SignatureError      a webhook's signature is missing or wrong
        ├── PayloadError        input (a webhook or API body, a command's argument) is not what it must be
        ├── PhoneError          a phone number that cannot be a phone number
        ├── TemplateError       a template or its parameters break WhatsApp's rules
        └── FlowDefinitionError a flow file is invalid
"""

from __future__ import annotations

__all__ = [
    "ReplyflowError",
    "RetryableError",
    "PermanentError",
    "SignatureError",
    "PayloadError",
    "PhoneError",
    "TemplateError",
    "FlowDefinitionError",
]


class ReplyflowError(Exception):
    """Base of every error replyflow raises on purpose."""


class RetryableError(ReplyflowError):
    """Worth another try later; ``retry_after`` (seconds) when the cause says how long."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(ReplyflowError):
    """Trying again will not help; record the reason and move on."""


class SignatureError(PermanentError):
    """A webhook signature problem. ``missing`` distinguishes 401 (absent) from 403 (wrong)."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


class PayloadError(PermanentError):
    """Input that cannot be what it must be: a webhook body not in the platform's shape, an API
    request body, an agent's empty reply. The message says why (and is shown to whoever sent it)."""


class PhoneError(PermanentError):
    """A phone number that is impossible for its country; the message says why."""


class TemplateError(PermanentError):
    """A template or its parameters violate WhatsApp's rules; the message names the field."""


class FlowDefinitionError(PermanentError):
    """A flow definition is invalid; the message names the file, the step and the field."""
