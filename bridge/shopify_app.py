"""Installing replyflow as a Shopify app: ``/shopify/install`` and ``/shopify/callback`` (OAuth),
and ``connect_shop``, which the callback and ``replyflow connect shopify`` share: seal the token,
record the installation, register the webhook subscriptions.

The state nonce lives in the shop's installation row (``config["oauth_state"]``: its SHA-256 and
an expiry), so it survives a restart between the redirect and the callback, works across
processes, and is removed when the callback reads it (single use).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import datetime, timedelta

from flask import Blueprint, Response, current_app, redirect, request
from sqlalchemy import select

from connectors.shopify import install as shop_install
from connectors.shopify.client import ShopifyClient, exchange_code
from core.errors import PermanentError, RetryableError, SignatureError
from core.installations import install
from core.store import session_scope
from core.store.models import Installation, Workspace
from bridge.runtime import Runtime

__all__ = ["bp", "connect_shop", "client_for", "NONCE_TTL"]

_log = logging.getLogger(__name__)
bp = Blueprint("shopify_app", __name__, url_prefix="/shopify")
NONCE_TTL = timedelta(minutes=10)


def _rt() -> Runtime:
    return current_app.extensions["replyflow"]


def _text(status: int, text: str) -> Response:
    if status >= 400:
        _log.info("shopify install refused (%s): %s", status, text)
    return Response(text + "\n", status=status, mimetype="text/plain")


def _digest(nonce: str) -> str:
    return hashlib.sha256(nonce.encode("utf-8")).hexdigest()


def client_for(rt: Runtime, shop: str, token: str, *, api_version: str | None = None,
               base_url: str | None = None) -> ShopifyClient:
    return ShopifyClient(shop=shop, token=token, api_version=api_version or rt.settings.shopify_api_version,
                         base_url=base_url or rt.settings.shopify_api_base)


def connect_shop(rt: Runtime, shop: str, token: str, *, scopes: str = "", workspace: str = "default",
                 how: str = "oauth") -> shop_install.SubscriptionCheck:
    """Record the shop's installation (token sealed) and register its webhook subscriptions."""
    settings = rt.settings
    with client_for(rt, shop, token) as client:
        client.shop_name()  # the token works (PermanentError when Shopify rejects it)
        with session_scope(rt.db) as s:
            ws = s.scalar(select(Workspace).where(Workspace.slug == workspace))
            if ws is None:
                raise PermanentError(f"no workspace {workspace!r}")
            config = shop_install.installation_config(shop, api_version=settings.shopify_api_version,
                                                      base_url=settings.shopify_api_base, scopes=scopes)
            inst = install(s, ws, "shopify", shop, {"access_token": token}, {**config, "installed_by": how},
                           rt.sealer, rt.clock.now())
            inst.config = {k: v for k, v in inst.config.items() if k != "oauth_state"}
        result = shop_install.register(client, shop_install.webhook_uri(settings.public_url))
    with session_scope(rt.db) as s:
        inst = s.scalar(select(Installation).where(Installation.platform == "shopify", Installation.account == shop))
        hooks = {**result.present, **result.created}
        inst.config = {**inst.config, "webhooks": {topic: sub.id for topic, sub in sorted(hooks.items())}}
    return result


# ---------------------------------------------------------------- OAuth


def _checked(now: datetime) -> tuple[str, dict[str, str]]:
    params = request.args.to_dict()
    shop = shop_install.valid_shop(params.get("shop"))
    shop_install.verify_query(params, _rt().settings.shopify_webhook_secrets, now)
    return shop, params


@bp.get("/install")
def start_install():
    rt = _rt()
    if not rt.settings.shopify_client_id or not rt.settings.shopify_webhook_secrets:
        return _text(503, "Shopify app not configured: set SHOPIFY_CLIENT_ID and SHOPIFY_WEBHOOK_SECRET")
    now = rt.clock.now()
    try:
        shop, _ = _checked(now)
    except shop_install.InstallError as exc:
        return _text(400, str(exc))
    except SignatureError as exc:
        return _text(401, str(exc))
    nonce = secrets.token_urlsafe(24)
    with session_scope(rt.db) as s:
        inst = s.scalar(select(Installation).where(Installation.platform == "shopify", Installation.account == shop))
        if inst is None:
            ws = s.scalar(select(Workspace).where(Workspace.slug == "default"))
            inst = Installation(workspace_id=ws.id, platform="shopify", account=shop, status="pending", config={})
            s.add(inst)
        state = {"nonce_sha256": _digest(nonce), "expires_at": (now + NONCE_TTL).isoformat()}
        inst.config, inst.updated_at = {**(inst.config or {}), "oauth_state": state}, now
    url = shop_install.authorize_url(shop, client_id=rt.settings.shopify_client_id, state=nonce,
                                     redirect_uri=f"{rt.settings.public_url}/shopify/callback",
                                     base_url=rt.settings.shopify_api_base)
    return redirect(url, code=302)


def _take_nonce(rt: Runtime, shop: str, given: str, now: datetime) -> str | None:
    """Consume the shop's stored nonce; the reason it does not match, or None when it does."""
    with session_scope(rt.db) as s:
        inst = s.scalar(select(Installation).where(Installation.platform == "shopify", Installation.account == shop))
        state = (inst.config or {}).get("oauth_state") if inst is not None else None
        if not state:
            return "no install in progress for this shop (start again from the Shopify admin)"
        inst.config = {k: v for k, v in inst.config.items() if k != "oauth_state"}  # single use
    if not hmac.compare_digest(_digest(given), state.get("nonce_sha256", "")):
        return "state does not match the install request"
    if now > datetime.fromisoformat(state["expires_at"]):
        return "install request expired (start again from the Shopify admin)"
    return None


@bp.get("/callback")
def finish_install():
    rt = _rt()
    if not rt.settings.shopify_client_id or not rt.settings.shopify_webhook_secrets:
        return _text(503, "Shopify app not configured: set SHOPIFY_CLIENT_ID and SHOPIFY_WEBHOOK_SECRET")
    now = rt.clock.now()
    try:
        shop, params = _checked(now)
    except shop_install.InstallError as exc:
        return _text(400, str(exc))
    except SignatureError as exc:
        return _text(401, str(exc))
    problem = _take_nonce(rt, shop, params.get("state") or "", now)
    if problem:
        return _text(403, problem)
    if not params.get("code"):
        return _text(400, "code parameter is missing")
    try:
        token, scopes = exchange_code(shop, params["code"], client_id=rt.settings.shopify_client_id,
                                      client_secret=rt.settings.shopify_webhook_secrets[0],
                                      base_url=rt.settings.shopify_api_base)
        result = connect_shop(rt, shop, token, scopes=scopes)
    except RetryableError as exc:
        return _text(503, f"Shopify did not answer, try again: {exc}")
    except PermanentError as exc:
        return _text(502, f"Shopify refused: {exc}")
    lines = [f"replyflow is connected to {shop}.",
             f"Webhook subscriptions: {len(result.present) + len(result.created)} of {len(shop_install.TOPICS)}."]
    lines += [f"  not registered: {topic}: {why}" for topic, why in sorted(result.failed.items())]
    granted = set(scopes.split(","))
    lacking = [w for w in shop_install.SCOPES if w.startswith("write_") and w not in granted]
    if scopes and lacking:
        lines.append(f"Not granted: {', '.join(lacking)}; tags and links will not appear in the admin.")
    return _text(200, "\n".join(lines))
