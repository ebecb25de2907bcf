"""Which language a template goes out in: the contact's locale, else their phone's country, then
the workspace's fallback order, then the template's first language.

``choose_language(available, locale=..., phone=..., fallback=...)`` is pure. Matching folds
``es-MX`` / ``es_mx`` to ``es_MX``; a locale also matches the bare language (``es_MX`` → ``es``)
and a bare language matches its first regional version (``pt`` → ``pt_BR`` when only that exists).
"""

from __future__ import annotations

from typing import Iterable, Sequence

from core.errors import PhoneError
from core.phones import normalize
from core.templates import normalise_language

__all__ = ["REGION_LANGUAGES", "language_of_phone", "preferences", "choose_language"]

# the main language of a country, as WhatsApp template codes spell it
REGION_LANGUAGES = {
    "US": "en_US", "GB": "en_GB", "IE": "en_GB", "AU": "en", "CA": "en", "IN": "en", "ZA": "en", "NG": "en",
    "ES": "es_ES", "MX": "es_MX", "AR": "es_AR", "CO": "es", "CL": "es", "PE": "es",
    "BR": "pt_BR", "PT": "pt_PT", "FR": "fr", "BE": "fr", "DE": "de", "AT": "de", "CH": "de",
    "IT": "it", "NL": "nl", "PL": "pl", "TR": "tr", "ID": "id", "RU": "ru", "SA": "ar", "AE": "ar", "EG": "ar",
}


def language_of_phone(phone: str | None) -> str | None:
    if not phone:
        return None
    try:
        return REGION_LANGUAGES.get(normalize(phone if phone.startswith("+") else "+" + phone).country)
    except PhoneError:
        return None


def preferences(locale: str | None, phone: str | None, fallback: Iterable[str] = ()) -> tuple[str, ...]:
    """The wanted languages, best first (duplicates dropped)."""
    wanted = [normalise_language(c) for c in (locale, language_of_phone(phone), *fallback) if c]
    return tuple(dict.fromkeys(wanted))


def _match(wanted: str, available: Sequence[str]) -> str | None:
    by_lower = {a.lower(): a for a in available}
    if wanted.lower() in by_lower:
        return by_lower[wanted.lower()]
    base = wanted.split("_")[0].lower()
    if base in by_lower:
        return by_lower[base]
    return next((a for a in available if a.lower().split("_")[0] == base), None)


def choose_language(available: Sequence[str], *, locale: str | None = None, phone: str | None = None,
                    fallback: Iterable[str] = ()) -> str | None:
    """The language to send in among ``available`` (None when there is none)."""
    if not available:
        return None
    for wanted in preferences(locale, phone, fallback):
        found = _match(wanted, available)
        if found is not None:
            return found
    return available[0]
