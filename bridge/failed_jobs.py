"""Failed RQ jobs: list what each queue's ``FailedJobRegistry`` holds, and requeue it.

Only RQ keeps failed jobs; the in-process runner logs a failure and moves on, so for it there is
nothing to list or retry (``keeps_failed_jobs`` tells the two apart).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

__all__ = ["FailedJob", "NOT_KEPT", "keeps_failed_jobs", "list_failed", "retry", "format_job"]

NOT_KEPT = ("failed jobs are only kept by RQ (set REDIS_URL); the in-process runner logs a failed job "
            "instead, so look for 'failed' in the bridge's log")


@dataclass(frozen=True)
class FailedJob:
    id: str
    queue: str
    function: str
    args: tuple
    failed_at: datetime | None
    error: str  # the last line of the exception, e.g. "RuntimeError: boom"


def keeps_failed_jobs(runner: Any) -> bool:
    """True for a runner with RQ queues (``bridge.queue.RQRunner``)."""
    return isinstance(getattr(runner, "queues", None), dict)


def _queues(runner: Any, queue: str | None) -> dict:
    if not keeps_failed_jobs(runner):
        return {}
    queues = runner.queues
    if queue is None:
        return queues
    if queue not in queues:
        raise ValueError(f"no queue named {queue!r} (known: {', '.join(queues)})")
    return {queue: queues[queue]}


def _last_line(text: str | None) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _error_and_time(job) -> tuple[str, datetime | None]:
    from rq.results import Result

    result = job.latest_result()
    if result is not None and result.type == Result.Type.FAILED:
        return _last_line(result.exc_string), job.ended_at or result.created_at
    return _last_line(getattr(job, "_exc_info", None)), job.ended_at


def _describe(queue_name: str, job_id: str, job) -> FailedJob:
    if job is None:  # the registry still names it but the job's data has expired
        return FailedJob(id=job_id, queue=queue_name, function="(job data gone)", args=(), failed_at=None, error="")
    error, when = _error_and_time(job)
    try:
        args = tuple(job.args)
    except Exception:  # noqa: BLE001 - arguments that no longer deserialise are still worth listing
        args = ("(unreadable arguments)",)
    return FailedJob(id=job_id, queue=queue_name, function=job.func_name or "?", args=args,
                     failed_at=when, error=error)


def list_failed(runner: Any, queue: str | None = None) -> list[FailedJob]:
    """Every failed job, queue by queue, oldest first; empty for a runner that keeps none."""
    from rq.job import Job

    found: list[FailedJob] = []
    for name, q in _queues(runner, queue).items():
        registry = q.failed_job_registry
        ids = registry.get_job_ids()
        jobs = Job.fetch_many(ids, connection=q.connection, serializer=q.serializer) if ids else []
        found.extend(_describe(name, job_id, job) for job_id, job in zip(ids, jobs))
    return found


def _requeue(registry, job_id: str) -> bool:
    from rq.exceptions import InvalidJobOperation, NoSuchJobError

    try:
        registry.requeue(job_id)
    except (InvalidJobOperation, NoSuchJobError):
        return False
    return True


def retry(runner: Any, ids: Iterable[str] | None = None, queue: str | None = None) -> list[str]:
    """Requeue the failed jobs ``ids`` (all of them when ``None``); returns the ids requeued.

    An id that is in no failed registry (already retried, expired, mistyped) is skipped."""
    wanted = None if ids is None else list(dict.fromkeys(ids))
    requeued: list[str] = []
    for q in _queues(runner, queue).values():
        registry = q.failed_job_registry
        candidates = registry.get_job_ids() if wanted is None else [i for i in wanted if i in registry]
        requeued.extend(job_id for job_id in candidates if _requeue(registry, job_id))
    return requeued


def format_job(job: FailedJob) -> str:
    """Two lines for a terminal: who and when, then the exception's last line."""
    when = job.failed_at.isoformat(timespec="seconds") if job.failed_at else "-"
    call = f"{job.function}({', '.join(map(repr, job.args))})"
    return f"{job.id}  [{job.queue}]  {when}  {call}\n    {job.error or '(no exception recorded)'}"
