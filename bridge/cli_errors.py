"""What a `replyflow` command prints when it fails for a reason the user can act on.

``one_line(exc)`` turns the errors replyflow expects at the terminal (its own error classes, a missing
installation, a file that cannot be read, a setting that cannot be used, a database or Redis that
cannot be reached) into one line naming the cause; ``None`` for anything else, which is a bug and
keeps its traceback. ``replyflow --debug`` (or ``REPLYFLOW_DEBUG=1``) shows the traceback for all.
"""

from __future__ import annotations

import os

__all__ = ["one_line", "debug_from_env"]


def debug_from_env() -> bool:
    return os.environ.get("REPLYFLOW_DEBUG", "").strip().lower() in ("1", "true", "yes")


def _first_line(text: object) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


def _os_error(exc: OSError) -> str:
    if exc.filename is not None and exc.strerror:
        return f"{exc.strerror}: {exc.filename}"
    return _first_line(exc) or type(exc).__name__


def _unicode(exc: UnicodeDecodeError) -> str:
    return f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at position {exc.start}); save the file as UTF-8"


def _database(exc: Exception) -> str | None:
    from sqlalchemy.exc import ArgumentError, OperationalError

    if isinstance(exc, ArgumentError):
        return f"DATABASE_URL cannot be used: {_first_line(exc)}"
    if isinstance(exc, OperationalError):
        return f"the database at DATABASE_URL cannot be used: {_first_line(getattr(exc, 'orig', None) or exc)}"
    return None


def _redis(exc: Exception) -> str | None:
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError, TimeoutError as RedisTimeout
    except ImportError:  # pragma: no cover - redis is a dependency
        return None
    if isinstance(exc, (RedisConnectionError, RedisTimeout)):
        return f"cannot reach Redis at REDIS_URL: {_first_line(exc)}"
    return None


def one_line(exc: BaseException) -> str | None:
    """The message for an expected failure, or ``None`` when ``exc`` is a bug."""
    from core.errors import ReplyflowError
    from core.installations import NotInstalled
    from bridge.config import SettingsError

    if not isinstance(exc, Exception):
        return None
    for kind, describe in ((SettingsError, lambda e: f"configuration: {e}"), (ReplyflowError, _first_line),
                           (NotInstalled, _first_line), (UnicodeDecodeError, _unicode), (OSError, _os_error)):
        if isinstance(exc, kind):
            return describe(exc) or type(exc).__name__
    return _database(exc) or _redis(exc)
