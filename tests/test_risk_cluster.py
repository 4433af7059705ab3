"""The alert feed and the report aggregates on a real 3-master Redis Cluster: every key of the feed shares
one hash tag, so the dedup-and-add script, cursors and leases run there unchanged."""

from __future__ import annotations

import asyncio
import time
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio.cluster import RedisCluster
from support import blocked_clients, eventually

from guard.risk.model import Alert
from guard.risk.reports import RedisReportStore, Reports
from guard.risk.store import RedisAlertStore

pytestmark = pytest.mark.cluster


def alert(n: int) -> Alert:
    return Alert(
        level="redline", kind="quota", rule="broadcast/day", message_zh="超限", message_en="over",
        account=f"acct-{n % 3}", window="w",
    )  # fmt: skip


async def test_feed_and_reports_on_a_cluster(redis_cluster: str) -> None:
    client = RedisCluster.from_url(redis_cluster, socket_timeout=10)
    try:
        store = RedisAlertStore(client, block_cap=30)  # the reader below waits for its alert
        stored = [await store.publish(alert(n), dedup_ttl=60) for n in range(6)]
        ids = [s.id for s in stored if s is not None]
        assert len(ids) == 3  # acct-0/1/2 once each within the window
        assert [a.id for a in await store.history()] == ids
        reader = asyncio.create_task(store.read(ids[-1], wait=30))
        await eventually(lambda: blocked_clients(client), what="the reader blocked in XREAD")  # then publish
        extra = await store.publish(alert(100))
        assert extra is not None and [a.id for a in await reader] == [extra.id]
        await store.set_cursor("hook", ids[0])
        assert await store.get_cursor("hook") == ids[0]
        assert await store.acquire_lease("hook", "p1", 5) and not await store.acquire_lease("hook", "p2", 5)

        tz = ZoneInfo("Asia/Shanghai")
        reports = Reports(RedisReportStore(client, tz), tz)
        assert await reports.complaint("acct-0", "alice", at=time.time()) == (1, 1)
        report = await reports.period(reports.today(), reports.today())
        assert report["totals"]["complaints"] == 1
    finally:
        await client.aclose()
