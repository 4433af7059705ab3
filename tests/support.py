"""Shared helpers of the tests (fixtures live in conftest.py, the redis-server processes in servers.py).

Waiting: a test never sleeps a fixed time for something to happen; it waits for the thing itself with
`eventually` (async) or `wait_until` (sync), under a generous deadline, and fails naming what did not
happen. Time: code that takes a clock gets a `Clock` that the test moves forward.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

# Generous on purpose: a busy CI machine may be slow, and a passing test never waits this long.
DEADLINE = 30.0


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 300 else text[:300] + "…"


async def eventually(
    check: Callable[[], Any],
    *,
    within: float = DEADLINE,
    interval: float = 0.05,
    what: str = "the condition",
) -> Any:
    """Call `check()` (plain or async) until it returns a truthy value, and return that value.

    Raises AssertionError naming `what` (and the last value seen) when `within` seconds pass first.
    """
    end = time.monotonic() + within
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= end:
            raise AssertionError(f"{what}: not reached within {within:g} s (last seen: {_shown(value)})")
        await asyncio.sleep(interval)


def wait_until(
    check: Callable[[], Any],
    *,
    within: float = DEADLINE,
    interval: float = 0.05,
    what: str = "the condition",
) -> Any:
    """`eventually` for code outside an event loop (blocks the thread between calls)."""
    end = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= end:
            raise AssertionError(f"{what}: not reached within {within:g} s (last seen: {_shown(value)})")
        time.sleep(interval)


class Clock:
    """A clock the test moves: pass it where the code under test takes `clock=` (seconds, like time.time)."""

    def __init__(self, start: float | datetime = 1_700_000_000.0) -> None:
        self.now = 0.0
        self.set(start)

    def __call__(self) -> float:
        return self.now

    def set(self, when: float | datetime) -> None:
        self.now = when.timestamp() if isinstance(when, datetime) else float(when)

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def blocked_clients(client: Any) -> int:
    """How many connections wait in a blocking command (XREAD BLOCK …) on the Redis behind `client`; a
    cluster client sums its nodes."""
    info = await client.info("clients")
    if "blocked_clients" in info:
        return int(info["blocked_clients"])
    return sum(int(node["blocked_clients"]) for node in info.values())
