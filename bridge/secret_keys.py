"""The bridge's secret keys when REPLYFLOW_SECRET_KEY is not set (sandbox mode only).

One generated key, kept in a file beside a SQLite database (``<database>.secret-key``, mode 600),
or, for another database, ``replyflow.secret-key`` in the folder the bridge runs in, signs the
inbox's cookies and seals platform tokens at rest, so nothing in a sandbox rests under a key
printed in this source, and every process of one bridge (gunicorn's workers) signs with the same
key: a per-process key signed agents out whenever their next request reached another worker. With a real WhatsApp number the key must be set (an error
otherwise); tokens sealed in the sandbox must then be connected again (their key is not the new one).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from core.store.db import sqlite_file
from bridge.config import Settings

__all__ = ["secret_key_for", "sealing_keys_for", "SecretKeyMissing", "LEGACY_SANDBOX_KEY"]

LEGACY_SANDBOX_KEY = "replyflow-sandbox-only-key"  # opened, never used to seal: tokens sealed before 2026-12


class SecretKeyMissing(RuntimeError):
    pass


def _key_file(settings: Settings) -> Path:
    database = sqlite_file(settings.database_url)
    if database is None:
        return Path.cwd() / "replyflow.secret-key"
    return Path(database).with_name(Path(database).name + ".secret-key")


def _generated(settings: Settings) -> str:
    """The key in the key file, written first if there is none. Processes starting together agree:
    each writes its own candidate and links it into place; the first link wins, all read the winner."""
    path = _key_file(settings)
    if not path.exists():
        candidate = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_hex(32).encode())
            os.close(fd)
            try:
                os.link(candidate, path)
            except FileExistsError:
                pass  # another process was first: its key is the key
        finally:
            candidate.unlink(missing_ok=True)
    return path.read_text().strip()


def secret_key_for(settings: Settings) -> str:
    """REPLYFLOW_SECRET_KEY; in sandbox mode the generated key; with a real WhatsApp number, an error."""
    if settings.secret_key:
        return settings.secret_key
    if not settings.sandbox:
        raise SecretKeyMissing("REPLYFLOW_SECRET_KEY is not set: the agent inbox signs its session cookies with it. "
                               "Set it to a long random value (python -c 'import secrets; print(secrets.token_hex(32))')")
    return _generated(settings)


def sealing_keys_for(settings: Settings) -> tuple[str, ...]:
    """The keys that seal (the first) and open platform tokens."""
    if settings.secret_keys or settings.secret_key or not settings.sandbox:
        return settings.sealing_keys()  # set, or an error naming REPLYFLOW_SECRET_KEY
    return _generated(settings), LEGACY_SANDBOX_KEY
