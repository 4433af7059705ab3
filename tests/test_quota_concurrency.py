"""No over-admission under real concurrency: 4 OS processes fire 250 hits each at once against a limit
of 5, on a single Redis node and on a 3-master Redis Cluster. Exactly 5 are admitted."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as ClusterClient

from ratelimit.storage import counter_key

PROCESSES = 4
HITS_PER_PROCESS = 250
LIMIT = 5

# One guard process: connect, wait for the common start time, fire every hit concurrently, report.
WORKER = r"""
import asyncio, json, sys, time
from ratelimit import Charge, Limiter, RedisStorage, Rule, StorageUnavailable

url, cluster = sys.argv[1], sys.argv[2] == "1"
hits, start_at, limit = int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])

async def main():
    storage = RedisStorage.from_url(url, cluster=cluster, timeout=10.0)
    limiter = Limiter(storage)
    rule = Rule("add_friend.active", "day", limit, warn_at=limit - 1, alert_over=10)
    try:
        assert await storage.ping()
        await limiter.usage("contended", [rule])  # scripts loaded, slots known, before the race
        await asyncio.sleep(max(0.0, start_at - time.time()))
        results = await asyncio.gather(
            *(limiter.hit("contended", [Charge(rule)]) for _ in range(hits)), return_exceptions=True
        )
    finally:
        await limiter.aclose()
    errors = [repr(r) for r in results if isinstance(r, BaseException)]
    ok = [r for r in results if not isinstance(r, BaseException)]
    print(json.dumps({
        "allowed": sum(r.allowed for r in ok),
        "refused": sum(not r.allowed for r in ok),
        "errors": errors[:3],
        "crossed": [t for r in ok for o in r.outcomes for t in o.crossed],
        "used": sorted(r.outcomes[0].used for r in ok if r.allowed),
    }))

asyncio.run(main())
"""


def run_workers(url: str, cluster: bool) -> list[dict[str, object]]:
    start_at = time.time() + 3.0  # every process is connected and waiting by then
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                url,
                "1" if cluster else "0",
                str(HITS_PER_PROCESS),
                str(start_at),
                str(LIMIT),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        reports.append(json.loads(out))
    return reports


async def check(reports: list[dict[str, object]], client: aioredis.Redis | ClusterClient) -> None:
    assert [r["errors"] for r in reports] == [[]] * PROCESSES
    assert sum(int(r["allowed"]) for r in reports) == LIMIT  # type: ignore[call-overload]
    assert sum(int(r["refused"]) for r in reports) == PROCESSES * HITS_PER_PROCESS - LIMIT  # type: ignore[call-overload]
    # Each admitted hit saw a distinct count 1..5: no two processes were admitted on the same slot.
    assert sorted(u for r in reports for u in r["used"]) == list(range(1, LIMIT + 1))  # type: ignore[attr-defined]
    crossed = sorted(t for r in reports for t in r["crossed"])  # type: ignore[attr-defined]
    assert crossed == ["alert_over", "limit", "warn"]  # each exactly once across all processes
    keys = (
        await client.keys("*")
        if not isinstance(client, ClusterClient)
        else await client.keys("*", target_nodes=ClusterClient.PRIMARIES)
    )
    (key,) = [k.decode() for k in keys if b":q:" in k]
    assert key.startswith(counter_key("contended", "add_friend.active", "day", 0).rsplit(":", 1)[0])
    used, attempts = await client.hmget(key, ["u", "a"])
    assert (int(used), int(attempts)) == (LIMIT, PROCESSES * HITS_PER_PROCESS)
    assert await client.ttl(key) > 0


@pytest.mark.slow
async def test_four_processes_single_node_admit_exactly_the_limit(redis_url: str) -> None:
    reports = run_workers(redis_url, cluster=False)
    client = aioredis.Redis.from_url(redis_url)
    try:
        await check(reports, client)
    finally:
        await client.aclose()


@pytest.mark.slow
@pytest.mark.cluster
async def test_four_processes_cluster_admit_exactly_the_limit(redis_cluster: str) -> None:
    reports = run_workers(redis_cluster, cluster=True)
    client = ClusterClient.from_url(redis_cluster)
    try:
        await check(reports, client)
    finally:
        await client.aclose()
