"""Settings from the environment. Everything has a default that works on a laptop.

A value that cannot be used raises ``SettingsError`` (a ``ValueError``) naming the variable, what it
must be and what it is.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from typing import Mapping

from core.flows.definition import parse_duration

__all__ = ["Settings", "SettingsError"]


class SettingsError(ValueError):
    """A setting that cannot be used; the message names the variable."""


# With a real WhatsApp number these must be your own: their sandbox defaults are public, so a
# forged webhook, a forged action post or a re-identified erased phone would pass
LIVE_REQUIRED = ("WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN", "WHATSAPP_PHONE_NUMBER_ID",
                 "REPLYFLOW_ACTION_SECRET", "REPLYFLOW_ERASE_SALT")


def _require_live(env: Mapping[str, str]) -> None:
    missing = [name for name in LIVE_REQUIRED if not (env.get(name) or "").strip()]
    if missing:
        raise SettingsError(f"WHATSAPP_ACCESS_TOKEN is set (a real number), so {', '.join(missing)} must be set too: "
                            "their defaults are the sandbox's public values")


def _list(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


def _number(env: Mapping[str, str], name: str, default: float, *, whole: bool = False,
            minimum: float = 0.0) -> float:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    what = f"a whole number of at least {minimum:g}" if whole else f"a number above {minimum:g}"
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be {what}, not {raw!r}") from None
    if not math.isfinite(value) or (value < minimum if whole else value <= minimum):
        raise SettingsError(f"{name} must be {what}, not {raw!r}")
    return value


def _intervals(env: Mapping[str, str], name: str, default: tuple[float, ...]) -> tuple[float, ...]:
    values = _list(env.get(name))
    try:
        parsed = tuple(float(v) for v in values)
    except ValueError:
        parsed = ()
    if len(parsed) != len(values) or any(not math.isfinite(v) or v < 0 for v in parsed):
        raise SettingsError(f"{name} must be seconds separated by commas (e.g. 6,30,120), not {env.get(name)!r}")
    return parsed or default


def _duration(env: Mapping[str, str], name: str, default: str) -> str:
    value = (env.get(name) or "").strip() or default
    try:
        parse_duration(value)
    except ValueError as exc:
        raise SettingsError(f"{name}: {exc}") from None
    return value


def _redis_url(value: str | None) -> str | None:
    value = (value or "").strip() or None
    if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError(f"REDIS_URL must start with redis://, rediss:// or unix://, not {value[:40]!r}")
    return value


def _database_url(value: str) -> str:
    """``postgres://`` and ``postgresql://`` (as Heroku and others hand them out) mean PostgreSQL
    through psycopg 3, the driver replyflow installs; SQLAlchemy would look for a ``postgres``
    dialect, or for psycopg2."""
    scheme, sep, rest = value.strip().partition("://")
    if sep and scheme.lower() in ("postgres", "postgresql"):
        return f"postgresql+psycopg://{rest}"
    return value


def _ingest(value: str | None, redis_url: str | None) -> str:
    value = (value or "direct").strip().lower()
    if value not in ("direct", "deferred"):
        raise SettingsError(f"REPLYFLOW_INGEST must be 'direct' or 'deferred', not {value!r}")
    if value == "deferred" and not redis_url:
        raise SettingsError("REPLYFLOW_INGEST=deferred needs REDIS_URL (the dispatcher runs in `replyflow worker`)")
    return value


def _proxies(value: str | None) -> int:
    value = (value or "0").strip()
    if not value.isdigit() or int(value) > 5:
        raise SettingsError(f"REPLYFLOW_TRUSTED_PROXIES must be how many reverse proxies stand in front of the bridge "
                            f"(0 to 5, usually 1), not {value!r}")
    return int(value)


def _stream_seconds(value: str | None) -> float | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not math.isfinite(seconds) or not 0 <= seconds <= 3600:
        raise SettingsError(f"REPLYFLOW_INBOX_STREAM_SECONDS must be seconds from 0 (look once and end) to 3600, "
                            f"not {value!r}")
    return seconds


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    database_url: str = "sqlite:///replyflow.db"
    redis_url: str | None = None  # set: jobs go through RQ; unset: the in-process runner
    # WhatsApp Cloud API (unset access token = the built-in sandbox)
    whatsapp_app_secrets: tuple[str, ...] = ("sandbox-app-secret",)
    whatsapp_verify_token: str = "sandbox-verify-token"
    whatsapp_access_token: str = "sandbox-access-token"
    whatsapp_phone_number_id: str = "106000000000002"
    whatsapp_display_phone: str = "15550001111"
    whatsapp_waba_id: str = "109876543210001"
    whatsapp_api_base: str | None = None  # None = https://graph.facebook.com, or the sandbox
    whatsapp_api_version: str = "v25.0"
    whatsapp_messages_per_second: float = 80.0  # the number's throughput tier (80 default, up to 1,000)
    whatsapp_timeout: float = 10.0  # seconds to wait for the Cloud API's answer (then: outcome unknown)
    whatsapp_max_in_flight: int = 256  # bulk sends open at once per worker
    sandbox: bool = True
    # Shopify
    shopify_webhook_secrets: tuple[str, ...] = ()  # the app's client secret(s): webhooks and OAuth queries
    shopify_client_id: str | None = None  # the app's client id (OAuth install; not needed for custom-app tokens)
    shopify_api_version: str = "2025-10"  # the ONE pinned Admin API version (subscriptions, tags, metafields)
    shopify_api_base: str | None = None  # None = https://{shop}; tests point it at the emulator
    # WooCommerce: webhooks replyflow registers carry a per-store secret; this one is for webhooks
    # a shop admin created by hand
    woocommerce_webhook_secrets: tuple[str, ...] = ()
    # HubSpot (the app's client secret signs webhooks; id + secret run the OAuth install)
    hubspot_client_id: str | None = None
    hubspot_client_secrets: tuple[str, ...] = ()
    hubspot_api_base: str | None = None  # None = https://api.hubapi.com
    hubspot_authorize_url: str = "https://app.hubspot.com/oauth/authorize"
    # Behaviour
    cart_abandon_delay: str = "1h"
    retry_intervals: tuple[float, ...] = (6, 30, 120, 600, 1800)  # seconds between a failed job's retries
    api_token: str | None = None  # agent API bearer token; unset = API refuses every call
    workspace_name: str = "My shop"
    action_webhook_url: str | None = None  # where ``action: {name: webhook}`` steps post by default
    action_secret: str = "replyflow-action-secret"  # signs those posts (set your own)
    flows_dir: str | None = None  # the workspace's own flow files (YAML), beside the shipped ones
    templates_dir: str | None = None  # the workspace's own template files (YAML, one per template)
    export_dir: str = "exports"  # where privacy exports (customers/data_request) are written
    erase_salt: str = "replyflow-default-salt"  # salts the hashes kept of erased contacts
    # REPLYFLOW_SECRET_KEY (comma-separated for rotation: the first signs and seals, all open):
    # signs the inbox's session cookies and seals platform tokens at rest. Unset: generated and kept
    # beside a SQLite database in sandbox mode; an error once a real WhatsApp number is connected.
    secret_key: str | None = None
    secret_keys: tuple[str, ...] = ()
    secure_cookies: bool | None = None  # Secure cookies (None = when not in sandbox mode)
    public_url: str = "http://127.0.0.1:8000"  # the bridge's public address: links into the inbox
    ingest: str = "direct"  # direct: webhooks enqueue; deferred: the worker's dispatcher does (RQ only)
    trusted_proxies: int = 0  # reverse proxies in front whose X-Forwarded-For/-Proto are believed
    # how long one live-update request of the inbox stays open; None = the server's default
    # (bridge.inbox.views: one look under gunicorn, five minutes under the built-in server)
    inbox_stream_seconds: float | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    def sealing_keys(self) -> tuple[str, ...]:
        """REPLYFLOW_SECRET_KEY(S); a sandbox without them is bridge.secret_keys' business."""
        if self.secret_keys:
            return self.secret_keys
        if self.secret_key:
            return (self.secret_key,)
        raise SettingsError("REPLYFLOW_SECRET_KEY is not set: it seals platform tokens at rest "
                           "(any long random string; keep it safe and stable)")

    def conversation_url(self, conversation_id: int) -> str:
        return f"{self.public_url}/inbox/conversations/{conversation_id}"

    def connector_secrets(self, platform: str) -> tuple[str, ...]:
        return {"shopify": self.shopify_webhook_secrets,
                "woocommerce": self.woocommerce_webhook_secrets,
                "hubspot": self.hubspot_client_secrets}.get(platform, ())

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        token = env.get("WHATSAPP_ACCESS_TOKEN")
        if token:
            _require_live(env)
        base = cls()
        return replace(
            base,
            database_url=_database_url(env.get("DATABASE_URL", base.database_url)),
            redis_url=_redis_url(env.get("REDIS_URL")),
            whatsapp_app_secrets=_list(env.get("WHATSAPP_APP_SECRET")) or base.whatsapp_app_secrets,
            whatsapp_verify_token=env.get("WHATSAPP_VERIFY_TOKEN", base.whatsapp_verify_token),
            whatsapp_access_token=token or base.whatsapp_access_token,
            whatsapp_phone_number_id=env.get("WHATSAPP_PHONE_NUMBER_ID", base.whatsapp_phone_number_id),
            whatsapp_display_phone=env.get("WHATSAPP_DISPLAY_PHONE", base.whatsapp_display_phone),
            whatsapp_waba_id=env.get("WHATSAPP_WABA_ID", base.whatsapp_waba_id),
            whatsapp_api_base=env.get("WHATSAPP_API_BASE") or None,
            whatsapp_api_version=env.get("WHATSAPP_API_VERSION", base.whatsapp_api_version),
            whatsapp_messages_per_second=_number(env, "WHATSAPP_MESSAGES_PER_SECOND",
                                                 base.whatsapp_messages_per_second),
            whatsapp_timeout=_number(env, "WHATSAPP_TIMEOUT", base.whatsapp_timeout),
            whatsapp_max_in_flight=int(_number(env, "WHATSAPP_MAX_IN_FLIGHT", base.whatsapp_max_in_flight,
                                               whole=True, minimum=1)),
            sandbox=not token,
            shopify_webhook_secrets=_list(env.get("SHOPIFY_WEBHOOK_SECRET")),
            shopify_client_id=env.get("SHOPIFY_CLIENT_ID") or None,
            shopify_api_version=env.get("SHOPIFY_API_VERSION", base.shopify_api_version),
            shopify_api_base=env.get("SHOPIFY_API_BASE") or None,
            woocommerce_webhook_secrets=_list(env.get("WOOCOMMERCE_WEBHOOK_SECRET")),
            hubspot_client_id=env.get("HUBSPOT_CLIENT_ID") or None,
            hubspot_client_secrets=_list(env.get("HUBSPOT_CLIENT_SECRET")),
            hubspot_api_base=env.get("HUBSPOT_API_BASE") or None,
            hubspot_authorize_url=env.get("HUBSPOT_AUTHORIZE_URL", base.hubspot_authorize_url),
            cart_abandon_delay=_duration(env, "CART_ABANDON_DELAY", base.cart_abandon_delay),
            api_token=env.get("REPLYFLOW_API_TOKEN") or None,
            retry_intervals=_intervals(env, "REPLYFLOW_RETRY_INTERVALS", base.retry_intervals),
            workspace_name=env.get("REPLYFLOW_WORKSPACE_NAME", base.workspace_name),
            export_dir=env.get("REPLYFLOW_EXPORT_DIR", base.export_dir),
            flows_dir=env.get("REPLYFLOW_FLOWS_DIR") or None,
            templates_dir=env.get("REPLYFLOW_TEMPLATES_DIR") or None,
            action_webhook_url=env.get("REPLYFLOW_ACTION_WEBHOOK_URL") or None,
            action_secret=env.get("REPLYFLOW_ACTION_SECRET", base.action_secret),
            erase_salt=env.get("REPLYFLOW_ERASE_SALT", base.erase_salt),
            secret_key=(_list(env.get("REPLYFLOW_SECRET_KEY")) or (None,))[0],
            secret_keys=_list(env.get("REPLYFLOW_SECRET_KEY")),
            secure_cookies={"1": True, "true": True, "0": False, "false": False}.get(
                env.get("REPLYFLOW_SECURE_COOKIES", "").lower()),
            public_url=(env.get("REPLYFLOW_PUBLIC_URL") or base.public_url).rstrip("/"),
            ingest=_ingest(env.get("REPLYFLOW_INGEST"), env.get("REDIS_URL")),
            trusted_proxies=_proxies(env.get("REPLYFLOW_TRUSTED_PROXIES")),
            inbox_stream_seconds=_stream_seconds(env.get("REPLYFLOW_INBOX_STREAM_SECONDS")),
        )
