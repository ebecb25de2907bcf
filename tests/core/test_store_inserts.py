"""core.store.inserts: many rows in one go, ids back in order, stored as the ORM would store them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core.store import Database, session_scope
from core.store.inserts import insert_ids
from core.store.models import Contact, ContactLink, Workspace

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", "postgres"])
def db(request, tmp_path):
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else f"sqlite:///{tmp_path}/i.db"
    db = Database(url)
    db.upgrade()
    yield db
    db.dispose()


def _rows(ws_id: int, n: int, *, key: str = "k") -> list[dict]:
    local = timezone(timedelta(hours=2))
    return [dict(workspace_id=ws_id, phone_e164=f"+1555000{i:04d}", first_name=f"Ada{i}", properties={"n": i, "tag": "ü"},
                 created_at=NOW.astimezone(local), updated_at=NOW, email=f"{key}{i}@example.com") for i in range(n)]


def test_rows_go_in_with_their_ids_in_order_and_read_back_as_the_orm_wrote_them(db):
    with session_scope(db) as s:
        ws = Workspace(slug="w", name="W", settings={})
        s.add(ws)
        s.flush()
        ws_id = ws.id
        ids = insert_ids(s, Contact.__table__, _rows(ws_id, 300))
    assert len(ids) == 300 and ids == sorted(ids)
    with session_scope(db) as s:
        got = {c.id: c for c in s.scalars(select(Contact).where(Contact.id.in_(ids)))}
        assert [got[i].first_name for i in ids] == [f"Ada{i}" for i in range(300)]
        assert got[ids[7]].properties == {"n": 7, "tag": "ü"}
        assert got[ids[7]].created_at == NOW  # a datetime in another zone is stored as the same instant
    assert insert_ids(s, Contact.__table__, []) == []


def test_a_duplicate_key_raises_sqlalchemys_integrity_error_on_both_databases(db):
    with session_scope(db) as s:
        ws = Workspace(slug="w", name="W", settings={})
        s.add(ws)
        s.flush()
        contact = insert_ids(s, Contact.__table__, _rows(ws.id, 1))[0]
        row = dict(workspace_id=ws.id, contact_id=contact, platform="phone", external_id="+15550000000")
        insert_ids(s, ContactLink.__table__, [row])
        with pytest.raises(IntegrityError):
            with s.begin_nested():
                insert_ids(s, ContactLink.__table__, [row, {**row, "external_id": "+15550000001"}])
        # the savepoint rolled back the whole failed insert, and the transaction goes on
        assert s.scalars(select(ContactLink.external_id).where(ContactLink.contact_id == contact)).all() == [
            "+15550000000"]
