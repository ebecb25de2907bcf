"""Recording webhook deliveries at the edge: one INSERT ... ON CONFLICT DO NOTHING per request.

The unique ``dedupe_key`` decides what is new; a duplicate (a redelivery, or the same delivery
arriving twice at the same moment) is simply not returned. No ORM unit of work, no savepoints:
this is the hot path of every webhook.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from core.store.models import InboundEvent

__all__ = ["record"]

_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def record(engine: Engine, rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Insert the rows whose dedupe key is new; returns their ids (in no particular order)."""
    if not rows:
        return []
    insert = _INSERTS[engine.dialect.name]
    statement = (insert(InboundEvent).values([dict(r) for r in rows])
                 .on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(InboundEvent.id))
    with engine.begin() as conn:
        return list(conn.scalars(statement))
