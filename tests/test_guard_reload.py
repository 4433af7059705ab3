"""Rules reload while serving: file watch, SIGHUP, POST /v1/rules/reload, pub/sub to every process; a broken
file keeps the old rules and says why."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Mapping
from pathlib import Path

import redis.asyncio as aioredis
from support import RunningGuard, eventually, rules_copy, running_guard

from guard.config.settings import Settings
from guard.core.types import DecisionRecord
from guard.http.keys import OBSERVERS
from guard.http.reload import RELOAD_CHANNEL

NEW_TERM = "量子速赢计划"


async def decision(guard: RunningGuard, text: str) -> str:
    status, _, data = await guard.post(
        "/v1/check", {"kind": "message", "account": "r1", "text": text, "dry_run": True}
    )
    assert status == 200
    return str(data["decision"])


async def becomes(guard: RunningGuard, text: str, expected: str) -> None:
    async def decided() -> bool:
        return await decision(guard, text) == expected

    await eventually(decided, what=f"{text!r} becoming {expected}")


async def subscribed(redis_url: str, channel: str, count: int) -> None:
    """Until `count` connections listen on the pub/sub `channel`."""
    client = aioredis.Redis.from_url(redis_url)
    try:

        async def listening() -> bool:
            (_, n), *_ = await client.pubsub_numsub(channel)
            return int(n) >= count

        await eventually(listening, what=f"{count} processes subscribed to {channel}")
    finally:
        await client.aclose()


def add_term(rules: Path, term: str) -> None:
    path = rules / "words" / "finance.txt"
    path.write_text(path.read_text(encoding="utf-8") + f"\n{term}\n", encoding="utf-8")


class Events:
    def __init__(self) -> None:
        self.events: list[tuple[str, Mapping[str, object]]] = []

    async def on_decision(self, record: DecisionRecord) -> None:
        pass

    async def on_system(self, event: str, message: str, details: Mapping[str, object]) -> None:
        self.events.append((event, details))


async def test_file_change_is_picked_up(tmp_path: Path) -> None:
    rules = rules_copy(tmp_path)
    async with running_guard(Settings(rules_dir=rules, reload_interval=0.05)) as guard:
        assert await decision(guard, f"试试{NEW_TERM}") == "allow"
        add_term(rules, NEW_TERM)
        await becomes(guard, f"试试{NEW_TERM}", "refuse")


async def test_broken_file_keeps_old_rules_and_says_why(tmp_path: Path) -> None:
    rules = rules_copy(tmp_path)
    async with running_guard(Settings(rules_dir=rules, reload_interval=0)) as guard:
        events = Events()
        guard.app[OBSERVERS].append(events)
        async with guard.session.get(guard.url + "/v1/rules") as resp:
            before = await resp.json()
        finance = (rules / "words" / "finance.txt").read_text(encoding="utf-8")
        (rules / "words" / "finance.txt").write_bytes("稳赚不赔\n".encode() + b"\xff\xfe broken\n")
        status, _, data = await guard.post("/v1/rules/reload", b"")
        assert status == 422 and data["reloaded"] is False
        assert "finance.txt" in data["last_error"]
        assert data["version"] == before["version"]
        assert await decision(guard, "稳赚不赔") == "refuse"  # old rules still in force
        assert events.events and events.events[0][0] == "rules_reload_failed"
        async with guard.session.get(guard.url + "/v1/rules") as resp:
            assert "finance.txt" in (await resp.json())["last_error"]
        # Fixed (the shipped words back, so the copy's tests.txt passes): the next reload clears the error.
        (rules / "words" / "finance.txt").write_text(f"{finance}\n{NEW_TERM}\n", encoding="utf-8")
        status, _, data = await guard.post("/v1/rules/reload", b"")
        assert status == 200 and data["last_error"] is None and data["version"] != before["version"]
        assert await decision(guard, NEW_TERM) == "refuse"


async def test_sighup_reloads(tmp_path: Path) -> None:
    rules = rules_copy(tmp_path)
    async with running_guard(Settings(rules_dir=rules, reload_interval=0)) as guard:
        add_term(rules, NEW_TERM)
        # No file watch configured: nothing re-reads the file (a short real window, no clock to move).
        await asyncio.sleep(0.1)
        assert await decision(guard, NEW_TERM) == "allow"
        os.kill(os.getpid(), signal.SIGHUP)
        await becomes(guard, NEW_TERM, "refuse")


async def test_one_reload_reaches_every_process(tmp_path: Path, redis_url: str) -> None:
    rules = rules_copy(tmp_path)
    settings = Settings(rules_dir=rules, reload_interval=0, redis_url=redis_url)
    async with running_guard(settings) as first, running_guard(settings) as second:
        await subscribed(redis_url, RELOAD_CHANNEL, 2)
        add_term(rules, NEW_TERM)
        status, _, _ = await first.post("/v1/rules/reload", b"")
        assert status == 200
        assert await decision(first, NEW_TERM) == "refuse"
        await becomes(second, NEW_TERM, "refuse")
