"""``replyflow serve`` in production: the bridge under gunicorn's sync workers.

Each worker builds its own runtime after the fork (its own database pool and Redis connection),
so nothing is shared across processes. Sync workers, because a webhook's time is spent waiting on
the database commit: more workers than cores overlap those waits (bench/RESULTS.md), and sync
workers keep a far better p99 than threaded ones under load.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["default_workers", "serve"]


def default_workers() -> int:
    """Four per core, at most 16: a request mostly waits for PostgreSQL's commit, not the CPU."""
    return max(2, min(16, 4 * (os.cpu_count() or 1)))


def serve(host: str, port: int, workers: int, *, timeout: int = 30) -> None:
    from gunicorn.app.base import BaseApplication

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
