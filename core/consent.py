"""The consent ledger's meaning: current state is derived from append-only events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Protocol

__all__ = ["ConsentState", "LedgerEntry", "derive"]


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
