"""Redis goes down under a running guard: guarded actions are refused, and the risk side keeps the
`system` alert and the report counters of that time and writes them once Redis is back."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from servers import RedisServer
from support import eventually, running_guard, stub_upstream

from guard.config.settings import Settings
from guard.http.keys import RISK

BROADCAST = "/cgi-bin/externalcontact/add_msg_template"


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.cleanup()


def broadcast(sender: str) -> dict[str, Any]:
    return {
        "chat_type": "single",
        "external_userid": ["wm1"],
        "sender": sender,
        "text": {"content": "新品到店"},
    }


async def test_alerts_and_counts_of_an_outage_arrive_when_redis_is_back(own_redis: RedisServer) -> None:
    async with stub_upstream() as stub:
        settings = Settings(
            upstream=stub.url, upstreams={"gewe": stub.url}, reload_interval=0, redis_url=own_redis.url
        )
        async with running_guard(settings) as guard:
            await asyncio.to_thread(own_redis.stop)
            _, _, data = await guard.post(BROADCAST, broadcast("acct-down"))
            assert data["errcode"] == 490010  # counters unavailable: refused, never forwarded
            assert stub.count() == 0
            observer = guard.app[RISK].observer
            await observer.drain()
            assert observer.waiting >= 2  # the report counters and the system alert wait for Redis

            await asyncio.to_thread(own_redis.start)
            await eventually(
                lambda: observer.waiting == 0, what="the waiting steps written after Redis came back"
            )
            async with guard.session.get(guard.url + "/v1/alerts", params={"level": "system"}) as resp:
                feed = await resp.json()
            assert [a["rule"] for a in feed["alerts"]] == ["redis_down"]
            async with guard.session.get(guard.url + "/v1/reports/daily") as resp:
                report = await resp.json()
            rows = {r["id"]: r for r in report["accounts"]}
            assert rows["acct-down"]["refused"] == {"broadcast": 1}
