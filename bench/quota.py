"""Benchmark of the quota engine: check-and-hit throughput of ONE process against a local Redis.

    python3 bench/quota.py [--redis URL] [--checks N] [--inflight 8,64]

Without --redis it starts its own redis-server on a free loopback port (and stops it at the end).
Prints, per in-flight level:
  * checks/s and latency percentiles of `Limiter.hit` (2 rules per check: day + hour, as an add request);
  * a baseline measured in the same run: PING round trips/s at the same concurrency, and the ratio;
  * Redis commands per check from `INFO commandstats` (reset before each run): exactly one EVALSHA;
then the in-memory backend's checks/s, and how fast a dead or hung Redis turns into StorageUnavailable.
A benchmark prints figures; it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# The tests' real-server helpers: one way to start a throwaway redis-server.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from servers import RedisServer as LocalRedis

from ratelimit import (
    Charge,
    CircuitBreaker,
    Limiter,
    MemoryStorage,
    RedisStorage,
    Rule,
    StorageUnavailable,
)

DAY = Rule("add_friend.active", "day", 10**9, warn_at=10**8, alert_over=10**9)
HOUR = Rule("add_friend.active", "hour", 10**9)
ACCOUNTS = 1000
ROUNDS = 5


async def drive(
    call: Callable[[int], Awaitable[object]], total: int, inflight: int
) -> tuple[float, list[float]]:
    """Run `total` calls with `inflight` always outstanding; (seconds, per-call latencies)."""
    latencies: list[float] = []
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < total:
            i = next_index
            next_index += 1
            started = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    return time.perf_counter() - started, latencies


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 10) - 1] * 1000 if len(values) > 1 else 0.0


# Commands hit.lua runs inside EVALSHA (counted by commandstats, but not sent by the client).
SCRIPT_COMMANDS = {"exists", "get", "set", "hmget", "hincrby", "hset", "hget", "expire", "del"}


def per_check(calls: dict[str, int], checks: int) -> str:
    return ", ".join(f"{name.upper()} {n / checks:.3f}" for name, n in sorted(calls.items())) or "none"


async def commandstats(client: aioredis.Redis) -> dict[str, int]:
    info = await client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in info.items()}


async def bench_redis(url: str, checks: int, levels: list[int]) -> None:
    admin = aioredis.Redis.from_url(url)
    limiter = Limiter(RedisStorage.from_url(url, timeout=1.0, max_connections=max(levels)))
    ping_client = aioredis.Redis.from_url(url, max_connections=max(levels))
    try:
        await admin.flushall()
        await admin.script_flush()
        for level in levels:
            # Warm up: connections opened, script loaded (the one SCRIPT LOAD happens here).
            await drive(
                lambda i: limiter.hit(f"warm-{i % ACCOUNTS}", [Charge(DAY), Charge(HOUR)]), 2 * level, level
            )
            await drive(lambda i: ping_client.ping(), 2 * level, level)  # type: ignore[arg-type]

            # Checks and the PING baseline alternate in rounds, so a load change on the machine hits both.
            await admin.config_resetstat()
            elapsed = base_elapsed = 0.0
            lat: list[float] = []
            for r in range(ROUNDS):
                part = checks // ROUNDS

                def one_check(i: int, r: int = r, part: int = part) -> Awaitable[object]:
                    return limiter.hit(f"acct-{(r * part + i) % ACCOUNTS}", [Charge(DAY), Charge(HOUR)])

                took, lats = await drive(one_check, part, level)
                elapsed += took
                lat += lats
                took, _ = await drive(lambda i: ping_client.ping(), part, level)  # type: ignore[arg-type]
                base_elapsed += took
            stats = await commandstats(admin)
            stats.pop("ping", None)  # the baseline's, not the checks'
            checks = ROUNDS * (checks // ROUNDS)

            rate, base_rate = checks / elapsed, checks / base_elapsed
            print(f"\nRedis, {level} in flight, {checks} checks (2 rules each):")
            print(f"  checks/s            {rate:10.0f}")
            p50, p99, worst = pct(lat, 50), pct(lat, 99), max(lat) * 1000
            print(f"  latency ms          p50 {p50:.2f}   p99 {p99:.2f}   max {worst:.2f}")
            print(f"  baseline PING/s     {base_rate:10.0f}   (checks/s ÷ PING/s = {rate / base_rate:.2f})")
            # commandstats also counts the commands a script runs; those are not round trips.
            counted = {k: v for k, v in stats.items() if k not in ("info", "config|resetstat", "config")}
            sent = {k: v for k, v in counted.items() if k not in SCRIPT_COMMANDS}
            inside = {k: v for k, v in counted.items() if k in SCRIPT_COMMANDS}
            print(f"  commands sent/check {per_check(sent, checks)}")
            print(f"  run inside script   {per_check(inside, checks)}")
    finally:
        await limiter.aclose()
        await ping_client.aclose()
        await admin.aclose()


async def bench_memory(checks: int, level: int) -> None:
    limiter = Limiter(MemoryStorage())
    elapsed, lat = await drive(
        lambda i: limiter.hit(f"acct-{i % ACCOUNTS}", [Charge(DAY), Charge(HOUR)]), checks, level
    )
    print(f"\nMemory backend, {level} in flight: {checks / elapsed:.0f} checks/s, p50 {pct(lat, 50):.3f} ms")


async def failure_latency(server: LocalRedis, samples: int = 20) -> None:
    """How long a check takes to fail when Redis is dead, hung, or the breaker is open (timeout 100 ms)."""

    async def timed(limiter: Limiter) -> tuple[float, str]:
        started = time.perf_counter()
        try:
            await limiter.hit("acct", [Charge(DAY)])
            return time.perf_counter() - started, "ok"
        except StorageUnavailable as exc:
            return time.perf_counter() - started, exc.reason

    no_breaker = CircuitBreaker(failures=10**9, cooldown=0)
    print("\nFailure (timeout 0.1 s):")

    limiter = Limiter(RedisStorage.from_url(server.url, timeout=0.1, breaker=no_breaker))
    await limiter.hit("acct", [Charge(DAY)])
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        hung = [await timed(limiter) for _ in range(samples)]
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
    await limiter.aclose()
    print(f"  hung Redis (SIGSTOP)      max {max(t for t, _ in hung) * 1000:7.1f} ms   ({hung[0][1]})")

    server.stop()
    limiter = Limiter(RedisStorage.from_url(server.url, timeout=0.1, breaker=no_breaker))
    dead = [await timed(limiter) for _ in range(samples)]
    await limiter.aclose()
    print(f"  stopped Redis             max {max(t for t, _ in dead) * 1000:7.1f} ms   ({dead[0][1][:60]})")

    limiter = Limiter(RedisStorage.from_url(server.url, timeout=0.1, breaker=CircuitBreaker(failures=1)))
    await timed(limiter)
    opened = [await timed(limiter) for _ in range(samples)]
    await limiter.aclose()
    print(f"  breaker open              max {max(t for t, _ in opened) * 1000:7.3f} ms   ({opened[0][1]})")


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--redis", help="an existing Redis URL (default: start a local redis-server)")
    parser.add_argument("--checks", type=int, default=20000, help="checks per in-flight level")
    parser.add_argument("--inflight", default="8,64", help="comma-separated in-flight levels")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop instead of asyncio's loop")
    args = parser.parse_args()
    levels = [int(v) for v in args.inflight.split(",")]

    server = None if args.redis else LocalRedis().start()
    url = args.redis or server.url  # type: ignore[union-attr]
    try:
        loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
        print(f"python {sys.version.split()[0]} ({loop} loop), redis at {url}, {os.cpu_count()} CPUs")
        await bench_redis(url, args.checks, levels)
        await bench_memory(args.checks, max(levels))
        if server is not None:
            await failure_latency(server)
    finally:
        if server is not None:
            server.cleanup()


if __name__ == "__main__":
    if "--uvloop" in sys.argv:
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())
