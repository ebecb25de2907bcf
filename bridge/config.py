"""Settings from the environment. Everything has a default that works on a laptop."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Mapping

__all__ = ["Settings"]


def _list(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


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
    shopify_webhook_secrets: tuple[str, ...] = ()
    # Behaviour
    cart_abandon_delay: str = "1h"
    retry_intervals: tuple[float, ...] = (6, 30, 120, 600, 1800)  # seconds between a failed job's retries
    api_token: str | None = None  # agent API bearer token; unset = API refuses every call
    workspace_name: str = "My shop"
    action_webhook_url: str | None = None  # where ``action: {name: webhook}`` steps post by default
    action_secret: str = "replyflow-action-secret"  # signs those posts (set your own)
    flows_dir: str | None = None  # the workspace's own flow files (YAML), beside the shipped ones
    export_dir: str = "exports"  # where privacy exports (customers/data_request) are written
    erase_salt: str = "replyflow-default-salt"  # salts the hashes kept of erased contacts
    # seals platform tokens at rest (comma-separated: the first seals, all open); the sandbox has a
    # fixed development key, a real deployment must set its own
    secret_keys: tuple[str, ...] = ()
    public_url: str = "http://127.0.0.1:8000"  # where people reach this bridge (links in CRM notes)
    extra: Mapping[str, str] = field(default_factory=dict)

    def sealing_keys(self) -> tuple[str, ...]:
        if self.secret_keys:
            return self.secret_keys
        if self.sandbox:
            return ("replyflow-sandbox-only-key",)
        raise RuntimeError("REPLYFLOW_SECRET_KEY is not set: it seals platform tokens at rest "
                           "(any long random string; keep it safe and stable)")

    def conversation_url(self, conversation_id: int) -> str:
        return f"{self.public_url}/inbox/conversations/{conversation_id}"

    def connector_secrets(self, platform: str) -> tuple[str, ...]:
        return {"shopify": self.shopify_webhook_secrets}.get(platform, ())

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        token = env.get("WHATSAPP_ACCESS_TOKEN")
        base = cls()
        return replace(
            base,
            database_url=env.get("DATABASE_URL", base.database_url),
            redis_url=env.get("REDIS_URL") or None,
            whatsapp_app_secrets=_list(env.get("WHATSAPP_APP_SECRET")) or base.whatsapp_app_secrets,
            whatsapp_verify_token=env.get("WHATSAPP_VERIFY_TOKEN", base.whatsapp_verify_token),
            whatsapp_access_token=token or base.whatsapp_access_token,
            whatsapp_phone_number_id=env.get("WHATSAPP_PHONE_NUMBER_ID", base.whatsapp_phone_number_id),
            whatsapp_display_phone=env.get("WHATSAPP_DISPLAY_PHONE", base.whatsapp_display_phone),
            whatsapp_waba_id=env.get("WHATSAPP_WABA_ID", base.whatsapp_waba_id),
            whatsapp_api_base=env.get("WHATSAPP_API_BASE") or None,
            whatsapp_api_version=env.get("WHATSAPP_API_VERSION", base.whatsapp_api_version),
            whatsapp_messages_per_second=float(env.get("WHATSAPP_MESSAGES_PER_SECOND",
                                                       base.whatsapp_messages_per_second)),
            whatsapp_timeout=float(env.get("WHATSAPP_TIMEOUT", base.whatsapp_timeout)),
            whatsapp_max_in_flight=int(env.get("WHATSAPP_MAX_IN_FLIGHT", base.whatsapp_max_in_flight)),
            sandbox=not token,
            shopify_webhook_secrets=_list(env.get("SHOPIFY_WEBHOOK_SECRET")),
            cart_abandon_delay=env.get("CART_ABANDON_DELAY", base.cart_abandon_delay),
            api_token=env.get("REPLYFLOW_API_TOKEN") or None,
            retry_intervals=tuple(float(x) for x in _list(env.get("REPLYFLOW_RETRY_INTERVALS")))
            or base.retry_intervals,
            workspace_name=env.get("REPLYFLOW_WORKSPACE_NAME", base.workspace_name),
            export_dir=env.get("REPLYFLOW_EXPORT_DIR", base.export_dir),
            flows_dir=env.get("REPLYFLOW_FLOWS_DIR") or None,
            action_webhook_url=env.get("REPLYFLOW_ACTION_WEBHOOK_URL") or None,
            action_secret=env.get("REPLYFLOW_ACTION_SECRET", base.action_secret),
            erase_salt=env.get("REPLYFLOW_ERASE_SALT", base.erase_salt),
            secret_keys=_list(env.get("REPLYFLOW_SECRET_KEY")),
            public_url=(env.get("REPLYFLOW_PUBLIC_URL") or base.public_url).rstrip("/"),
        )
