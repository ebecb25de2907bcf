"""The per-number send rate, on a fake clock: exact, no sleeping in tests."""

from __future__ import annotations

import pytest

from core.errors import RetryableError
from bridge.ratelimit import LocalLimiter, RedisLimiter


class FakeTime:
    def __init__(self, start: float = 1000.0) -> None:
        self.t, self.slept = start, []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.t += seconds


def test_local_bucket_allows_a_burst_of_rate_then_spaces_sends():
    clock = FakeTime()
    limiter = LocalLimiter(now=clock.now, sleep=clock.sleep)
    for _ in range(80):
        limiter.acquire("wa:1", 80)
    assert clock.slept == []
    limiter.acquire("wa:1", 80)
    assert clock.slept == [pytest.approx(1 / 80)]
    limiter.acquire("wa:2", 80)  # another number has its own bucket
    assert len(clock.slept) == 1


def test_local_bucket_gives_up_instead_of_blocking_long():
    clock = FakeTime()
    limiter = LocalLimiter(now=clock.now, sleep=clock.sleep, max_wait=0.01)
    limiter.acquire("wa:1", 1)
    with pytest.raises(RetryableError, match="saturated"):
        limiter.acquire("wa:1", 1)


def test_redis_windows_are_shared_and_wait_for_the_next_second(redis_url):
    from redis import Redis

    clock = FakeTime(start=5000.25)
    redis = Redis.from_url(redis_url)
    first = RedisLimiter(redis, now=clock.now, sleep=clock.sleep)
    second = RedisLimiter(redis, now=clock.now, sleep=clock.sleep)  # another worker process
    for limiter in (first, second, first):
        limiter.acquire("wa:1", 3)
    assert clock.slept == []
    second.acquire("wa:1", 3)  # the 4th in the same second waits for the next one
    assert clock.slept == [pytest.approx(0.75)] and clock.t == pytest.approx(5001.0)
    redis.close()
