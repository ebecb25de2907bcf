"""The consent ledger's meaning: current state is derived from append-only events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Protocol

__all__ = ["ConsentState", "LedgerEntry", "derive", "message_intent", "OPT_OUT_WORDS", "OPT_OUT_ALL_WORDS", "OPT_IN_WORDS"]


class LedgerEntry(Protocol):
    purpose: str
    action: str
    source: str
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentState:
    marketing_opt_in: bool = False  # an opt-in with no later opt-out
    marketing_opt_out: bool = False  # an opt-out with no later opt-in
    all_opt_out: bool = False  # the contact asked for no messages at all
    marketing_source: str | None = None  # where the deciding marketing entry came from
    marketing_at: datetime | None = None


def derive(entries: Iterable[LedgerEntry]) -> ConsentState:
    """Fold ledger entries in time order; for the same instant, an opt-out wins."""
    ordered = sorted(entries, key=lambda e: (e.at, e.action == "opt_out"))
    marketing: LedgerEntry | None = None
    utility: LedgerEntry | None = None
    for entry in ordered:
        if entry.purpose == "marketing":
            marketing = entry
        elif entry.purpose == "utility":
            utility = entry
    return ConsentState(
        marketing_opt_in=marketing is not None and marketing.action == "opt_in",
        marketing_opt_out=marketing is not None and marketing.action == "opt_out",
        all_opt_out=utility is not None and utility.action == "opt_out",
        marketing_source=marketing.source if marketing else None,
        marketing_at=marketing.at if marketing else None,
    )


# ---------------------------------------------------------------- opt-out / opt-in by message
#
# The rule: a message opts out (or back in) when, after folding case, accents, punctuation and
# surrounding whitespace, the WHOLE message is one of these words or phrases. A sentence that
# merely contains one ("don't stop the order!", "quiero darme de baja?") does not change consent
# by itself; inside a flow it is an unrecognised reply and goes to an agent, who can record it.
# Tapping a quick-reply button whose payload starts with "optout:" opts out too.

OPT_OUT_ALL_WORDS = frozenset({"stop all", "stopall", "stop everything", "unsubscribe all"})
OPT_OUT_WORDS = frozenset({
    "stop", "unsubscribe", "opt out", "optout", "end", "quit",  # English
    "baja", "darme de baja", "alto", "cancelar suscripcion",  # Spanish
    "parar", "sair",  # Portuguese
    "cancella", "disiscriviti",  # Italian
    "arret", "arreter", "desabonner", "desinscrire",  # French
    "stopp", "abmelden", "abbestellen",  # German
    "afmelden", "uitschrijven",  # Dutch
})
OPT_IN_WORDS = frozenset({
    "start", "unstop", "subscribe", "resume",  # English
    "alta", "iniciar", "suscribir",  # Spanish
    "comecar", "voltar",  # Portuguese
    "avvia", "iscriviti",  # Italian
    "demarrer", "reprendre",  # French
    "anmelden",  # German
    "aanmelden",  # Dutch
})
OPT_OUT_PAYLOAD_PREFIX = "optout:"


def message_intent(text: str | None, reply_id: str | None = None) -> str | None:
    """"opt_out_all", "opt_out", "opt_in" or None for an inbound message, by the rule above.
    "STOP ALL" asks for no messages at all (utility ones included), "STOP" for no marketing."""
    from core.flows.expressions import normalise_words

    if reply_id and reply_id.startswith(OPT_OUT_PAYLOAD_PREFIX):
        return "opt_out"
    words = normalise_words(text or "")
    if words in OPT_OUT_ALL_WORDS:
        return "opt_out_all"
    if words in OPT_OUT_WORDS:
        return "opt_out"
    if words in OPT_IN_WORDS:
        return "opt_in"
    return None
