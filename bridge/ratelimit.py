"""Sending rate per WhatsApp number: 80 messages/s by default (WhatsApp's standard throughput),
up to 1,000 for upgraded numbers. Exceeding it earns 130429 errors, so the sender waits for a slot
instead.

- ``LocalLimiter``: a token bucket per key, for one process (the embedded default).
- ``RedisLimiter``: one-second windows counted in Redis, shared by every worker on every machine.

Both take injectable ``now``/``sleep`` functions so tests are exact, and give up with a
``RetryableError`` (the job is retried later) rather than block a worker for long.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Protocol

from core.errors import RetryableError

__all__ = ["RateLimiter", "LocalLimiter", "RedisLimiter"]


class RateLimiter(Protocol):
    def acquire(self, key: str, rate: float) -> None:
        """Return when one send under ``key`` may go at ``rate`` per second."""


class LocalLimiter:
    def __init__(self, *, now: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 max_wait: float = 5.0) -> None:
        self._now, self._sleep, self._max_wait = now, sleep, max_wait
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)
        self._lock = threading.Lock()

    def _take(self, key: str, rate: float) -> float:
        """Take a token if there is one; otherwise return how long until there is."""
        with self._lock:
            now = self._now()
            tokens, last = self._buckets.get(key, (rate, now))
            tokens = min(rate, tokens + (now - last) * rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / rate

    def acquire(self, key: str, rate: float) -> None:
        waited = 0.0
        while (wait := self._take(key, rate)) > 0:
            if waited + wait > self._max_wait:
                raise RetryableError(f"send rate for {key} saturated", retry_after=wait)
            self._sleep(wait)
            waited += wait


class RedisLimiter:
    _SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], 2) end
return n
"""

    def __init__(self, redis, *, now: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
                 max_wait: float = 5.0) -> None:
        self._redis, self._now, self._sleep, self._max_wait = redis, now, sleep, max_wait
        self._incr = redis.register_script(self._SCRIPT)

    def acquire(self, key: str, rate: float) -> None:
        deadline = self._now() + self._max_wait
        while True:
            now = self._now()
            second = int(now)
            if self._incr(keys=[f"replyflow:rate:{key}:{second}"]) <= rate:
                return
            if second + 1 > deadline:
                raise RetryableError(f"send rate for {key} saturated", retry_after=1.0)
            self._sleep(second + 1 - now)
