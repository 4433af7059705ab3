"""What keeps `guard serve` free of long stops (issue 10, "Hold under fire"): full collections only when
cheap or when garbage has grown (`guard.app.FullCollections`), and no request let through as the counters'
breaker probe into a Redis that may still hang (`CircuitBreaker(calls_probe=False)`). Times are measured by
bench/faults.py, never asserted here."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import signal
from collections.abc import Iterator

import pytest
from servers import RedisServer
from support import Clock, eventually, running_guard, stub_upstream

from guard.app import FullCollections, counter_storage
from guard.config.settings import Settings
from guard.http.keys import METRICS
from ratelimit import Charge, CircuitBreaker, Limiter, RedisStorage, Rule, StorageUnavailable

RULE = Rule("add_friend.active", "day", 100)


class _Cycle:
    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    try:
        yield
    finally:
        gc.set_threshold(*saved)


def test_breaker_without_call_probes_stays_open_until_its_owner_succeeds() -> None:
    monotonic = Clock(1000.0)
    breaker = CircuitBreaker(failures=2, cooldown=1.0, clock=monotonic, calls_probe=False)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    monotonic.now += 60.0  # long past the cool-down: still no call goes through
    assert breaker.state == "open" and not breaker.allow()
    breaker.record_success()  # the owner's own probe (RedisStorage's background ping) got an answer
    assert breaker.state == "closed" and breaker.allow()


def test_the_guards_counters_never_use_a_request_as_the_probe() -> None:
    storage = counter_storage(Settings(redis_url="redis://127.0.0.1:1/0"), cluster=False)
    assert isinstance(storage, RedisStorage)
    assert storage.breaker.calls_probe is False


async def test_a_hung_redis_costs_no_request_a_probe_and_the_ping_closes_the_breaker(
    own_redis: RedisServer,
) -> None:
    storage = counter_storage(Settings(redis_url=own_redis.url), cluster=False)
    assert isinstance(storage, RedisStorage)
    storage.breaker.cooldown = 0.0  # a breaker that let calls probe would let the next one through
    limiter = Limiter(storage)
    assert own_redis.proc is not None
    try:
        async with asyncio.timeout(20):
            assert (await limiter.hit("a", [Charge(RULE)])).allowed
            os.kill(own_redis.proc.pid, signal.SIGSTOP)
            failed = await asyncio.gather(
                *(limiter.hit("a", [Charge(RULE)]) for _ in range(5)), return_exceptions=True
            )
            assert all(isinstance(r, StorageUnavailable) for r in failed), failed
            assert storage.breaker.state == "open"
            for _ in range(3):
                with pytest.raises(StorageUnavailable) as refused:
                    await limiter.hit("a", [Charge(RULE)])
                assert refused.value.kind == "circuit_open"  # answered at once: Redis was not asked
            os.kill(own_redis.proc.pid, signal.SIGCONT)

            async def closed() -> bool:
                return storage.breaker.state == "closed"

            await eventually(closed, what="the background ping closing the breaker")
            assert (await limiter.hit("a", [Charge(RULE)])).allowed
    finally:
        await limiter.aclose()


async def test_calls_waiting_on_a_hung_redis_fail_when_the_breaker_opens(
    own_redis: RedisServer,
) -> None:
    """A hit written to a hung Redis just before the breaker opened used to wait out its own whole timeout
    (answers up to ~1.5 timeouts after the hang began); it fails when the breaker opens, as one that timed
    out: settled after its deadline, so nothing stays charged."""
    storage = counter_storage(Settings(redis_url=own_redis.url, redis_timeout=0.5), cluster=False)
    assert isinstance(storage, RedisStorage)
    storage.breaker.failures = 1
    limiter = Limiter(storage)
    assert own_redis.proc is not None

    def written() -> int:
        conn = getattr(storage._client, "conn", None)
        return sum(1 for sent in getattr(conn, "_pending", ()) if sent.written)

    try:
        async with asyncio.timeout(30):
            assert (await limiter.hit("a", [Charge(RULE)])).allowed
            os.kill(own_redis.proc.pid, signal.SIGSTOP)
            first = asyncio.ensure_future(limiter.hit("a", [Charge(RULE)]))
            await eventually(lambda: written() == 1, what="the first hit written")
            second = asyncio.ensure_future(limiter.hit("b", [Charge(RULE)]))
            await eventually(lambda: written() == 2, what="the second hit written")
            failed = await asyncio.gather(first, second, return_exceptions=True)
            assert all(isinstance(f, StorageUnavailable) for f in failed), failed
            assert "no reply from Redis within 0.5 s" in str(failed[0])  # its own timeout: the breaker opens
            assert "given up when the circuit breaker opened" in str(failed[1])
            assert all(f.kind == "timeout" for f in failed if isinstance(f, StorageUnavailable))
            os.kill(own_redis.proc.pid, signal.SIGCONT)

            async def settled() -> bool:
                return storage.breaker.state == "closed" and storage.backlog == 0

            await eventually(settled, what="the breaker closed and both hits settled")
            # Only the hit answered before the hang counts (a dry run answers as if it were one more).
            for account, used in (("a", 1), ("b", 0)):
                result = await limiter.hit(account, [Charge(RULE)], dry_run=True)
                assert result.outcomes[0].used == used + 1, (account, result)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(own_redis.proc.pid, signal.SIGCONT)
        await limiter.aclose()


def test_full_collection_when_cheap_after_the_gap(thresholds: None) -> None:
    monotonic = Clock(1000.0)
    collections = FullCollections(cheap=10**9, gap=5.0, floor=10**9, clock=monotonic)
    assert collections.step() is None  # cheap, but the last one (start) was just now
    monotonic.now += 5.0
    _Cycle()
    gc.collect(1)  # the cycle is garbage now: moved to the oldest generation only if it survived
    assert collections.step() == "cheap"
    assert collections.step() is None  # not again before the gap
    assert collections.runs == {"cheap": 1, "grown": 0}


def test_young_objects_count_when_a_full_collection_is_judged_cheap(thresholds: None) -> None:
    """A full collection walks every generation, not just the oldest: requests in flight that sit in the
    young ones make it expensive even when the oldest generation is small."""
    gc.collect()
    collections = FullCollections(cheap=len(gc.get_objects()) + 1_000, gap=0.0, floor=10**9)
    gc.disable()
    try:
        in_flight = [[n] for n in range(5_000)]  # young: no collection has run since they were made
        assert len(gc.get_objects(generation=2)) < collections.cheap  # the oldest alone looks cheap
        assert collections.step() is None
        del in_flight
        assert collections.step() == "cheap"
    finally:
        gc.enable()


def test_full_collection_once_the_oldest_generation_has_grown(thresholds: None) -> None:
    collections = FullCollections(cheap=0, gap=0.0, growth=2.0, floor=0)
    assert collections.step() == "grown"  # nothing survived a full collection yet: any size is growth
    kept = [[n] for n in range(len(gc.get_objects(generation=2)) * 3)]
    gc.collect(1)  # `kept` moves to the oldest generation: more than twice what survived
    assert collections.step() == "grown"
    assert collections.step() is None  # the same size again is no growth
    assert collections.runs["grown"] == 2
    del kept


async def test_automatic_full_collections_are_off_while_it_runs(thresholds: None) -> None:
    gc.set_threshold(700, 10, 10)
    collections = FullCollections(every=0.01)
    collections.start()
    try:
        assert gc.get_threshold()[:2] == (700, 3)
        assert gc.get_threshold()[2] >= 2**31 - 1
        await asyncio.sleep(0.05)  # it looks, and goes on looking
    finally:
        await collections.stop()
    assert gc.get_threshold() == (700, 10, 10)


async def test_young_threshold_follows_what_a_full_collection_would_walk(thresholds: None) -> None:
    """Few objects alive (light load): young collections after `light_young` allocations; many (hundreds of
    requests in flight): CPython's own threshold again, and the one saved at start once it stops."""
    gc.set_threshold(700, 10, 10)
    gc.collect()
    collections = FullCollections(every=3600.0, cheap=len(gc.get_objects()) + 2_000, gap=3600.0, floor=10**9)
    collections.start()
    try:
        assert gc.get_threshold()[0] == 700  # until the first look
        collections.step()
        assert gc.get_threshold()[:2] == (collections.light_young, 3)
        in_flight = [[n] for n in range(5_000)]
        collections.step()
        assert gc.get_threshold()[:2] == (700, 3)
        del in_flight
        collections.step()
        assert gc.get_threshold()[0] == collections.light_young
        assert gc.get_threshold()[2] >= 2**31 - 1  # automatic full collections stay off throughout
    finally:
        await collections.stop()
    assert gc.get_threshold() == (700, 10, 10)


def test_a_step_before_start_leaves_the_thresholds_alone(thresholds: None) -> None:
    gc.set_threshold(700, 10, 10)
    FullCollections(cheap=10**9, gap=0.0).step()
    assert gc.get_threshold() == (700, 10, 10)


async def test_a_failed_forward_leaves_no_garbage_for_the_collector(unused_tcp_port: int) -> None:
    """With the upstream unreachable, every refused forward used to leave ~100 objects in reference cycles
    (aiohttp's connector frames and the exception that holds them), which only a full collection frees: at
    256 connections, full collections of 55,000-130,000 objects. The proxy drops the tracebacks."""
    dead = f"http://127.0.0.1:{unused_tcp_port}"
    settings = Settings(upstream=dead, upstreams={"gewe": dead}, reload_interval=0)
    body = json.dumps({"appId": "wx1", "toWxid": "wxid_a", "content": "hello"}).encode()
    async with running_guard(settings) as guard:
        for _ in range(5):  # connections, caches and the first refusal's one-offs made
            await guard.post("/gewe/v2/api/message/postText", body)
        gc.collect()
        gc.disable()
        try:
            for _ in range(50):
                _, _, data = await guard.post("/gewe/v2/api/message/postText", body)
                assert data["guard"]["code"] == "upstream_unreachable"
            found = gc.collect()
        finally:
            gc.enable()
    assert found < 50, f"{found} objects in cycles after 50 failed forwards"


def _handlers_running() -> int:
    return sum(1 for t in asyncio.all_tasks() if "_handle_request" in t.get_coro().__qualname__)


@pytest.mark.parametrize(
    "method, path",
    [("POST", "/gewe/v2/api/message/postText"), ("GET", "/cgi-bin/user/get")],
    ids=["guarded", "pass-through"],
)
async def test_a_client_that_hangs_up_before_its_answer_leaves_no_garbage(method: str, path: str) -> None:
    """A client gone before the upstream answered: writing the answer fails. Raised out of the handler,
    that error was logged by aiohttp as a server error with its traceback and stayed in a cycle with the
    handler's frames (~90 objects a hang-up, freed only by a full collection: 19,000 objects each time wrk
    closed its 256 connections). The proxy handles it: nothing in cycles; a guarded request is still
    recorded (the upstream acted)."""
    async with stub_upstream() as stub:
        stub.answers[path] = ("hang", 0.3)  # the answer comes after the client has gone
        settings = Settings(upstream=stub.url, upstreams={"gewe": stub.url}, reload_interval=0)
        async with running_guard(settings) as guard:
            host, port = guard.url.rsplit("/", 1)[1].split(":")
            requests = guard.app[METRICS].requests

            def forwarded() -> float:
                return sum(c._value.get() for k, c in requests.metric._metrics.items() if k[1] == "forwarded")

            async def hang_up(n: int) -> None:
                if method == "POST":
                    body = json.dumps({"appId": f"wx{n}", "toWxid": "wxid_a", "content": "hello"}).encode()
                    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    head += f"Content-Length: {len(body)}\r\n\r\n"
                else:
                    body, head = b"", f"GET {path}?access_token=t&userid=u{n} HTTP/1.1\r\nHost: x\r\n\r\n"
                _, writer = await asyncio.open_connection(host, int(port))
                writer.write(head.encode() + body)
                await writer.drain()
                seen = stub.count(path)
                await eventually(lambda: stub.count(path) > seen, what="the upstream receiving the request")
                writer.transport.abort()

            async def done(count: int) -> bool:
                return _handlers_running() == 0 and forwarded() == count

            await hang_up(0)  # connections, caches and the first answer's one-offs made
            await eventually(lambda: done(1), what="the first request handled")
            gc.collect()
            gc.disable()
            gc.set_debug(gc.DEBUG_SAVEALL)
            try:
                for n in range(1, 21):
                    await hang_up(n)
                await eventually(lambda: done(21), what="every request handled and recorded")
                gc.collect()
                left = [o for o in gc.garbage if isinstance(o, BaseException) or type(o).__name__ == "frame"]
            finally:
                gc.set_debug(0)
                gc.garbage.clear()
                gc.enable()
    assert not left, f"{len(left)} exceptions and frames in cycles after 20 hang-ups"
