"""The risk side under Redis faults (issue 10, "Hold under fire"): a redis-server of the test's own is frozen
with SIGSTOP (a hung Redis: connections open, nothing answers) or restarted on the same port while decisions
flow. Nothing is lost: the report totals equal the decisions made and every alert arrives exactly once, in
the stream and at the webhook; an alert about Redis itself reaches the webhook while Redis is still down;
after a restart the alert API answers and new SSE streams stream. Assertions are about behaviour, never
about how long something took."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from servers import RedisServer
from support import eventually, running_guard, stub_upstream

from guard.config.risk import RiskSettings, WebhookSettings
from guard.config.settings import Settings
from guard.core.types import Action, ContentMatch, Decision, DecisionRecord, TextField, Verdict
from guard.http.keys import RISK
from guard.http.notify import record_decisions
from guard.risk.model import Alert
from guard.risk.observer import RiskObserver
from guard.risk.reports import RedisReportStore, Reports
from guard.risk.sinks import WebhookSink
from guard.risk.store import RedisAlertStore
from ratelimit import RedisTarget, connect
from ratelimit.types import HitResult, RuleOutcome

TZ = ZoneInfo("Asia/Shanghai")
Key = tuple[str, str, str | None]  # (level, rule, account) of an alert


# ---- a Redis of the test's own, frozen or restarted ----------------------------------------------------


@contextlib.contextmanager
def frozen(server: RedisServer) -> Iterator[None]:
    """The redis-server process stopped (SIGSTOP): connections stay open, nothing answers."""
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)


def client_of(server: RedisServer, socket_timeout: float) -> Any:
    """The risk side's kind of client (`ratelimit.connect`)."""
    return connect(
        RedisTarget.from_url(server.url, cluster=False),
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
    )


# ---- a webhook receiver --------------------------------------------------------------------------------


class Receiver:
    """A JSON webhook stand-in: keeps every alert it was sent."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.alerts.extend(body["alerts"])
        return web.json_response({"errcode": 0})

    def count(self, rule: str) -> int:
        return sum(1 for a in self.alerts if a["rule"] == rule)

    def keys(self) -> collections.Counter[Key]:
        return collections.Counter((a["level"], a["rule"], a["account"]) for a in self.alerts)

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@contextlib.asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    got = await Receiver().start()
    try:
        yield got
    finally:
        await got.stop()


def hook(url: str, name: str = "risk-desk") -> WebhookSettings:
    return WebhookSettings(
        name=name,
        url=url,
        kind="json",
        per_window=1000,
        window_seconds=1.0,
        backoff_initial=0.05,
        backoff_max=0.5,
        batch_max=100,
    )


# ---- decisions -----------------------------------------------------------------------------------------


class Traffic:
    """Decisions as the proxy makes them, and what the report and the alert feed must show for them:
    allowed broadcasts, broadcasts refused for a sensitive word (one `block` alert per account in the
    hour) and refused at the quota (one `redline` per account and window)."""

    def __init__(self, accounts: int = 40) -> None:
        self.at = time.time()  # one instant: one day, one alert window for the whole test
        self.accounts = accounts
        self.made = collections.Counter[str]()
        self.alerts: set[Key] = set()
        self.sent = 0
        self._refused_quota = HitResult(
            False,
            (
                RuleOutcome(
                    rule="broadcast",
                    window="day",
                    used=1,
                    limit=1,
                    remaining=0,
                    attempts=2,
                    allowed=False,
                    mode="enforce",
                    crossed=("limit",),
                    resets_at=int(self.at) + 86400,
                ),
            ),
        )

    def record(self, n: int) -> DecisionRecord:
        account = f"acct-{n % self.accounts}"
        text, verdicts, quota = "新品到店", [Verdict(check="quota", outcome="allow")], None
        kind = ("allowed", "content", "quota")[n % 3]
        if kind == "content":
            text = "稳赚投资产品"
            verdicts = [
                Verdict(
                    check="content",
                    outcome="refuse",
                    code=490001,
                    rule="content:finance",
                    matches=(ContentMatch("text", "finance", "投资", 2, 4, "投资", "block"),),
                )
            ]
            self.alerts.add(("block", "content:finance", account))
        elif kind == "quota":
            verdicts = [Verdict(check="quota", outcome="refuse", code=490003, rule="quota:broadcast/day")]
            quota = self._refused_quota
            self.alerts.add(("redline", "broadcast/day", account))
        self.made["allowed" if kind == "allowed" else "refused"] += 1
        action = Action(kind="broadcast", account=account, texts=(TextField("text", text),))
        return DecisionRecord(
            decision=Decision(action=action, verdicts=tuple(verdicts), quota=quota),
            disposition="forwarded" if kind == "allowed" else "refused",
            at=self.at,
            staff=f"staff-{n % 7}",
        )

    async def send(self, observer: RiskObserver, n: int, chunk: int = 250, pause: float = 0.05) -> None:
        """`n` decisions handed to the observer as the proxy does, `chunk` at a time (pacing only)."""
        for start in range(0, n, chunk):
            for _ in range(min(chunk, n - start)):
                observer.offer_decision(self.record(self.sent))
                self.sent += 1
            await asyncio.sleep(pause)


async def stream_keys(client: Any, stream_key: str) -> collections.Counter[Key]:
    entries = await client.xrange(stream_key)
    found = collections.Counter[Key]()
    for _, fields in entries:
        a = json.loads(fields[b"a"])
        found[(a["level"], a["rule"], a["account"])] += 1
    return found


async def quiet(observer: RiskObserver) -> bool:
    return observer.queue_depth == 0 and observer.waiting == 0


# ---- the tests -----------------------------------------------------------------------------------------


async def test_a_hung_redis_loses_no_report_count_and_no_alert(own_redis: RedisServer) -> None:
    # A short socket timeout: writes in flight when Redis freezes time out and are sent again, and the
    # frozen server runs the first copies when it thaws; each must still count once.
    client = client_of(own_redis, socket_timeout=0.5)
    alerts = RedisAlertStore(client, block_cap=0.2)
    reports = Reports(RedisReportStore(client, TZ), TZ)
    observer = RiskObserver(RiskSettings(), TZ, alerts, reports)
    traffic = Traffic()
    async with receiver() as got, aiohttp.ClientSession() as session:
        sink = WebhookSink(hook(got.url), alerts, session, lease_seconds=1.5)
        observer.direct.append(sink)
        tasks = [asyncio.create_task(observer.run()), asyncio.create_task(sink.run())]
        try:
            await eventually(
                lambda: sink.store.get_cursor(sink.cursor_name), what="the sink's start position"
            )
            await traffic.send(observer, 1500)
            with frozen(own_redis):
                await traffic.send(observer, 6000, pause=0.1)  # ~2.5 s of traffic into a hung Redis
                await observer.on_system("redis_down", "counters unavailable; guarded actions refused", {})
                # Told from memory while Redis is still frozen.
                await eventually(lambda: got.count("redis_down") == 1, what="redis_down at the webhook")
                # Any system alert, once the store is seen failing, is told from memory too.
                await eventually(lambda: observer.store_failing, what="the observer seeing the store fail")
                await observer.on_system("rules_reload_failed", "words/finance.txt:1: not UTF-8", {})
                await eventually(
                    lambda: got.count("rules_reload_failed") == 1, what="a system alert at the webhook"
                )
                assert observer.waiting > 0 and observer.dropped == 0
            await traffic.send(observer, 1500)
            await eventually(lambda: quiet(observer), what="the spool written after Redis thawed")

            report = await reports.period(reports.today(traffic.at), reports.today(traffic.at))
            assert traffic.sent == 9000
            assert report["totals"]["allowed"] == traffic.made["allowed"]
            assert report["totals"]["refused"] == traffic.made["refused"]
            assert sum(r["allowed_total"] + r["refused_total"] for r in report["staff"]) == traffic.sent
            assert observer.dropped == 0 and observer.alerts_dropped == 0

            expected = {
                **dict.fromkeys(traffic.alerts, 1),
                ("system", "redis_down", None): 1,
                ("system", "rules_reload_failed", None): 1,
            }
            assert dict(await stream_keys(client, alerts.stream_key)) == expected
            # The webhook: every alert once, redis_down from memory and not again from the stream. A
            # last alert after everything else proves the sink has passed them all.
            await observer.on_system("probe_done", "end of the test traffic", {})
            await eventually(lambda: got.count("probe_done") == 1, what="the last alert at the webhook")
            assert dict(got.keys()) == {**expected, ("system", "probe_done", None): 1}
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await client.aclose()


async def test_a_full_spool_says_so_and_keeps_what_fits(own_redis: RedisServer) -> None:
    client = client_of(own_redis, socket_timeout=2.0)
    alerts = RedisAlertStore(client, block_cap=0.2)
    reports = Reports(RedisReportStore(client, TZ), TZ)
    # Room for the counters of 10 accounts' decisions (account + staff scopes, linked) and 3 alerts.
    observer = RiskObserver(RiskSettings(), TZ, alerts, reports, spool_counters=60, spool_alerts=3)
    traffic = Traffic(accounts=40)
    async with receiver() as got, aiohttp.ClientSession() as session:
        sink = WebhookSink(hook(got.url), alerts, session, lease_seconds=1.5)
        observer.direct.append(sink)
        tasks = [asyncio.create_task(observer.run()), asyncio.create_task(sink.run())]
        try:
            await eventually(
                lambda: sink.store.get_cursor(sink.cursor_name), what="the sink's start position"
            )
            await asyncio.to_thread(own_redis.stop)
            await traffic.send(observer, 120)
            await eventually(lambda: got.count("risk_spool_full") == 1, what="risk_spool_full at the webhook")
            (told,) = [a for a in got.alerts if a["rule"] == "risk_spool_full"]
            assert "not counted" in told["message_en"] and "not kept" in told["message_en"]
            assert observer.dropped > 0 and observer.alerts_dropped > 0
            assert observer.spooled_counters <= 60
            await asyncio.to_thread(own_redis.start)
            await eventually(lambda: quiet(observer), what="the spool written after Redis came back")
            report = await reports.period(reports.today(traffic.at), reports.today(traffic.at))
            counted = report["totals"]["allowed"] + report["totals"]["refused"]
            assert counted == traffic.sent - observer.dropped  # what fit, exactly; the rest was told
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await client.aclose()


async def test_redis_down_reaches_the_webhook_while_redis_is_stopped(own_redis: RedisServer) -> None:
    async with receiver() as got, stub_upstream() as stub:
        risk = RiskSettings(webhooks=(hook(got.url),))
        settings = Settings(
            upstream=stub.url,
            upstreams={"gewe": stub.url},
            reload_interval=0,
            redis_url=own_redis.url,
            risk=risk,
        )
        async with running_guard(settings) as guard:
            (sink,) = guard.app[RISK].sinks
            await eventually(
                lambda: sink.store.get_cursor(sink.cursor_name), what="the sink's start position"
            )
            await asyncio.to_thread(own_redis.stop)
            # What the request path does when the counters cannot be reached: a refusal at
            # `quota:unavailable`, recorded for the observers, which also raises the `redis_down` event.
            unavailable = Verdict(
                check="quota", outcome="refuse", code=490010, rule="quota:unavailable",
                details={"error": "ConnectionError"},
            )  # fmt: skip
            action = Action(kind="broadcast", account="acct-down", texts=(TextField("text", "新品"),))
            for _ in range(3):
                await record_decisions(
                    guard.app, [Decision(action=action, verdicts=(unavailable,))], "refused", client=None
                )
            await eventually(lambda: got.count("redis_down") == 1, what="redis_down at the webhook")
            (told,) = [a for a in got.alerts if a["rule"] == "redis_down"]
            assert told["id"] == "" and told["level"] == "system"  # from memory: no stream id yet
            async with guard.session.get(guard.url + "/metrics") as resp:
                metrics = await resp.text()
            assert 'guard_risk_spool{kind="alerts"} 1' in metrics
            assert 'guard_risk_dropped_total{kind="decision"} 0' in metrics

            await asyncio.to_thread(own_redis.start)
            observer = guard.app[RISK].observer
            await eventually(lambda: quiet(observer), what="the spool written after Redis came back")
            async with guard.session.get(guard.url + "/v1/alerts", params={"level": "system"}) as resp:
                assert resp.status == 200
                feed = await resp.json()
            (stored,) = [a for a in feed["alerts"] if a["rule"] == "redis_down"]
            assert stored["id"] and stored["details"]["sent_from_memory"] == [sink.name]
            async with guard.session.get(guard.url + "/v1/reports/daily") as resp:
                report = await resp.json()
            assert {r["id"]: r["refused"] for r in report["accounts"]}["acct-down"] == {"broadcast": 3}
            # A later alert reaches the webhook from the stream; redis_down was not sent a second time.
            await observer.on_system("after_outage", "Redis is back", {})
            await eventually(lambda: got.count("after_outage") == 1, what="a later alert at the webhook")
            assert got.count("redis_down") == 1
            async with guard.session.get(guard.url + "/metrics") as resp:
                metrics = await resp.text()
            assert 'guard_risk_spool{kind="alerts"} 0' in metrics
            assert 'guard_risk_spool{kind="counters"} 0' in metrics


async def read_alert(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    """The next `event: alert` of an SSE stream."""
    event, data = "", ""
    while True:
        line = (await asyncio.wait_for(resp.content.readline(), 30)).decode()
        assert line, "the stream ended"
        line = line.rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and data:
            if event == "alert":
                parsed: dict[str, Any] = json.loads(data)
                return parsed
            event, data = "", ""


async def test_after_a_redis_restart_the_alert_api_and_new_streams_work(own_redis: RedisServer) -> None:
    async with stub_upstream() as stub:
        settings = Settings(
            upstream=stub.url, upstreams={"gewe": stub.url}, reload_interval=0, redis_url=own_redis.url
        )
        async with running_guard(settings) as guard:
            observer = guard.app[RISK].observer
            for _ in range(3):  # connections in the risk side's pool, all of them stale after the restart
                async with guard.session.get(guard.url + "/v1/alerts") as resp:
                    assert resp.status == 200
            before = await guard.session.get(guard.url + "/v1/alerts/stream")
            await before.content.readline()
            await asyncio.to_thread(own_redis.stop)
            await asyncio.to_thread(own_redis.start)

            async with guard.session.get(guard.url + "/v1/alerts") as resp:
                assert resp.status == 200
                assert (await resp.json())["alerts"] == []  # the restarted Redis kept nothing
            async with guard.session.get(guard.url + "/v1/reports/daily") as resp:
                assert resp.status == 200
            after = await guard.session.get(guard.url + "/v1/alerts/stream")
            assert after.status == 200
            await observer.on_system("after_restart", "an alert after the restart", {})
            try:
                for resp in (after, before):  # the new stream, and the one open across the restart
                    alert = await read_alert(resp)
                    assert alert["rule"] == "after_restart" and alert["id"]
            finally:
                after.close()
                before.close()


async def test_a_repeated_write_is_applied_once(redis_url: str) -> None:
    """What lets every risk-side write be retried: the same report batch or the same publish sent twice
    (a lost answer, a command that ran after its timeout) counts once."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        store = RedisReportStore(client, TZ)
        day = Reports(store, TZ).today()
        for _ in range(2):
            assert await store.add(day, {"a\tx\tallowed\tbroadcast": 2}, writer="w1", batch=1) == [2]
        assert await store.add(day, {"a\tx\tallowed\tbroadcast": 1}, writer="w1", batch=2) == [3]
        assert await store.add(day, {"a\tx\tallowed\tbroadcast": 5}, writer="w2", batch=1) == [8]
        assert await store.read(day) == {"a\tx\tallowed\tbroadcast": 8}  # the batch marks live apart

        feed = RedisAlertStore(client)
        alert = Alert(
            level="system", kind="system", rule="redis_down", message_zh="", message_en="", window="1"
        )
        first = await feed.publish(alert, dedup_ttl=60, token="t1")
        again = await feed.publish(alert, dedup_ttl=60, token="t1")
        other = await feed.publish(alert, dedup_ttl=60, token="t2")
        assert first is not None and again is not None and again.id == first.id and other is None
        once = [await feed.publish(alert, token="t3") for _ in range(2)]  # no dedup: still one entry
        assert once[0] is not None and once[1] is not None and once[0].id == once[1].id
        assert len(await feed.history()) == 2
    finally:
        await client.aclose()


async def evalsha_calls(client: Any) -> int:
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def test_a_write_that_timed_out_in_a_frozen_redis_and_ran_later_counts_once(
    own_redis: RedisServer,
) -> None:
    """The failure a retry must survive: the write reached the frozen server, the client gave up on it,
    and the server ran it when it thawed; the retry of the same batch / publish adds nothing."""
    clients = [client_of(own_redis, socket_timeout=0.3) for _ in range(2)]  # one warm connection each
    watcher = aioredis.Redis.from_url(own_redis.url)
    try:
        store, feed = RedisReportStore(clients[0], TZ), RedisAlertStore(clients[1])
        day, counter = Reports(store, TZ).today(), "a\tacct-1\trefused\tbroadcast"
        alert = Alert(level="system", kind="system", rule="no_dedup", message_zh="", message_en="")
        # Both scripts loaded and both connections made before the freeze (a new connection would hang
        # in its handshake and never send the write).
        assert await store.add(day, {counter: 1}, writer="w", batch=1) == [1]
        assert await feed.publish(replace(alert, rule="warm_up")) is not None
        calls = await evalsha_calls(watcher)
        with frozen(own_redis):
            with pytest.raises(aioredis.RedisError):
                await store.add(day, {counter: 1}, writer="w", batch=2)
            with pytest.raises(aioredis.RedisError):
                await feed.publish(alert, token="t")  # no dedup: only the token's claim guards it
        await store.add(day, {counter: 1}, writer="w", batch=2)
        await feed.publish(alert, token="t")
        # The late copies of both writes ran (as did the two retries); each write counted once.
        await eventually(
            lambda: _at_least(evalsha_calls(watcher), calls + 4), what="the late copies of both writes"
        )
        assert (await store.read(day))[counter] == 2
        assert [a.rule for a in await feed.history()] == ["warm_up", "no_dedup"]
    finally:
        for client in clients:
            await client.aclose()
        await watcher.aclose()


async def _at_least(value: Any, n: int) -> bool:
    return bool(await value >= n)
