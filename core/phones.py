"""Phone numbers: free-form input to E.164, WhatsApp ids, and the forms that mean one person.

``normalize`` accepts what people type into shop forms; numbers that are *possible* for their
country but not *valid* (e.g. the fictional ``+1 555 000 xxxx`` range) are accepted with a
warning, while impossible ones raise ``PhoneError`` with a short reason. ``PhoneError``
messages never contain the number itself, so they are safe to log; use ``mask`` for logs too.
"""

from __future__ import annotations

__all__ = [
    "Phone",
    "normalize",
    "from_wa_id",
    "match_keys",
    "pick_best",
    "mask",
    "country_timezone",
]

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Iterable

import phonenumbers as pn
from phonenumbers import timezone as pn_timezone

from core.errors import PhoneError
from core.events import PhoneCandidate

_E164 = pn.PhoneNumberFormat.E164
_VR = pn.ValidationResult
_PARSE_REASONS = {
    pn.NumberParseException.INVALID_COUNTRY_CODE: "invalid country code",
    pn.NumberParseException.NOT_A_NUMBER: "not a number",
    pn.NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    pn.NumberParseException.TOO_SHORT_NSN: "too short",
    pn.NumberParseException.TOO_LONG: "too long",
}
_POSSIBLE_REASONS = {
    _VR.INVALID_COUNTRY_CODE: "invalid country code",
    _VR.TOO_SHORT: "too short for {region}",
    _VR.IS_POSSIBLE_LOCAL_ONLY: "too short for {region} (local number without area code)",
    _VR.TOO_LONG: "too long for {region}",
    _VR.INVALID_LENGTH: "invalid length for {region}",
}
_UNKNOWN_ZONE = "Etc/Unknown"


@dataclass(frozen=True, slots=True, kw_only=True)
class Phone:
    e164: str  # "+15550002222"
    country: str  # region code, e.g. "US"
    valid: bool  # phonenumbers.is_valid_number; False means possible but not valid
    warning: str | None = None


def normalize(raw: str, country: str | None = None) -> Phone:
    """Parse free-form ``raw`` into a ``Phone``; ``country`` gives a national number its meaning.

    Raises ``PhoneError`` (reason only, no digits) when the input cannot be a phone number."""
    text = _clean(raw)
    international = text.lstrip("( ").startswith(("+", "\uff0b"))
    region = None if international else _region(country)
    number = _parse(text, region)
    if number.extension:
        raise PhoneError("extensions are not supported")
    if any(ch.isalpha() for ch in text.split(";", 1)[0]):
        raise PhoneError("not a number (contains letters)")
    number = _drop_mx_mobile_one(number)
    found = pn.region_code_for_number(number)  # the slow part for +1 (tried against every NANP region): once
    region_code = _region_of(number, region, found)
    _check_possible(number, region_code)
    e164 = pn.format_number(number, _E164)
    if pn.is_valid_number_for_region(number, found):  # = pn.is_valid_number, without looking the region up again
        return Phone(e164=e164, country=region_code, valid=True)
    warning = f"{_short(number)}… is possible but not a valid number for {region_code}; accepted"
    return Phone(e164=e164, country=region_code, valid=False, warning=warning)


def _clean(raw: str) -> str:
    text = raw.strip()
    if text.lower().startswith("tel:"):
        text = text[4:].strip()
    if not text:
        raise PhoneError("empty phone number")
    if not any(ch.isdigit() for ch in text):
        raise PhoneError("not a number (no digits)")
    return "+" + text[2:] if text.startswith("00") else text


def _check_possible(number: pn.PhoneNumber, region_code: str) -> None:
    possible = pn.is_possible_number_with_reason(number)
    if possible != _VR.IS_POSSIBLE:
        raise PhoneError(_POSSIBLE_REASONS[possible].format(region=region_code))
    e164 = pn.format_number(number, _E164)
    if pn.format_number(_parse(e164, None), _E164) != e164:
        # phonenumbers strips a trunk prefix even after +CC ("+49 (0)30 …"), so a national
        # number that still starts with it would change every time it is parsed.
        raise PhoneError(f"not a number for {region_code} (starts with the trunk prefix)")


def _region(country: str | None) -> str:
    if not country:
        raise PhoneError("national number without a country")
    region = country.strip().upper()
    if region not in pn.SUPPORTED_REGIONS:
        raise PhoneError(f"unknown country {country!r} for a national number")
    return region


def _parse(text: str, region: str | None) -> pn.PhoneNumber:
    try:
        return pn.parse(text, region)
    except pn.NumberParseException as exc:
        raise PhoneError(_PARSE_REASONS.get(exc.error_type, "not a number")) from None


def _drop_mx_mobile_one(number: pn.PhoneNumber) -> pn.PhoneNumber:
    """``+52 1 …`` (pre-2019 mobile prefix) is no longer in phonenumbers' metadata: drop the 1."""
    nsn = pn.national_significant_number(number)
    if number.country_code == 52 and len(nsn) == 11 and nsn.startswith("1"):
        return pn.PhoneNumber(country_code=52, national_number=int(nsn[1:]))
    return number


def _region_of(number: pn.PhoneNumber, given: str | None, found: str | None) -> str:
    if found:
        return found
    if given and pn.country_code_for_region(given) == number.country_code:
        return given
    return pn.region_code_for_country_code(number.country_code)


def _short(number: pn.PhoneNumber) -> str:
    return f"+{number.country_code} {pn.national_significant_number(number)[:3]}"


def mask(e164: str) -> str:
    """Mask every digit but the last four, for logs: ``+15550002222`` -> ``+*******2222``."""
    digits = sum(ch.isdigit() for ch in e164)
    keep = 4 if digits > 4 else 0
    out, seen = [], 0
    for ch in e164:
        if ch.isdigit():
            seen += 1
            ch = ch if seen > digits - keep else "*"
        out.append(ch)
    return "".join(out)


def from_wa_id(wa_id: str) -> str:
    """A WhatsApp id (digits, country code first, no ``+``) as E.164. Kept as WhatsApp sent it
    (e.g. ``+521…`` for old Mexican ids); compare with ``match_keys``."""
    digits = wa_id.strip().removeprefix("+")
    if not digits.isascii() or not digits.isdigit():
        raise PhoneError("a WhatsApp id must be digits only")
    if digits.startswith("0") or not 7 <= len(digits) <= 15:
        raise PhoneError("not a WhatsApp id: bad country code or length")
    return "+" + digits


def _br(nsn: str) -> set[str]:
    # 11 digits: 2-digit area + 9 + old 8-digit mobile (6-9...); 10 digits: the pre-9 form.
    if len(nsn) == 11 and nsn[2] == "9" and nsn[3] in "6789":
        return {nsn[:2] + nsn[3:]}
    if len(nsn) == 10 and nsn[2] in "6789":
        return {nsn[:2] + "9" + nsn[2:]}
    return set()


def _mx(nsn: str) -> set[str]:
    if len(nsn) == 11 and nsn.startswith("1"):
        return {nsn[1:]}
    return {"1" + nsn} if len(nsn) == 10 else set()


def _ar(nsn: str) -> set[str]:
    if len(nsn) == 11 and nsn.startswith("9"):
        return {nsn[1:]}
    return {"9" + nsn} if len(nsn) == 10 else set()


_VARIANTS: dict[int, Callable[[str], set[str]]] = {55: _br, 52: _mx, 54: _ar}


@lru_cache(maxsize=4096)  # pure; a campaign batch asks for the same numbers several times
def match_keys(e164: str) -> frozenset[str]:
    """Every E.164 form that is the same line as ``e164`` (BR ninth digit, MX ``+52 1``,
    AR ``+54 9``), so a WhatsApp id and a shop's phone match; a singleton elsewhere."""
    number = _parse(e164.strip(), None)
    canonical = pn.format_number(number, _E164)
    variant = _VARIANTS.get(number.country_code)
    if variant is None:
        return frozenset({canonical})
    nsn = pn.national_significant_number(number)
    others = {f"+{number.country_code}{alt}" for alt in variant(nsn)}
    return frozenset({canonical} | others)


def pick_best(candidates: Iterable[PhoneCandidate]) -> tuple[Phone | None, list[str]]:
    """The first candidate (in the connector's preference order) that normalises, and the
    reasons the ones before it were rejected, e.g. ``"shipping_address.phone: too short"``."""
    reasons: list[str] = []
    for candidate in candidates:
        try:
            return normalize(candidate.raw, candidate.country), reasons
        except PhoneError as exc:
            reasons.append(f"{candidate.source}: {exc}")
    return None, reasons


def country_timezone(e164: str) -> str | None:
    """The IANA zone for ``e164`` when its number prefix maps to one zone, else ``None``
    (also ``None`` for numbers phonenumbers cannot place, such as invalid ones)."""
    number = _parse(e164.strip(), None)
    zones = set(pn_timezone.time_zones_for_number(number)) - {_UNKNOWN_ZONE}
    return zones.pop() if len(zones) == 1 else None
