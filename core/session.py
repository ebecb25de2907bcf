"""The customer-service window: the one place that compares timestamps for sending.

A user's message opens a 24-hour window in which free-form messages may be sent; outside it
only an approved template may open the conversation again. A conversation that started from a
click-to-WhatsApp ad keeps a 72-hour window from that message.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["WINDOW", "ENTRY_POINT_WINDOW", "SendMode", "Session", "closes_at", "is_open", "choose_send_mode"]

WINDOW = timedelta(hours=24)
ENTRY_POINT_WINDOW = timedelta(hours=72)


class SendMode(str, enum.Enum):
    FREEFORM = "freeform"
    TEMPLATE = "template"


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    last_inbound_at: datetime | None = None
    entry_point_at: datetime | None = None  # last inbound that came from an ad referral


def closes_at(session: Session) -> datetime | None:
    """When the window closes (exclusive), or None when it was never opened."""
    ends = []
    if session.last_inbound_at is not None:
        ends.append(session.last_inbound_at + WINDOW)
    if session.entry_point_at is not None:
        ends.append(session.entry_point_at + ENTRY_POINT_WINDOW)
    return max(ends) if ends else None


def is_open(session: Session, now: datetime) -> bool:
    end = closes_at(session)
    return end is not None and now < end


def choose_send_mode(session: Session, now: datetime) -> SendMode:
    return SendMode.FREEFORM if is_open(session, now) else SendMode.TEMPLATE
