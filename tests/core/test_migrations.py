"""The migrations build exactly the schema the models describe, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from alembic.script import ScriptDirectory

from core.store import Base, Database
from core.store.migrate import alembic_config, current

HEAD = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def _diff(db: Database) -> list:
    with db.engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), Base.metadata)


@pytest.fixture(params=["sqlite", "postgres"])
def empty_db(request, tmp_path):
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else f"sqlite:///{tmp_path}/m.db"
    db = Database(url)
    yield db
    db.dispose()


def test_upgrade_builds_the_models_schema_and_is_repeatable(empty_db: Database):
    assert current(empty_db.engine) is None
    empty_db.upgrade()
    assert current(empty_db.engine) == HEAD
    assert _diff(empty_db) == []
    empty_db.upgrade()  # a second start changes nothing
    assert current(empty_db.engine) == HEAD
