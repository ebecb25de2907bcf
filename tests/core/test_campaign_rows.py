"""A segment row the campaign cannot send says why, and what to do about it."""

from __future__ import annotations

from core.campaigns import _prepare
from core.templates import default_catalogue

TEMPLATE = default_catalogue().get("cart_reminder")
PARAMS = {"first_name": "Maya", "cart_total": "12.00 USD", "recovery_link": "https://shop.example/r/1"}


def test_a_national_number_without_a_country_column_says_how_to_fix_it():
    ready, reason = _prepare(TEMPLATE, PARAMS, {"phone": "(555) 000-0101"})
    assert ready is None
    assert reason == ("not a phone number: national number without a country; give it with + and the country "
                      "code, or add a 'country' column (e.g. US)")


def test_the_same_number_with_its_country_goes():
    ready, reason = _prepare(TEMPLATE, PARAMS, {"phone": "(555) 000-0101", "country": "US"})
    assert reason is None and ready[0].e164 == "+15550000101"
