"""The shape every shop/CRM connector has, so the bridge treats them alike.

A connector verifies a webhook on its raw bytes, turns it into a ``Delivery`` record at the
edge (validating it fully, so a malformed body is refused with a reason before anything is
stored), and later, in a job, turns the stored delivery into a core ``Trigger``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence

from core.events import PrivacyRequest, Trigger

__all__ = ["Delivery", "Connector"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    dedupe_key: str  # unique per delivery: a redelivery is acknowledged and dropped
    kind: str  # the platform's topic / event type
    account: str  # which shop or portal
    subject: str | None  # what it is about (checkout token, order id), for lookups
    headers: Mapping[str, Any]  # the platform's delivery headers worth keeping (never secrets)


class Connector(Protocol):
    name: str
    secret_setting: str  # the environment variable holding its webhook secret(s)

    def verify(self, raw_body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> None:
        """Raise ``SignatureError`` unless the delivery is signed with one of ``secrets``."""

    def delivery(self, raw_body: bytes, headers: Mapping[str, str]) -> Delivery:
        """Parse headers and body at the edge; ``PayloadError`` with a reason when malformed."""

    def trigger(self, raw_body: bytes, headers: Mapping[str, Any]) -> Trigger | None:
        """The core trigger for a stored delivery, or None for topics that start nothing."""

    def privacy_request(self, raw_body: bytes, headers: Mapping[str, Any]) -> PrivacyRequest | None:
        """The privacy request (export / erase) a stored delivery carries, if it is one."""
