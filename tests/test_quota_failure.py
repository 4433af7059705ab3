"""Redis failures: a stopped or hung Redis surfaces as `StorageUnavailable` (bounded by the storage's
timeout), the circuit breaker then fails fast, and the storage recovers by itself once Redis is back.

Each test runs its OWN redis-server (not the session one), because it stops it."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from servers import RedisServer
from support import Clock

from ratelimit import Charge, CircuitBreaker, Limiter, MemoryStorage, RedisStorage, Rule, StorageUnavailable

RULE = Rule("add_friend.active", "day", 100)


async def test_stopped_redis_fails_typed_then_breaker_then_recovers(own_redis: RedisServer) -> None:
    monotonic = Clock(1000.0)
    breaker = CircuitBreaker(failures=2, cooldown=5.0, clock=monotonic)
    storage = RedisStorage.from_url(own_redis.url, timeout=0.1, breaker=breaker)
    limiter = Limiter(storage)
    try:
        async with asyncio.timeout(10):  # the test must never hang, whatever happens
            assert (await limiter.hit("a", [Charge(RULE)])).allowed
            assert await limiter.ping()

            own_redis.stop()
            for _ in range(2):
                with pytest.raises(StorageUnavailable) as failed:
                    await limiter.hit("a", [Charge(RULE)])
                assert failed.value.backend == "redis" and "circuit open" not in failed.value.reason
            assert breaker.state == "open"

            # Open: fails at once without touching Redis, for every operation.
            for call in (
                limiter.hit("a", [Charge(RULE)]),
                limiter.refund("a", [Charge(RULE)]),
                limiter.usage("a", [RULE]),
                limiter.is_frozen("a"),
                limiter.freeze("a"),
            ):
                with pytest.raises(StorageUnavailable, match="circuit open"):
                    await call
            assert not await limiter.ping()

            own_redis.start()  # same port, empty data
            with pytest.raises(StorageUnavailable, match="circuit open"):
                await limiter.hit("a", [Charge(RULE)])  # still cooling down: no hammering

            monotonic.now += 5.0  # cooldown over: the next call is the probe
            assert breaker.state == "half-open"
            result = await limiter.hit("a", [Charge(RULE)])
            assert result.allowed and result.outcomes[0].used == 1
            assert breaker.state == "closed"
            assert await limiter.ping()
    finally:
        await limiter.aclose()


async def test_failed_probe_opens_the_breaker_again(own_redis: RedisServer) -> None:
    monotonic = Clock(1000.0)
    breaker = CircuitBreaker(failures=1, cooldown=2.0, clock=monotonic)
    limiter = Limiter(RedisStorage.from_url(own_redis.url, breaker=breaker))
    try:
        async with asyncio.timeout(10):
            own_redis.stop()
            with pytest.raises(StorageUnavailable):
                await limiter.hit("a", [Charge(RULE)])
            monotonic.now += 2.0
            with pytest.raises(StorageUnavailable) as probe:
                await limiter.hit("a", [Charge(RULE)])
            assert "circuit open" not in probe.value.reason  # the probe really went to Redis…
            assert breaker.state == "open"  # …failed, and the breaker cools down again
            with pytest.raises(StorageUnavailable, match="circuit open"):
                await limiter.hit("a", [Charge(RULE)])
    finally:
        await limiter.aclose()


async def test_hung_redis_times_out_with_the_typed_error(own_redis: RedisServer) -> None:
    breaker = CircuitBreaker(failures=1000, cooldown=0.0)  # keep every call going to Redis
    limiter = Limiter(RedisStorage.from_url(own_redis.url, timeout=0.1, breaker=breaker))
    assert own_redis.proc is not None
    try:
        async with asyncio.timeout(10):
            assert (await limiter.hit("a", [Charge(RULE)])).allowed
            os.kill(own_redis.proc.pid, signal.SIGSTOP)  # accepts nothing, answers nothing
            results = await asyncio.gather(
                *(limiter.hit("a", [Charge(RULE)]) for _ in range(20)), return_exceptions=True
            )
            assert all(isinstance(r, StorageUnavailable) for r in results), results
            assert all("timed out" in r.reason for r in results if isinstance(r, StorageUnavailable))
            os.kill(own_redis.proc.pid, signal.SIGCONT)
            # The timed-out commands may still have run on Redis after it woke up; what matters is that
            # the storage works again and the count is consistent with at most those 20 charges.
            after = await limiter.hit("a", [Charge(RULE)])
            assert after.allowed and 2 <= after.outcomes[0].used <= 22
    finally:
        await limiter.aclose()


async def test_redis_down_from_the_start(own_redis: RedisServer) -> None:
    own_redis.stop()
    storage = RedisStorage.from_url(own_redis.url)  # cluster=None: detection fails typed too
    try:
        async with asyncio.timeout(10):
            with pytest.raises(StorageUnavailable):
                await Limiter(storage).hit("a", [Charge(RULE)])
            assert not await storage.ping()
    finally:
        await storage.aclose()


def test_breaker_state_machine() -> None:
    monotonic = Clock(1000.0)
    breaker = CircuitBreaker(failures=3, cooldown=1.0, clock=monotonic)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == "closed"
    breaker.record_success()  # a success resets the count
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    monotonic.now += 1.0
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # only one probe at a time
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow()
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_failure()
    monotonic.now += 1.0
    assert breaker.allow()  # a probe…
    breaker.release()  # …cancelled by its caller: the next call may probe
    assert breaker.allow()
    with pytest.raises(ValueError):
        CircuitBreaker(failures=0)


async def test_memory_storage_is_always_ready() -> None:
    storage = MemoryStorage()
    assert await Limiter(storage).ping()
