"""The HubSpot adapter: the only module that imports ``hubspot`` (hubspot-api-client) or does HTTP.

Thin methods, one per remote operation, all through ``_call``, which translates the SDK's
``ApiException`` (one class per API package) into replyflow's errors: 429 → ``RateLimited`` (the
policy named in the body, ``Retry-After`` when sent), 5xx and connection failures →
``RetryableError``, other 4xx → ``HubSpotError`` (permanent; ``status`` kept). The host is
configurable so tests point the real client at a local emulator.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

import hubspot
import urllib3
from hubspot.crm import contacts as hs_contacts
from hubspot.crm import deals as hs_deals
from hubspot.crm import properties as hs_properties
from hubspot.crm.objects import communications as hs_comms
from hubspot.crm.objects import meetings as hs_meetings
from hubspot.crm.objects import notes as hs_notes
from hubspot.crm.objects import tasks as hs_tasks
from hubspot import oauth as hs_oauth

from core.errors import PermanentError, RetryableError

__all__ = ["HubSpotClient", "Record", "HubSpotError", "RateLimited", "API_BASE", "exchange_code",
           "refresh_tokens", "TokenSet"]

_log = logging.getLogger(__name__)
API_BASE = "https://api.hubapi.com"
TIMEOUT = 10.0
_API_ERRORS = tuple(m.ApiException for m in (hs_contacts, hs_deals, hs_properties, hs_comms, hs_meetings,
                                              hs_notes, hs_tasks, hs_oauth))
T = TypeVar("T")


class HubSpotError(PermanentError):
    """HubSpot refused the request (4xx other than 429); retrying the same request will not help."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RateLimited(RetryableError):
    """429: ``policy`` is HubSpot's policyName (TEN_SECONDLY_ROLLING, SECONDLY, DAILY...);
    ``retry_after`` the Retry-After header in seconds, or None when HubSpot did not send one."""

    def __init__(self, message: str, *, policy: str, retry_after: float | None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.policy = policy


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """A CRM object as HubSpot returned it: id, string properties, associated contact ids."""

    id: str
    properties: Mapping[str, str | None] = field(default_factory=dict)
    contacts: tuple[str, ...] = ()
    trace_id: str | None = None  # objectWriteTraceId echoed by a batch write


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenSet:
    access_token: str
    refresh_token: str
    expires_in: int


def _body(exc: Any) -> dict[str, Any]:
    try:
        data = json.loads(exc.body) if exc.body else {}
    except (TypeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _header(headers: Any, name: str) -> str | None:
    for key, value in dict(headers or {}).items():
        if key.lower() == name.lower():
            return value
    return None


def _translate(what: str, exc: Any) -> Exception:
    status, body = exc.status, _body(exc)
    message = f"HubSpot {what}: {status} {body.get('message') or exc.reason or ''}".strip()
    if status == 429:
        raw = _header(exc.headers, "Retry-After")
        try:
            retry_after = float(raw) if raw is not None else None
        except ValueError:
            retry_after = None
        return RateLimited(message, policy=str(body.get("policyName") or "UNKNOWN").upper(), retry_after=retry_after)
    if status is None or status >= 500:
        return RetryableError(message)
    return HubSpotError(message, status=status)


def _call(what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return fn(*args, _request_timeout=TIMEOUT, **kwargs)
    except _API_ERRORS as exc:
        raise _translate(what, exc) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise RetryableError(f"HubSpot {what}: {type(exc).__name__}: {exc}") from None


def _record(obj: Any) -> Record:
    assoc = getattr(obj, "associations", None) or {}
    contacts = assoc.get("contacts") if isinstance(assoc, dict) else None
    ids = tuple(str(r.id) for r in (contacts.results if contacts is not None else []))
    return Record(id=str(obj.id), properties=dict(obj.properties or {}), contacts=ids,
                  trace_id=getattr(obj, "object_write_trace_id", None))


def _assoc(module: Any, contact_id: str, type_id: int) -> list[Any]:
    return [module.PublicAssociationsForObject(
        to=module.PublicObjectId(id=contact_id),
        types=[module.AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=type_id)])]


class HubSpotClient:
    """One portal, one token. ``host`` is the API base (the emulator's URL in tests)."""

    def __init__(self, access_token: str, *, host: str = API_BASE) -> None:
        self.host = host.rstrip("/")
        self._sdk = hubspot.Client.create(access_token=access_token, host=self.host, base_url=self.host)

    # ------------------------------------------------------------ account and contacts

    def account(self) -> dict[str, Any]:
        """portalId and timeZone of the portal the token belongs to."""
        try:
            response = self._sdk.api_request({"method": "GET", "path": "/account-info/v3/details"})
        except OSError as exc:
            raise RetryableError(f"HubSpot account details: {exc}") from None
        if response.status_code >= 400:
            cls = RetryableError if response.status_code >= 500 or response.status_code == 429 else HubSpotError
            raise cls(f"HubSpot account details: {response.status_code} {response.text[:200]}")
        return response.json()

    def search_contacts(self, property_values: Mapping[str, Sequence[str]], properties: Sequence[str]) -> list[Record]:
        """Contacts where any of the properties is one of its values: one search, a filter group
        (OR-ed) per property with an exact-match ``IN`` filter (at most 5 groups)."""
        groups = [hs_contacts.FilterGroup(filters=[hs_contacts.Filter(property_name=p, operator="IN",
                                                                      values=list(values))])
                  for p, values in list(property_values.items())[:5]]
        request = hs_contacts.PublicObjectSearchRequest(filter_groups=groups, properties=list(properties), limit=10)
        page = _call("contact search", self._sdk.crm.contacts.search_api.do_search,
                     public_object_search_request=request)
        return [_record(obj) for obj in page.results or []]

    def create_contact(self, properties: Mapping[str, str]) -> Record:
        body = hs_contacts.SimplePublicObjectInputForCreate(properties=dict(properties))
        return _record(_call("contact create", self._sdk.crm.contacts.basic_api.create,
                             simple_public_object_input_for_create=body))

    def get_contact(self, contact_id: str, properties: Sequence[str]) -> Record:
        return _record(_call("contact read", self._sdk.crm.contacts.basic_api.get_by_id, contact_id,
                             properties=list(properties)))

    def get_meeting(self, meeting_id: str, properties: Sequence[str]) -> Record:
        return _record(_call("meeting read", self._sdk.crm.objects.meetings.basic_api.get_by_id, meeting_id,
                             properties=list(properties), associations=["contacts"]))

    def get_deal(self, deal_id: str, properties: Sequence[str]) -> Record:
        return _record(_call("deal read", self._sdk.crm.deals.basic_api.get_by_id, deal_id,
                             properties=list(properties), associations=["contacts"]))

    # ------------------------------------------------------------ contact properties

    def has_contact_property(self, name: str) -> bool:
        try:
            _call("property read", self._sdk.crm.properties.core_api.get_by_name, "contacts", name)
        except HubSpotError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def create_contact_property(self, definition: Mapping[str, Any]) -> None:
        body = hs_properties.PropertyCreate(**definition)
        _call("property create", self._sdk.crm.properties.core_api.create, "contacts", body)

    # ------------------------------------------------------------ timeline

    def create_communications(self, inputs: Iterable[tuple[str, Mapping[str, str], str]]) -> list[Record]:
        """One batch call: (trace id, properties, contact id) each; results carry the trace id."""
        batch = hs_comms.BatchInputSimplePublicObjectBatchInputForCreate(inputs=[
            hs_comms.SimplePublicObjectBatchInputForCreate(properties=dict(props), object_write_trace_id=trace,
                                                           associations=_assoc(hs_comms, contact, 81))
            for trace, props, contact in inputs])
        result = _call("communications batch create", self._sdk.crm.objects.communications.batch_api.create,
                       batch_input_simple_public_object_batch_input_for_create=batch)
        return [_record(r) for r in result.results or []]

    def update_communications(self, inputs: Iterable[tuple[str, Mapping[str, str]]]) -> list[Record]:
        """One batch call: (communication id, properties) each."""
        batch = hs_comms.BatchInputSimplePublicObjectBatchInput(inputs=[
            hs_comms.SimplePublicObjectBatchInput(id=oid, properties=dict(props), object_write_trace_id=oid)
            for oid, props in inputs])
        result = _call("communications batch update", self._sdk.crm.objects.communications.batch_api.update,
                       batch_input_simple_public_object_batch_input=batch)
        return [_record(r) for r in result.results or []]

    def create_task(self, properties: Mapping[str, str], contact_id: str) -> Record:
        body = hs_tasks.SimplePublicObjectInputForCreate(properties=dict(properties),
                                                         associations=_assoc(hs_tasks, contact_id, 204))
        return _record(_call("task create", self._sdk.crm.objects.tasks.basic_api.create,
                             simple_public_object_input_for_create=body))

    def create_note(self, properties: Mapping[str, str], contact_id: str) -> Record:
        body = hs_notes.SimplePublicObjectInputForCreate(properties=dict(properties),
                                                         associations=_assoc(hs_notes, contact_id, 202))
        return _record(_call("note create", self._sdk.crm.objects.notes.basic_api.create,
                             simple_public_object_input_for_create=body))

    def update_note(self, note_id: str, properties: Mapping[str, str]) -> Record:
        body = hs_notes.SimplePublicObjectInput(properties=dict(properties))
        return _record(_call("note update", self._sdk.crm.objects.notes.basic_api.update, note_id,
                             simple_public_object_input=body))

    def update_contacts(self, inputs: Iterable[tuple[str, Mapping[str, str]]]) -> None:
        """One batch call: (contact id, properties) each."""
        batch = hs_contacts.BatchInputSimplePublicObjectBatchInput(inputs=[
            hs_contacts.SimplePublicObjectBatchInput(id=oid, properties=dict(props)) for oid, props in inputs])
        _call("contacts batch update", self._sdk.crm.contacts.batch_api.update,
              batch_input_simple_public_object_batch_input=batch)

    def close(self) -> None:
        """Nothing to release: the SDK builds its pools per API object."""


# ---------------------------------------------------------------- OAuth


def _tokens(what: str, host: str, **form: str) -> TokenSet:
    sdk = hubspot.Client.create(host=host.rstrip("/"))
    result = _call(what, sdk.oauth.tokens_api.create, **form)
    return TokenSet(access_token=result.access_token, refresh_token=result.refresh_token,
                    expires_in=int(result.expires_in or 0))


def exchange_code(*, host: str, client_id: str, client_secret: str, code: str, redirect_uri: str) -> TokenSet:
    return _tokens("OAuth code exchange", host, grant_type="authorization_code", client_id=client_id,
                   client_secret=client_secret, code=code, redirect_uri=redirect_uri)


def refresh_tokens(*, host: str, client_id: str, client_secret: str, refresh_token: str) -> TokenSet:
    return _tokens("OAuth token refresh", host, grant_type="refresh_token", client_id=client_id,
                   client_secret=client_secret, refresh_token=refresh_token)
