"""Connecting a HubSpot portal: a private-app token, or the OAuth app install.

Each is two steps: ``prepare_private_app`` or ``prepare_oauth`` talks to HubSpot with no
database session open (a slow portal holds no transaction) and creates the contact properties
replyflow uses where missing; then ``save`` records the result in a short transaction through
``core.installations.install`` (tokens sealed at rest) for the portal the token belongs to, with
the settings the write-back reads: API base, the portal's time zone (daily limits reset at its
midnight), ``write_all_contacts`` (HubSpot finds or creates the contact by phone),
``write_kinds`` and the request budget. OAuth access tokens live 30 minutes: ``refreshed`` renews them a few
minutes before ``expires_at``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets as _secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Mapping
from urllib.parse import urlencode

from sqlalchemy.orm import Session

from connectors._signing import same
from connectors.hubspot import client as hs
from connectors.hubspot import mapper
from core.installations import install
from core.sealed import Sealer
from core.store.models import Workspace

__all__ = ["SCOPES", "AUTHORIZE_URL", "WRITE_KINDS", "authorize_url", "new_state", "check_state",
           "ensure_properties", "phone_properties", "prepare_private_app", "prepare_oauth", "save", "refreshed",
           "REFRESH_MARGIN", "Prepared", "Connected"]

AUTHORIZE_URL = "https://app.hubspot.com/oauth/authorize"
SCOPES = ("oauth", "crm.objects.contacts.read", "crm.objects.contacts.write", "crm.schemas.contacts.read",
          "crm.schemas.contacts.write", "crm.objects.deals.read", "crm.objects.owners.read")
WRITE_KINDS = ("message", "handoff", "release", "outcome")
REFRESH_MARGIN = timedelta(minutes=5)
STATE_MAX_AGE = 600  # seconds an authorize round trip may take


@dataclass(frozen=True, slots=True, kw_only=True)
class Connected:
    portal_id: str
    created_properties: tuple[str, ...]
    installation_id: int


# ---------------------------------------------------------------- OAuth authorize and state


def new_state(key: str, now: float | None = None) -> str:
    """A nonce, timestamped and signed with ``key``, for the authorize round trip."""
    body = f"{_secrets.token_urlsafe(16)}.{int(now if now is not None else time.time())}"
    mac = base64.urlsafe_b64encode(hmac.new(key.encode(), body.encode(), hashlib.sha256).digest()).decode().rstrip("=")
    return f"{body}.{mac}"


def check_state(state: str, key: str, now: float | None = None) -> bool:
    try:
        nonce, stamp, mac = state.split(".")
        age = (now if now is not None else time.time()) - int(stamp)
    except ValueError:
        return False
    expected = base64.urlsafe_b64encode(hmac.new(key.encode(), f"{nonce}.{stamp}".encode(),
                                                 hashlib.sha256).digest()).decode().rstrip("=")
    return same(mac, expected) and 0 <= age <= STATE_MAX_AGE


def authorize_url(*, client_id: str, redirect_uri: str, state: str, scopes: tuple[str, ...] = SCOPES,
                  base: str = AUTHORIZE_URL) -> str:
    query = urlencode({"client_id": client_id, "redirect_uri": redirect_uri, "scope": " ".join(scopes),
                       "state": state})
    return f"{base}?{query}"


# ---------------------------------------------------------------- on install


def ensure_properties(client: hs.HubSpotClient) -> tuple[str, ...]:
    """Create the contact properties replyflow uses where the portal lacks them; returns the new ones."""
    created = []
    for definition in mapper.CUSTOM_PROPERTIES:
        if not client.has_contact_property(definition["name"]):
            client.create_contact_property(definition)
            created.append(definition["name"])
    return tuple(created)


def phone_properties(client: hs.HubSpotClient) -> list[str]:
    """The phone properties this portal has (hs_whatsapp_phone_number only with HubSpot's WhatsApp
    integration): searching a property a portal lacks is refused."""
    return [p for p in mapper.PHONE_PROPERTIES if p in ("phone", "mobilephone") or client.has_contact_property(p)]


def _config(api_base: str, account: Mapping[str, Any], auth: str, **extra: Any) -> dict[str, Any]:
    return {"api_base": api_base, "auth": auth, "time_zone": account.get("timeZone"),
            "write_all_contacts": True, "write_kinds": list(WRITE_KINDS), "create_contacts": True,
            "requests_per_10s": 100, **extra}


@dataclass(frozen=True, slots=True, kw_only=True)
class Prepared:
    """What connecting a portal learned from HubSpot (its properties already created), not yet stored:
    ``save`` records it in a short transaction of its own."""

    portal_id: str
    created_properties: tuple[str, ...]
    credentials: Mapping[str, Any]
    config: Mapping[str, Any]


def _prepare(client: hs.HubSpotClient, api_base: str, credentials: dict[str, Any], auth: str,
             **extra: Any) -> Prepared:
    account = client.account()
    created = ensure_properties(client)
    config = _config(api_base, account, auth, phone_properties=phone_properties(client), **extra)
    return Prepared(portal_id=str(account["portalId"]), created_properties=created, credentials=credentials,
                    config=config)


def prepare_private_app(token: str, *, api_base: str = hs.API_BASE) -> Prepared:
    """``replyflow connect hubspot --token``: a private app's access token (does not expire). HTTP only:
    call it with no database session open."""
    return _prepare(hs.HubSpotClient(token, host=api_base), api_base, {"access_token": token}, "private_app")


def _oauth_credentials(tokens: hs.TokenSet, client_id: str, client_secret: str, now: datetime) -> dict[str, Any]:
    return {"access_token": tokens.access_token, "refresh_token": tokens.refresh_token,
            "expires_at": (now + timedelta(seconds=tokens.expires_in)).isoformat(),
            "client_id": client_id, "client_secret": client_secret}


def prepare_oauth(*, code: str, redirect_uri: str, client_id: str, client_secret: str, now: datetime,
                  api_base: str = hs.API_BASE) -> Prepared:
    """The OAuth callback: exchange the code, then look at the portal the token belongs to. HTTP
    only: call it with no database session open."""
    tokens = hs.exchange_code(host=api_base, client_id=client_id, client_secret=client_secret, code=code,
                              redirect_uri=redirect_uri)
    return _prepare(hs.HubSpotClient(tokens.access_token, host=api_base), api_base,
                    _oauth_credentials(tokens, client_id, client_secret, now), "oauth")


def save(s: Session, workspace: Workspace, prepared: Prepared, *, sealer: Sealer, now: datetime) -> Connected:
    """Record the prepared portal's installation (tokens sealed): no call to HubSpot."""
    inst = install(s, workspace, mapper.PLATFORM, prepared.portal_id, prepared.credentials, prepared.config,
                   sealer, now)
    return Connected(portal_id=prepared.portal_id, created_properties=prepared.created_properties,
                     installation_id=inst.id)


def refreshed(credentials: Mapping[str, Any], config: Mapping[str, Any], *, now: datetime) -> dict[str, Any] | None:
    """New credentials when the OAuth token expires within ``REFRESH_MARGIN`` (the caller stores
    them, sealed); None when the token is good (or is a private app's, which does not expire)."""
    expires = credentials.get("expires_at")
    if not expires or not credentials.get("refresh_token") or datetime.fromisoformat(expires) - now > REFRESH_MARGIN:
        return None
    tokens = hs.refresh_tokens(host=config.get("api_base") or hs.API_BASE, client_id=credentials["client_id"],
                               client_secret=credentials["client_secret"], refresh_token=credentials["refresh_token"])
    return _oauth_credentials(tokens, credentials["client_id"], credentials["client_secret"], now)
