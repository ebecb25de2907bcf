"""The write-back outbox: every line of a conversation reaches each connected platform once per
change, in batches, updating the record it made before; retries wait as long as asked.

The platform side here is a recording writer behind a registered connector: the outbox is what is
under test, not a platform (the connectors' own tests run their writers against emulators)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from connectors import REGISTRY
from connectors.base import WriteResult
from core.installations import install
from core.store.models import ContactLink, Message, Workspace, WritebackTask
from tests.harness import Harness


class Notebook:
    """A platform that keeps notes; it can be told to answer 'slow down' a number of times."""

    name = "notebook"
    secret_setting = "NOTEBOOK_SECRET"

    def __init__(self) -> None:
        self.records: dict[str, dict] = {}  # external id -> latest payload
        self.batches: list[list] = []
        self.throttle = 0

    def writer(self, info):
        assert info.credentials == {"token": "nb-token"}  # opened from the sealed column
        book = self

        class _Writer:
            def write(self, tasks):
                book.batches.append(list(tasks))
                if book.throttle:
                    book.throttle -= 1
                    return [WriteResult(task_id=t.id, outcome="retry", retry_after=10, detail="429 ten-secondly")
                            for t in tasks]
                out = []
                for t in tasks:
                    ext = t.external_id or f"rec-{len(book.records) + 1}"
                    book.records[ext] = dict(t.payload)
                    out.append(WriteResult(task_id=t.id, outcome="done", external_id=ext, contact_ref="nb-contact-7"))
                return out

            def close(self):
                pass

        return _Writer()


@pytest.fixture
def notebook(monkeypatch):
    book = Notebook()
    monkeypatch.setitem(REGISTRY, "notebook", book)
    return book


def _install(h: Harness, **config) -> None:
    with h.session() as s:
        ws = s.scalar(select(Workspace))
        install(s, ws, "notebook", "nb-1", {"token": "nb-token"}, config, h.rt.sealer, h.clock.now())


def _confirm_booking(h: Harness) -> None:
    h.trigger("booking_upcoming", "booking:9", data={"service": "tasting", "starts_at": "Tue", "booking_id": "9"})
    h.sandbox.customer_sends("15550002222", "Maya", button=("booking_confirm", "Confirm"))
    h.settle()


def test_each_line_is_written_once_and_a_status_change_updates_the_same_record(tmp_path, notebook):
    h = Harness(tmp_path)
    try:
        _install(h, write_all_contacts=True)
        _confirm_booking(h)
        with h.session() as s:
            tasks = s.scalars(select(WritebackTask).order_by(WritebackTask.id)).all()
            assert tasks and all(t.status == "done" for t in tasks)
            kinds = [t.payload["direction"] for t in tasks]
            assert "out" in kinds and "in" in kinds
            reminder = next(t for t in tasks if t.payload["direction"] == "out")
            # the platform's contact id came back with the first result and is linked for next time
            assert s.scalar(select(ContactLink.contact_id).where(ContactLink.platform == "notebook",
                                                                 ContactLink.external_id == "nb-contact-7"))
        count = len(notebook.records)
        wamid = reminder.payload["wamid"]
        h.whatsapp(h.status_webhook(wamid, "read"))
        assert len(notebook.records) == count  # updated, not added
        assert notebook.records[reminder.external_id]["status"] == "read"
        last = notebook.batches[-1]
        assert [t.external_id for t in last] == [reminder.external_id]
        assert last[0].conversation_url.endswith(f"/inbox/conversations/{reminder.conversation_id}")
    finally:
        h.close()


def test_a_throttled_batch_waits_as_long_as_asked_then_goes_out(tmp_path, notebook):
    h = Harness(tmp_path)
    try:
        _install(h, write_all_contacts=True, write_kinds=["message"])
        notebook.throttle = 10**6
        _confirm_booking(h)
        with h.session() as s:
            pending = s.scalars(select(WritebackTask)).all()
            assert pending and {t.status for t in pending} == {"pending"}
            assert {t.not_before for t in pending} == {h.clock.now() + timedelta(seconds=10)}
            assert {t.kind for t in pending} == {"message"}  # the installation asked for messages only
        notebook.throttle = 0
        h.at(h.clock.now() + timedelta(seconds=5))
        with h.session() as s:
            assert s.scalar(select(func.count()).where(WritebackTask.status == "done")) == 0  # not yet due
        h.at(h.clock.now() + timedelta(seconds=5))
        with h.session() as s:
            assert {t.status for t in s.scalars(select(WritebackTask))} == {"done"}
        assert len(notebook.records) == len(pending)
    finally:
        h.close()


def test_only_linked_contacts_are_written_unless_the_installation_finds_contacts_itself(tmp_path, notebook):
    h = Harness(tmp_path)
    try:
        _install(h)  # a shop: writes only for its own customers
        _confirm_booking(h)
        with h.session() as s:
            assert s.scalar(select(func.count()).select_from(WritebackTask)) == 0
        assert notebook.batches == []
    finally:
        h.close()


def test_a_disconnected_platform_fails_its_tasks_with_the_reason(tmp_path, notebook):
    from core.installations import uninstall
    from core.store.models import Installation

    h = Harness(tmp_path)
    try:
        _install(h, write_all_contacts=True)
        notebook.throttle = 10**6
        _confirm_booking(h)
        with h.session() as s:
            uninstall(s, s.scalar(select(Installation)), h.clock.now())
        h.at(h.clock.now() + timedelta(seconds=11))
        with h.session() as s:
            rows = s.scalars(select(WritebackTask)).all()
            assert rows and {t.status for t in rows} == {"failed"}
            assert "not connected" in rows[0].result
    finally:
        h.close()


def test_a_send_whose_outcome_became_unknown_is_written_back_too(tmp_path, notebook):
    """A worker killed mid-call leaves its row 'sending'; the sweeper (or the next claim) marks it
    unknown. The CRM record of that line must say so, not stay at 'sending' forever."""
    h = Harness(tmp_path)
    try:
        _install(h, write_all_contacts=True, write_kinds=["message"])
        _confirm_booking(h)
        with h.session() as s:
            reminder = s.scalar(select(Message).where(Message.direction == "out").order_by(Message.id))
            reminder.status, reminder.status_at = "sending", h.clock.now()  # as a killed worker leaves it
            reminder_id = reminder.id
        h.at(h.clock.now() + timedelta(minutes=2))
        h.sweep()
        h.settle()
        with h.session() as s:
            assert s.get(Message, reminder_id).status == "unknown"
        record = next(r for r in notebook.records.values() if r.get("message_id") == reminder_id)
        assert record["status"] == "unknown"
    finally:
        h.close()
