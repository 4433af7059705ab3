"""Scale-out (docs/deploy.md): two `guard serve` instances — separate processes on separate ports, as behind a
load balancer — over one Redis and one rules directory. A rules reload asked of one reaches the other
(pub/sub), a freeze made on one holds on the other, and both warn that this Redis persists nothing; the
persistence check itself against Redis servers with an append-only file and with CONFIG disabled."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from servers import RedisServer, free_port
from support import StubUpstream, eventually, rules_copy, running_guard, wait_ready

from guard.config.settings import Settings
from guard.http.auth import hash_key
from guard.http.reload import RELOAD_CHANNEL

ADMIN_KEY = "two-instances-admin-key"
STAFF_KEY = "two-instances-staff-key"
NEW_TERM = "青龙秘籍速成"
BROADCAST = "/cgi-bin/externalcontact/add_msg_template?access_token=T"
NO_PERSISTENCE = "Redis persists nothing"


def config(tmp_path: Path) -> Path:
    path = tmp_path / "guard.toml"
    path.write_text(
        f"""
[[keys]]
name = "ops"
hash = "{hash_key(ADMIN_KEY)}"
role = "admin"

[[keys]]
name = "scrm"
hash = "{hash_key(STAFF_KEY)}"
role = "staff"
""",
        encoding="utf-8",
    )
    return path


@asynccontextmanager
async def instance(
    tmp_path: Path, name: str, rules: Path, redis_url: str, upstream: str
) -> AsyncIterator[tuple[str, Path]]:
    """One `guard serve` process on its own port: (its URL, its log file)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUARD_")}
    # Only the pub/sub announcement may carry the reload to the other instance in this test.
    env["GUARD_RELOAD_INTERVAL"] = "0"
    # Two guards and the rest of the suite share two cores: a slow moment must not read as Redis down.
    env["GUARD_REDIS_TIMEOUT"] = "2.0"
    log = tmp_path / f"{name}.log"
    with log.open("wb") as out:
        proc = await asyncio.to_thread(
            subprocess.Popen,
            [
                sys.executable, "-m", "guard", "serve", "--config", str(config(tmp_path)),
                "--rules", str(rules), "--redis", redis_url, "--upstream", upstream, "--port", str(port),
            ],
            env=env, stdout=subprocess.DEVNULL, stderr=out,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            await asyncio.to_thread(wait_ready, url, proc, [log])
            yield url, log
        finally:
            proc.terminate()
            await asyncio.to_thread(proc.wait, 15)


async def call(
    session: aiohttp.ClientSession, method: str, url: str, key: str, body: Any = None
) -> tuple[int, Any]:
    data = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
    headers = {"X-Guard-Key": key, "Content-Type": "application/json"}
    async with session.request(method, url, data=data, headers=headers) as resp:
        raw = await resp.read()
    try:
        return resp.status, json.loads(raw)
    except ValueError:
        raise AssertionError(f"{method} {url}: HTTP {resp.status}, not JSON: {raw[:500]!r}") from None


async def check(session: aiohttp.ClientSession, url: str, text: str) -> str:
    status, data = await call(
        session, "POST", url + "/v1/check", STAFF_KEY,
        {"kind": "message", "account": "wx_two_1", "text": text, "dry_run": True},
    )  # fmt: skip
    assert status == 200, data
    return str(data["decision"])


async def listening(redis_url: str, count: int) -> bool:
    """Whether `count` processes listen on the rules-reload channel."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        (_, found), *_ = await client.pubsub_numsub(RELOAD_CHANNEL)
        return int(found) >= count
    finally:
        await client.aclose()


async def test_a_reload_and_a_freeze_on_one_instance_reach_the_other(
    tmp_path: Path, redis_url: str, stub: StubUpstream
) -> None:
    rules = rules_copy(tmp_path)
    async with (
        instance(tmp_path, "first", rules, redis_url, stub.url) as (first, first_log),
        instance(tmp_path, "second", rules, redis_url, stub.url) as (second, second_log),
        aiohttp.ClientSession() as session,
    ):
        # Both listen for announcements before one is made (a missed one waits for the file watch).
        await eventually(lambda: listening(redis_url, 2), what="both instances on the reload channel")
        assert await check(session, first, f"今天推荐{NEW_TERM}") == "allow"
        assert await check(session, second, f"今天推荐{NEW_TERM}") == "allow"

        # The rules maintainer changes the shared words file and asks ONE instance to reload.
        words = rules / "words" / "finance.txt"
        words.write_text(words.read_text(encoding="utf-8") + f"\n{NEW_TERM}\n", encoding="utf-8")
        status, reloaded = await call(session, "POST", first + "/v1/rules/reload", ADMIN_KEY)
        assert status == 200 and reloaded["reloaded"] is True
        assert await check(session, first, f"今天推荐{NEW_TERM}") == "refuse"

        async def second_refuses() -> bool:
            return await check(session, second, f"今天推荐{NEW_TERM}") == "refuse"

        await eventually(second_refuses, what="the first instance's reload reaching the second")
        _, rules_first = await call(session, "GET", first + "/v1/rules", STAFF_KEY)
        _, rules_second = await call(session, "GET", second + "/v1/rules", STAFF_KEY)
        assert rules_first["version"] == rules_second["version"] == reloaded["version"]

        # The risk manager freezes an account on the first instance; staff sending through the second
        # are refused at once (the switch lives in Redis), and nothing reaches the upstream.
        status, _ = await call(
            session, "POST", first + "/v1/accounts/wx_two_frozen/freeze", ADMIN_KEY, {"reason": "投诉"}
        )
        assert status == 200
        broadcast = {
            "chat_type": "single", "external_userid": ["wmTwo01"], "sender": "wx_two_frozen",
            "text": {"content": "新品到店"},
        }  # fmt: skip
        status, answer = await call(session, "POST", second + BROADCAST, STAFF_KEY, broadcast)
        assert status == 200 and answer["errcode"] == 490004, answer
        assert stub.count() == 0
        # Unfrozen on the second, the first lets it through.
        status, _ = await call(session, "POST", second + "/v1/accounts/wx_two_frozen/unfreeze", ADMIN_KEY, {})
        assert status == 200
        status, answer = await call(session, "POST", first + BROADCAST, STAFF_KEY, broadcast)
        assert status == 200 and answer["errcode"] == 0, answer
        assert stub.count() == 1

        # The test Redis runs without persistence: both instances said so at start, and /readyz says it.
        for log in (first_log, second_log):
            assert NO_PERSISTENCE in log.read_text(encoding="utf-8")
        async with session.get(second + "/readyz") as resp:
            ready = await resp.json()
        assert resp.status == 200 and ready["redis_persistence"]["persistent"] is False
        assert NO_PERSISTENCE in ready["redis_persistence"]["warning"]


async def readyz_persistence(settings: Settings) -> dict[str, Any]:
    async with running_guard(settings) as guard, guard.session.get(guard.url + "/readyz") as resp:
        assert resp.status == 200
        details: dict[str, Any] = (await resp.json())["redis_persistence"]
        return details


async def test_readyz_says_whether_redis_persists(tmp_path: Path, stub: StubUpstream) -> None:
    servers = {
        "aof": RedisServer(extra=["--appendonly", "yes"]),
        "snapshots": RedisServer(extra=["--save", "3600 1"]),
        # A managed Redis that hides CONFIG: the guard falls back to INFO persistence.
        "no-config": RedisServer(extra=["--rename-command", "CONFIG", ""]),
    }
    try:
        found = {}
        for name, server in servers.items():
            server.start()
            found[name] = await readyz_persistence(
                Settings(upstream=stub.url, reload_interval=0, redis_url=server.url)
            )
    finally:
        for server in servers.values():
            server.cleanup()
    assert found["aof"]["persistent"] is True and found["aof"]["warning"] is None
    assert found["snapshots"]["persistent"] is True and found["snapshots"]["nodes"][0]["save"] == "3600 1"
    # Through INFO: no append-only file and no snapshot since start — the guard cannot tell, and says so.
    assert found["no-config"]["persistent"] is None
    assert found["no-config"]["nodes"][0]["source"] == "info"
    assert "cannot tell whether Redis persists" in found["no-config"]["warning"]
