from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis
from servers import RedisCluster, RedisServer
from support import RunningGuard, StubUpstream, running_guard, stub_upstream

from guard.config.settings import Settings

# The suite runs on the engine the design card names and a plain install has (pyahocorasick), although the
# test extras install daachorse (the `fast` extra) for tests/test_rules_engine.py, which compares the two
# on every seed and rule set. `GUARD_SCAN_ENGINE=daachorse bash tests/run.sh` runs it all on daachorse.
os.environ.setdefault("GUARD_SCAN_ENGINE", "pyahocorasick")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server for the whole test session (flushed before each test that asks for `redis_url`)."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
async def redis_url(redis_server: RedisServer) -> AsyncIterator[str]:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        await client.flushall()
    finally:
        await client.aclose()
    yield redis_server.url


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of the test's own, to stop, freeze (SIGSTOP) or restart; never left frozen."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        if server.proc is not None:
            os.kill(server.proc.pid, signal.SIGCONT)
        server.cleanup()


@pytest.fixture(scope="session")
def redis_cluster_server() -> Iterator[RedisCluster]:
    """A real 3-master Redis Cluster for the whole session (started on first use)."""
    cluster = RedisCluster(masters=3).start()
    try:
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture
def redis_cluster(request: pytest.FixtureRequest, redis_cluster_server: RedisCluster) -> str:
    """URL of the session's Redis Cluster, flushed before the test; only for tests marked `cluster`."""
    if request.node.get_closest_marker("cluster") is None:
        raise pytest.UsageError("tests using the redis_cluster fixture must be marked @pytest.mark.cluster")
    redis_cluster_server.flush()
    return redis_cluster_server.url


@pytest.fixture
async def stub() -> AsyncIterator[StubUpstream]:
    """A stand-in upstream (WeCom / GeWe) that counts and keeps what reaches it."""
    async with stub_upstream() as s:
        yield s


@pytest.fixture
async def guard(stub: StubUpstream) -> AsyncIterator[RunningGuard]:
    """A real guard (zero config: shipped rules, in-memory counters) in front of `stub`."""
    async with running_guard(
        Settings(upstream=stub.url, upstreams={"gewe": stub.url}, reload_interval=0)
    ) as g:
        yield g
