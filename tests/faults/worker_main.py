"""A replyflow RQ worker for the fault tests: ``replyflow worker`` with a short WhatsApp client timeout.

``python -m tests.faults.worker_main`` builds the runtime from the environment exactly as the
worker command does (``Settings.from_env``), except that the Cloud API client gives up after
``REPLYFLOW_TEST_CLIENT_TIMEOUT`` seconds (the product's is 10 s: too long for a test that makes
the sandbox answer late), then sweeps every ``REPLYFLOW_TEST_SWEEP_EVERY`` seconds in a thread and
works every queue with the scheduler (retries with intervals), as ``replyflow worker`` does.

One difference on purpose: each forked work-horse drops the database connections it inherited
(SQLAlchemy's rule for ``os.fork``). ``replyflow worker`` does not, so its horses and its sweeper
thread share PostgreSQL connections and corrupt each other's sessions (see
``test_the_worker_command_keeps_its_database_connections_apart``); this launcher keeps that bug
out of the other fault tests so they test what they mean to.
"""

from __future__ import annotations

import logging
import os
import threading
import time


def main() -> None:
    from rq import Worker
    from rq.serializers import JSONSerializer

    from connectors.whatsapp.client import CloudApiClient
    from bridge import jobs
    from bridge.config import Settings
    from bridge.health import worker_options
    from bridge.queue import freeze_heap
    from bridge.runtime import build_runtime, set_runtime

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    timeout = float(os.environ.get("REPLYFLOW_TEST_CLIENT_TIMEOUT", "10"))
    sweep_every = float(os.environ.get("REPLYFLOW_TEST_SWEEP_EVERY", "5"))

    def client() -> CloudApiClient:
        return CloudApiClient(access_token=settings.whatsapp_access_token,
                              phone_number_id=settings.whatsapp_phone_number_id,
                              base_url=settings.whatsapp_api_base, api_version=settings.whatsapp_api_version,
                              timeout=timeout)

    runtime = build_runtime(settings, client_factory=client)
    set_runtime(runtime)
    os.register_at_fork(after_in_child=lambda: runtime.db.engine.dispose(close=False))
    runtime.whatsapp  # built once here (this process never sends), not again in every forked horse

    def sweeper() -> None:
        while True:
            try:
                jobs.sweep()
            except Exception:  # keep sweeping, like the worker command
                logging.getLogger("replyflow.sweeper").exception("sweep failed")
            time.sleep(sweep_every)

    threading.Thread(target=sweeper, name="replyflow-sweeper", daemon=True).start()
    queues = list(runtime.queue.queues.values())
    freeze_heap()  # as `replyflow worker` does
    Worker(queues, connection=runtime.queue.redis, serializer=JSONSerializer,
           **worker_options()).work(with_scheduler=True)


def pooled_connections(path: str) -> None:
    """A job (run it on a worker): write how many database connections the work-horse's pool holds
    before the job touched the database, i.e. connections it inherited from the worker process."""
    import json

    from bridge.runtime import get_runtime

    pool = get_runtime().db.engine.pool
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"pid": os.getpid(), "pooled": pool.checkedin() + pool.checkedout()}, f)


if __name__ == "__main__":
    main()
