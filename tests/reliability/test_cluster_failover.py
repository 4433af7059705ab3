"""A Redis Cluster master failover under load (issue 10, "Hold under fire"): `guard serve --workers 2` counts
friend adds of one account on a Cluster of 3 masters with a replica each (append-only files synced on every
write, a node timeout of 1 s), and the master serving the account's slot goes away:

- *killed* (SIGKILL): the Cluster notices after the node timeout, marks it failed (every node then answers
  CLUSTERDOWN, the whole Cluster refuses commands) and promotes its replica; or *hung* (SIGSTOP) until
  then, and woken up afterwards to rejoin as a replica;
- *handed over* (`CLUSTER FAILOVER` on its replica): the coordinated switch an operator makes before
  maintenance; the old master pauses writes until its replica has every one, then answers MOVED.

Behaviour asserted, never times: every answer is a forward or a definite refusal (490010), no 5xx, no
connection error; with `redis_down = refuse` nothing is forwarded while the slot has no master (while the
replica still says it is a replica), with `allow` everything then is, marked uncounted; the guard recovers
without a restart — 100 answers in a row are counted forwards after the promotion (each request on a
connection of its own, which the kernel spreads over both workers, so a worker that had not recovered would
refuse about half of them); and the counts afterwards:

- handover: nothing acknowledged is lost, so Redis counts exactly what was forwarded, and the daily report's
  totals equal the decisions made (its key is on the master handed over, too);
- kill: replication is asynchronous, so writes the old master acknowledged in its last moment may not have
  reached the replica. Redis never counts more than was forwarded (a hit whose answer was lost is settled on
  the new master), and at most what the old master answered in its last turn is missing: fewer than the
  requests in flight (the load's concurrency). With the report's key on another master the report is exact
  although the whole Cluster refused commands for a while; with it on the lost master, the report never
  counts more than the decisions made, and those made afterwards all count (docs/deploy.md, "What each
  failure does").

Times (answers while the slot has no master, failover, recovery) are printed with `summary`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import redis.asyncio as aioredis
from guard_fleet import (
    GEWE_ADD,
    Answer,
    Load,
    add_body,
    counted,
    guard_fleet,
    post,
    roomy_rules,
    session,
    summary,
)
from redis.exceptions import ResponseError
from servers import ReplicatedCluster
from support import eventually, stub_upstream

from ratelimit.connection import ConnectionSpec, PipelinedCluster
from ratelimit.storage import account_tag

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

CONCURRENCY = 16
BEFORE = 100  # counted forwards before the failover
AFTER = 100  # counted forwards in a row after it
LATER = 20  # adds of another account once the load stopped
TZ = ZoneInfo("Asia/Shanghai")  # the shipped settings' timezone: the report's day


@pytest.fixture
async def cluster() -> AsyncIterator[ReplicatedCluster]:
    """3 masters, 1 replica each; ready once every node says ok and every replica is in sync."""
    nodes = await asyncio.to_thread(ReplicatedCluster(masters=3, replicas=1, node_timeout=1000).start)
    try:
        problems: list[str] = []

        def ready() -> bool:
            problems[:] = nodes.problems()
            if any("does not know every node" in problem for problem in problems):
                nodes.introduce()  # a handshake dropped on a starved machine is not retried by Redis
            return not problems

        try:
            await eventually(lambda: asyncio.to_thread(ready), within=60.0, what="the Cluster ready")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {problems}") from None
        yield nodes
    finally:
        await asyncio.to_thread(nodes.cleanup)


def report_key() -> str:
    """The daily report's Redis key of today (guard.risk.reports.RedisReportStore, default prefix)."""
    return f"siyu-guard:report:{datetime.now(TZ).date().isoformat()}"


def pick_account(nodes: ReplicatedCluster, prefix: str, *, with_report: bool) -> tuple[str, int]:
    """An account whose slot's master serves the report's key too (`with_report`) or not; and that master."""
    reports = nodes.master_of(report_key())
    for n in range(200):
        account = f"{prefix}-{n}"
        master = nodes.master_of(account_tag(account))
        if (master == reports) == with_report:
            return account, master
    raise AssertionError("no account found for the wanted slot layout")


@dataclass
class RoleWatch:
    """Polls ROLE on the replica being promoted: until when it certainly was a replica (the send time of the
    last answer "slave": promotion is for good) and when it certainly was the master (the arrival of the
    first answer "master")."""

    port: int
    replica_until: float = 0.0
    master_from: float | None = None
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    async def __aenter__(self) -> RoleWatch:
        self._task = asyncio.create_task(self._poll())
        return self

    async def _poll(self) -> None:
        client = aioredis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5.0)
        try:
            while self.master_from is None:
                sent = time.monotonic()
                role = await client.role()
                name = role[0].decode() if isinstance(role[0], bytes) else str(role[0])
                if name == "master":
                    self.master_from = time.monotonic()
                else:
                    self.replica_until = sent
                    await asyncio.sleep(0.01)
        finally:
            await client.aclose()

    async def promoted(self) -> float | None:
        assert self._task is not None
        if self._task.done():
            self._task.result()  # a failed poll fails the test
        return self.master_from

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def demoted(nodes: ReplicatedCluster, port: int) -> bool:
    """The node on `port` says it is a replica, in sync with its new master."""
    replication = nodes._cli(port, "info", "replication", timeout=5.0)
    return "role:slave" in replication and "master_link_status:up" in replication


def counted_run(load: Load, since: float) -> bool:
    """The last AFTER answers, all sent after `since`, are all counted forwards."""
    tail = load.answers[-AFTER:]
    return len(tail) == AFTER and all(a.sent >= since and a.forwarded and not a.uncounted for a in tail)


async def counting_again(load: Load, promoted: float) -> None:
    """Until AFTER counted forwards in a row after the promotion; else fail with what the guard answered."""
    try:
        await eventually(lambda: counted_run(load, promoted), what=f"{AFTER} counted forwards in a row")
    except AssertionError as exc:
        since = load.since(promoted)
        line = summary("answers after the promotion", since, {"last": [a.code for a in since[-5:]]})
        raise AssertionError(f"{exc}; {line}; errors {load.errors[:3]}") from None


async def report_totals(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.get(url + "/v1/reports/daily") as resp:
        assert resp.status == 200, await resp.text()
        report: dict[str, Any] = await resp.json()
    return dict(report["totals"])


async def charged_equals(url: str, account: str, forwarded: int, seen: list[int]) -> int | None:
    found = await counted(url, account, cluster=True)
    seen.append(found)
    return found if found == forwarded else None


async def decisions_reported(url: str, allowed: int, refused: int, seen: list[Any]) -> bool:
    totals = await report_totals(url)
    seen.append(totals)
    return bool(totals["allowed"] == allowed and totals["refused"] == refused)


async def account_reported(url: str, account: str, allowed: int) -> bool:
    async with aiohttp.ClientSession() as s, s.get(url + "/v1/reports/daily") as resp:
        rows = {row["id"]: row for row in (await resp.json())["accounts"]}
    return account in rows and rows[account]["allowed_total"] == allowed


def metric(text: str, name: str) -> float:
    """The sum of the samples of `name` (with any labels) in a /metrics exposition."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " ")
    )


async def quiet(url: str, uncounted: int) -> bool:
    """Every worker (the gauges are summed over the workers; set each second): nothing waiting for Redis, the
    `uncounted` adds let through charged, no decision or alert waiting for the risk side's Redis writes."""
    async with aiohttp.ClientSession() as s, s.get(url + "/metrics") as resp:
        text = await resp.text()
    charged = metric(text, 'guard_redis_reconciled_total{what="charged"}')
    waiting = sum(
        metric(text, name) for name in ("guard_redis_backlog", "guard_risk_spool", "guard_risk_queue_depth")
    )
    return charged == uncounted and waiting == 0


def check_answers(load: Load, answers: list[Answer]) -> None:
    assert not load.errors, load.errors[:3]  # no connection error, no answer that is not JSON
    assert {a.code for a in answers} <= {200, 490010}, {a.code for a in answers}


@pytest.mark.parametrize(
    ("fault", "mode", "report"),
    [
        ("sigkill", "refuse", "elsewhere"),
        ("sigkill", "allow", "elsewhere"),
        ("sigstop", "refuse", "elsewhere"),
        ("sigkill", "refuse", "with_victim"),
    ],
)
async def test_a_master_lost_under_load_fails_over_and_the_guard_follows(
    fault: str, mode: str, report: str, cluster: ReplicatedCluster, tmp_path: Path
) -> None:
    """`sigkill`: the master dies. `sigstop`: it hangs (connections open, nothing answered) until its replica
    is promoted, then wakes up — and rejoins as a replica: whatever it still runs of the hits written to it
    before is a no-op (their deadline passed) and its data is replaced by the new master's. `report`: the
    daily report's key is on another master (`elsewhere`: the report is exact) or on the lost one too
    (`with_victim`: a batch it acknowledged last may be lost, none is counted twice, later ones count)."""
    account, victim = pick_account(cluster, f"wx-{fault}-{mode}", with_report=report == "with_victim")
    (replica,) = cluster.replicas_of(victim)
    survivor = next(port for port in cluster.ports if port not in (victim, replica))
    live_url = url_of(survivor)  # for the test's own reads: the victim will be gone
    # The guard is given the victim's address: the node it learnt the Cluster from dies too.
    guard_url = url_of(victim)
    async with (
        stub_upstream() as stub,
        guard_fleet(
            guard_url,
            stub.url,
            tmp_path / "guard.log",
            workers=2,
            env={"GUARD_REDIS_DOWN": mode},
            rules=roomy_rules(tmp_path),
        ) as url,
    ):
        async with Load(url, add_body(account), concurrency=CONCURRENCY) as load:
            await eventually(lambda: load.forwarded_since(0.0) >= BEFORE, what=f"{BEFORE} forwards first")
            async with RoleWatch(replica) as watch:
                await asyncio.to_thread(cluster.kill if fault == "sigkill" else cluster.freeze, victim)
                killed = time.monotonic()
                promoted = await eventually(watch.promoted, within=30.0, what="the replica promoted")
                no_master_until = watch.replica_until
                if fault == "sigstop":
                    cluster.thaw(victim)
                await counting_again(load, promoted)
            if fault == "sigstop":
                await eventually(
                    lambda: asyncio.to_thread(demoted, cluster, victim), what="the old master a replica"
                )
        answers = load.answers
        check_answers(load, answers)
        # Requests whose whole life lay between the kill and the promotion: the slot had no master.
        masterless = [a for a in answers if a.sent >= killed and a.sent + a.took <= no_master_until]
        assert masterless, "no answer while the slot had no master"
        if mode == "refuse":
            assert not [a for a in masterless if a.forwarded], "forwarded while the slot had no master"
            assert not [a for a in answers if a.uncounted]
        else:
            assert all(a.forwarded and a.uncounted for a in masterless)
        forwarded = sum(a.forwarded for a in answers)
        assert stub.count(GEWE_ADD) == forwarded  # a refusal is never forwarded

        # Once the guard made good what it owed Redis (every settle made; in `allow` mode every add let
        # through uncounted charged) and the risk side wrote what it kept: what Redis counted is never more
        # than was forwarded, and short of it by at most what the old master acknowledged in its last turn
        # without passing it on to the replica (fewer than the requests in flight).
        uncounted = sum(a.uncounted for a in answers)
        await eventually(lambda: quiet(url, uncounted), what="the guard's backlogs and spools empty")
        charged = await counted(live_url, account, cluster=True)
        assert forwarded - CONCURRENCY <= charged <= forwarded, (charged, forwarded)
        refused = sum(a.code == 490010 for a in answers)
        if report == "elsewhere":
            # The report (its key on a master that stayed up) has every decision, refusals included.
            seen: list[Any] = []
            try:
                await eventually(
                    lambda: decisions_reported(url, forwarded, refused, seen),
                    what="every decision in the report",
                )
            except AssertionError as exc:
                raise AssertionError(f"{exc}; decisions: allowed {forwarded}, refused {refused}") from None
            reported = seen[-1]
        else:
            # Never more than the decisions made (a batch sent again is applied once) …
            reported = await report_totals(url)
            assert reported["allowed"] <= forwarded and reported["refused"] <= refused, reported
            # … and the risk side writes to the promoted master: later decisions are all counted.
            later = f"wx-after-{fault}-{mode}"
            async with session() as s:
                for _ in range(LATER):
                    assert (await post(s, url, add_body(later))).forwarded
            await eventually(lambda: account_reported(url, later, LATER), what="later decisions reported")

        first_back = next(
            (a for a in answers if a.sent >= promoted and a.forwarded and not a.uncounted), None
        )
        recovered = f"{(first_back.sent - promoted) * 1000:.0f} ms" if first_back else "?"
        summary(
            f"{fault}/{mode} while the slot had no master",
            masterless,
            {"failover took": f"{(promoted - killed) * 1000:.0f} ms", "counted again after": recovered},
        )
        summary(
            f"{fault}/{mode} all",
            answers,
            {
                "forwarded": forwarded,
                "charged": charged,
                "lost with the old master": forwarded - charged,
                "report": f"{reported['allowed']} allowed, {reported['refused']} refused of {refused}",
            },
        )


async def test_a_handover_under_load_loses_nothing(cluster: ReplicatedCluster, tmp_path: Path) -> None:
    account, victim = pick_account(cluster, "wx-handover", with_report=True)
    (replica,) = cluster.replicas_of(victim)
    guard_url = url_of(victim)
    async with (
        stub_upstream() as stub,
        guard_fleet(
            guard_url, stub.url, tmp_path / "guard.log", workers=2, rules=roomy_rules(tmp_path)
        ) as url,
    ):
        async with Load(url, add_body(account), concurrency=CONCURRENCY) as load:
            await eventually(lambda: load.forwarded_since(0.0) >= BEFORE, what=f"{BEFORE} forwards first")
            async with RoleWatch(replica) as watch:
                began = time.monotonic()
                await asyncio.to_thread(cluster._cli, replica, "cluster", "failover")
                promoted = await eventually(watch.promoted, within=30.0, what="the replica promoted")
                await counting_again(load, promoted)
        answers = load.answers
        check_answers(load, answers)
        assert not [a for a in answers if a.uncounted]
        forwarded = sum(a.forwarded for a in answers)
        refused = sum(a.code == 490010 for a in answers)
        assert stub.count(GEWE_ADD) == forwarded
        # The old master is a replica now, the new one answers the slot.
        assert cluster.master_of(account_tag(account)) == replica

        # A handover loses no acknowledged write: Redis counts exactly what was forwarded, the report has
        # every decision.
        seen: list[int] = []
        try:
            charged = await eventually(
                lambda: charged_equals(url_of(replica), account, forwarded, seen),
                what=f"Redis counting the {forwarded} forwarded adds",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}; Redis counted {seen[-1:]}") from None
        reported: list[Any] = []
        try:
            await eventually(
                lambda: decisions_reported(url, forwarded, refused, reported),
                what="every decision in the report",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}; decisions: allowed {forwarded}, refused {refused}") from None

        during = [a for a in answers if a.sent >= began and a.sent <= promoted]
        first_back = next((a for a in answers if a.sent >= promoted and a.forwarded), None)
        recovered = f"{(first_back.sent - promoted) * 1000:.0f} ms" if first_back else "?"
        summary(
            "handover: during",
            during,
            {"handover took": f"{(promoted - began) * 1000:.0f} ms", "counted again after": recovered},
        )
        summary("handover: all", answers, {"forwarded": forwarded, "charged": charged})


def url_of(port: int) -> str:
    return f"redis://127.0.0.1:{port}/0"


async def test_the_pipelined_cluster_finds_the_promoted_replica_when_its_seed_node_died(
    cluster: ReplicatedCluster,
) -> None:
    """The counters' Cluster client (ratelimit.connection), learnt from the node that then dies, with no
    other traffic: every later call fails while connecting to the dead address — and each such failure reads
    the slot map again, from the other nodes the map named, until it shows the promoted replica."""
    key = account_tag("wx-seed") + ":probe"
    victim = cluster.master_of(key)
    (replica,) = cluster.replicas_of(victim)
    spec = ConnectionSpec.from_url(url_of(victim))
    assert spec is not None
    client = PipelinedCluster(spec, connect_timeout=1.0, timeout=1.0)
    try:
        assert await client.call(key, "SET", key, "1") == b"OK"
        # On the replica before the kill (replication is asynchronous: else it might be lost with the master).
        assert await client.call(key, "WAIT", 1, 10_000) == 1
        await asyncio.to_thread(cluster.kill, victim)

        async def answered() -> bool:
            try:
                return bool(await client.call(key, "GET", key) == b"1")
            except (OSError, ResponseError):
                return False  # refused (the dead master) or CLUSTERDOWN (before the promotion)

        await eventually(answered, what="GET answered by the promoted replica")
        assert cluster.master_of(key, via=replica) == replica
    finally:
        await client.aclose()
