"""The periodic queries as the history grows: one sweep (what is due, what a lost queue dropped), the
/metrics database counts (read at most every 30 s) and a scrape that reuses them, on a database holding a small history and again holding a
large one. Work that is due stays the same size (a few open rows); only the finished history grows.
A query that reads the whole history shows up as a time that grows with it.

    .venv/bin/python bench/housekeeping.py [--rows 10000,1000000]
        [--database postgresql+psycopg://postgres@127.0.0.1:5432/test] [--repeat 5]

The benchmark makes (and drops) its own database ``replyflow_housekeeping`` on that server. Each
size: ``rows`` finished outbound messages (delivered/read), three finished status webhooks per
message in ``inbound_event``, plus 20 open rows of each kind the sweeper looks for (not yet due, so
nothing is enqueued: the figures are the queries alone).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NAME = "replyflow_housekeeping"


def _fresh(url: str) -> str:
    from sqlalchemy import create_engine, text

    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{NAME}"'))
    admin.dispose()
    return url.rsplit("/", 1)[0] + "/" + NAME


def _fill(engine, start: int, rows: int) -> None:
    """rows finished messages and 3 x rows finished webhooks, then 20 open rows of each kind."""
    from sqlalchemy import text

    with engine.begin() as conn:
        ws = conn.scalar(text("SELECT min(id) FROM workspace"))
        ch = conn.scalar(text("SELECT min(id) FROM channel"))
        contact = conn.scalar(text("INSERT INTO contact (workspace_id, created_at, updated_at) "
                                   "VALUES (:ws, now(), now()) RETURNING id"), {"ws": ws})
        conv = conn.scalar(text("INSERT INTO conversation (workspace_id, contact_id, channel_id, mode, updated_at) "
                                "VALUES (:ws, :c, :ch, 'bot', now()) RETURNING id"), {"ws": ws, "c": contact, "ch": ch})
        done = ("INSERT INTO message (workspace_id, conversation_id, contact_id, direction, author, kind, body, "
                "wamid, status, status_at, created_at) SELECT :ws, :conv, :c, 'out', 'bot', 'text', 'hello', "
                "'wamid.HK' || g, CASE WHEN g % 3 = 0 THEN 'delivered' ELSE 'read' END, "
                "now() - interval '2 days', now() - interval '2 days' FROM generate_series(:a, :a + :n - 1) g")
        conn.execute(text(done), {"ws": ws, "conv": conv, "c": contact, "a": start, "n": rows})
        conn.execute(text("INSERT INTO inbound_event (platform, dedupe_key, kind, body, status, attempts, received_at, "
                          "processed_at) SELECT 'whatsapp', 'wa:HK' || g, 'DeliveryStatus', '{}', 'done', 1, "
                          "now() - interval '2 days', now() - interval '2 days' FROM generate_series(:a, :a + :n - 1) g"),
                     {"a": start * 3, "n": rows * 3})
        opened = ("INSERT INTO message (workspace_id, conversation_id, contact_id, direction, author, kind, body, "
                  "status, status_at, not_before, created_at) SELECT :ws, :conv, :c, 'out', 'bot', 'text', 'hello', "
                  "'queued', now(), now() + interval '1 day', now() FROM generate_series(1, 20) g")
        conn.execute(text(opened), {"ws": ws, "conv": conv, "c": contact})
        conn.execute(text("INSERT INTO inbound_event (platform, dedupe_key, kind, body, status, attempts, received_at) "
                          "SELECT 'whatsapp', 'wa:HKOPEN' || g || '-' || :n, 'InboundMessage', '{}', 'pending', 0, "
                          "now() FROM generate_series(1, 20) g"), {"n": rows})
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))


def _median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default="10000,1000000")
    ap.add_argument("--database", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    url = _fresh(args.database)
    os.environ.update(DATABASE_URL=url, REPLYFLOW_SECRET_KEY="bench-housekeeping")
    from bridge import jobs
    from bridge.observability import StateCollector, _database_rows
    from bridge.runtime import get_runtime

    rt = get_runtime()  # migrates the new database
    results, total = [], 0
    for rows in (int(r) for r in args.rows.split(",")):
        _fill(rt.db.engine, total + 1, rows - total)
        total = rows
        sweep = _median_ms(lambda: jobs.sweep(stale_after_seconds=3600), args.repeat)
        counts = _median_ms(lambda: _database_rows(rt), args.repeat)
        collector = StateCollector(rt)
        list(collector.collect())  # the first scrape reads the counts; the next ones within 30 s reuse them
        scrape = _median_ms(lambda: list(collector.collect()), args.repeat)
        results.append((rows, sweep, counts, scrape))
        print(f"  {rows:>10,} messages, {rows * 3:>10,} webhooks: sweep {sweep:8.1f} ms   "
              f"database counts {counts:8.1f} ms (at most every 30 s)   a scrape {scrape:6.2f} ms", flush=True)
    (small, s_sweep, s_counts, s_scrape), (big, b_sweep, b_counts, b_scrape) = results[0], results[-1]
    print(f"history x{big / small:.0f}: sweep x{b_sweep / s_sweep:.1f}, database counts x{b_counts / s_counts:.1f}, "
          f"scrape x{b_scrape / s_scrape:.1f} (flat = about x1)")
    rt.db.dispose()


if __name__ == "__main__":
    main()
