"""The bridge's secret keys when REPLYFLOW_SECRET_KEY is not set (sandbox mode only).

One generated key, kept in a file beside a SQLite database (``<database>.secret-key``, mode 600),
signs the inbox's cookies and seals platform tokens at rest, so nothing in a sandbox rests under
a key printed in this source. With a real WhatsApp number the key must be set (an error
otherwise); tokens sealed in the sandbox must then be connected again (their key is not the new one).
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from core.store.db import sqlite_file
from bridge.config import Settings

__all__ = ["secret_key_for", "sealing_keys_for", "SecretKeyMissing", "LEGACY_SANDBOX_KEY"]

_log = logging.getLogger(__name__)
LEGACY_SANDBOX_KEY = "replyflow-sandbox-only-key"  # opened, never used to seal: tokens sealed before 2026-12


class SecretKeyMissing(RuntimeError):
    pass


def _generated(settings: Settings) -> str | None:
    database = sqlite_file(settings.database_url)
    if database is None:
        return None
    path = Path(database).with_name(Path(database).name + ".secret-key")
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_hex(32)
    path.touch(mode=0o600)
    path.write_text(key)
    return key


def secret_key_for(settings: Settings) -> str:
    """REPLYFLOW_SECRET_KEY; in sandbox mode the generated key (per process for databases other
    than a SQLite file); with a real WhatsApp number, an error."""
    if settings.secret_key:
        return settings.secret_key
    if not settings.sandbox:
        raise SecretKeyMissing("REPLYFLOW_SECRET_KEY is not set: the agent inbox signs its session cookies with it. "
                               "Set it to a long random value (python -c 'import secrets; print(secrets.token_hex(32))')")
    key = _generated(settings)
    if key is None:
        _log.warning("REPLYFLOW_SECRET_KEY is not set: inbox sessions last until this process stops")
        return secrets.token_hex(32)
    return key


def sealing_keys_for(settings: Settings) -> tuple[str, ...]:
    """The keys that seal (the first) and open platform tokens."""
    if settings.secret_keys or settings.secret_key or not settings.sandbox:
        return settings.sealing_keys()  # set, or an error naming REPLYFLOW_SECRET_KEY
    key = _generated(settings)  # a sandbox on PostgreSQL has no file: the fixed key, as before
    return (key, LEGACY_SANDBOX_KEY) if key else (LEGACY_SANDBOX_KEY,)
