"""core.phones: normalisation, WhatsApp-id matching keys, candidate picking, time zones."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import PhoneError
from core.events import PhoneCandidate
from core.phones import (
    Phone,
    country_timezone,
    from_wa_id,
    mask,
    match_keys,
    normalize,
    pick_best,
)


@pytest.mark.parametrize(
    ("raw", "country", "e164", "region", "valid"),
    [
        ("+15550002222", None, "+15550002222", "US", False),  # Shopify fixture: fictional 555
        ("(555) 000-4444", "US", "+15550004444", "US", False),  # shipping_address.phone
        ("(555) 000-4444", "us", "+15550004444", "US", False),
        ("1 555 000 4444", "US", "+15550004444", "US", False),
        ("+1 555.000.1111", None, "+15550001111", "US", False),
        ("tel:+1-555-000-1111", None, "+15550001111", "US", False),
        ("  +1 (212) 555-0100 ", None, "+12125550100", "US", True),
        ("0044 20 7946 0958", None, "+442079460958", "GB", True),
        ("0044 20 7946 0958", "US", "+442079460958", "GB", True),  # 00 is always international
        ("011 44 20 7946 0958", "US", "+442079460958", "GB", True),  # the country's own IDD
        ("07700 900123", "GB", "+447700900123", "GB", False),  # Ofcom drama range: possible only
        ("020 7946 0958", "GB", "+442079460958", "GB", True),
        ("+44 (0)20 7946 0958", None, "+442079460958", "GB", True),
        ("+49 (0)30 123456", None, "+4930123456", "DE", True),
        ("+49 (0)30 12345678", "FR", "+493012345678", "DE", True),
        ("+39 06 1234 5678", None, "+390612345678", "IT", True),  # Italian leading zero kept
        ("11 98765-4321", "BR", "+5511987654321", "BR", True),
        ("0 11 98765-4321", "BR", "+5511987654321", "BR", True),
        ("(11) 8765-4321", "BR", "+551187654321", "BR", False),  # pre-ninth-digit mobile
        ("+52 1 55 1234 5678", None, "+525512345678", "MX", True),  # old mobile 1 dropped
        ("55 1234 5678", "MX", "+525512345678", "MX", True),
        ("011 15 2345-6789", "AR", "+5491123456789", "AR", True),  # national 15 -> +54 9
        ("11 15 2345-6789", "AR", "+5491123456789", "AR", True),
        ("0341 15 456 7890", "AR", "+5493414567890", "AR", True),
        ("+54 11 15 2345 6789", None, "+5491123456789", "AR", True),
        ("+54 9 11 2345 6789", None, "+5491123456789", "AR", True),
        ("+54 11 2345 6789", None, "+541123456789", "AR", True),  # fixed-line form, kept
    ],
)
def test_normalize_accepts(raw: str, country: str | None, e164: str, region: str, valid: bool) -> None:
    phone = normalize(raw, country)
    assert (phone.e164, phone.country, phone.valid) == (e164, region, valid)
    assert (phone.warning is None) is valid


def test_possible_but_invalid_warns_without_full_number() -> None:
    phone = normalize("+15550002222")
    assert phone == Phone(
        e164="+15550002222",
        country="US",
        valid=False,
        warning="+1 555… is possible but not a valid number for US; accepted",
    )
    assert "0002222" not in phone.warning


@pytest.mark.parametrize(
    ("raw", "country", "reason"),
    [
        ("(555) 000-4444", None, "national number without a country"),
        ("555 000 4444", "", "national number without a country"),
        ("555 000 4444", "Narnia", "unknown country"),
        ("", None, "empty"),
        ("tel:", None, "empty"),
        ("+1 555", None, "too short"),
        ("+1 555 000 11", None, "too short"),
        ("123 4567", "US", "local number without area code"),
        ("+1 555 000 1111 2", None, "too long"),
        ("+1555000111122223333", None, "too long"),
        ("+44 20 7946 0958 1234 5", None, "too long"),
        ("abc", None, "not a number"),
        ("+", None, "not a number"),
        ("+1 555 CALL NOW", None, "not a number"),  # no vanity-letter conversion
        ("1-800-FLOWERS", "US", "not a number"),
        ("+999 123456789", None, "invalid country code"),
        ("+0 123456", None, "invalid country code"),
        ("+43 0 000 000", None, "trunk prefix"),  # would lose a 0 on every re-parse
        ("+1 555 000 1111 ext 23", None, "extension"),
        ("+1 555 000 1111 x23", None, "extension"),
        ("tel:+1-555-000-1111;ext=12", None, "extension"),
    ],
)
def test_normalize_rejects_with_reason(raw: str, country: str | None, reason: str) -> None:
    with pytest.raises(PhoneError, match=reason) as info:
        normalize(raw, country)
    assert "5550001111" not in str(info.value)  # reasons never echo the number


@pytest.mark.parametrize(
    ("wa_id", "e164"),
    [("15550002222", "+15550002222"), (" 5215512345678 ", "+5215512345678"), ("+447700900123", "+447700900123")],
)
def test_from_wa_id(wa_id: str, e164: str) -> None:
    assert from_wa_id(wa_id) == e164


@pytest.mark.parametrize("wa_id", ["", "1555-000", "abc", "0441234567", "123", "1234567890123456", "١٢٣٤٥٦٧٨"])
def test_from_wa_id_rejects(wa_id: str) -> None:
    with pytest.raises(PhoneError):
        from_wa_id(wa_id)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("+5511987654321", "+551187654321"),  # BR ninth digit
        ("+552198765432" + "1", "+55218765432" + "1"),
        ("+5215512345678", "+525512345678"),  # MX old mobile 1
        ("+5491123456789", "+541123456789"),  # AR mobile 9
        ("+5493414567890", "+543414567890"),
    ],
)
def test_match_keys_pairs_are_symmetric(one: str, other: str) -> None:
    assert match_keys(one) == match_keys(other) == frozenset({one, other})


@pytest.mark.parametrize(
    "e164",
    [
        "+4930123456",  # DE
        "+15550002222",
        "+442079460958",
        "+551123456789",  # BR landline (subscriber starts 2-5): no ninth-digit twin
        "+55119234567890",  # BR, not 10/11 digits
    ],
)
def test_match_keys_singletons(e164: str) -> None:
    assert match_keys(e164) == frozenset({e164})


def test_match_keys_joins_wa_id_and_shop_phone() -> None:
    shop = normalize("(11) 98765-4321", "BR").e164
    assert from_wa_id("551187654321") in match_keys(shop)
    shop_mx = normalize("55 1234 5678", "MX").e164
    assert from_wa_id("5215512345678") in match_keys(shop_mx)


def test_match_keys_rejects_garbage() -> None:
    with pytest.raises(PhoneError):
        match_keys("not a phone")


def _cand(raw: str, source: str, country: str | None = None) -> PhoneCandidate:
    return PhoneCandidate(raw=raw, source=source, country=country)


@pytest.mark.parametrize(
    ("candidates", "e164", "reasons"),
    [
        ([], None, []),
        ([_cand("+15550002222", "checkout.phone")], "+15550002222", []),
        (
            [_cand("", "checkout.sms_marketing_phone"), _cand("(555) 000-4444", "shipping_address.phone", "US")],
            "+15550004444",
            ["checkout.sms_marketing_phone: empty phone number"],
        ),
        (
            [
                _cand("+1 555", "checkout.phone"),
                _cand("(555) 000-4444", "billing_address.phone"),
                _cand("07700 900123", "shipping_address.phone", "GB"),
                _cand("+15550002222", "customer.phone"),  # never reached
            ],
            "+447700900123",
            [
                "checkout.phone: too short for US",
                "billing_address.phone: national number without a country",
            ],
        ),
        (
            [_cand("abc", "a"), _cand("+999 1234567", "b")],
            None,
            ["a: not a number (no digits)", "b: invalid country code"],
        ),
    ],
)
def test_pick_best(candidates: list[PhoneCandidate], e164: str | None, reasons: list[str]) -> None:
    phone, got = pick_best(iter(candidates))
    assert (phone.e164 if phone else None) == e164
    assert got == reasons


@pytest.mark.parametrize(
    ("e164", "masked"),
    [("+15550002222", "+*******2222"), ("+442079460958", "+********0958"), ("+1234", "+****"), ("", "")],
)
def test_mask(e164: str, masked: str) -> None:
    assert mask(e164) == masked


@pytest.mark.parametrize(
    ("e164", "zone"),
    [
        ("+4930123456", "Europe/Berlin"),
        ("+442079460958", "Europe/London"),
        ("+12125550100", "America/New_York"),  # NANP: by area code
        ("+5511987654321", "America/Sao_Paulo"),
        ("+15550002222", None),  # invalid: phonenumbers says Etc/Unknown
        ("+18003569377", None),  # toll-free: every NANP zone
        ("+74951234567", "Europe/Moscow"),
    ],
)
def test_country_timezone(e164: str, zone: str | None) -> None:
    assert country_timezone(e164) == zone


_COUNTRIES = st.sampled_from([None, "US", "GB", "DE", "BR", "MX", "AR", "IT", "IN"])


@settings(max_examples=400, deadline=None)
@given(
    prefix=st.sampled_from(["", "+", "00", "tel:+"]),
    digits=st.text(alphabet="0123456789", max_size=20),
    country=_COUNTRIES,
)
def test_normalize_total_and_idempotent(prefix: str, digits: str, country: str | None) -> None:
    try:
        phone = normalize(prefix + digits, country)
    except PhoneError:
        return
    assert phone.e164.startswith("+") and phone.e164[1:].isdigit()
    assert normalize(phone.e164) == phone
    assert phone.e164 in match_keys(phone.e164)
