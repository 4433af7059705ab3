"""The counters under Redis faults (issue 10, "Hold under fire"): `guard serve --workers 2` under steady load
while its redis-server (the test's own, with an append-only file synced on every write, so that what it
counted survives a kill) is frozen (SIGSTOP … SIGCONT), killed (SIGKILL … start) or stopped (SIGTERM …
start) for longer than the Redis timeout.

Behaviour asserted: every answer is a forward or a definite refusal (490010); with `redis_down = refuse`
nothing is forwarded while Redis is down, with `allow` everything is, marked uncounted; the guard recovers
without a restart; and afterwards what Redis counted equals what was forwarded (a hit the guard gave up
on did nothing when it reached Redis late; one whose answer was lost is settled; what was let through
uncounted is charged). Times (answers during the fault, recovery) are printed, never asserted.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from guard_fleet import (
    GEWE_ADD,
    Answer,
    Load,
    add_body,
    counted,
    guard_fleet,
    post,
    roomy_rules,
    session,
    summary,
)
from servers import RedisServer
from support import eventually, running_guard, stub_upstream

from guard.config.settings import Settings

# What Redis counted must survive a SIGKILL: every write is in the append-only file before it is answered.
DURABLE = ["--appendonly", "yes", "--appendfsync", "always"]
# How long a fault lasts: well past the Redis timeout (0.1 s) and the breaker's first cool-down (1 s).
FAULT_SECONDS = 1.5
# Requests sent this long after the fault began found Redis down for certain (earlier ones may have been
# answered from before it).
SETTLED = 0.2


@pytest.fixture
def durable_redis() -> Iterator[RedisServer]:
    server = RedisServer(extra=list(DURABLE)).start()
    try:
        yield server
    finally:
        if server.proc is not None:
            os.kill(server.proc.pid, signal.SIGCONT)  # never leave it frozen for the cleanup
        server.cleanup()


def begin(server: RedisServer, fault: str) -> None:
    assert server.proc is not None
    if fault == "sigstop":
        os.kill(server.proc.pid, signal.SIGSTOP)
    elif fault == "sigkill":
        server.proc.kill()
        server.proc.wait(timeout=10)
        server.proc = None
    else:  # "stop": SIGTERM, Redis shuts down cleanly
        server.stop()


def end(server: RedisServer, fault: str) -> None:
    if fault == "sigstop":
        assert server.proc is not None
        os.kill(server.proc.pid, signal.SIGCONT)
    else:
        server.start()  # same port, same directory: the append-only file is read back


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["refuse", "allow"])
@pytest.mark.parametrize("fault", ["sigstop", "sigkill", "stop"])
async def test_a_redis_fault_under_load(
    fault: str, mode: str, durable_redis: RedisServer, tmp_path: Path
) -> None:
    account = f"wx-{fault}-{mode}"
    async with (
        stub_upstream() as stub,
        guard_fleet(
            durable_redis.url,
            stub.url,
            tmp_path / "guard.log",
            workers=2,
            env={"GUARD_REDIS_DOWN": mode},
            rules=roomy_rules(tmp_path),
        ) as url,
    ):
        async with Load(url, add_body(account), concurrency=16) as load:
            await eventually(lambda: load.forwarded_since(0.0) >= 100, what="100 forwards before the fault")
            began = time.monotonic()
            begin(durable_redis, fault)
            await eventually(
                lambda: time.monotonic() - began >= FAULT_SECONDS and len(load.since(began + SETTLED)) >= 20,
                what="answers while Redis is down",
            )
            ended = time.monotonic()
            end(durable_redis, fault)
            await eventually(
                lambda: load.forwarded_since(ended) >= 100, what="counted forwards after Redis is back"
            )
        # Every client stopped: each request has its answer.
        answers = load.answers
        during = [a for a in answers if a.sent >= began + SETTLED and a.sent + a.took <= ended]
        forwarded = sum(a.forwarded for a in answers)

        assert not load.errors, load.errors[:3]
        assert {a.code for a in answers} <= {200, 490010}
        assert during
        if mode == "refuse":
            assert not [a for a in during if a.forwarded], "forwarded while Redis was down"
            assert not [a for a in answers if a.uncounted]
        else:
            assert all(a.forwarded and a.uncounted for a in during)
        assert stub.count(GEWE_ADD) == forwarded  # a refusal is never forwarded
        # Admitted == charged, once the guard has made good what it owed Redis.
        seen: list[int] = []
        try:
            charged = await eventually(
                lambda: _equal(durable_redis.url, account, forwarded, seen),
                what=f"Redis counting the {forwarded} forwarded adds",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}; Redis counted {seen[-1:]}") from None
        back = next((a for a in answers if a.sent >= ended and a.forwarded and not a.uncounted), None)
        recovered = f"{(back.sent - ended) * 1000:.0f} ms" if back is not None else "?"
        summary(f"{fault}/{mode} during the fault", during, {"recovered after": recovered})
        summary(f"{fault}/{mode} all", answers, {"forwarded": forwarded, "charged": charged})


async def _equal(url: str, account: str, expected: int, seen: list[int] | None = None) -> int | None:
    """`expected` once Redis counted exactly that (what it counted goes to `seen`, for the failure)."""
    found = await counted(url, account)
    if seen is not None:
        seen.append(found)
    return found if found == expected else None


async def _answers(url: str, count: int) -> list[Answer]:
    async with session() as s:
        return [await post(s, url, add_body(f"wx-restart-{n % 7}")) for n in range(count)]


@pytest.mark.slow
async def test_a_restart_between_requests_costs_no_request(tmp_path: Path) -> None:
    """Redis restarts while the guard is idle: the connections it had are stale. The next requests, on
    every worker, are answered as if nothing happened (a connection the server closed is replaced before
    use), and /readyz is ready."""
    server = RedisServer().start()
    try:
        async with (
            stub_upstream() as stub,
            guard_fleet(server.url, stub.url, tmp_path / "guard.log", workers=2) as url,
        ):
            before = await _answers(url, 20)  # every worker has its connections open
            assert all(a.forwarded for a in before)
            for restart in range(2):
                server.stop()
                server.start()  # empty: nothing was persisted
                after = await _answers(url, 20)
                summary(f"restart {restart + 1}: the next 20 requests", after)
                assert all(a.forwarded and not a.uncounted for a in after), after
                async with session() as s, s.get(url + "/readyz") as resp:
                    assert resp.status == 200, await resp.text()
            assert stub.count(GEWE_ADD) == 60
    finally:
        server.cleanup()


def _metric(text: str, line_start: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start))


@pytest.mark.slow
async def test_allow_mode_outage_is_measured_alerted_and_counted_afterwards() -> None:
    """`redis_down = allow`, Redis stopped: adds go through uncounted — and the guard says so: Redis errors
    and the breaker's state in /metrics, a `redis_down` system alert for the risk manager. Once Redis is
    back the breaker closes by itself and every add let through is charged."""
    server = RedisServer().start()
    try:
        async with stub_upstream() as stub:
            settings = Settings(
                upstream=stub.url,
                upstreams={"gewe": stub.url},
                reload_interval=0,
                redis_url=server.url,
                redis_down="allow",
            )
            async with running_guard(settings) as guard:
                assert (await guard.post(GEWE_ADD, add_body("wx-allow")))[2]["ret"] == 200
                server.stop()
                for _ in range(5):
                    _, headers, data = await guard.post(GEWE_ADD, add_body("wx-allow"))
                    assert data["ret"] == 200 and headers["X-Guard-Rule"] == "quota:unavailable"
                async with guard.session.get(guard.url + "/metrics") as resp:
                    down = await resp.text()
                assert _metric(down, 'guard_redis_errors_total{where="counters"}') >= 3
                assert _metric(down, 'guard_redis_unavailable_total{operation="hit"') == 5, [
                    line for line in down.splitlines() if line.startswith("guard_redis")
                ]
                assert 'guard_redis_breaker_state{state="open"} 1' in down

                server.start()  # empty: only what the guard charges from now on counts
                await eventually(
                    lambda: _ready(guard), what="the breaker closed by itself and /readyz ready again"
                )
                # The 5 adds let through while Redis was down are charged now.
                await eventually(lambda: _equal(server.url, "wx-allow", 5), what="the uncounted adds charged")
                async with guard.session.get(guard.url + "/metrics") as resp:
                    back = await resp.text()
                assert 'guard_redis_breaker_state{state="closed"} 1' in back
                assert _metric(back, 'guard_redis_reconciled_total{what="charged"}') == 5

                async def alerted() -> bool:
                    params = {"level": "system"}
                    async with guard.session.get(guard.url + "/v1/alerts", params=params) as resp:
                        feed = await resp.json()
                    return "redis_down" in [a["rule"] for a in feed["alerts"]]

                await eventually(alerted, what="the redis_down alert in the feed")
                assert stub.count(GEWE_ADD) == 6
    finally:
        server.cleanup()


async def _ready(guard: Any) -> bool:
    async with guard.session.get(guard.url + "/metrics") as resp:
        text = await resp.text()
    async with guard.session.get(guard.url + "/readyz") as resp:
        return resp.status == 200 and 'guard_redis_breaker_state{state="closed"} 1' in text
