"""Campaign throughput: N opted-in contacts through the gate and the bulk sender to a fast local
Cloud API emulator, beside the emulator's own ceiling and bare client loops at the same delay.

    .venv/bin/python bench/campaign.py [--contacts 100000] [--delays 0,100] [--in-flight 256]
        [--database postgresql+psycopg://postgres@127.0.0.1:5432/test] [--redis redis://127.0.0.1:6379/8]
        [--workers 2] [--rate 1000] [--memory 10000,100000]

- The emulator (``_emulator``, a subprocess) is an aiohttp server answering a canned send response
  with a fresh wamid after ``delay`` ms.
- Baselines at the same delay and concurrency: a bare aiohttp loop (the emulator's ceiling and the
  best bare client), httpx's async HTTP/1.1 pool (why the bulk sender does not use it), and
  ``BulkClient`` alone (our transport without the database).
- End to end: contacts and their opt-ins are inserted in bulk first (not timed; then ANALYZE on
  PostgreSQL, and every 5 s while the campaign runs, as autovacuum would); a fresh process
  (``_campaign``) runs ``send_campaign`` (stream the CSV, gate every row, write the outbox, enqueue
  ``send_batch`` jobs of ``bridge.bulk.BATCH``) while ``--workers`` RQ worker processes (``_worker``) send; the clock
  stops when the last row is ``accepted``. Without ``--redis`` the in-process runner sends.
- Memory: the campaign process's peak RSS (``ru_maxrss``) for each size in ``--memory``.

A made-up segment: +1 555 numbers, everyone opted in, quiet hours and the frequency cap off.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TOKEN, PHONE_NUMBER_ID = "bench-token", "106000000000002"
PARAMS = {"recovery_link": "https://shop.example.com/cart/r/bench", "first_name": "there"}


def phone(i: int) -> str:
    return f"+1555{i:07d}"


# ---------------------------------------------------------------- the emulator (a subprocess)


def serve_emulator(port: int, delay_ms: float) -> None:
    from aiohttp import web

    ids = itertools.count()
    prefix = f"wamid.BENCH{os.getpid()}x"

    async def send(request: web.Request) -> web.Response:
        await request.read()
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        body = ('{"messaging_product":"whatsapp","contacts":[{"input":"x","wa_id":"x"}],'
                f'"messages":[{{"id":"{prefix}{next(ids)}","message_status":"accepted"}}]}}')
        return web.Response(text=body, content_type="application/json")

    app = web.Application()
    app.router.add_post("/{version}/{phone_number_id}/messages", send)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, backlog=1024)


def start_emulator(delay_ms: float) -> tuple[subprocess.Popen, str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, __file__, "_emulator", str(port), str(delay_ms)])
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return proc, url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("emulator did not start")


# ---------------------------------------------------------------- baselines: bare client loops


def _body(i: int) -> dict:
    from connectors.whatsapp.mapper import message_body

    request = {"template": "cart_reminder", "language": "en_US", "buttons": [],
               "params": {"first_name": "Ada", "cart_total": "$1.00", "recovery_link": PARAMS["recovery_link"]}}
    return message_body(request, to={"to": phone(i)}, callback_data=f"replyflow:{i}")


async def _aiohttp_loop(url: str, n: int, in_flight: int) -> float:
    import aiohttp

    slots = asyncio.Semaphore(in_flight)
    target = f"{url}/v25.0/{PHONE_NUMBER_ID}/messages"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight)) as http:
        async def one(i: int) -> None:
            async with slots:
                async with http.post(target, data=json.dumps(_body(i)),
                                     headers={"Content-Type": "application/json"}) as r:
                    await r.read()
                    assert r.status == 200

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return n / (time.perf_counter() - started)


async def _httpx_loop(url: str, n: int, in_flight: int) -> float:
    import httpx

    slots = asyncio.Semaphore(in_flight)
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:
        async def one(i: int) -> None:
            async with slots:
                r = await http.post(f"{url}/v25.0/{PHONE_NUMBER_ID}/messages", json=_body(i))
                assert r.status_code == 200

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return n / (time.perf_counter() - started)


async def _bulk_client_loop(url: str, n: int, in_flight: int) -> float:
    from connectors.whatsapp.client import BulkClient, SendResult

    client = BulkClient(access_token=TOKEN, phone_number_id=PHONE_NUMBER_ID, base_url=url, max_in_flight=in_flight)
    async with client.session() as session:
        started = time.perf_counter()
        results = await asyncio.gather(*(session.send(_body(i)) for i in range(n)))
        rate = n / (time.perf_counter() - started)
    assert all(isinstance(r, SendResult) for r in results), {type(r).__name__ for r in results}
    return rate


# ---------------------------------------------------------------- the database, the segment


def prepare(database_url: str, n: int, folder: Path) -> Path:
    """Contacts +1 555 000 0000.. with their phone links and a marketing opt-in, inserted in bulk;
    the segment CSV naming them."""
    from sqlalchemy import insert, select

    from core import contacts, phones
    from core.clock import SystemClock
    from core.store import Database, session_scope
    from core.store.models import ConsentEvent, Contact, ContactLink, Workspace
    from bridge.config import Settings
    from bridge.runtime import ensure_defaults

    db = Database(database_url)
    db.drop_all()
    db.upgrade()
    ensure_defaults(db, Settings(database_url=database_url))
    now = SystemClock().now()
    tz = phones.country_timezone(phone(0))
    with session_scope(db) as s:
        ws = s.scalar(select(Workspace).where(Workspace.slug == "default"))
        ws.settings = {"quiet_hours": "off", "marketing_cap": "off"}
        ws_id = ws.id
    for start in range(0, n, 5000):
        span = range(start, min(n, start + 5000))
        with session_scope(db) as s:
            ids = s.scalars(insert(Contact).returning(Contact.id, sort_by_parameter_order=True), [
                dict(workspace_id=ws_id, phone_e164=phone(i), timezone=tz, created_at=now, updated_at=now)
                for i in span]).all()
            s.execute(insert(ContactLink), [dict(workspace_id=ws_id, contact_id=cid, platform=p, external_id=key)
                                            for cid, i in zip(ids, span) for p, key in contacts.keys_for_phone(phone(i))])
            s.execute(insert(ConsentEvent), [dict(workspace_id=ws_id, contact_id=cid, purpose="marketing",
                                                  action="opt_in", source="bench", evidence="made-up segment",
                                                  at=now, recorded_at=now) for cid in ids])
    if db.engine.dialect.name == "postgresql":
        # A live database has planner statistics; this machine's PostgreSQL runs without
        # autovacuum, and without them the batch's phone-link lookup scans every link of the
        # workspace (32 ms for 3 keys at 100,000 contacts, 0.1 ms after ANALYZE).
        with db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    db.dispose()
    path = folder / f"segment-{n}.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["phone", "first_name", "cart_total"])
        for i in range(n):
            writer.writerow([phone(i), f"Ada{i}", f"${i % 90 + 10}.00"])
    return path


def _env(args, api_url: str) -> dict:
    env = {**os.environ, "DATABASE_URL": args.database, "WHATSAPP_API_BASE": api_url, "WHATSAPP_ACCESS_TOKEN": TOKEN,
           "WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID, "WHATSAPP_MESSAGES_PER_SECOND": str(args.rate),
           "WHATSAPP_MAX_IN_FLIGHT": str(args.in_flight), "PYTHONPATH": str(ROOT),
           "WHATSAPP_APP_SECRET": "bench-app-secret", "WHATSAPP_VERIFY_TOKEN": "bench-verify-token",
           "REPLYFLOW_ACTION_SECRET": "bench-action-secret", "REPLYFLOW_ERASE_SALT": "bench-erase-salt"}
    if args.redis:
        env["REDIS_URL"] = args.redis
    else:
        env.pop("REDIS_URL", None)
    return env


def run_worker() -> None:
    """An RQ worker like ``replyflow worker`` (forking), without the sweeper: nothing fails here."""
    from rq import Worker
    from rq.serializers import JSONSerializer

    from bridge.config import Settings
    from bridge.queue import freeze_heap
    from bridge.runtime import build_runtime, set_runtime

    rt = build_runtime(Settings.from_env())
    set_runtime(rt)
    os.register_at_fork(after_in_child=lambda: rt.db.engine.dispose(close=False))
    freeze_heap()  # as `replyflow worker` does
    Worker([rt.queue.queues["sends"]], connection=rt.queue.redis, serializer=JSONSerializer).work(
        logging_level="WARNING")


def run_campaign(segment: str, name: str) -> None:
    """``send_campaign`` in a process of its own (so its peak RSS is its own); prints JSON."""
    from bridge.campaigns import CampaignSpec, send_campaign
    from bridge.config import Settings
    from bridge.queue import freeze_heap
    from bridge.runtime import build_runtime, set_runtime

    rt = build_runtime(Settings.from_env())
    set_runtime(rt)
    freeze_heap()  # as `replyflow campaign send` does
    started = time.perf_counter()
    report = send_campaign(rt, CampaignSpec(name=name, template="cart_reminder", segment=Path(segment),
                                            params=PARAMS))
    decided = time.perf_counter() - started
    if hasattr(rt.queue, "drain"):
        rt.queue.drain(timeout=3600)
    print(json.dumps({"rows": report.tally.rows, "queued": report.tally.queued, "decide_s": decided,
                      "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    rt.close()


def _accepted(database_url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM message WHERE status = 'accepted'")).scalar()
    engine.dispose()
    return n


def _analyze(database_url: str) -> None:
    """What autovacuum would do while the campaign fills the tables (this machine's PostgreSQL
    runs without it): without fresh statistics the foreign-key check of every new message keeps
    the plan it got when ``conversation`` was nearly empty, a sequential scan, and the deciding
    process slows down as the table grows (24,000 scans reading 289 million rows for the first
    24,000 messages of a 100,000-contact run)."""
    if not database_url.startswith("postgresql"):
        return
    from sqlalchemy import create_engine

    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE conversation, message, contact")
    engine.dispose()


def end_to_end(args, api_url: str, segment: Path, n: int) -> dict:
    """The campaign through the gate and the workers; messages/s from start to the last accepted."""
    env = _env(args, api_url)
    workers = [subprocess.Popen([sys.executable, __file__, "_worker"], env=env) for _ in range(args.workers)] \
        if args.redis else []
    if args.redis:
        from redis import Redis

        Redis.from_url(args.redis).flushdb()
        time.sleep(2)  # the workers are up
    started = time.perf_counter()
    campaign = subprocess.Popen([sys.executable, __file__, "_campaign", str(segment), f"bench-{time.time():.0f}"],
                                env=env, stdout=subprocess.PIPE, text=True)
    done, analyzed = 0, time.perf_counter()
    try:
        while True:
            time.sleep(0.5)
            if time.perf_counter() - analyzed >= 5:
                _analyze(args.database)
                analyzed = time.perf_counter()
            done = _accepted(args.database)
            if done >= n or (campaign.poll() not in (None, 0)):
                break
            if time.perf_counter() - started > args.timeout:
                raise RuntimeError(f"timed out with {done}/{n} accepted")
        elapsed = time.perf_counter() - started
        out = json.loads(campaign.communicate(timeout=600)[0].strip().splitlines()[-1])
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            try:
                w.wait(timeout=15)
            except subprocess.TimeoutExpired:  # a warm shutdown that hangs is not what is measured
                w.kill()
                w.wait()
    return {**out, "accepted": done, "elapsed_s": elapsed, "msgs_per_s": done / elapsed,
            "decide_rows_per_s": out["rows"] / out["decide_s"]}


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--delays", default="0,100", help="emulator answer delays in ms")
    parser.add_argument("--in-flight", type=int, default=256)
    parser.add_argument("--database", default=None)
    parser.add_argument("--redis", default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=1000.0, help="WHATSAPP_MESSAGES_PER_SECOND")
    parser.add_argument("--bare", type=int, default=20_000, help="requests per bare-loop baseline")
    parser.add_argument("--memory", default="", help="contact counts to compare peak RSS for (0 ms delay)")
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="replyflow-campaign-bench-"))
    args.database = args.database or f"sqlite:///{tmp / 'bench.db'}"
    print(f"database {args.database.split('@')[-1]}, redis {args.redis or '(in-process runner)'}, "
          f"{args.workers if args.redis else 0} worker(s), rate limit {args.rate:.0f}/s, {args.in_flight} in flight",
          flush=True)
    for delay in [float(d) for d in args.delays.split(",") if d]:
        proc, url = start_emulator(delay)
        try:
            bare = asyncio.run(_aiohttp_loop(url, args.bare, args.in_flight))
            httpx_n = min(args.bare, 3000)
            httpx_rate = asyncio.run(_httpx_loop(url, httpx_n, args.in_flight))
            ours = asyncio.run(_bulk_client_loop(url, args.bare, args.in_flight))
            print(f"\n== emulator answering after {delay:.0f} ms, {args.in_flight} in flight", flush=True)
            print(f"  bare aiohttp loop (emulator ceiling, best bare client) {bare:9,.0f} msg/s   1.00x")
            print(f"  bare httpx async HTTP/1.1 loop ({httpx_n} requests)     {httpx_rate:9,.0f} msg/s   "
                  f"{httpx_rate / bare:.2f}x")
            print(f"  BulkClient alone (our transport, no database)          {ours:9,.0f} msg/s   {ours / bare:.2f}x",
                  flush=True)
            segment = prepare(args.database, args.contacts, tmp)
            e2e = end_to_end(args, url, segment, args.contacts)
            print(f"  campaign end to end: {e2e['accepted']:,} accepted in {e2e['elapsed_s']:.1f} s"
                  f"                {e2e['msgs_per_s']:9,.0f} msg/s   {e2e['msgs_per_s'] / bare:.2f}x")
            print(f"    (gate + outbox, the deciding process alone: {e2e['decide_rows_per_s']:,.0f} rows/s; "
                  f"its peak RSS {e2e['maxrss_mb']:.0f} MB)", flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    if args.memory:
        proc, url = start_emulator(0)
        try:
            print("\n== peak RSS of the campaign process (0 ms)")
            for n in [int(x) for x in args.memory.split(",")]:
                e2e = end_to_end(args, url, prepare(args.database, n, tmp), n)
                print(f"  {n:>8,} contacts: {e2e['maxrss_mb']:6.0f} MB   ({e2e['msgs_per_s']:,.0f} msg/s)", flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_emulator":
        serve_emulator(int(sys.argv[2]), float(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "_worker":
        run_worker()
    elif len(sys.argv) > 1 and sys.argv[1] == "_campaign":
        run_campaign(sys.argv[2], sys.argv[3])
    else:
        main()
