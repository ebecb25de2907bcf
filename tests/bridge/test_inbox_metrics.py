"""The inbox's metrics page and `replyflow report` show the same numbers for the same records.

A cart story (reminder, reply, handoff, agent reply, order) and, three days later, a flow with a
hold-out and two A/B arms are played through the bridge; then every table of the page is compared,
cell by cell, with the tables the command prints: for all the runs, for a period (--since/--until)
and for another attribution window."""

from __future__ import annotations

from datetime import date, timedelta
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from core.metrics.report import Day
from core.store.models import Conversation, FlowRun
from bridge.cli import main
from bridge.inbox.metrics_view import Period, calendar
from tests.harness import Harness
from tests.inbox_support import ADMIN, NAME, WA_ID, add_agents, signed_in

FLOW = """
name: welcome_test
version: 1
holdout: 40%
trigger: {event: signed_up, reentry: ignore}
steps:
  - id: hello
    send_template:
      params: {first_name: "{{ contact.first_name }}"}
      variants:
        - {name: warm, template: welcome_optin}
        - {name: short, template: conversation_reopen}
"""
PHONES = [f"+1555000{n:04d}" for n in range(101, 111)]
TABLES = {"flow-figures": "Flows", "template-figures": "Templates", "step-figures": "Flow steps",
          "holdouts": "Hold-out: conversion", "variants": "A/B variants"}


@pytest.fixture(params=["sqlite", "postgres"])
def h(request, tmp_path):
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "welcome_test.yaml").write_text(FLOW)
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    harness = Harness(tmp_path, flows_dir=str(flows), database_url=url)
    add_agents(harness)
    yield harness
    harness.close()


def _play(h: Harness) -> date:
    """The two stories; returns the day the second one started."""
    assert h.shopify("checkouts_create").status_code == 200
    with h.session() as s:
        h.at(s.scalars(select(FlowRun)).one().wake_at)  # the cart reminder goes
    h.sandbox.deliver_statuses("read")
    h.settle()
    h.clock.advance(timedelta(minutes=3))
    h.sandbox.customer_sends(WA_ID, NAME, button=("cart_help", "I need help"))  # a reply, and a handoff
    h.settle()
    with h.session() as s:
        conv_id = s.scalars(select(Conversation)).one().id
    h.clock.advance(timedelta(minutes=2))
    reply = h.api("POST", f"/conversations/{conv_id}/messages", json={"text": "Sam here.", "agent": "sam"})
    assert reply.status_code == 202
    h.settle()
    h.at(h.clock.now() + timedelta(hours=3))
    assert h.shopify("orders_create").status_code == 200  # the cart is recovered: 112.00 USD

    h.at(h.clock.now() + timedelta(days=3))
    second = h.clock.now().date()
    for phone in PHONES:
        h.trigger("signed_up", f"signup:{phone}", phone=phone, consent="opt_in")
    h.sandbox.deliver_statuses("delivered")
    h.settle()
    with h.session() as s:
        runs = s.scalars(select(FlowRun).where(FlowRun.flow_name == "welcome_test").order_by(FlowRun.id)).all()
        phone = next(p for p, r in zip(PHONES, runs) if not r.vars["_holdout"])  # one contact of the treated group
    h.clock.advance(timedelta(minutes=4))
    h.sandbox.customer_sends(phone.lstrip("+"), "Lea", text="Tell me more")
    h.settle()
    return second


def _held_out(h: Harness) -> int:
    with h.session() as s:
        return sum(bool(r.vars["_holdout"]) for r in s.scalars(select(FlowRun).where(
            FlowRun.flow_name == "welcome_test")))


class _Tables(HTMLParser):
    """Each table of the page with an id: its body rows as tuples of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[tuple[str, ...]]] = {}
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._table = dict(attrs).get("id")
            if self._table:
                self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._row:  # the header row has no td
                self.tables[self._table].append(tuple(self._row))
            self._row = None
        elif tag == "table":
            self._table = None


def _page(client, query: str) -> dict[str, list[tuple[str, ...]]]:
    response = client.get(f"/inbox/admin/metrics{query}")
    assert response.status_code == 200, response.data
    parser = _Tables()
    parser.feed(response.data.decode())
    return {TABLES[k]: v for k, v in parser.tables.items() if k in TABLES}


def _command(*args: str) -> dict[str, list[tuple[str, ...]]]:
    """The tables `replyflow report` prints: the rows under each title, split on the box's bars."""
    result = CliRunner().invoke(main, ["report", *args])
    assert result.exit_code == 0, result.output
    tables: dict[str, list[tuple[str, ...]]] = {}
    title = None
    for line in result.output.splitlines():
        if line.strip() in TABLES.values():
            title = line.strip()
            tables[title] = []
        elif line.startswith("│") and title:
            tables[title].append(tuple(cell.strip() for cell in line.strip().strip("│").split("│")))
    return tables


def test_the_page_shows_the_numbers_of_replyflow_report(h: Harness):
    second = _play(h)
    admin = signed_in(h, ADMIN)

    everything = _page(admin, "")
    assert everything == _command()
    assert set(everything) == set(TABLES.values())  # every table has rows: nothing compared is empty
    cart = next(r for r in everything["Flows"] if r[0] == "cart_recovery")
    #          key            runs sent deliv. read replied rate      median     msgs   minutes handoff
    assert cart == ("cart_recovery", "1", "1", "1", "1", "1", "100.0%", "3.0 min", "3.0", "5.0", "100.0%",
                    "0.0%", "100.0%", "1", "0", "1", "112.00 USD")
    #                opt-out converted carts bookings orders revenue
    assert [r[0] for r in everything["Templates"]] == ["cart_reminder [en_US]", *sorted(
        r[0] for r in everything["Templates"][1:])]  # the language shows, in the page and the terminal alike
    held = _held_out(h)
    welcome = next(r for r in everything["Flows"] if r[0] == "welcome_test")
    assert (welcome[1], welcome[2], welcome[5]) == (str(len(PHONES) - held), str(len(PHONES) - held), "1")
    [holdout] = everything["Hold-out: conversion"]
    assert holdout[0] == "welcome_test" and holdout[2].endswith(f"n={held}")

    period = f"?since={second.isoformat()}"
    later = _page(admin, period)
    assert later == _command("--since", second.isoformat())
    assert [r[0] for r in later["Flows"]] == ["welcome_test"]
    earlier = _page(admin, f"?until={second.isoformat()}")
    assert earlier == _command("--until", second.isoformat())
    assert [r[0] for r in earlier["Flows"]] == ["cart_recovery"] and "Hold-out: conversion" not in earlier
    hour = _page(admin, "?window=1h")
    assert hour == _command("--window", "1h")
    assert next(r for r in hour["Flows"] if r[0] == "cart_recovery")[12] == "0.0%"  # ordered 4 h after the start


def test_the_page_draws_the_daily_series_and_refuses_a_bad_period(h: Harness):
    admin = signed_in(h, ADMIN)
    empty = admin.get("/inbox/admin/metrics").data.decode()
    assert "No runs in this period." in empty and "<svg" not in empty
    second = _play(h)
    page = admin.get("/inbox/admin/metrics").data.decode()
    assert '<svg class="chart"' in page and f"{second:%d %b}: {len(PHONES) - _held_out(h)} runs started" in page
    bad = admin.get("/inbox/admin/metrics?since=last+tuesday")
    assert bad.status_code == 400 and "not an ISO date: &#39;last tuesday&#39;" in bad.data.decode()
    backwards = admin.get(f"/inbox/admin/metrics?since={second}&until={second - timedelta(days=1)}")
    assert backwards.status_code == 400 and b"must come after its start" in backwards.data
    assert admin.get("/inbox/admin/metrics?window=soon").status_code == 400


def test_the_calendar_fills_the_days_between_and_keeps_the_last_ones():
    d0 = date(2026, 1, 5)
    days = (Day(day=d0, sent=2), Day(day=d0 + timedelta(days=3), runs=1))
    everything = Period(since=None, until=None, window=timedelta(days=7), form={})
    filled = calendar(days, everything, today=d0 + timedelta(days=4))
    assert [(d.day - d0).days for d in filled] == [0, 1, 2, 3, 4]
    assert [d.sent for d in filled] == [2, 0, 0, 0, 0] and filled[3].runs == 1
    assert len(calendar(days, everything, today=d0 + timedelta(days=200), limit=30)) == 30
    assert calendar((), everything, today=d0) == []
