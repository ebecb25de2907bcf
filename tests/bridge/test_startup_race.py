"""Several processes started at once against a fresh PostgreSQL database (workers and bridges of
one deployment coming up together) all start: the migrations, the default workspace and the flow
versions are written once, under one advisory lock. Before the lock, the second of two workers
crashed on a duplicate key (seen in bench/campaign.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from core.store import Database, session_scope
from core.store.models import Channel, FlowVersion, Workspace

ROOT = Path(__file__).resolve().parents[2]
START = "from bridge.config import Settings; from bridge.runtime import build_runtime; build_runtime(Settings.from_env()).close()"


def test_processes_starting_together_on_a_fresh_database_all_start(postgres_url):
    env = {**os.environ, "DATABASE_URL": postgres_url, "REDIS_URL": "", "WHATSAPP_ACCESS_TOKEN": "",
           "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", START], env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
             for _ in range(6)]
    failures = [err for p in procs if (err := p.communicate(timeout=120)[1]) and p.returncode != 0]
    assert all(p.returncode == 0 for p in procs), failures[0][-1500:]
    db = Database(postgres_url)
    with session_scope(db) as s:
        assert s.scalar(select(func.count()).select_from(Workspace)) == 1
        assert s.scalar(select(func.count()).select_from(Channel)) == 1
        names = list(s.scalars(select(FlowVersion.name)))
        assert len(names) == len(set(names)) > 0
    db.dispose()
