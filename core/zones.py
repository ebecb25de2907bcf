"""Reading IANA time zone names that come from settings and platforms (free text)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["read_zone"]


def read_zone(name: str | None) -> ZoneInfo | None:
    """The zone ``name`` names, or None for an empty, unknown or malformed name. ``ZoneInfo``
    raises three kinds of error: unknown (ZoneInfoNotFoundError), malformed such as '../x'
    (ValueError) and a name that is a folder of the database such as 'Europe' (IsADirectoryError)."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None
