"""Redis counters: each operation is one Lua script run (EVALSHA), on a single node or a Cluster.

Scripts are `.lua` files loaded once per server (SCRIPT LOAD only when Redis answers NOSCRIPT) and
called by SHA. Every key of one account carries the hash tag `{acct:<id>}`, so a script's keys share
one Cluster slot. Every failure (refused connection, timeout, Cluster trouble, open breaker) surfaces
as `StorageUnavailable` within `timeout` seconds.

A single node given by a plain `redis://` URL is spoken to over one auto-pipelined connection
(ratelimit.connection: the hits of one event-loop tick share a socket write; each is still its own
EVALSHA); a Cluster, and URLs that connection does not speak (TLS, Unix sockets), go through redis-py.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisClusterException, RedisError
from redis.retry import Retry

from ratelimit.breaker import CircuitBreaker
from ratelimit.connection import ConnectionSpec, PipelinedConnection
from ratelimit.storage import (
    STATUS_DUPLICATE,
    HitPlan,
    RawHit,
    RawRead,
    RawRule,
    ReadPlan,
    RefundPlan,
    frozen_key,
    request_key,
)
from ratelimit.types import StorageUnavailable

T = TypeVar("T")
Client = Redis | RedisCluster | PipelinedConnection

_FAILURES = (RedisError, RedisClusterException, OSError, TimeoutError)


class Script:
    """A Lua file of this package, called by its SHA1."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.source = resources.files("ratelimit").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")
        self.sha = hashlib.sha1(self.source.encode("utf-8")).hexdigest()

    async def __call__(self, client: Client, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        if isinstance(client, PipelinedConnection):
            try:
                return await client.execute("EVALSHA", self.sha, len(keys), *keys, *args)
            except NoScriptError:
                # First use on this server (or after SCRIPT FLUSH / a restart): load once, then by SHA.
                await client.execute("SCRIPT", "LOAD", self.source)
                return await client.execute("EVALSHA", self.sha, len(keys), *keys, *args)
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await client.script_load(self.source)
            return await client.evalsha(self.sha, len(keys), *keys, *args)


HIT = Script("hit")
REFUND = Script("refund")
READ = Script("read")


class RedisStorage:
    name = "redis"

    def __init__(
        self,
        connect: Callable[[bool], Redis | RedisCluster],
        *,
        cluster: bool | None = None,
        timeout: float = 0.1,
        breaker: CircuitBreaker | None = None,
        max_connections: int = 64,
        spec: ConnectionSpec | None = None,
    ) -> None:
        """`connect(as_cluster)` makes a redis-py client; with a `spec` a single node is spoken to over
        one pipelined connection instead (a Cluster still goes through `connect`)."""
        if timeout <= 0 or max_connections < 1:
            raise ValueError("timeout must be > 0 and max_connections >= 1")
        self._connect = connect
        self._spec = spec
        self._cluster = cluster
        self._client: Client | None = None
        self._detect_lock = asyncio.Lock()
        self.timeout = timeout
        self.breaker = breaker or CircuitBreaker()
        # Operations beyond the connection pool wait here (within the timeout) instead of failing
        # with "too many connections" the moment a burst exceeds the pool.
        self._slots = asyncio.Semaphore(max_connections)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        cluster: bool | None = None,
        timeout: float = 0.1,
        breaker: CircuitBreaker | None = None,
        max_connections: int = 64,
    ) -> RedisStorage:
        """A storage for `url`; `cluster=None` asks the server (INFO cluster) on first use.

        `max_connections` bounds the connections (per node on a Cluster) and the operations in flight.
        """

        def connect(as_cluster: bool) -> Redis | RedisCluster:
            options: dict[str, Any] = {
                "socket_timeout": timeout,
                "socket_connect_timeout": timeout,
                # No hidden retries: the breaker and the caller's policy decide what happens next.
                "retry": Retry(NoBackoff(), 0),
                "max_connections": max_connections,
            }
            if as_cluster:
                return RedisCluster.from_url(url, **options)
            return Redis.from_url(url, **options)

        return cls(
            connect,
            cluster=cluster,
            timeout=timeout,
            breaker=breaker,
            max_connections=max_connections,
            spec=ConnectionSpec.from_url(url),
        )

    @property
    def cluster(self) -> bool | None:
        return self._cluster

    async def _get_client(self) -> Client:
        client = self._client
        if client is not None and (not isinstance(client, PipelinedConnection) or client.usable):
            return client
        async with self._detect_lock:
            if isinstance(self._client, PipelinedConnection) and not self._client.usable:
                await self._client.aclose()
                self._client = None
            if self._client is None:
                if self._spec is not None and not self._cluster:
                    conn = await PipelinedConnection.open(self._spec)
                    if self._cluster is None:
                        try:
                            section = _text(await conn.execute("INFO", "cluster"))
                        except BaseException:
                            await asyncio.shield(conn.aclose())
                            raise
                        self._cluster = "cluster_enabled:1" in section
                    if not self._cluster:
                        self._client = conn
                        return conn
                    await conn.aclose()
                if self._cluster is None:
                    probe = self._connect(False)
                    try:
                        info = await probe.info("cluster")
                    finally:
                        await probe.aclose()
                    self._cluster = bool(info.get("cluster_enabled"))
                client = self._connect(self._cluster)
                if isinstance(client, RedisCluster):
                    try:
                        # Learn the slot map once, before concurrent first commands race to do it.
                        await client.initialize()
                    except BaseException:
                        await asyncio.shield(client.aclose())
                        raise
                self._client = client
            return self._client

    async def _run(self, what: str, operation: Callable[[Client], Awaitable[T]]) -> T:
        if not self.breaker.allow():
            raise StorageUnavailable(self.name, f"{what}: circuit open after repeated failures")
        try:
            async with asyncio.timeout(self.timeout), self._slots:
                result = await operation(await self._get_client())
        except _FAILURES as exc:
            self.breaker.record_failure()
            timed_out = isinstance(exc, TimeoutError)
            if timed_out and isinstance(self._client, PipelinedConnection):
                # Never wait on a hung server twice: the next command connects again.
                self._client.abort(exc)
            reason = "timed out" if timed_out else f"{type(exc).__name__}: {exc}"
            raise StorageUnavailable(self.name, f"{what}: {reason}") from exc
        except BaseException:
            # Cancelled by the caller: says nothing about Redis.
            self.breaker.release()
            raise
        self.breaker.record_success()
        return result

    async def hit(self, plan: HitPlan) -> RawHit:
        keys = [frozen_key(plan.account), request_key(plan.account, plan.request_id, plan.day_end)]
        args: list[str | int] = [
            int(plan.dry_run),
            int(plan.request_id is not None),
            plan.request_ttl,
            plan.descriptor,
        ]
        for item in plan.items:
            keys.append(item.key)
            args.append(
                f"{item.limit}:{item.warn_at}:{item.alert_over}:{int(item.enforce)}:{item.cost}:{item.ttl}"
            )

        async def run(client: Client) -> Any:
            return await HIT(client, keys, args)

        reply = await self._run("hit", run)
        status = int(reply[0])
        if status == STATUS_DUPLICATE:
            return RawHit(status, False, descriptor=_text(reply[1]), numbers=_text(reply[2]))
        values = [int(v) for v in reply[2:]]
        rules = tuple(
            RawRule(values[i], values[i + 1], values[i + 2], bool(values[i + 3]))
            for i in range(0, len(values), 4)
        )
        return RawHit(status, bool(int(reply[1])), rules)

    async def refund(self, plan: RefundPlan) -> bool:
        keys = [request_key(plan.account, plan.request_id, plan.day_end), *(item.key for item in plan.items)]
        args: list[str | int] = [int(plan.request_id is not None), *(item.cost for item in plan.items)]

        async def run(client: Client) -> Any:
            return await REFUND(client, keys, args)

        return bool(int(await self._run("refund", run)))

    async def read(self, plan: ReadPlan) -> RawRead:
        keys = [frozen_key(plan.account), *plan.keys]

        async def run(client: Client) -> Any:
            return await READ(client, keys, [])

        reply = [int(v) for v in await self._run("read", run)]
        counts = tuple((reply[i], reply[i + 1]) for i in range(1, len(reply), 2))
        return RawRead(bool(reply[0]), counts)

    async def set_frozen(self, account: str, frozen: bool) -> None:
        key = frozen_key(account)

        async def run(client: Client) -> Any:
            # The switch has no expiry on purpose: a freeze lasts until someone lifts it.
            if isinstance(client, PipelinedConnection):
                return await (client.execute("SET", key, b"1") if frozen else client.execute("DEL", key))
            return await (client.set(key, b"1") if frozen else client.delete(key))

        await self._run("freeze" if frozen else "unfreeze", run)

    async def ping(self) -> bool:
        """True when Redis answers within the timeout (for readiness probes); never raises."""

        async def run(client: Client) -> Any:
            if isinstance(client, PipelinedConnection):
                return await client.execute("PING")
            return await client.ping()

        try:
            return bool(await self._run("ping", run))
        except StorageUnavailable:
            return False

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
