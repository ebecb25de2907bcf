"""Fault tests of the production pipeline: real Redis, real PostgreSQL, real worker subprocesses.

A campaign is decided in this process (``send_campaign`` with an ``RQRunner``, so its sends are
enqueued on Redis) and sent by ``replyflow worker`` processes (or ``tests.faults.worker_main``,
the same worker with a short Cloud API timeout) to a sandbox Cloud API served from this process.
Then something breaks: a worker is killed with SIGKILL in the middle of an API call, Redis is
flushed under a running worker, the API fails at random, the API is down for longer than the
retry budget. Whatever happens, every intended recipient must end with exactly one message at the
sandbox, or with an ``unknown`` row (a send that may or may not have left: never re-sent blindly),
and nobody may get two messages or a message they opted out of.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bridge import jobs
from bridge.campaigns import CampaignSpec, send_campaign
from bridge.config import Settings
from bridge.runtime import build_runtime, set_runtime
from bridge.sandbox import Sandbox, create_sandbox_app
from bridge.servers import ServerThread
from core import contacts
from core.clock import SystemClock
from core.events import ConsentAction, ConsentPurpose, ConsentSignal, ContactRef, PhoneCandidate
from core.outbox import record_consent
from core.store import session_scope
from core.store.models import Contact, Message, Workspace

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "fault-test-access-token"
PHONE_NUMBER_ID = "106000000000002"
LINK = "https://shop.example.com/cart/recover/faults"
PARAMS = {"recovery_link": LINK, "first_name": "there"}
WAITING = ("queued", "sending")


def phones(start: int, n: int) -> list[str]:
    """Made-up US numbers +1 555 000 xxxx."""
    return [f"+1555000{start + i:04d}" for i in range(n)]


def _descendants(pid: int) -> list[int]:
    """The processes under ``pid`` (Linux /proc), children before grandchildren."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop(0)
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found += children
            todo += children
    return found


class Rig:
    """One replyflow in pieces: a sandbox Cloud API in this process, the database and Redis, a
    runtime in this process that decides campaigns and sweeps, and worker subprocesses."""

    def __init__(self, tmp_path: Path, redis_url: str, postgres_url: str, retry_intervals: str,
                 **sandbox_kwargs) -> None:
        self.tmp_path = tmp_path
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.sandbox = Sandbox(clock=SystemClock(), app_secret="fault-app-secret", access_token=TOKEN,
                               phone_number_id=PHONE_NUMBER_ID, **sandbox_kwargs)
        self.server = ServerThread(create_sandbox_app(self.sandbox))
        self.env = {**os.environ, "DATABASE_URL": postgres_url, "REDIS_URL": redis_url,
                    "WHATSAPP_API_BASE": self.server.url, "WHATSAPP_ACCESS_TOKEN": TOKEN,
                    "WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID, "REPLYFLOW_RETRY_INTERVALS": retry_intervals,
                    "WHATSAPP_APP_SECRET": "fault-app-secret", "WHATSAPP_VERIFY_TOKEN": "fault-verify-token",
                    "REPLYFLOW_ACTION_SECRET": "fault-action-secret", "REPLYFLOW_ERASE_SALT": "fault-erase-salt",
                    "PYTHONPATH": str(ROOT)}
        self.rt = build_runtime(Settings.from_env(self.env))
        set_runtime(self.rt)  # jobs.sweep() in this process uses it
        with session_scope(self.rt.db) as s:  # real wall-clock time must not defer anything
            ws = s.scalar(select(Workspace).where(Workspace.slug == "default"))
            ws.settings = {**(ws.settings or {}), "quiet_hours": "off", "marketing_cap": "off"}

    # ------------------------------------------------------------ the campaign

    def consent(self, numbers: list[str], action: ConsentAction) -> None:
        now = self.rt.clock.now()
        with session_scope(self.rt.db) as s:
            ws = s.scalar(select(Workspace).where(Workspace.slug == "default"))
            for phone in numbers:
                ref = ContactRef(platform="test", phones=(PhoneCandidate(raw=phone, source="test"),))
                contact = contacts.resolve_ref(s, ws.id, ref, now).contact
                record_consent(s, contact, ConsentSignal(purpose=ConsentPurpose.MARKETING, action=action,
                                                         source="test", evidence="fault test", at=now), now)

    def campaign(self, numbers: list[str], name: str = "faults") -> dict:
        path = self.tmp_path / f"{name}.csv"
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["phone", "first_name", "cart_total"])
            for i, phone in enumerate(numbers):
                writer.writerow([phone, f"Ada{i}", f"${10 + i}.00"])
        spec = CampaignSpec(name=name, template="cart_reminder", segment=path, params=PARAMS)
        return send_campaign(self.rt, spec, batch_size=100).outbox

    # ------------------------------------------------------------ workers

    def start_worker(self, name: str, *, command: str = "main", client_timeout: float = 10.0,
                     sweep_every: float = 1.0) -> subprocess.Popen:
        """``tests.faults.worker_main`` (``replyflow worker`` with a short Cloud API timeout and
        fork-safe database connections) or ``replyflow worker`` itself (``command="cli"``)."""
        if command == "cli":
            argv = [str(Path(sys.executable).parent / "replyflow"), "worker", "--sweep-every", str(sweep_every)]
        else:
            argv = [sys.executable, "-m", "tests.faults.worker_main"]
        env = {**self.env, "REPLYFLOW_TEST_CLIENT_TIMEOUT": str(client_timeout), "WHATSAPP_TIMEOUT": str(client_timeout),
               "REPLYFLOW_TEST_SWEEP_EVERY": str(sweep_every)}
        log = (self.tmp_path / f"{name}.log").open("wb")
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs.append((name, proc))
        return proc

    @staticmethod
    def kill(proc: subprocess.Popen) -> None:
        """SIGKILL to the worker, its work-horse (RQ puts a horse in a process group of its own) and
        its scheduler: the machine died, nobody cleans up."""
        family = [proc.pid, *_descendants(proc.pid)]
        for pid in family:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(timeout=10)

    def logs(self) -> str:
        parts = []
        for name, _ in self.procs:
            text = (self.tmp_path / f"{name}.log").read_text(errors="replace")
            parts.append(f"--- {name} (last lines)\n" + "\n".join(text.splitlines()[-15:]))
        return "\n".join(parts)

    # ------------------------------------------------------------ what happened

    def rows(self) -> dict[str, Message]:
        """The campaign's outbox rows by recipient phone."""
        with session_scope(self.rt.db) as s:
            found = s.execute(select(Contact.phone_e164, Message).join(Contact, Contact.id == Message.contact_id)
                              .where(Message.direction == "out", Message.idempotency_key.like("campaign:%"))).all()
            return {phone: msg for phone, msg in found}

    def counts(self) -> dict[str, int]:
        with session_scope(self.rt.db) as s:
            return dict(s.execute(select(Message.status, func.count()).where(Message.direction == "out")
                                  .group_by(Message.status)).all())

    def sent_to(self) -> Counter:
        return Counter(m.to for m in self.sandbox.sent)

    def wait_for(self, what: str, predicate, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; {self.counts()}\n{self.logs()}")
            time.sleep(0.02)

    def settle(self, timeout: float = 60.0, stall: float = 8.0, stale: float = 2.0) -> dict[str, int]:
        """Sweep (as the worker's sweeper does, with a short staleness) until no row is queued or
        sending; gives up when nothing moved for ``stall`` seconds or after ``timeout``."""
        deadline = time.monotonic() + timeout
        last, moved, swept = None, time.monotonic(), 0.0
        while True:
            if time.monotonic() - swept > 1.0:
                jobs.sweep(stale_after_seconds=stale)
                swept = time.monotonic()
            counts = self.counts()
            if not any(counts.get(k) for k in WAITING):
                return counts
            state = (tuple(sorted(counts.items())), len(self.sandbox.sent))
            if state != last:
                last, moved = state, time.monotonic()
            if time.monotonic() - moved > stall or time.monotonic() > deadline:
                return counts
            time.sleep(0.2)

    def close(self) -> None:
        for _, proc in self.procs:
            self.kill(proc)
        self.server.stop()
        set_runtime(None)
        self.rt.close()


@pytest.fixture
def make_rig(tmp_path, redis_url, postgres_url):
    rigs: list[Rig] = []

    def make(retry_intervals: str = "1,1,1,1,1", **sandbox_kwargs) -> Rig:
        rig = Rig(tmp_path, redis_url, postgres_url, retry_intervals, **sandbox_kwargs)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.close()


def assert_once_or_unknown(rig: Rig, intended: list[str], *, max_unknown: int) -> dict[str, Message]:
    """Every intended recipient: ``accepted`` with exactly one message at the sandbox (the same
    wamid), or ``unknown`` with at most one; nobody else got anything; nobody got two."""
    sent, rows = rig.sent_to(), rig.rows()
    twice = {to: n for to, n in sent.items() if n > 1}
    assert not twice, f"sent twice: {twice}"
    assert set(sent) <= set(intended), f"sent to someone not intended: {set(sent) - set(intended)}"
    statuses = Counter(rows[p].status for p in intended)
    assert set(statuses) <= {"accepted", "unknown"}, f"{statuses}\n{rig.logs()}"
    wamids = {m.wamid: m.to for m in rig.sandbox.sent}
    for phone in intended:
        msg = rows[phone]
        if msg.status == "accepted":
            assert sent[phone] == 1 and wamids.get(msg.wamid) == phone, phone
    unknown = {p: rows[p] for p in intended if rows[p].status == "unknown"}
    assert len(unknown) <= max_unknown, f"{len(unknown)} unknown rows: {[m.error_details for m in unknown.values()]}"
    return unknown


# ---------------------------------------------------------------- the sandbox's fault mode


def test_the_sandbox_fault_mode_is_reproducible_and_off_by_default():
    def draws(**kwargs) -> list:
        box = Sandbox(clock=SystemClock(), app_secret="s", access_token="t", phone_number_id="1", **kwargs)
        return [box._fault() for _ in range(200)]

    assert draws() == [None] * 200
    first, again = draws(fail_rate=0.3, seed=7), draws(fail_rate=0.3, seed=7)
    assert first == again
    assert 40 <= sum(f is not None for f in first) <= 80 and {f for f in first if f} == {"500", "429", "slow"}
    with pytest.raises(ValueError):
        draws(fail_rate=0.5, faults=("teapot",))


# ---------------------------------------------------------------- 1. kill -9 mid-batch


def test_a_worker_killed_mid_batch_never_causes_a_second_message(make_rig):
    """Campaigns send in batches (send_batch): the machine dies while a batch is on the wire. Its
    claimed rows end ``unknown`` (some went out, some did not: nobody can tell, so none is re-sent);
    every other row is sent exactly once by the restarted workers."""
    rig = make_rig(delay_s=0.02)
    rig.env["WHATSAPP_MESSAGES_PER_SECOND"] = "50"  # a batch of 100 takes 2 s: time to be caught in it
    intended = phones(3000, 300)
    rig.consent(intended, ConsentAction.OPT_IN)
    assert rig.campaign(intended) == {"queued": 300}
    first = rig.start_worker("worker-a")

    def mid_batch() -> bool:
        return len(rig.sandbox.sent) >= 30 and any(m.status == "sending" for m in rig.rows().values())

    rig.wait_for("the first worker to be in the middle of a batch", mid_batch)
    rig.kill(first)
    in_flight = {p for p, m in rig.rows().items() if m.status == "sending"}
    went_out = set(rig.sent_to())
    assert in_flight and len(went_out) < 300 and not in_flight <= went_out  # some of the batch never left
    for n in range(2):  # the restart, with company
        rig.start_worker(f"worker-b{n}")
    # (a batch is 'sending' for seconds on a busy machine: only a batch older than 20 s is the dead one's)
    counts = rig.settle(stall=20, stale=20)
    assert not any(counts.get(k) for k in WAITING), f"rows left waiting: {counts}\n{rig.logs()}"
    unknown = assert_once_or_unknown(rig, intended, max_unknown=len(in_flight))
    assert set(unknown) == in_flight  # exactly the batch on the wire; everything else was accepted
    assert counts == {"accepted": 300 - len(in_flight), "unknown": len(in_flight)}


# ---------------------------------------------------------------- 2. Redis loses everything


def test_flushing_redis_under_a_running_worker_loses_nothing_and_sends_nothing_twice(make_rig):
    rig = make_rig(delay_s=0.01)
    intended = phones(4000, 600)  # six send_batch jobs of 100: most still queued when Redis is flushed
    rig.consent(intended, ConsentAction.OPT_IN)
    assert rig.campaign(intended) == {"queued": 600}
    for n in range(2):
        rig.start_worker(f"worker-{n}")
    sends = rig.rt.queue.queues["sends"]
    rig.wait_for("the workers to send some", lambda: len(rig.sandbox.sent) >= 25)
    assert sends.count > 0  # what Redis is about to lose
    # FLUSHDB of the test's Redis database: all RQ keeps is there (FLUSHALL would also wipe the
    # other databases of a shared server); queues, started jobs, worker records: all gone
    rig.rt.queue.redis.flushdb()
    at_flush = len(rig.sandbox.sent)
    assert at_flush < 600 and rig.counts().get("queued", 0) > 0  # (the sweepers re-enqueue them once stale)
    counts = rig.settle(stall=20, stale=10)  # (a batch on a busy machine is 'sending' for seconds)
    assert counts == {"accepted": 600}, f"{counts} (flushed after {at_flush} sends)\n{rig.logs()}"
    assert_once_or_unknown(rig, intended, max_unknown=0)
    assert rig.sent_to() == Counter(intended)


# ---------------------------------------------------------------- 3. an API that fails at random


def test_an_api_failing_at_random_ends_with_one_message_each_or_unknown(make_rig):
    rig = make_rig(fail_rate=0.3, seed=20251103, slow_s=1.2)
    intended = phones(5000, 60)
    refused = phones(5200, 5)  # opted in once, then opted out: blocked when the campaign is decided
    late = phones(5300, 5)  # opted out after their sends were queued: the sender's recheck blocks them
    rig.consent(intended + refused + late, ConsentAction.OPT_IN)
    rig.consent(refused, ConsentAction.OPT_OUT)
    assert rig.campaign(intended + refused + late) == {"queued": 65, "blocked": 5}
    rig.consent(late, ConsentAction.OPT_OUT)
    for n in range(2):  # the client gives up after 0.5 s; a slow answer comes after 1.2 s
        rig.start_worker(f"worker-{n}", client_timeout=0.5)
    counts = rig.settle(timeout=60)
    assert not any(counts.get(k) for k in WAITING), f"rows left waiting: {counts}\n{rig.logs()}"
    rows = rig.rows()
    assert {rows[p].status for p in refused + late} == {"blocked"}
    slow = {to for fault, to in rig.sandbox.faults_seen if fault == "slow"}
    retried = {to for fault, to in rig.sandbox.faults_seen if fault in ("500", "429")}
    assert retried and slow, rig.sandbox.faults_seen  # the seed gives both kinds
    unknown = assert_once_or_unknown(rig, intended, max_unknown=len(slow))
    assert set(unknown) == slow  # a timed-out send is never re-sent, every other one is accepted
    assert all(rows[p].status == "accepted" for p in retried - slow)  # 500 and 429 were retried
    assert rig.sent_to() == Counter(intended)  # a slow answer's message did leave, once


# ---------------------------------------------------------------- 4. an outage longer than the retries


def test_sends_go_out_when_the_api_comes_back_after_the_retries_ran_out(make_rig):
    rig = make_rig(retry_intervals="1,1", fail_rate=1.0, faults=("500",))
    intended = phones(6000, 10)
    rig.consent(intended, ConsentAction.OPT_IN)
    assert rig.campaign(intended) == {"queued": 10}
    rig.start_worker("worker", client_timeout=2.0)
    rig.wait_for("every send's job to use up its 3 attempts", lambda: len(rig.sandbox.faults_seen) >= 30)
    # (the worker's sweeper may already be replacing the failed jobs: that is the fix under test)
    assert not rig.sandbox.sent and not rig.counts().get("accepted")
    rig.sandbox.fail_rate = 0.0  # the outage is over
    counts = rig.settle(stall=5)
    assert counts == {"accepted": 10}, f"{counts}\n{rig.logs()}"
    assert rig.sent_to() == Counter(intended)


# ---------------------------------------------------------------- 5. the worker command itself


def test_the_worker_command_keeps_its_database_connections_apart(make_rig):
    from rq import Queue
    from rq.serializers import JSONSerializer

    rig = make_rig()
    out = rig.tmp_path / "pooled.json"
    rig.start_worker("replyflow-worker", command="cli")  # the product's own command
    queue = Queue("flows", connection=rig.rt.queue.redis, serializer=JSONSerializer)
    queue.enqueue_call("tests.faults.worker_main.pooled_connections", args=(str(out),), result_ttl=0)
    rig.wait_for("the probe job to run in a work-horse", out.exists)
    time.sleep(0.1)  # written in full
    probe = json.loads(out.read_text())
    assert probe["pooled"] == 0, f"a work-horse starts with {probe['pooled']} connection(s) of its parent's pool"
