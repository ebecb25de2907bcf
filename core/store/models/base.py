"""The declarative base and what every model shares: the UTC instant and money column types,
the cascading foreign key and the open-rows partial index.

Instants are stored as naive UTC and read back as aware UTC (``UTCDateTime``); money is kept
as exact decimal text (``Money``), so SQLite and PostgreSQL give the same answers.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, literal, text
from sqlalchemy.orm import DeclarativeBase, mapped_column
from sqlalchemy.types import DateTime, TypeDecorator

__all__ = ["Base", "Money", "UTCDateTime", "in_status"]


class UTCDateTime(TypeDecorator):
    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


class Money(TypeDecorator):
    impl = String(40)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Any) -> str | None:
        return None if value is None else str(Decimal(value))

    def process_result_value(self, value: str | None, dialect: Any) -> Decimal | None:
        return None if value is None else Decimal(value)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, Decimal: Money}


def _open_rows(name: str, column: str, status: str) -> Index:
    """An index of only the rows in one open status (the sweeper's work): it stays the size of the
    work to do, however long the history grows. Queries must name the status as a literal
    (``core.store.in_status``) for SQLite to take a partial index."""
    where = text(f"status = '{status}'")
    return Index(name, column, sqlite_where=where, postgresql_where=where)


def in_status(column: Any, status: str) -> Any:
    """``column == status`` with the status written into the SQL: a bound parameter hides it from
    SQLite's planner, which then cannot take the partial index of that status."""
    return column == literal(status, literal_execute=True)


def _fk(target: str, **kw: Any) -> Any:
    return mapped_column(ForeignKey(target, ondelete="CASCADE"), **kw)
