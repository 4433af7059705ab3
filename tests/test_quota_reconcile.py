"""What the Redis counters do about a fault (ratelimit.redis), against a real redis-server of each test's own:
a hit the guard gave up on does nothing when it reaches Redis late; a hit whose answer was lost with its
connection is settled once Redis answers; an action let through uncounted is charged then; a burst waits
in line instead of failing; the breaker turns the line away at once and closes on Redis's first answer.

Faults are real: SIGSTOP / SIGCONT of the server, and `ss -K` killing the client's sockets (a connection
reset in the middle of a call)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess

import pytest
import redis.asyncio as aioredis
from servers import RedisServer
from support import eventually

from ratelimit import Charge, CircuitBreaker, Limiter, RedisStorage, Rule, StorageUnavailable
from ratelimit.connection import RETIRE_SECONDS, script_budget

RULE = Rule("add_friend.active", "day", 1000)


class Events:
    """A StorageEvents that keeps what it is told."""

    def __init__(self) -> None:
        self.failures: list[tuple[str, str]] = []
        self.states: list[str] = []
        self.done: list[str] = []

    def failure(self, operation: str, kind: str, detail: str) -> None:
        self.failures.append((operation, kind))

    def breaker(self, state: str) -> None:
        self.states.append(state)

    def reconciled(self, what: str) -> None:
        self.done.append(what)


def freeze(server: RedisServer, frozen: bool) -> None:
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP if frozen else signal.SIGCONT)


def client_sockets(port: int) -> list[tuple[int, int]]:
    """(Recv-Q, Send-Q) of every established connection TO `port` (the clients' side)."""
    out = subprocess.run(
        ["ss", "-tnH", "state", "established", "dport", "=", f":{port}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return [(int(f[0]), int(f[1])) for f in (line.split() for line in out.stdout.splitlines()) if f]


def server_unread(port: int) -> int:
    """Bytes the server side of `port` has received and not read yet (a frozen Redis)."""
    out = subprocess.run(
        ["ss", "-tnH", "state", "established", "sport", "=", f":{port}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return sum(int(line.split()[0]) for line in out.stdout.splitlines() if line.split())


def reset_clients(port: int) -> None:
    """Kill every client socket connected to `port` (the kernel aborts them: a reset mid-call)."""
    subprocess.run(
        ["ss", "-K", "dst", "127.0.0.1", "dport", "=", f":{port}"], capture_output=True, check=False
    )


async def evalsha_calls(url: str) -> int:
    client = aioredis.Redis.from_url(url)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def used(limiter: Limiter, account: str) -> tuple[int, int]:
    outcome = (await limiter.usage(account, [RULE]))[0]
    return outcome.used, outcome.attempts


async def test_hits_that_reach_a_frozen_redis_late_do_nothing(own_redis: RedisServer) -> None:
    """SIGSTOP longer than the timeout while hits are in flight: each fails (timed out: it may have run, so
    it is settled once Redis answers), their connection is closed while Redis is still frozen, and when
    Redis wakes up it runs every one of them — as no-ops: each was past its deadline. The settles find
    nothing to undo."""
    events = Events()
    breaker = CircuitBreaker(failures=10**6, cooldown=0.0)  # every call goes to Redis
    storage = RedisStorage.from_url(own_redis.url, timeout=0.1, breaker=breaker, events=events)
    limiter = Limiter(storage)
    try:
        async with asyncio.timeout(60):
            assert (await limiter.hit("warm", [Charge(RULE)])).allowed  # connected, script loaded
            before = await evalsha_calls(own_redis.url)
            freeze(own_redis, True)
            results = await asyncio.gather(
                *(limiter.hit("late", [Charge(RULE)]) for _ in range(50)), return_exceptions=True
            )
            assert all(isinstance(r, StorageUnavailable) for r in results), results
            # Each may have run before the guard gave up (its reply then lost): each is settled later.
            assert all(r.kind == "timeout" and r.maybe_applied for r in results)  # type: ignore[union-attr]
            assert server_unread(own_redis.port) > 0  # the hits wait in Redis's socket buffer
            await eventually(
                lambda: not client_sockets(own_redis.port),
                within=RETIRE_SECONDS + 30,
                what="the retired connection closed",
            )
            freeze(own_redis, False)
            # Redis ran all 50 (it read them off the closed connection)…
            await eventually(
                lambda: _at_least(evalsha_calls(own_redis.url), before + 50), what="the late hits run"
            )
            # …and charged nothing.
            assert await used(limiter, "late") == (0, 0)
            assert ("hit", "timeout") in events.failures
            # The settles found nothing to undo: the hits ran as no-ops.
            await eventually(lambda: storage.backlog == 0, what="the settles done")
            assert "settled" not in events.done
    finally:
        freeze(own_redis, False)
        await limiter.aclose()


async def _at_least(value: object, n: int) -> bool:
    assert asyncio.iscoroutine(value)
    return bool(await value >= n)


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2) to reset sockets")
async def test_a_hit_whose_answer_is_lost_is_settled(own_redis: RedisServer) -> None:
    """A hit is written to a frozen Redis, then its connection is reset: the guard cannot know whether it
    ran (it answers without it). Redis, woken, runs it from its socket buffer — charged. Once its deadline
    has passed and Redis answers, the storage finds the hit's token and undoes it."""
    events = Events()
    breaker = CircuitBreaker(failures=10**6, cooldown=0.0)
    storage = RedisStorage.from_url(own_redis.url, timeout=2.0, breaker=breaker, events=events)
    limiter = Limiter(storage)
    try:
        async with asyncio.timeout(60):
            assert (await limiter.hit("warm", [Charge(RULE)])).allowed
            freeze(own_redis, True)
            hit = asyncio.create_task(limiter.hit("lost", [Charge(RULE)]))
            await eventually(lambda: server_unread(own_redis.port) > 0, what="the hit written")
            reset_clients(own_redis.port)
            with pytest.raises(StorageUnavailable) as failed:
                await hit
            assert failed.value.kind == "connection" and failed.value.maybe_applied
            freeze(own_redis, False)
            await eventually(lambda: "settled" in events.done, what="the lost hit settled")
            assert await used(limiter, "lost") == (0, 0)
            assert storage.backlog == 0
    finally:
        freeze(own_redis, False)
        await limiter.aclose()


async def test_a_burst_waits_in_line_and_a_healthy_redis_is_never_down(own_redis: RedisServer) -> None:
    """2,000 hits at once through 8 slots: all answered by Redis, none failed, exactly the limit admitted."""
    events = Events()
    storage = RedisStorage.from_url(own_redis.url, timeout=0.1, max_connections=8, events=events)
    limiter = Limiter(storage)
    rule = Rule("add_friend.active", "day", 5)
    try:
        results = await asyncio.gather(*(limiter.hit("burst", [Charge(rule)]) for _ in range(2000)))
        assert sum(r.allowed for r in results) == 5
        assert not events.failures and storage.breaker.state == "closed"
    finally:
        await limiter.aclose()


async def test_waiting_in_line_is_not_redis_failing(own_redis: RedisServer) -> None:
    """One slot; the call in it hangs on a frozen Redis. Those behind it give up after the queue timeout
    without blaming Redis (the breaker stays closed); then the hung one times out and, with failures=1,
    opens the breaker."""
    events = Events()
    breaker = CircuitBreaker(failures=1, cooldown=30.0)
    # The hung call's timeout is far longer than the line's: on a busy machine the wait for the first hit
    # to be written (`ss` polled) can take a while, and those in line must give up before it times out.
    storage = RedisStorage.from_url(
        own_redis.url, timeout=3.0, max_connections=1, queue_timeout=0.05, breaker=breaker, events=events
    )
    limiter = Limiter(storage)
    try:
        async with asyncio.timeout(30):
            await limiter.hit("warm", [Charge(RULE)])
            freeze(own_redis, True)
            first = asyncio.create_task(limiter.hit("q", [Charge(RULE)]))
            await eventually(lambda: server_unread(own_redis.port) > 0, what="the first hit written")
            queued = await asyncio.gather(
                *(limiter.hit("q", [Charge(RULE)]) for _ in range(5)), return_exceptions=True
            )
            assert [getattr(r, "kind", r) for r in queued] == ["queue"] * 5
            assert breaker.state == "closed"
            with pytest.raises(StorageUnavailable) as hung:
                await first
            assert hung.value.kind == "timeout" and breaker.state == "open"
            assert events.states == ["open"]
    finally:
        freeze(own_redis, False)
        await limiter.aclose()


async def test_the_breaker_turns_the_line_away_and_closes_on_redis_first_answer(
    own_redis: RedisServer,
) -> None:
    """A frozen Redis: the calls in flight time out and open the breaker, which turns every call waiting in
    line away at once. Nobody calls afterwards: the storage pings by itself and closes the breaker when
    Redis answers again."""
    events = Events()
    breaker = CircuitBreaker(failures=3, cooldown=3600.0)  # only the background ping can close it
    storage = RedisStorage.from_url(
        own_redis.url, timeout=0.1, max_connections=4, breaker=breaker, events=events
    )
    limiter = Limiter(storage)
    try:
        async with asyncio.timeout(30):
            await limiter.hit("warm", [Charge(RULE)])
            freeze(own_redis, True)
            results = await asyncio.gather(
                *(limiter.hit("b", [Charge(RULE)]) for _ in range(40)), return_exceptions=True
            )
            kinds = [getattr(r, "kind", None) for r in results]
            # The 4 in flight time out; a slot freed by an early failure may let one more through before
            # the third failure opens the breaker; every other call is turned away without asking Redis.
            assert set(kinds) == {"timeout", "circuit_open"}, kinds
            assert 4 <= kinds.count("timeout") <= 4 + (breaker.failures - 1), kinds
            assert breaker.state == "open" and events.states == ["open"]
            freeze(own_redis, False)
            await eventually(lambda: breaker.state == "closed", what="the breaker closed by the ping")
            assert events.states == ["open", "closed"]
            assert (await limiter.hit("b", [Charge(RULE)])).allowed
            assert await used(limiter, "b") == (1, 1)  # the 40 did nothing
    finally:
        freeze(own_redis, False)
        await limiter.aclose()


async def test_an_action_let_through_uncounted_is_charged_when_redis_is_back(own_redis: RedisServer) -> None:
    """`charge_later` (redis_down = allow): counted once Redis answers, even past the limit; a refund queued
    after it gives it back; with a request id it counts once."""
    events = Events()
    rule = Rule("add_friend.active", "day", 2)
    storage = RedisStorage.from_url(own_redis.url, timeout=0.1, events=events)
    limiter = Limiter(storage)
    try:
        async with asyncio.timeout(30):
            await limiter.hit("warm", [Charge(rule)])
            own_redis.stop()
            for n in range(3):
                assert limiter.charge_later("u", [Charge(rule)], request_id=f"r{n}")
            assert limiter.charge_later("u", [Charge(rule)], request_id="r0")  # a retry of r0
            assert limiter.refund_later("u", [Charge(rule)], request_id="r2")  # r2: the upstream refused
            assert storage.backlog == 5
            own_redis.start()  # empty: the warm-up is gone, only what the backlog writes counts
            await eventually(lambda: storage.backlog == 0, what="the backlog worked through")
            assert (await limiter.usage("u", [rule]))[0].used == 2  # r0 and r1; over the limit is fine
            assert events.done.count("charged") == 4 and events.done.count("refunded") == 1
    finally:
        await limiter.aclose()


def test_an_imprecise_clock_offset_never_leaves_redis_without_time() -> None:
    """The script's budget is the timeout less the reply's margin and the offset's uncertainty, but at least
    half the timeout: an offset measured while the loop was busy (re-measured within a second) must not
    make every hit late."""
    assert script_budget(0.1, 0.0) == pytest.approx(0.08)
    assert script_budget(0.1, 0.01) == pytest.approx(0.07)
    assert script_budget(0.1, 0.5) == pytest.approx(0.05)
