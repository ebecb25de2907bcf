"""Recording webhook deliveries at the edge: one INSERT ... ON CONFLICT DO NOTHING per request.

The unique ``dedupe_key`` decides what is new; a duplicate (a redelivery, or the same delivery
arriving twice at the same moment) is simply not returned. No ORM unit of work, no savepoints:
this is the hot path of every webhook.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from core.store.models import InboundEvent

__all__ = ["record"]

_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def _statement(dialect: str):
    """Built once per dialect: a cached statement is compiled once, executed with parameters."""
    stmt = _STATEMENTS.get(dialect)
    if stmt is None:
        stmt = _STATEMENTS[dialect] = (_INSERTS[dialect](InboundEvent)
                                       .on_conflict_do_nothing(index_elements=["dedupe_key"])
                                       .returning(InboundEvent.id))
    return stmt


_STATEMENTS: dict[str, Any] = {}


def record(engine: Engine, rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Insert the rows whose dedupe key is new; returns their ids (in no particular order)."""
    if not rows:
        return []
    statement = _statement(engine.dialect.name)
    params = [dict(r) for r in rows]
    for attempt in (1, 2):
        try:
            if len(params) == 1 and engine.dialect.name == "postgresql":
                # one statement is atomic and durable on its own: autocommit spares the BEGIN and
                # COMMIT round trips (3 -> 1 per webhook; the commit still waits for the WAL flush)
                with engine.connect() as conn:
                    return list(conn.execution_options(isolation_level="AUTOCOMMIT").scalars(statement, params[0]))
            with engine.begin() as conn:
                if len(params) == 1:
                    return list(conn.scalars(statement, params[0]))
                return list(conn.execute(statement, params).scalars())
        except DBAPIError as exc:  # a pooled connection the server dropped: once more, on a fresh one
            if attempt == 2 or not exc.connection_invalidated:
                raise
    raise AssertionError("unreachable")
