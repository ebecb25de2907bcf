"""The shape every shop/CRM connector has, so the bridge treats them alike.

A connector verifies a webhook on its raw bytes, turns it into a ``Delivery`` record at the
edge (validating it fully, so a malformed body is refused with a reason before anything is
stored), and later, in a job, turns the stored delivery into a core ``Trigger``.

Optional hooks, looked up with ``getattr`` by the bridge when a connector defines them:

- ``is_ping(raw_body, headers) -> bool``: an unsigned ping answered 200, nothing recorded (WooCommerce);
- ``account_of(headers) -> str | None``: the installation whose sealed ``webhook_secret`` also
  verifies the delivery (WooCommerce);
- ``expand(raw_body, headers, installation: () -> InstallationInfo) -> (raw_body, headers)``: a thin
  delivery (an id only) completed through the API in the job before ``trigger`` (WooCommerce);
- ``verify_request(raw_body, headers, secrets, *, method, url, now)``: instead of ``verify``, for
  signatures over the public URL and a timestamp (HubSpot v3);
- ``complete(trigger, installation) -> Trigger``: in the job, fill in what the event lacks (the
  contact's phone, a meeting's time) through the platform's API (HubSpot);
- ``refresh(installation, *, now) -> credentials | None``: renew an expiring token before the
  connector is used; the bridge stores the new credentials, sealed (HubSpot);
- ``uninstalled(raw_body, headers) -> str | None``: the account that removed the app; the bridge
  then stops its flows and forgets its token (Shopify's app/uninstalled).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping, Protocol, Sequence

from core.events import PrivacyRequest, Trigger
from core.installations import InstallationInfo

__all__ = ["Delivery", "Connector", "WriteTask", "WriteResult", "Writer"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    dedupe_key: str  # unique per delivery: a redelivery is acknowledged and dropped
    kind: str  # the platform's topic / event type
    account: str  # which shop or portal
    subject: str | None  # what it is about (checkout token, order id), for lookups
    headers: Mapping[str, Any]  # the platform's delivery headers worth keeping (never secrets)
    body: str | None = None  # this record's own body when one request carries several (HubSpot); None = all of it


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteTask:
    """One line of a conversation to show on the platform (see core/writeback.py for ``payload``)."""

    id: int
    kind: str  # message | handoff | release | outcome | consent | error | note
    key: str  # stable for the line: message:<id>
    account: str
    payload: Mapping[str, Any]
    contact_ref: str | None  # the contact's id on this platform, when linked
    external_id: str | None  # the record an earlier attempt made: update it, do not add another
    conversation_url: str | None  # where an agent opens the conversation in replyflow's inbox
    contact: Mapping[str, Any]  # phone (E.164), first/last name, email: to find or create the contact
    transcript: tuple[Mapping[str, Any], ...] = ()  # the conversation so far (handoffs)


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteResult:
    task_id: int
    outcome: Literal["done", "retry", "failed"]
    external_id: str | None = None  # the record made or updated
    contact_ref: str | None = None  # the platform contact found or created: linked for next time
    detail: str | None = None
    retry_after: float | None = None  # seconds, for ``retry`` (429 Retry-After, a budget window)


class Writer(Protocol):
    """Writes a batch of tasks for one installation; per-task problems are results, not raises.
    Raise ``RetryableError`` only when the whole batch could not be tried (platform down)."""

    def write(self, tasks: Sequence[WriteTask]) -> Sequence[WriteResult]: ...

    def close(self) -> None: ...


class Connector(Protocol):
    name: str
    secret_setting: str  # the environment variable holding its webhook secret(s)

    def verify(self, raw_body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> None:
        """Raise ``SignatureError`` unless the delivery is signed with one of ``secrets``."""

    def delivery(self, raw_body: bytes, headers: Mapping[str, str]) -> Delivery | Sequence[Delivery]:
        """Parse headers and body at the edge; ``PayloadError`` with a reason when malformed.
        A request that batches several events (HubSpot) gives one Delivery per event, each with its
        own ``body`` and dedupe key; each is recorded as its own inbound event."""

    def trigger(self, raw_body: bytes, headers: Mapping[str, Any]) -> Trigger | None:
        """The core trigger for a stored delivery, or None for topics that start nothing."""

    def privacy_request(self, raw_body: bytes, headers: Mapping[str, Any]) -> PrivacyRequest | None:
        """The privacy request (export / erase) a stored delivery carries, if it is one."""

    def writer(self, installation: InstallationInfo) -> Writer | None:
        """The write-back for one installation (its credentials opened), or None if it writes nothing."""
