"""Sending rate per WhatsApp number: 80 messages/s by default (WhatsApp's standard throughput),
up to 1,000 for upgraded numbers. Exceeding it earns 130429 errors, so the sender waits for a slot
instead.

- ``LocalLimiter``: a token bucket per key, for one process (the embedded default).
- ``RedisLimiter``: one-second windows counted in Redis, shared by every worker on every machine.

Both take injectable ``now``/``sleep`` functions so tests are exact, and give up with a
``RetryableError`` (the job is retried later) rather than block a worker for long. ``take(key, n,
rate)`` is the bulk sender's form: up to ``n`` sends at once, and how long until the next one.

Per recipient, WhatsApp's pair rate limit (1 message per 6 s to the same user, else 131056):
``LocalPairLimiter`` / ``RedisPairLimiter`` reserve a recipient for the window, and say how long
the ones already reserved must wait (the bulk sender defers them, never drops them).
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Protocol

from core.errors import RetryableError

__all__ = ["RateLimiter", "LocalLimiter", "RedisLimiter", "LocalPairLimiter", "RedisPairLimiter", "PAIR_WINDOW"]

PAIR_WINDOW = 6.0  # seconds between two messages to the same user (platform-notes/whatsapp.md section 11)


class RateLimiter(Protocol):
    def acquire(self, key: str, rate: float) -> None:
        """Return when one send under ``key`` may go at ``rate`` per second."""

    def take(self, key: str, n: int, rate: float) -> tuple[int, float]:
        """Up to ``n`` sends that may go now, and the seconds until the next one may (0 if all went)."""


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

    def take(self, key: str, n: int, rate: float) -> tuple[int, float]:
        with self._lock:
            now = self._now()
            tokens, last = self._buckets.get(key, (rate, now))
            tokens = min(rate, tokens + (now - last) * rate)
            granted = max(0, min(n, int(tokens + 1e-9)))  # (0.2 s at 5/s is 0.9999999 tokens)
            tokens -= granted
            self._buckets[key] = (tokens, now)
            return granted, 0.0 if granted == n else (1 - tokens) / rate

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

    # take up to ARGV[1] of the ARGV[2] sends this second allows: returns how many were granted
    _TAKE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local granted = math.max(0, math.min(tonumber(ARGV[1]), tonumber(ARGV[2]) - used))
if granted > 0 then
  redis.call('INCRBY', KEYS[1], granted)
  redis.call('EXPIRE', KEYS[1], 2)
end
return granted
"""

    def __init__(self, redis, *, now: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
                 max_wait: float = 5.0) -> None:
        self._redis, self._now, self._sleep, self._max_wait = redis, now, sleep, max_wait
        self._incr = redis.register_script(self._SCRIPT)
        self._take = redis.register_script(self._TAKE)

    def take(self, key: str, n: int, rate: float) -> tuple[int, float]:
        now = self._now()
        second = int(now)
        granted = int(self._take(keys=[f"replyflow:rate:{key}:{second}"], args=[n, int(rate)]))
        return granted, 0.0 if granted == n else second + 1 - now

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


class LocalPairLimiter:
    """Who was sent to in the last ``window`` seconds, for one process."""

    def __init__(self, *, now: Callable[[], float] = time.monotonic, window: float = PAIR_WINDOW) -> None:
        self._now, self.window = now, window
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def reserve(self, key: str, recipients: list[str]) -> dict[str, float]:
        """Reserve every recipient not sent to within the window; the others -> seconds to wait."""
        refused = {}
        with self._lock:
            now = self._now()
            if len(self._last) > 100_000:  # forget what is past the window, so memory stays flat
                self._last = {k: t for k, t in self._last.items() if now - t < self.window}
            for recipient in recipients:
                at = self._last.get(f"{key}:{recipient}")
                if at is not None and now - at < self.window:
                    refused[recipient] = self.window - (now - at)
                else:
                    self._last[f"{key}:{recipient}"] = now
        return refused

    def release(self, key: str, recipients: list[str]) -> None:
        """Give back reservations whose message never reached WhatsApp (a 5xx, a 429, no connection)."""
        with self._lock:
            for recipient in recipients:
                self._last.pop(f"{key}:{recipient}", None)


class RedisPairLimiter:
    """The same, shared by every worker: one ``SET NX PX`` per recipient, pipelined."""

    def __init__(self, redis, *, window: float = PAIR_WINDOW) -> None:
        self._redis, self.window = redis, window

    def reserve(self, key: str, recipients: list[str]) -> dict[str, float]:
        ms = int(self.window * 1000)
        pipe = self._redis.pipeline(transaction=False)
        for recipient in recipients:
            pipe.set(f"replyflow:pair:{key}:{recipient}", 1, nx=True, px=ms)
        taken = pipe.execute()
        refused = [r for r, ok in zip(recipients, taken) if not ok]
        if not refused:
            return {}
        pipe = self._redis.pipeline(transaction=False)
        for recipient in refused:
            pipe.pttl(f"replyflow:pair:{key}:{recipient}")
        return {r: max(ttl, 1) / 1000 for r, ttl in zip(refused, pipe.execute())}

    def release(self, key: str, recipients: list[str]) -> None:
        if recipients:
            self._redis.delete(*(f"replyflow:pair:{key}:{r}" for r in recipients))
