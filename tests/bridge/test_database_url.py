"""DATABASE_URL as hosts hand it out (Heroku, Render, Railway: ``postgres://`` or ``postgresql://``)
is used with the PostgreSQL driver replyflow installs, psycopg 3."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine

from bridge.config import Settings


@pytest.mark.parametrize("given, used", [
    ("postgres://shop:pw@db.example.com:5432/d8k?sslmode=require",
     "postgresql+psycopg://shop:pw@db.example.com:5432/d8k?sslmode=require"),
    ("postgresql://shop@db.example.com/shop", "postgresql+psycopg://shop@db.example.com/shop"),
    ("postgresql+psycopg://shop@db.example.com/shop", "postgresql+psycopg://shop@db.example.com/shop"),
    ("postgresql+psycopg2://shop@db.example.com/shop", "postgresql+psycopg2://shop@db.example.com/shop"),
    ("sqlite:///replyflow.db", "sqlite:///replyflow.db"),
])
def test_a_plain_postgres_url_uses_psycopg_3(given, used):
    settings = Settings.from_env({"DATABASE_URL": given})
    assert settings.database_url == used
    if used.startswith("postgresql+psycopg://"):
        engine = create_engine(settings.database_url)  # loads the dialect and driver; connects to nothing
        assert (engine.dialect.name, engine.dialect.driver) == ("postgresql", "psycopg")
        engine.dispose()
