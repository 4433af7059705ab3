"""Daily compliance aggregates (Redis and in-memory), the report built from them, and the alerts one
decision raises."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis
from servers import RedisServer

from guard.config.risk import RiskSettings
from guard.core.types import Action, ContentMatch, Decision, DecisionRecord, TextField, Verdict
from guard.risk.observer import RiskObserver
from guard.risk.reports import (
    MemoryReportStore,
    RedisReportStore,
    Reports,
    ReportStore,
    build_report,
    render_csv,
    render_table,
    tally,
)
from guard.risk.store import MemoryAlertStore
from ratelimit.types import HitResult, RuleOutcome

TZ = ZoneInfo("Asia/Shanghai")


def outcome(
    rule: str, used: int, limit: int, allowed: bool = True, crossed: tuple[str, ...] = ()
) -> RuleOutcome:
    return RuleOutcome(
        rule=rule,
        window="day",
        used=used,
        limit=limit,
        remaining=max(0, limit - used),
        attempts=used,
        allowed=allowed,
        mode="enforce",
        crossed=crossed,  # type: ignore[arg-type]
        resets_at=int(time.time()) + 3600,
    )


def record(
    account: str,
    staff: str | None,
    kind: str = "broadcast",
    refused_by: str | None = None,
    quota: HitResult | None = None,
    text: str = "大家好",
    at: float | None = None,
) -> DecisionRecord:
    verdicts: list[Verdict] = []
    if refused_by == "content":
        start = text.index("投资")
        verdicts.append(
            Verdict(
                check="content",
                outcome="refuse",
                code=490001,
                rule="content:finance",
                matches=(ContentMatch("text", "finance", "投资", start, start + 2, "投资", "block"),),
            )
        )
    elif refused_by == "quota":
        verdicts.append(Verdict(check="quota", outcome="refuse", code=490003, rule="quota:broadcast/day"))
    else:
        verdicts.append(Verdict(check="quota", outcome="allow"))
    action = Action(kind=kind, account=account, texts=(TextField("text", text),))  # type: ignore[arg-type]
    return DecisionRecord(
        decision=Decision(action=action, verdicts=tuple(verdicts), quota=quota),
        disposition="refused" if refused_by else "forwarded",
        at=time.time() if at is None else at,
        staff=staff,
    )


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[ReportStore]:
    if request.param == "memory":
        yield MemoryReportStore()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    client = aioredis.Redis.from_url(server.url)
    try:
        await client.flushall()
        yield RedisReportStore(client, TZ, retention_days=90)
    finally:
        await client.aclose()


def test_tally_counts_per_account_and_staff_and_ignores_dry_runs() -> None:
    counts = tally(record("a1", "alice", refused_by="content", text="稳赚投资产品"))
    assert counts["a\ta1\trefused\tbroadcast"] == 1
    assert counts["s\talice\trefused\tbroadcast"] == 1
    assert counts["a\ta1\thit\tfinance"] == 1
    dry = record("a1", "alice")
    assert tally(DecisionRecord(dry.decision, "checked", dry.at, dry_run=True)) == {}


async def test_report_figures_equal_the_decisions(store: ReportStore) -> None:
    reports = Reports(store, TZ)
    quota_refusal = HitResult(False, (outcome("broadcast", 1, 1, allowed=False),))
    decisions = [
        record("a1", "alice"),
        record("a1", "alice", kind="add_friend"),
        record("a1", "alice", refused_by="content", text="这个投资很好"),
        record("a2", "bob"),
        record("a2", "bob", quota=HitResult(True, (outcome("broadcast", 1, 1, crossed=("limit",)),))),
        record("a2", "bob", refused_by="quota", quota=quota_refusal),
        record("a3", "carol"),
        record("a3", "carol", kind="message"),
    ]
    for d in decisions:
        await reports.record(d)
    await reports.complaint("a3", "carol")
    await reports.complaint("a2", None)
    report = await reports.period(reports.today(), reports.today())
    rows = {r["id"]: r for r in report["accounts"]}
    assert rows["a1"]["allowed"] == {"broadcast": 1, "add_friend": 1}
    assert rows["a1"]["refused"] == {"broadcast": 1}
    assert rows["a1"]["sensitive_hits"] == {"finance": 1}
    assert rows["a2"]["allowed"] == {"broadcast": 2}
    assert rows["a2"]["refused"] == {"broadcast": 1}
    assert rows["a2"]["limits_reached"] == {"broadcast/day": 2}
    assert rows["a2"]["complaints"] == 1
    assert rows["a3"]["complaints"] == 1
    staff = {r["id"]: r for r in report["staff"]}
    assert staff["carol"]["allowed_total"] == 2 and staff["carol"]["complaints"] == 1
    assert report["totals"] == {
        "allowed": 6,
        "refused": 2,
        "complaints": 2,
        "sensitive_hits": 1,
        "limits_reached": 2,
    }
    # alice and bob had refusals, carol a complaint: nobody earns the bonus today.
    assert report["clean_staff"] == []
    await reports.record(record("a4", "dave"))
    assert (await reports.period(reports.today(), reports.today()))["clean_staff"] == ["dave"]


async def test_days_follow_the_configured_timezone_and_periods_add_up(store: ReportStore) -> None:
    reports = Reports(store, TZ)
    # 23:30 and 00:30 Shanghai time are two different days, though both are the same UTC day.
    day = datetime.now(TZ).date() - timedelta(days=3)
    late = datetime.combine(day, datetime.min.time(), TZ).replace(hour=23, minute=30).timestamp()
    early = datetime.combine(day + timedelta(days=1), datetime.min.time(), TZ).replace(minute=30).timestamp()
    await reports.record(record("a1", "alice", at=late))
    await reports.record(record("a1", "alice", refused_by="quota", at=early))
    first = await reports.period(day, day)
    second = await reports.period(day + timedelta(days=1), day + timedelta(days=1))
    both = await reports.period(day, day + timedelta(days=1))
    assert first["totals"]["allowed"] == 1 and first["totals"]["refused"] == 0
    assert second["totals"]["refused"] == 1
    assert both["totals"]["allowed"] == 1 and both["totals"]["refused"] == 1
    # alice was clean on the first day, not over the period.
    assert first["clean_staff"] == ["alice"] and both["clean_staff"] == []
    with pytest.raises(ValueError):
        await reports.period(day, day - timedelta(days=1))


async def test_refusals_per_local_hour_and_category(store: ReportStore) -> None:
    reports = Reports(store, TZ)
    day = datetime.now(TZ).date() - timedelta(days=2)
    at = datetime.combine(day, datetime.min.time(), TZ).replace(hour=9, minute=15).timestamp()
    await reports.record(record("a1", "alice", refused_by="content", text="稳赚投资", at=at))
    await reports.record(record("a2", "bob", refused_by="content", text="投资", at=at + 60))
    await reports.record(record("a1", "alice", refused_by="quota", at=at + 3600))
    await reports.record(record("a1", "alice", at=at + 7200))  # allowed: no hourly count
    hourly = await reports.hourly(day)
    assert list(hourly) == ["finance", "quota"]
    assert hourly["finance"][9] == 2 and sum(hourly["finance"]) == 2
    assert hourly["quota"][10] == 1 and sum(hourly["quota"]) == 1
    # The hour counters change no figure of the report.
    report = await reports.period(day, day)
    assert report["totals"]["refused"] == 3 and [r["id"] for r in report["accounts"]] == ["a1", "a2"]
    assert await reports.hourly(day + timedelta(days=1)) == {}


async def test_days_older_than_the_retention_are_gone(store: ReportStore) -> None:
    reports = Reports(store, TZ)
    old = time.time() - 200 * 86400
    await reports.record(record("a1", "alice", at=old))
    await reports.record(record("a1", "alice"))
    day = datetime.fromtimestamp(old, TZ).date()
    assert (await reports.period(day, day))["totals"]["allowed"] == 0


async def test_complaints_count_per_day_and_week(store: ReportStore) -> None:
    reports = Reports(store, TZ)
    now = time.time()
    assert await reports.complaint("a1", "alice", at=now - 3 * 86400) == (1, 1)
    assert await reports.complaint("a1", "alice", at=now) == (1, 2)
    assert await reports.complaint("a1", "alice", at=now) == (2, 3)


async def test_redis_aggregates_expire_after_the_retention(redis_server: RedisServer) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        await client.flushall()
        store = RedisReportStore(client, TZ, retention_days=7)
        today = datetime.now(TZ).date()
        await store.add(today, {"a\tx\tallowed\tbroadcast": 1})
        ttl = await client.ttl(store.key(today))
        assert 7 * 86400 < ttl <= 9 * 86400
    finally:
        await client.aclose()


def test_renderers_show_every_row() -> None:
    report = build_report(
        {date(2026, 1, 1): tally(record("a1", "alice", refused_by="content", text="投资"))}, "UTC"
    )
    csv_text = render_csv(report)
    assert csv_text.splitlines()[0].startswith("scope,id,allowed_total")
    assert "account,a1,0,1" in csv_text and "staff,alice,0,1" in csv_text
    table = render_table(report)
    assert "a1" in table and "finance=1" in table and "无违规员工" in table


async def test_observer_raises_one_alert_per_threshold_and_masks_the_excerpt() -> None:
    alerts = MemoryAlertStore()
    reports = Reports(MemoryReportStore(), TZ)
    observer = RiskObserver(RiskSettings(), TZ, alerts, reports)
    text = "您好，这款投资产品稳赚不赔，加我 13812345678 详聊，名额有限先到先得"
    blocked = record("a1", "alice", refused_by="content", text=text)
    warn = HitResult(True, (outcome("add_friend.active", 4, 5, crossed=("warn",)),))
    limit = HitResult(True, (outcome("add_friend.active", 5, 5, crossed=("limit",)),))
    refused = HitResult(False, (outcome("add_friend.active", 5, 5, allowed=False),))
    for rec in [
        blocked,
        blocked,
        record("a1", "alice", kind="add_friend", quota=warn),
        record("a1", "alice", kind="add_friend", quota=limit),
        *[record("a1", "alice", kind="add_friend", refused_by="quota", quota=refused) for _ in range(20)],
    ]:
        await observer.handle_decision(rec)
    got = await alerts.history()
    assert [(a.level, a.rule) for a in got] == [
        ("block", "content:finance"),
        ("warning", "add_friend.active/day"),
        ("redline", "add_friend.active/day"),
    ]
    block = got[0]
    assert "投资" in block.excerpt and "13812345678" not in block.excerpt
    assert text not in block.to_json()
    assert block.staff == "alice" and block.account == "a1"
    assert got[2].used == 5 and got[2].limit == 5


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUARD_")}
    return subprocess.run(
        [sys.executable, "-m", "guard", "report", *args], capture_output=True, text=True, env=env, timeout=60
    )


async def test_report_command_reads_the_redis_aggregates(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        reports = Reports(RedisReportStore(client, TZ), TZ)
        await reports.record(record("a1", "alice"))
        await reports.record(record("a1", "alice", refused_by="content", text="投资理财"))
        await reports.record(record("a2", "bob"))
    finally:
        await client.aclose()
    day = datetime.now(TZ).date().isoformat()
    done = await asyncio.to_thread(run_cli, "--redis", redis_url, "--day", day, "--format", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["totals"]["allowed"] == 2 and report["totals"]["refused"] == 1
    assert report["clean_staff"] == ["bob"]
    done = await asyncio.to_thread(run_cli, "--redis", redis_url, "--format", "csv")
    assert done.returncode == 0 and "account,a1,1,1" in done.stdout
    done = await asyncio.to_thread(run_cli, "--redis", redis_url)
    assert done.returncode == 0 and "finance=1" in done.stdout and "bob" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--day", "2026-13-01", "--redis", "redis://127.0.0.1:1/0"), "--day must be a date"),
        (("--from", "2026-02-02", "--to", "2026-02-01", "--redis", "redis://127.0.0.1:1/0"), "before"),
        (("--day", "2026-02-02"), "no Redis configured"),
        (("--redis", "redis://127.0.0.1:1/0"), "cannot reach"),
    ],
)
def test_report_command_errors_are_clear(args: tuple[str, ...], message: str) -> None:
    done = run_cli(*args)
    assert done.returncode == 2
    assert message in done.stderr


async def test_the_worker_records_a_backlog_in_batches_exactly(store: ReportStore) -> None:
    reports = Reports(store, TZ)
    observer = RiskObserver(RiskSettings(queue_size=5000), TZ, MemoryAlertStore(), reports)
    yesterday = time.time() - 86400
    expected = {"allowed": 0, "refused": 0}
    for i in range(1200):
        refused = i % 7 == 0
        expected["refused" if refused else "allowed"] += 1
        at = yesterday if i % 2 else None
        rec = record(f"a{i % 13}", f"s{i % 5}", refused_by="quota" if refused else None, at=at)
        await observer.on_decision(rec)
    worker = asyncio.create_task(observer.run())
    try:
        await observer.drain()
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    report = await reports.period(reports.today() - timedelta(days=1), reports.today())
    assert report["totals"]["allowed"] == expected["allowed"]
    assert report["totals"]["refused"] == expected["refused"]
    assert sum(r["allowed_total"] + r["refused_total"] for r in report["staff"]) == 1200


async def test_a_full_backlog_is_a_system_alert_not_a_silent_loss() -> None:
    alerts = MemoryAlertStore()
    observer = RiskObserver(RiskSettings(queue_size=10), TZ, alerts, Reports(MemoryReportStore(), TZ))
    for i in range(25):
        await observer.on_decision(record(f"a{i}", "s"))
    assert observer.dropped == 15
    worker = asyncio.create_task(observer.run())
    try:
        await observer.drain()
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    (alert,) = await alerts.history(level=["system"])
    assert alert.rule == "risk_backlog_full" and "15 decisions" in alert.message_en
