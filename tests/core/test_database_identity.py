"""A database names itself: migration 0012 stores a random id in it, so two URLs that reach the
same database give the same id (a worker compares it with the bridge's) and two databases never do."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from core.store import Database
from core.store.identity import database_id


@pytest.fixture(params=["sqlite", "postgres"])
def url(request, tmp_path):
    return request.getfixturevalue("postgres_url") if request.param == "postgres" else f"sqlite:///{tmp_path}/a.db"


def test_the_migration_stores_an_id_that_every_url_of_the_database_reads(url, tmp_path, monkeypatch):
    db = Database(url)
    db.upgrade()
    with db.engine.connect() as conn:
        stored = conn.execute(text("SELECT uuid FROM database_identity")).scalars().all()
    assert len(stored) == 1 and len(stored[0]) == 36
    assert database_id(db) == stored[0]
    monkeypatch.chdir(tmp_path)
    same = Database(url.replace(f"sqlite:///{tmp_path}/", "sqlite:///./"))  # SQLite: relative to this folder
    assert database_id(same) == stored[0]
    other = Database(f"sqlite:///{tmp_path}/other.db")
    other.upgrade()
    assert database_id(other) != stored[0]
    for d in (db, same, other):
        d.dispose()


def test_a_database_built_from_the_models_gets_its_id_on_first_use(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/models.db")
    db.create_all()
    first = database_id(db)
    assert database_id(db) == first
    db.dispose()


def test_a_postgresql_server_that_never_answers_is_an_error_not_a_hang():
    """/healthz and every job connect through this engine: a host that drops packets must fail
    after the connect timeout (10 s unless the URL says otherwise), not hang."""
    import socket
    import time

    from sqlalchemy.exc import OperationalError

    from core.store import Database

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts the TCP connection, never says a word
    try:
        db = Database(f"postgresql+psycopg://postgres@127.0.0.1:{silent.getsockname()[1]}/test", connect_timeout=2)
        started = time.monotonic()
        with pytest.raises(OperationalError):
            with db.engine.connect():
                pass
        assert time.monotonic() - started < 8
        db.dispose()
    finally:
        silent.close()
