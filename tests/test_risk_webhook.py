"""Webhook sinks against stub receivers (aiohttp servers started here): batching, the rate cap in every
window, retry with backoff after failures, delivery of every alert exactly once, one sender per Redis."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from servers import RedisServer
from support import Clock, eventually

from guard.config.risk import RiskSettings, WebhookSettings, parse_risk_settings
from guard.risk.model import Alert
from guard.risk.sinks import RateGate, WebhookSink, wecom_markdown
from guard.risk.store import AlertStore, MemoryAlertStore, RedisAlertStore


class StubReceiver:
    """Records every request (arrival time, body); answers per `behaviour(n)` for the n-th request."""

    def __init__(self, behaviour: Callable[[int], tuple[int, dict[str, Any]]]) -> None:
        self.behaviour = behaviour
        self.arrivals: list[float] = []
        self.bodies: list[dict[str, Any]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.arrivals.append(time.time())
        body = await request.json()
        await self.gate.wait()
        status, answer = self.behaviour(len(self.arrivals) - 1)
        if status == 200 and answer.get("errcode", 0) == 0:
            self.bodies.append(body)
        return web.json_response(answer, status=status)

    async def start(self) -> StubReceiver:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def stop(self) -> None:
        self.gate.set()
        if self.runner is not None:
            await self.runner.cleanup()

    def delivered_ids(self, kind: str) -> list[str]:
        ids: list[str] = []
        for body in self.bodies:
            if kind == "json":
                ids.extend(a["id"] for a in body["alerts"])
            else:
                content = body["markdown"]["content"]
                ids.extend(part.split("`")[0] for part in content.split("id `")[1:])
        return ids


def alert(n: int, level: str = "redline") -> Alert:
    return Alert(
        level=level,  # type: ignore[arg-type]
        kind="quota",
        rule="broadcast/day",
        message_zh=f"告警 {n}",
        message_en=f"alert {n}",
        account=f"acct-{n}",
        window="w",
        used=1,
        limit=1,
    )


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[AlertStore]:
    if request.param == "memory":
        yield MemoryAlertStore()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    client = aioredis.Redis.from_url(server.url)
    try:
        await client.flushall()
        yield RedisAlertStore(client, block_cap=0.5)
    finally:
        await client.aclose()


async def started(sink: WebhookSink) -> None:
    """Until `sink` holds the lease and has taken the current end of the feed as its start position."""
    await eventually(lambda: sink._leader, what=f"{sink.owner} holding the lease")
    await eventually(
        lambda: sink.store.get_cursor(sink.cursor_name), what=f"{sink.cursor_name} start position"
    )


def assert_cap(arrivals: list[float], cap: int, window: float) -> None:
    """No window of `window` seconds holds more than `cap` requests (failed ones count too)."""
    for i in range(len(arrivals) - cap):
        assert arrivals[i + cap] - arrivals[i] >= window, (i, arrivals)


def test_defaults_are_the_robot_cap_of_20_a_minute() -> None:
    hook = parse_risk_settings({"webhooks": [{"url": "http://127.0.0.1:1/x"}]}).webhooks[0]
    assert (hook.per_window, hook.window_seconds, hook.kind) == (20, 60.0, "wecom")
    assert RiskSettings().retention_days == 90


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"webhooks": [{"url": "ftp://x"}]}, "risk.webhooks[0].url"),
        ({"webhooks": [{"url": "http://h/x", "kind": "slack"}]}, "risk.webhooks[0].kind"),
        ({"webhooks": [{"url": "http://h/x", "per_window": 0}]}, "risk.webhooks[0].per_window"),
        ({"retention_days": "90"}, "risk.retention_days"),
        ({"unknown": 1}, "risk.unknown"),
    ],
)
def test_bad_risk_settings_name_the_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError, match=key.replace("[", r"\[").replace("]", r"\]")):
        parse_risk_settings(raw)


def test_rate_gate_waits_for_the_oldest_send_of_the_window() -> None:
    clock = Clock(100.0)
    gate = RateGate(cap=2, window=60.0, clock=clock)
    assert gate.delay() == 0
    gate.finished()
    clock.set(110.0)
    gate.finished()
    assert gate.delay() == pytest.approx(50.0)
    clock.set(161.0)
    assert gate.delay() == 0
    restored = RateGate(cap=2, window=60.0, clock=clock)
    restored.load(gate.dump())
    assert restored.delay() == gate.delay()


def test_wecom_markdown_fits_the_4096_byte_limit() -> None:
    many = [alert(n).with_id(f"{n}-0") for n in range(200)]
    message, used = wecom_markdown(many)
    assert message["msgtype"] == "markdown"
    assert 0 < used < 200
    assert len(message["markdown"]["content"].encode()) <= 4096


@pytest.mark.parametrize("kind", ["json", "wecom"])
async def test_failing_then_recovering_webhook_gets_every_alert_once_under_the_cap(
    store: AlertStore, kind: str
) -> None:
    # The first 3 requests fail (HTTP 500, then WeCom's own rate-limit errcode), then it recovers.
    def behaviour(n: int) -> tuple[int, dict[str, Any]]:
        if n < 2:
            return 500, {"error": "down"}
        if n == 2:
            if kind == "json":
                return 503, {"error": "busy"}
            return 200, {"errcode": 45009, "errmsg": "api freq out of limit"}
        return 200, {"errcode": 0, "errmsg": "ok"}

    stub = await StubReceiver(behaviour).start()
    cap, window = 2, 0.6
    hook = WebhookSettings(
        name="t",
        url=stub.url,
        kind=kind,
        per_window=cap,
        window_seconds=window,
        backoff_initial=0.05,
        batch_max=3,
    )
    session = aiohttp.ClientSession()
    sink = WebhookSink(hook, store, session, lease_seconds=1.5)
    task = asyncio.create_task(sink.run())
    try:
        await started(sink)
        assert stub.arrivals == []
        published = []
        for n in range(12):
            stored = await store.publish(alert(n))
            assert stored is not None
            published.append(stored.id)
            await asyncio.sleep(0.03)  # pacing, not a wait: alerts keep arriving while the sink retries

        async def all_delivered() -> bool:
            return await store.get_cursor("webhook:t") == published[-1]

        # The cursor passes an alert only once it was delivered, and nothing is sent past the last one.
        await eventually(all_delivered, what="the sink's cursor at the last alert")
        assert stub.delivered_ids(kind) == published  # every alert, in order, once
        assert sink.failures >= 3
        assert_cap(stub.arrivals, cap, window)
        assert await store.get_cursor("webhook:t") == published[-1]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await session.close()
        await stub.stop()


async def test_a_hanging_webhook_does_not_hold_up_alerts(store: AlertStore) -> None:
    stub = await StubReceiver(lambda n: (200, {"errcode": 0})).start()
    stub.gate.clear()  # every request hangs until released
    hook = WebhookSettings(name="h", url=stub.url, kind="json", per_window=20, window_seconds=60, timeout=30)
    session = aiohttp.ClientSession()
    sink = WebhookSink(hook, store, session, lease_seconds=1.5)
    task = asyncio.create_task(sink.run())
    try:
        await started(sink)
        first = await store.publish(alert(0))
        await eventually(lambda: len(stub.arrivals) == 1, what="the first request reaching the webhook")
        # The webhook hangs; the feed still takes and serves alerts.
        more = [await store.publish(alert(n)) for n in range(1, 30)]
        assert all(m is not None for m in more)
        assert len(await store.history(limit=100)) == 30
        stub.gate.set()
        await eventually(lambda: len(stub.delivered_ids("json")) == 30, what="30 alerts delivered")
        assert stub.delivered_ids("json") == [first.id] + [m.id for m in more if m]  # type: ignore[union-attr]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await session.close()
        await stub.stop()


async def test_two_processes_on_one_redis_send_each_alert_once(redis_url: str) -> None:
    stub = await StubReceiver(lambda n: (200, {"errcode": 0})).start()
    clients = [aioredis.Redis.from_url(redis_url) for _ in range(2)]
    stores = [RedisAlertStore(c, block_cap=0.3) for c in clients]
    hook = WebhookSettings(name="shared", url=stub.url, kind="json", per_window=3, window_seconds=0.5)
    session = aiohttp.ClientSession()
    sinks = [WebhookSink(hook, s, session, owner=f"p{i}", lease_seconds=1.5) for i, s in enumerate(stores)]
    tasks = [asyncio.create_task(s.run()) for s in sinks]
    try:
        await eventually(lambda: any(s._leader for s in sinks), what="a sender holding the lease")
        await started(next(s for s in sinks if s._leader))
        published = []
        for n in range(20):
            stored = await stores[n % 2].publish(alert(n))
            assert stored is not None
            published.append(stored.id)
        # Counted once the cursor has passed them: after that, nothing is left to send.
        await eventually(lambda: sum(s.sent_alerts for s in sinks) >= 20, what="20 alerts sent")
        assert stub.delivered_ids("json") == published
        assert sum(1 for s in sinks if s.sent_messages) == 1
        assert_cap(stub.arrivals, 3, 0.5)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await session.close()
        for c in clients:
            await c.aclose()
        await stub.stop()


def test_json_payload_carries_no_full_message() -> None:
    body = json.dumps({"alerts": [alert(1).to_dict()]})
    assert "message_zh" in body


async def test_the_default_cap_holds_the_21st_message_of_a_minute() -> None:
    store = MemoryAlertStore()
    stub = await StubReceiver(lambda n: (200, {"errcode": 0})).start()
    hook = parse_risk_settings({"webhooks": [{"name": "robot", "url": stub.url}]}).webhooks[0]
    session = aiohttp.ClientSession()
    sink = WebhookSink(hook, store, session, lease_seconds=1.5)
    task = asyncio.create_task(sink.run())
    try:
        await started(sink)
        for n in range(20):  # one alert at a time: each goes out as its own message
            await store.publish(alert(n))
            await eventually(lambda n=n: len(stub.bodies) == n + 1, what=f"message {n + 1} delivered")
        for n in range(20, 25):
            await store.publish(alert(n))
        # Proving that nothing is sent needs a window of real time: the sink waits out the gate's delay
        # with real sleeps (a clock passed to it would not wake it up).
        await asyncio.sleep(1.5)
        # The robot's cap: the 21st message of the minute waits, carrying the 5 new alerts together.
        assert len(stub.arrivals) == 20
        assert sink.gate.delay() > 50
        assert len(stub.delivered_ids("wecom")) == 20
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await session.close()
        await stub.stop()
