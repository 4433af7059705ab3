"""Helpers of the counters' reliability tests: `guard serve --workers N` as real processes in front of a stub
upstream, a burst of concurrent requests, steady load that records every answer, and what Redis counted.

Nothing here asserts a duration: times are recorded and printed (`summary`); speed targets live in bench/.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as ClusterClient
from support import rules_copy, serve_workers

GEWE_ADD = "/gewe/v2/api/contacts/addContacts"
DEFAULT_LIMITS = Path(__file__).resolve().parents[2] / "rules" / "default" / "limits.toml"


def add_body(account: str, *, active: bool = True) -> bytes:
    """A GeWe friend add by `account` (option 2: we ask; 3: we accept)."""
    option = 2 if active else 3
    return json.dumps(
        {"appId": account, "scene": 3, "option": option, "v3": "v3", "v4": "v4", "content": "hello"}
    ).encode()


def roomy_rules(tmp: Path) -> Path:
    """The shipped rules with a new account's active adds allowed a million a day: under steady load no
    limit refuses, so every answer says only whether the counters were there."""
    shipped = DEFAULT_LIMITS.read_text(encoding="utf-8")
    old = '"add_friend.active" = { day = { limit = 5, alert_over = 10 } }'
    assert old in shipped, "the shipped limits changed: update roomy_rules"
    new = '"add_friend.active" = { day = { limit = 1000000, alert_over = 2000000 } }'
    return rules_copy(tmp, limits=shipped.replace(old, new, 1))


@contextlib.asynccontextmanager
async def guard_fleet(
    redis_url: str,
    upstream: str,
    log: Path,
    *,
    workers: int,
    env: dict[str, str] | None = None,
    rules: Path | None = None,
) -> AsyncIterator[str]:
    """`guard serve --workers N` on a free port with Redis counters; yields its URL once every worker
    listens. `env`: extra GUARD_… settings."""
    quiet = {"GUARD_LOG_LEVEL": "warning"}  # no audit line per decision: thousands of them
    async with serve_workers(
        redis_url, upstream, log, workers=workers, env={**quiet, **(env or {})}, rules=rules
    ) as url:
        yield url


@dataclass(frozen=True)
class Answer:
    sent: float  # time.monotonic() when sent
    took: float  # seconds until the whole answer was read
    code: int  # GeWe `ret` (200) or the guard's 4900xx
    rule: str  # X-Guard-Rule ("" when none)
    error: str = ""  # why the counters were unavailable (a 490010's details)

    @property
    def forwarded(self) -> bool:
        return self.code == 200

    @property
    def uncounted(self) -> bool:
        """Forwarded without the counters (`redis_down = allow`)."""
        return self.code == 200 and self.rule == "quota:unavailable"


async def post(session: aiohttp.ClientSession, url: str, body: bytes) -> Answer:
    sent = time.monotonic()
    async with session.post(url + GEWE_ADD, data=body, headers={"Content-Type": "application/json"}) as resp:
        data = await resp.json(content_type=None)
        rule = resp.headers.get("X-Guard-Rule", "")
    details = (data.get("guard") or {}).get("details") or {}
    return Answer(sent, time.monotonic() - sent, int(data["ret"]), rule, str(details.get("error", "")))


def session(limit: int = 0) -> aiohttp.ClientSession:
    # A connection per request: the burst really is concurrent, spread over every worker (SO_REUSEPORT).
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit, force_close=True))


async def burst(url: str, body: bytes, count: int) -> list[Answer]:
    """`count` requests at once, each on its own connection."""
    async with session() as s:
        return list(await asyncio.gather(*(post(s, url, body) for _ in range(count))))


@dataclass
class Load:
    """Steady load: `concurrency` clients each sending the next request as soon as the last is answered."""

    url: str
    body: bytes
    concurrency: int = 16
    answers: list[Answer] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def __aenter__(self) -> Load:
        self._session = session(limit=self.concurrency)
        self._tasks = [asyncio.create_task(self._client()) for _ in range(self.concurrency)]
        return self

    async def _client(self) -> None:
        while not self._stop.is_set():
            try:
                self.answers.append(await post(self._session, self.url, self.body))
            except (aiohttp.ClientError, ValueError, KeyError) as exc:
                self.errors.append(repr(exc))

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        await self._session.close()

    def since(self, moment: float) -> list[Answer]:
        return [a for a in self.answers if a.sent >= moment]

    def forwarded_since(self, moment: float) -> int:
        return sum(1 for a in self.since(moment) if a.forwarded and not a.uncounted)


async def counted(redis_url: str, account: str, *, cluster: bool = False) -> int:
    """`used` of the account's active-add counter of today, as Redis has it (0 when there is none)."""
    client: Any = ClusterClient.from_url(redis_url) if cluster else aioredis.Redis.from_url(redis_url)
    try:
        pattern = "{acct:" + account + "}:q:add_friend.active:day:*"
        if cluster:
            keys = await client.keys(pattern, target_nodes=ClusterClient.PRIMARIES)
        else:
            keys = await client.keys(pattern)
        total = 0
        for key in keys:
            total += int(await client.hget(key, "u") or 0)
        return total
    finally:
        await client.aclose()


def summary(title: str, answers: list[Answer], extra: dict[str, Any] | None = None) -> str:
    """A printable line: how many, by answer, and how long they took (p50 / p99 / max, ms)."""
    times = sorted(a.took for a in answers) or [0.0]
    by: dict[str, int] = {}
    for a in answers:
        key = f"{a.code}{'/uncounted' if a.uncounted else ''}"
        by[key] = by.get(key, 0) + 1
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    line = (
        f"{title}: {len(answers)} answers {dict(sorted(by.items()))}; "
        f"ms p50 {statistics.median(times) * 1000:.1f} p99 {p99 * 1000:.1f} max {times[-1] * 1000:.1f}"
    )
    for name, value in (extra or {}).items():
        line += f"; {name} {value}"
    errors: dict[str, int] = {}
    for a in answers:
        if a.error:
            errors[a.error[:100]] = errors.get(a.error[:100], 0) + 1
    if errors:
        line += f"; counters unavailable: {sorted(errors.items(), key=lambda e: -e[1])[:3]}"
    print(line)
    return line
