"""``replyflow serve`` in production: the bridge under gunicorn's sync workers.

Each worker builds its own runtime after the fork (its own database pool and Redis connection),
so nothing is shared across processes. Sync workers, because a webhook's time is spent waiting on
the database commit: more workers than cores overlap those waits (bench/RESULTS.md), and sync
workers keep a far better p99 than threaded ones under load.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import tempfile
from typing import Any

__all__ = ["default_workers", "serve", "metrics_dir"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def metrics_dir() -> str:
    """Where the workers keep their Prometheus counters (prometheus_client's multiprocess mode), so
    ``/metrics`` on any worker sums all of them: PROMETHEUS_MULTIPROC_DIR emptied of a previous
    run's files, or a new temporary folder. Set before any worker creates a metric."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        os.makedirs(path, exist_ok=True)
        for stale in glob.glob(os.path.join(path, "*.db")):
            os.remove(stale)
    else:
        path = os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="replyflow-metrics-")
        master = os.getpid()  # removed when the gunicorn master exits, not when a worker does
        atexit.register(lambda: os.getpid() == master and shutil.rmtree(path, ignore_errors=True))
    import sys

    if "prometheus_client.values" in sys.modules:  # imported before the variable was set: choose again
        from prometheus_client import values

        values.ValueClass = values.get_value_class()
    return path


def default_workers() -> int:
    """Four per core, at most 16: a request mostly waits for PostgreSQL's commit, not the CPU."""
    return max(2, min(16, 4 * (os.cpu_count() or 1)))


def serve(host: str, port: int, workers: int, *, timeout: int = 30) -> None:
    from gunicorn.app.base import BaseApplication

    metrics_dir()

    class _Bridge(BaseApplication):
        def load_config(self) -> None:
            for key, value in {"bind": f"{host}:{port}", "workers": workers, "worker_class": "sync",
                               "timeout": timeout, "accesslog": None, "loglevel": "warning"}.items():
                self.cfg.set(key, value)

        def load(self) -> Any:  # in each worker, after the fork
            from bridge.app import create_app
            from bridge.config import Settings
            from bridge.runtime import build_runtime

            return create_app(build_runtime(Settings.from_env()))

    _Bridge().run()
