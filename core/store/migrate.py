"""Schema migrations (Alembic): ``upgrade(url)`` brings a database to the newest schema.

The embedded default and PostgreSQL use the same migrations; ``replyflow db upgrade`` runs them,
and the runtime runs them on start so a first try needs no extra step.
"""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

__all__ = ["alembic_config", "upgrade", "current"]


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("core.store") / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    from core.store.db import startup_lock

    with engine.begin() as connection:
        startup_lock(connection)  # a second process waits, then finds the schema at head
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def current(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
