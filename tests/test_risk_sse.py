"""The SSE alert feed: event ids are stream ids; a reader that reconnects with Last-Event-ID after a
forced disconnect gets every alert it missed and none twice (both store backends)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from servers import RedisServer

from guard.risk.model import Alert
from guard.risk.sse import stream_alerts
from guard.risk.store import AlertStore, MemoryAlertStore, RedisAlertStore


def alert(n: int) -> Alert:
    return Alert(
        level="warning" if n % 3 == 0 else "redline",
        kind="quota",
        rule="add_friend.active/day",
        message_zh=f"第 {n} 条",
        message_en=f"number {n}",
        account=f"acct-{n % 2}",
        window=str(n),
    )


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[AlertStore]:
    if request.param == "memory":
        mem = MemoryAlertStore()
        yield mem
        await mem.close()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    client = aioredis.Redis.from_url(server.url)
    try:
        await client.flushall()
        yield RedisAlertStore(client, block_cap=0.5)
    finally:
        await client.aclose()


@pytest.fixture
async def feed(store: AlertStore) -> AsyncIterator[str]:
    async def handler(request: web.Request) -> web.StreamResponse:
        level = request.query.get("level")
        return await stream_alerts(request, store, levels=[level] if level else None, heartbeat=0.2)

    app = web.Application()
    app.router.add_get("/stream", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/stream"
    finally:
        await store.close()
        await runner.cleanup()


async def read_events(resp: aiohttp.ClientResponse, n: int) -> list[tuple[str, dict[str, object]]]:
    """Parse SSE frames until `n` events arrived."""
    events: list[tuple[str, dict[str, object]]] = []
    event_id, data = "", ""
    while len(events) < n:
        line = (await asyncio.wait_for(resp.content.readline(), 20)).decode().rstrip("\n")
        if line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and data:
            events.append((event_id, json.loads(data)))
            event_id, data = "", ""
    return events


async def test_resume_after_forced_disconnect_loses_and_repeats_nothing(store: AlertStore, feed: str) -> None:
    published: list[str] = []

    async def publish(n: int) -> None:
        stored = await store.publish(alert(n))
        assert stored is not None
        published.append(stored.id)

    seen: list[str] = []
    async with aiohttp.ClientSession() as session:
        resp = await session.get(feed)
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        await resp.content.readline()  # "retry:" — the stream is open from the current end
        for n in range(5):
            await publish(n)
        events = await read_events(resp, 5)
        seen.extend(i for i, _ in events)
        assert [e["message_en"] for _, e in events] == [f"number {n}" for n in range(5)]
        # Forced disconnect: drop the connection; alerts keep coming while nobody listens.
        resp.connection.transport.abort()  # type: ignore[union-attr]
        resp.close()
        for n in range(5, 12):
            await publish(n)
        resp2 = await session.get(feed, headers={"Last-Event-ID": seen[-1]})

        async def keep_publishing() -> None:
            for n in range(12, 15):
                await publish(n)

        writer = asyncio.create_task(keep_publishing())
        events = await read_events(resp2, 10)
        await writer
        seen.extend(i for i, _ in events)
        resp2.close()
    assert seen == published
    assert len(set(seen)) == len(seen)


async def test_resume_from_query_parameter_and_level_filter(store: AlertStore, feed: str) -> None:
    ids = []
    for n in range(6):
        stored = await store.publish(alert(n))
        assert stored is not None
        ids.append(stored.id)
    params = {"last_event_id": ids[1], "level": "redline"}
    async with aiohttp.ClientSession() as session, session.get(feed, params=params) as resp:
        events = await read_events(resp, 3)
    # After ids[1]: n = 2, 3, 4, 5; n=3 is a warning, filtered out.
    assert [i for i, _ in events] == [ids[2], ids[4], ids[5]]


async def test_bad_last_event_id_is_a_clear_error(store: AlertStore, feed: str) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(feed, headers={"Last-Event-ID": "yesterday"}) as resp,
    ):
        assert resp.status == 400
        assert "stream id" in await resp.text()


async def test_a_reader_behind_the_cap_is_told_what_it_lost(redis_server: RedisServer) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        await client.flushall()
        for store in (MemoryAlertStore(maxlen=5), RedisAlertStore(client, maxlen=5)):
            first = await store.publish(alert(0))
            assert first is not None
            assert await store.trimmed_after(first.id) is None
            ids = [first.id]
            for n in range(1, 400):
                stored = await store.publish(alert(n))
                assert stored is not None
                ids.append(stored.id)
            oldest = (await store.history(since="0-0", limit=1000))[0].id
            lost = await store.trimmed_after(first.id)
            # Exactly the alert before the oldest one kept is reported as the last one lost.
            assert lost == ids[ids.index(oldest) - 1]
            assert await store.trimmed_after(lost) is None
            await store.close()
    finally:
        await client.aclose()


async def test_sse_sends_a_gap_event_when_resuming_behind_the_cap() -> None:
    store = MemoryAlertStore(maxlen=3)
    ids = []
    for n in range(6):
        stored = await store.publish(alert(n))
        assert stored is not None
        ids.append(stored.id)

    async def handler(request: web.Request) -> web.StreamResponse:
        return await stream_alerts(request, store, heartbeat=0.2)

    app = web.Application()
    app.router.add_get("/stream", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/stream", headers={"Last-Event-ID": ids[0]}) as resp,
        ):
            lines: list[str] = []
            while sum(1 for line in lines if line.startswith("id: ")) < 3:
                lines.append((await asyncio.wait_for(resp.content.readline(), 10)).decode().rstrip("\n"))
        assert "event: gap" in lines
        gap = json.loads(lines[lines.index("event: gap") + 1][6:])
        assert gap == {"after": ids[0], "lost_through": ids[2]}
        assert [line[4:] for line in lines if line.startswith("id: ")] == ids[3:]
    finally:
        await store.close()
        await runner.cleanup()
