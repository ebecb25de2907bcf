"""Many rows into one table in one go, their new ids back in order: the campaign's outbox path.

The ORM's flush of hundreds of new objects spends most of its time building them, sorting the
unit of work and, on PostgreSQL, in psycopg converting SQLAlchemy's giant multi-row INSERT (too
long for psycopg's statement cache, so it is parsed again every time). ``insert_ids`` takes
plain dicts instead: on psycopg it sends one short ``INSERT ... RETURNING id`` with
``executemany`` (pipelined, parsed once, prepared by the server after a few batches); elsewhere
a Core ``insert().returning()``. Values go through each column's own bind processing (JSON,
UTC datetimes), as SQLAlchemy would send them. A unique violation raises SQLAlchemy's
``IntegrityError`` on both paths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

__all__ = ["insert_ids"]


def insert_ids(s: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Insert ``rows`` (every row with the same keys) into ``table``; their ids, in order."""
    if not rows:
        return []
    conn = s.connection()
    if conn.dialect.driver != "psycopg":
        return list(conn.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True),
                                 [dict(r) for r in rows]).scalars())
    names = list(rows[0])
    columns = [table.c[name] for name in names]
    processors = [c.type.dialect_impl(conn.dialect).bind_processor(conn.dialect) for c in columns]
    data = [[value if p is None else p(value) for p, value in zip(processors, (r[n] for n in names))] for r in rows]
    sql = (f"INSERT INTO {table.name} ({', '.join(c.name for c in columns)}) "
           f"VALUES ({', '.join(['%s'] * len(columns))}) RETURNING id")
    raw = conn.connection.driver_connection
    dbapi = conn.dialect.dbapi
    try:
        with raw.cursor() as cur:
            cur.executemany(sql, data, returning=True)
            ids = []
            while True:
                ids.append(cur.fetchone()[0])
                if not cur.nextset():
                    break
    except dbapi.IntegrityError as exc:
        raise IntegrityError(sql, None, exc) from exc
    return ids
