"""The database's own id: a random uuid kept in the database itself (``DatabaseIdentity``), so two
URLs that reach the same database give the same id and two databases never do."""

from __future__ import annotations

import uuid

from core.store.db import Database, session_scope, startup_lock
from core.store.models import DatabaseIdentity

__all__ = ["database_id"]


def database_id(db: Database) -> str:
    """The id migration 0012 stored; made here when missing (tables built from the models)."""
    with session_scope(db) as s:
        row = s.get(DatabaseIdentity, 1)
        if row is None:
            startup_lock(s)  # processes started at once make one id, not two
            row = s.get(DatabaseIdentity, 1)
            if row is None:
                row = DatabaseIdentity(id=1, uuid=str(uuid.uuid4()))
                s.add(row)
        return row.uuid
