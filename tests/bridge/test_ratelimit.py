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


def test_take_grants_what_the_second_allows_and_says_how_long_to_wait(redis_url):
    from redis import Redis

    from bridge.ratelimit import LocalLimiter

    clock = FakeTime(start=7000.5)
    local = LocalLimiter(now=clock.now)
    assert local.take("wa:1", 8, 5) == (5, pytest.approx(0.2))  # a full bucket: 5, then one per 0.2 s
    clock.t += 0.4
    assert local.take("wa:1", 8, 5) == (2, pytest.approx(0.2))
    redis = Redis.from_url(redis_url)
    shared, other = RedisLimiter(redis, now=clock.now), RedisLimiter(redis, now=clock.now)
    assert shared.take("wa:1", 4, 6) == (4, 0.0)
    assert other.take("wa:1", 4, 6) == (2, pytest.approx(0.1))  # another worker: what is left of this second
    clock.t = 7001.0
    assert other.take("wa:1", 4, 6) == (4, 0.0)
    redis.close()


def test_pair_limiters_refuse_a_recipient_inside_the_window(redis_url):
    from redis import Redis

    from bridge.ratelimit import LocalPairLimiter, RedisPairLimiter

    clock = FakeTime()
    local = LocalPairLimiter(now=clock.now)
    assert local.reserve("wa:1", ["+15550001", "+15550002"]) == {}
    clock.t += 2
    assert local.reserve("wa:1", ["+15550001", "+15550003"]) == {"+15550001": pytest.approx(4.0)}
    assert local.reserve("wa:2", ["+15550001"]) == {}  # another number: another pair
    clock.t += 4
    assert local.reserve("wa:1", ["+15550001"]) == {}
    redis = Redis.from_url(redis_url)
    first, second = RedisPairLimiter(redis), RedisPairLimiter(redis)  # two workers
    assert first.reserve("wa:1", ["+15550001", "+15550002"]) == {}
    refused = second.reserve("wa:1", ["+15550002", "+15550003"])
    assert list(refused) == ["+15550002"] and 0 < refused["+15550002"] <= 6.0
    redis.close()
