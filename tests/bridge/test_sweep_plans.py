"""The sweeper runs every few seconds in every worker, for as long as the shop runs: its queries
must find the few open rows through an index, never by reading the whole history of messages and
webhooks (measured in bench/housekeeping.py: a full read made each sweep 38x slower at 100x the
history). Each statement one sweep runs is explained on the database itself."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import event, text

from tests.harness import Harness

# tables that grow with every message and webhook (flow runs, tasks: one per run or action)
HISTORY = ("message", "inbound_event", "action_task", "flow_run", "writeback_task")


@pytest.fixture
def h(bridge: Harness) -> Harness:  # conftest's bridge: on SQLite and on PostgreSQL
    return bridge


def _statements(h: Harness) -> list[tuple[str, object]]:
    seen: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if not executemany:
            seen.append((statement, parameters))

    event.listen(h.rt.db.engine, "before_cursor_execute", record)
    try:
        h.sweep()
    finally:
        event.remove(h.rt.db.engine, "before_cursor_execute", record)
    return [(st, p) for st, p in seen if any(re.search(rf"\b{t}\b", st) for t in HISTORY)]


def _full_reads(h: Harness, statement: str, parameters) -> list[str]:
    """The plan lines that read a history table from end to end."""
    engine = h.rt.db.engine
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        cursor = raw.cursor()
        if engine.dialect.name == "postgresql":
            cursor.execute("SET enable_seqscan = off")  # an index that can serve the query must be taken
            cursor.execute("EXPLAIN (FORMAT JSON) " + statement, parameters)
            plan = cursor.fetchone()[0][0]["Plan"]
            conn.rollback()
            return list(_pg_full_reads(plan))
        cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
        plan = [row[3] for row in cursor.fetchall()]
        # SEARCH = through an index; SCAN ... USING a partial index = only the open rows
        return [line for line in plan if line.startswith("SCAN") and any(f" {t}" in line for t in HISTORY)
                and not re.search(r"USING (COVERING )?INDEX ix_\w+_(open|pending|queued|sending)\b", line)]


_PARTIAL = re.compile(r"ix_\w+_(open|pending|queued|sending)$")


def _pg_full_reads(node: dict):
    """Nodes that read a history table without narrowing it: a sequential scan, or an index walked
    end to end (no Index Cond) that is not one of the partial indexes of open rows."""
    if node.get("Relation Name") in HISTORY or node["Node Type"] == "Bitmap Index Scan":
        kind, index = node["Node Type"], node.get("Index Name", "")
        if kind == "Seq Scan" or ("Index" in kind and "Index Cond" not in node and not _PARTIAL.match(index)):
            yield f"{kind} on {node.get('Relation Name')} {index}".strip()
    for child in node.get("Plans", ()):
        yield from _pg_full_reads(child)


def test_every_sweep_query_finds_open_rows_through_an_index(h: Harness):
    statements = _statements(h)
    assert len(statements) >= 6  # the sweep did run its queries
    problems = {st: reads for st, p in statements if (reads := _full_reads(h, st, p))}
    assert problems == {}


def test_the_plan_check_sees_a_full_read(h: Harness):
    """The check itself: a query on a column no index covers is reported."""
    with h.rt.db.engine.connect() as conn:
        statement = str(text("SELECT id FROM message WHERE body = 'x'").compile(conn))
    assert _full_reads(h, statement, ())
