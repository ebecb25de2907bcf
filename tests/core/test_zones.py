"""Time zone names from settings and platforms are free text: every kind of bad name reads as None."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from connectors.hubspot.client import RateLimited
from connectors.hubspot.notes import retry_after_for
from core.zones import read_zone


@pytest.mark.parametrize("name", [None, "", "Mars/Base", "Europe", "../etc/passwd", "America/"])
def test_a_name_that_is_not_a_zone_reads_as_none(name):
    assert read_zone(name) is None  # 'Europe' is a folder of the zone database: IsADirectoryError inside


def test_a_zone_reads():
    assert read_zone("Europe/Madrid").key == "Europe/Madrid"


def test_hubspot_daily_limit_with_a_portal_zone_naming_a_folder_waits_until_utc_midnight():
    now = datetime(2026, 12, 4, 23, 0, tzinfo=timezone.utc)
    exc = RateLimited("daily limit", policy="DAILY", retry_after=None)
    assert retry_after_for(exc, now, "Europe") == 3600.0
