"""What a deployment can tell about itself, so that a worker on the wrong database, a missing
worker or an unreachable Redis is said out loud instead of failing silently.

- ``describe_url(url)``: a database or Redis URL as it may be printed (no password; a SQLite
  file's absolute path).
- ``missing_row(kind, row_id, database_url)``: the warning for a job whose row is not in the database;
  ``missing_rows`` the same for a job given many rows (a campaign's send batch) when some are not.
- The bridge records its database's id (``core.store.identity``) in Redis at start
  (``record_bridge_database``); ``replyflow worker`` compares its own before it takes a job
  (``check_worker_database``) and refuses to start on another database; while it runs, its sweeper
  asks again each round (``database_moved``: one GET) and stops the worker when the bridge's changed.
- ``live_workers(redis, now)``: the RQ workers whose last heartbeat is at most ``WORKER_STALE_SECONDS``
  old; ``worker_options()`` makes ``replyflow worker`` beat every ``WORKER_HEARTBEAT_SECONDS``.
- ``jobs_warning(settings)``: what to tell a person whose work was queued but will not run yet.
- ``healthz(runtime)``: the body and status code of ``GET /healthz``.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from core.errors import ReplyflowError
from core.store import Database
from core.store.db import sqlite_file
from core.store.identity import database_id
from bridge.config import Settings

__all__ = ["BRIDGE_DATABASE_KEY", "NO_WORKER", "WrongDatabase", "describe_url", "missing_row", "missing_rows",
           "redis_client", "record_bridge_database", "check_worker_database", "database_moved", "WORKER_HEARTBEAT_SECONDS",
           "WORKER_STALE_SECONDS", "worker_options", "live_workers", "jobs_warning", "healthz"]

_log = logging.getLogger(__name__)
BRIDGE_DATABASE_KEY = "replyflow:bridge-database"  # {"id": …, "url": …} of the database `serve` uses
NO_WORKER = "no `replyflow worker` is running: jobs wait in Redis until one starts"


class WrongDatabase(ReplyflowError):
    """This worker's database is not the one the bridge records its webhooks in."""


def describe_url(url: str) -> str:
    """The URL without its password; a SQLite file also by its absolute path (a relative one
    depends on the folder the command was started in)."""
    shown = make_url(url).render_as_string(hide_password=True)
    path = sqlite_file(url)
    return f"{shown} ({os.path.abspath(path)})" if path and not os.path.isabs(path) else shown


_SAME_DATABASE = "if that is not the bridge's database, start this worker with the same DATABASE_URL as `replyflow serve`"
_SHOWN_IDS = 5  # ids a missing_rows warning names; the count says how many there are


def missing_row(kind: str, row_id: object, database_url: str) -> str:
    return f"{kind} {row_id} is not in the database {describe_url(database_url)}, so this job does nothing: {_SAME_DATABASE}"


def missing_rows(kinds: str, row_ids: list, given: int, database_url: str) -> str:
    """``row_ids``: the ones missing among the ``given`` rows of a job (the first few are named)."""
    shown = ", ".join(str(i) for i in row_ids[:_SHOWN_IDS]) + (", ..." if len(row_ids) > _SHOWN_IDS else "")
    return (f"{len(row_ids)} of the {given} {kinds} this job was given are not in the database "
            f"{describe_url(database_url)} (ids {shown}), so this job skips them: {_SAME_DATABASE}")


def redis_client(url: str) -> Any:
    """A connection for checks: one second to answer, so an unreachable Redis is a quick answer,
    not a hang."""
    from redis import Redis

    return Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)


def record_bridge_database(db: Database, redis: Any) -> None:
    redis.set(BRIDGE_DATABASE_KEY, json.dumps({"id": database_id(db), "url": describe_url(db.url)}))


def _bridge_record(raw: bytes | None) -> tuple[str, str] | None:
    """The (id, shown URL) the bridge recorded; None when the record is unreadable."""
    try:
        bridge = json.loads(raw)  # type: ignore[arg-type]
        return str(bridge["id"]), str(bridge.get("url", "unknown"))
    except (ValueError, TypeError, KeyError):
        return None


def check_worker_database(db: Database, redis: Any) -> str:
    """A line saying whether the worker's database could be checked; raises ``WrongDatabase``
    when the bridge recorded another one."""
    raw = redis.get(BRIDGE_DATABASE_KEY)
    if raw is None:
        return ("note: no bridge has recorded its database in this Redis yet (`replyflow serve` with REDIS_URL "
                "does), so this worker cannot check that it uses the same one")
    record = _bridge_record(raw)
    if record is None:
        return (f"note: the bridge's record in Redis ({BRIDGE_DATABASE_KEY}) is unreadable, so this worker cannot "
                "check that it uses the same database; restarting `replyflow serve` writes it again")
    recorded, url = record
    if recorded != database_id(db):
        raise WrongDatabase(f"this worker's database {describe_url(db.url)} is not the bridge's ({url}): "
                            "start it with the same DATABASE_URL as `replyflow serve`")
    return f"the bridge uses the same database ({url})"


# RQ's defaults (worker_ttl 420 s) make an idle worker beat only once per 405 s blocking dequeue,
# and keep a dead worker's key 480 s: a SIGKILLed worker was counted for about 7 minutes.
# `replyflow worker` beats at least every WORKER_HEARTBEAT_SECONDS instead (``worker_options``), and
# a worker whose last beat is older than WORKER_STALE_SECONDS (four beats: one slow Redis round
# or a long registry clean-up is not a death) is not counted, whether or not its key is still there.
WORKER_HEARTBEAT_SECONDS = 15
WORKER_STALE_SECONDS = 4 * WORKER_HEARTBEAT_SECONDS


def worker_options() -> dict[str, int]:
    """``rq.Worker`` arguments for a heartbeat every WORKER_HEARTBEAT_SECONDS: idle, the blocking
    dequeue lasts ``worker_ttl - 15`` s between beats; busy, the horse is checked (and the worker
    beats) every ``job_monitoring_interval`` s. The key then expires ``worker_ttl + 60`` s after the
    last beat."""
    return {"worker_ttl": WORKER_HEARTBEAT_SECONDS + 15, "job_monitoring_interval": WORKER_HEARTBEAT_SECONDS}


def database_moved(redis: Any, own_id: str, own_url: str) -> str | None:
    """The error to log when the bridge now records another database than ``own_id`` (the worker's,
    read once at start), else None. One GET; no record or an unreadable one is None (the start-up
    check said so already, and a flushed Redis is not another database)."""
    raw = redis.get(BRIDGE_DATABASE_KEY)
    record = None if raw is None else _bridge_record(raw)
    if record is None or record[0] == own_id:
        return None
    return (f"the bridge now records its database as {record[1]}, not this worker's {describe_url(own_url)} (was "
            "`replyflow serve` restarted with another DATABASE_URL, or REDIS_URL pointed at another Redis?): this "
            "worker stops instead of running jobs against the wrong database; start it again with the same "
            "DATABASE_URL and REDIS_URL as `replyflow serve`")


def live_workers(redis: Any, now: datetime | None = None) -> int:
    """RQ workers on this Redis whose last heartbeat is at most WORKER_STALE_SECONDS before ``now``
    (default: this machine's clock; RQ writes the beats in UTC from the worker's)."""
    from rq import Worker
    from rq.serializers import JSONSerializer

    cut_off = (now or datetime.now(timezone.utc)) - timedelta(seconds=WORKER_STALE_SECONDS)
    return sum(1 for w in Worker.all(connection=redis, serializer=JSONSerializer)
               if w.last_heartbeat is not None and w.last_heartbeat >= cut_off)


def jobs_warning(settings: Settings) -> str | None:
    """Why work queued now will not run yet (Redis unreachable, no worker), or None."""
    if not settings.redis_url:
        return None  # the in-process runner: this process runs its jobs
    from redis.exceptions import RedisError

    redis = redis_client(settings.redis_url)
    try:
        return NO_WORKER if live_workers(redis) == 0 else None
    except RedisError as exc:
        return (f"cannot reach Redis at {describe_url(settings.redis_url)} ({exc}): webhooks are recorded in the "
                "database, but no job is queued or run until Redis is reachable")
    finally:
        redis.close()


def _database_ok(db: Database) -> bool:
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure means "cannot take webhooks"; the log says which
        _log.warning("healthz: the database is unreachable", exc_info=True)
        return False


def _redis_checks(url: str) -> dict[str, Any]:
    from redis.exceptions import RedisError

    redis = redis_client(url)
    try:
        return {"redis": "ok", "workers": live_workers(redis)}
    except RedisError:
        _log.warning("healthz: Redis is unreachable", exc_info=True)
        return {"redis": "unreachable", "workers": None}
    finally:
        redis.close()


def healthz(runtime: Any) -> tuple[dict[str, Any], int]:
    """503 only when the database is unreachable (this bridge cannot take webhooks); no worker or
    no Redis is ``degraded`` with 200, so a load balancer does not pull every bridge at once."""
    body: dict[str, Any] = {"status": "ok", "database": "ok" if _database_ok(runtime.db) else "unreachable"}
    if runtime.settings.redis_url:
        body.update(_redis_checks(runtime.settings.redis_url))
    else:
        body["jobs"] = "in-process"  # this process runs them: no Redis, no worker to check
    if body["database"] != "ok":
        body["status"] = "failing"
        return body, 503
    if body.get("redis", "ok") != "ok" or body.get("workers") == 0:
        body["status"] = "degraded"
    return body, 200
