"""The WhatsApp Cloud API client: the only module of the channel that speaks HTTP (httpx).

One private ``_post`` (timeout, error translation) and thin public methods. The base URL and
Graph API version are settings, so tests and the sandbox point it at a local emulator.

Error translation, by what the caller should do:
- the request never left (connect error, DNS): ``RetryableError`` — safe to send again;
- sent but no answer (timeout, connection dropped mid-request): ``OutcomeUnknown`` — never
  re-send blindly; a later status webhook tells what happened;
- an HTTP error with a Graph error body: ``WhatsAppApiError`` (retryable or permanent by code).

``BulkClient`` is the bulk sender's transport: aiohttp, many requests in flight on a bounded
pool, the same error translation and the same ``SendResult``. Measured on this machine against an
endpoint answering after 100 ms (bench/campaign.py), aiohttp kept ~2,400 sends/s at a quarter of
a core where httpx's async HTTP/1.1 pool fell to ~100/s; httpx stays the client for everything else.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any, Mapping

import aiohttp
import httpx

from connectors.whatsapp.errors import WhatsAppApiError
from connectors.whatsapp.mapper import mark_read_body
from core.errors import PermanentError, RetryableError

__all__ = ["SendResult", "OutcomeUnknown", "CloudApiClient", "BulkClient", "BulkSession", "GRAPH_BASE"]

_log = logging.getLogger(__name__)
GRAPH_BASE = "https://graph.facebook.com"


class OutcomeUnknown(RetryableError):
    """The request may or may not have been accepted; reconcile from status webhooks."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SendResult:
    wamid: str
    wa_id: str | None = None
    message_status: str | None = None  # accepted / held_for_quality_assessment, when present


class CloudApiClient:
    def __init__(self, *, access_token: str, phone_number_id: str, base_url: str = GRAPH_BASE,
                 api_version: str = "v25.0", http: httpx.Client | None = None, timeout: float = 10.0) -> None:
        self.phone_number_id = phone_number_id
        self._http = http or httpx.Client(timeout=timeout)
        self._base = f"{base_url.rstrip('/')}/{api_version}"
        self._headers = {"Authorization": f"Bearer {access_token}"}

    def close(self) -> None:
        self._http.close()

    def _post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._request("POST", path, body=body)

    def _request(self, method: str, path: str, *, body: Mapping[str, Any] | None = None,
                 params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        url = path if path.startswith("http") else f"{self._base}/{path}"
        try:
            response = self._http.request(method, url, json=body, params=params, headers=self._headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise RetryableError(f"WhatsApp API unreachable: {exc}") from exc
        except httpx.TransportError as exc:  # read timeout, dropped connection: it may have arrived
            raise OutcomeUnknown(f"no answer from the WhatsApp API: {exc}") from exc
        if response.status_code >= 400:
            raise WhatsAppApiError.from_response(response.status_code, response.content)
        try:
            return response.json()
        except ValueError as exc:
            raise OutcomeUnknown(f"WhatsApp API answered {response.status_code} with a body that is not JSON") from exc

    def send(self, body: Mapping[str, Any]) -> SendResult:
        return _send_result(self._post(f"{self.phone_number_id}/messages", body))

    def create_template(self, waba_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /{waba_id}/message_templates``: ``{"id", "status", "category"}`` (status PENDING while in review)."""
        data = self._request("POST", f"{waba_id}/message_templates", body=body)
        if not data.get("id"):
            raise PermanentError(f"template creation answered without an id: {data!r}")
        return data

    def edit_template(self, template_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /{template_id}``: new components for a rejected (or paused, or approved) template; review starts again."""
        data = self._request("POST", template_id, body=body)
        if not data.get("success"):
            raise PermanentError(f"template edit was not acknowledged: {data!r}")
        return data

    def list_templates(self, waba_id: str, *, page_size: int = 100, max_pages: int = 100) -> list[dict[str, Any]]:
        """Every template language of the account (``GET /{waba_id}/message_templates``, paged by cursor)."""
        fields = "id,name,language,status,category,quality_score,rejected_reason,components"
        params: dict[str, Any] = {"fields": fields, "limit": page_size}
        out: list[dict[str, Any]] = []
        for _ in range(max_pages):
            data = self._request("GET", f"{waba_id}/message_templates", params=params)
            out.extend(item for item in data.get("data") or () if isinstance(item, dict))
            after = ((data.get("paging") or {}).get("cursors") or {}).get("after")
            if not (data.get("paging") or {}).get("next") or not after:
                return out
            params = {**params, "after": after}
        raise PermanentError(f"template listing did not end after {max_pages} pages")

    def mark_read(self, wamid: str) -> None:
        data = self._post(f"{self.phone_number_id}/messages", mark_read_body(wamid))
        if not data.get("success"):
            raise PermanentError("mark-as-read was not acknowledged")


def _send_result(data: Any) -> SendResult:
    try:
        message = data["messages"][0]
        contacts = data.get("contacts") or [{}]
        return SendResult(wamid=message["id"], wa_id=contacts[0].get("wa_id"),
                          message_status=message.get("message_status"))
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise OutcomeUnknown(f"send response without a message id: {exc!r}") from exc


class BulkClient:
    """Many sends at once: ``async with client.session() as s: await s.send(body)``, at most
    ``max_in_flight`` requests open. ``send`` returns a ``SendResult`` or the exception the
    httpx client would raise for the same failure (``RetryableError`` when the request never
    left, ``OutcomeUnknown`` when it may have arrived, ``WhatsAppApiError`` for a Graph error)."""

    def __init__(self, *, access_token: str, phone_number_id: str, base_url: str = GRAPH_BASE,
                 api_version: str = "v25.0", max_in_flight: int = 256, timeout: float = 10.0,
                 connect_timeout: float = 5.0) -> None:
        self.phone_number_id, self.max_in_flight = phone_number_id, max_in_flight
        self._url = f"{base_url.rstrip('/')}/{api_version}/{phone_number_id}/messages"
        self._headers = {"Authorization": f"Bearer {access_token}", "Content-Type": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=timeout)

    def session(self) -> "BulkSession":
        return BulkSession(self)


class BulkSession:
    def __init__(self, client: BulkClient) -> None:
        self._client = client
        self._http: aiohttp.ClientSession | None = None
        self._slots = asyncio.Semaphore(client.max_in_flight)

    async def __aenter__(self) -> "BulkSession":
        connector = aiohttp.TCPConnector(limit=self._client.max_in_flight)
        self._http = aiohttp.ClientSession(connector=connector, timeout=self._client._timeout,
                                           headers=self._client._headers)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._http.close()

    async def send(self, body: Mapping[str, Any]) -> SendResult | Exception:
        async with self._slots:
            try:
                return await self._send(body)
            except (RetryableError, PermanentError, WhatsAppApiError) as exc:
                return exc

    async def _send(self, body: Mapping[str, Any]) -> SendResult:
        payload = json.dumps(body, separators=(",", ":"))
        try:
            async with self._http.post(self._client._url, data=payload) as response:
                content = await response.read()
                status = response.status
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise RetryableError(f"WhatsApp API unreachable: {exc}") from exc
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:  # sent, no (whole) answer
            raise OutcomeUnknown(f"no answer from the WhatsApp API: {exc!r}") from exc
        if status >= 400:
            raise WhatsAppApiError.from_response(status, content)
        try:
            data = json.loads(content)
        except ValueError as exc:
            raise OutcomeUnknown(f"WhatsApp API answered {status} with a body that is not JSON") from exc
        return _send_result(data)
