"""What a deployment can tell about itself, so that a worker on the wrong database is said out
loud instead of failing silently.

- ``describe_url(url)``: a database or Redis URL as it may be printed (no password; a SQLite
  file's absolute path).
- ``missing_row(kind, row_id, database_url)``: the warning for a job whose row is not in the database.
"""

from __future__ import annotations

import os

from sqlalchemy.engine import make_url

from core.store.db import sqlite_file

__all__ = ["describe_url", "missing_row"]


def describe_url(url: str) -> str:
    """The URL without its password; a SQLite file also by its absolute path (a relative one
    depends on the folder the command was started in)."""
    shown = make_url(url).render_as_string(hide_password=True)
    path = sqlite_file(url)
    return f"{shown} ({os.path.abspath(path)})" if path and not os.path.isabs(path) else shown


def missing_row(kind: str, row_id: object, database_url: str) -> str:
    return (f"{kind} {row_id} is not in the database {describe_url(database_url)}, so this job does nothing: "
            "if that is not the bridge's database, start this worker with the same DATABASE_URL as `replyflow serve`")
