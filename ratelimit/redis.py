"""Redis counters: each operation is one Lua script run (EVALSHA), on a single node or a Cluster.

Scripts are `.lua` files loaded once per server (SCRIPT LOAD only when Redis answers NOSCRIPT) and
called by SHA. Every key of one account carries the hash tag `{acct:<id>}`, so a script's keys share
one Cluster slot. Every failure (refused connection, timeout, Cluster trouble, open breaker) surfaces
as `StorageUnavailable` within `timeout` seconds.

A single node given by a plain `redis://` URL is spoken to over one auto-pipelined connection
(ratelimit.connection: the hits of one event-loop tick share a socket write; each is still its own
EVALSHA); a Cluster, and URLs that connection does not speak (TLS, Unix sockets), go through redis-py
clients made by `ratelimit.clients.connect`.

`Script` is the one way Lua runs against Redis here, for the counters and for whoever imports it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisClusterException, RedisError
from redis.retry import Retry

from ratelimit.breaker import CircuitBreaker
from ratelimit.clients import RedisTarget, connect, resolve
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
    """A Lua script called by its SHA1 (EVALSHA); SCRIPT LOAD only when the server answers NOSCRIPT (first
    use on that server, or after SCRIPT FLUSH / a restart). Works on a redis-py client (single node or
    Cluster: the keys route it) and on a `PipelinedConnection`."""

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8"), usedforsecurity=False).hexdigest()

    @classmethod
    def packaged(cls, package: str, name: str) -> Script:
        """`<package>/lua/<name>.lua`, read once (package data)."""
        source = resources.files(package).joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")
        return cls(name, source)

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> Script:
        file = Path(path)
        return cls(file.stem, file.read_text(encoding="utf-8"))

    def __repr__(self) -> str:
        return f"Script({self.name!r}, sha={self.sha[:12]})"

    async def __call__(self, client: Client, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        if isinstance(client, PipelinedConnection):
            try:
                return await client.execute("EVALSHA", self.sha, len(keys), *keys, *args)
            except NoScriptError:
                await client.execute("SCRIPT", "LOAD", self.source)
                return await client.execute("EVALSHA", self.sha, len(keys), *keys, *args)
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await client.script_load(self.source)
            return await client.evalsha(self.sha, len(keys), *keys, *args)


HIT = Script.packaged("ratelimit", "hit")
REFUND = Script.packaged("ratelimit", "refund")
READ = Script.packaged("ratelimit", "read")


class RedisStorage:
    name = "redis"

    def __init__(
        self,
        target: RedisTarget,
        *,
        timeout: float = 0.1,
        breaker: CircuitBreaker | None = None,
        max_connections: int = 64,
    ) -> None:
        """Counters at `target`; a target not known to be single node or Cluster is asked (`probe`) on
        first use. A single node reached by plain TCP is spoken to over one pipelined connection.

        `max_connections` bounds the connections (per node on a Cluster) and the operations in flight.
        """
        if timeout <= 0 or max_connections < 1:
            raise ValueError("timeout must be > 0 and max_connections >= 1")
        self._target = target
        self._spec = ConnectionSpec.from_url(target.url)
        self._client: Client | None = None
        self._detect_lock = asyncio.Lock()
        self.timeout = timeout
        self.max_connections = max_connections
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
        """A storage for `url`; `cluster=None` asks the server (INFO cluster) on first use."""
        return cls(
            RedisTarget.from_url(url, cluster=cluster),
            timeout=timeout,
            breaker=breaker,
            max_connections=max_connections,
        )

    @property
    def cluster(self) -> bool | None:
        return self._target.cluster

    def _options(self) -> dict[str, Any]:
        return {
            "socket_timeout": self.timeout,
            "socket_connect_timeout": self.timeout,
            # No hidden retries: the breaker and the caller's policy decide what happens next.
            "retry": Retry(NoBackoff(), 0),
        }

    async def _get_client(self) -> Client:
        client = self._client
        if client is not None and (not isinstance(client, PipelinedConnection) or client.usable):
            return client
        async with self._detect_lock:
            if isinstance(self._client, PipelinedConnection) and not self._client.usable:
                await self._client.aclose()
                self._client = None
            if self._client is None:
                self._target = await resolve(self._target, **self._options())
                if self._spec is not None and not self._target.cluster:
                    self._client = await PipelinedConnection.open(self._spec)
                    return self._client
                made = connect(self._target, max_connections=self.max_connections, **self._options())
                if isinstance(made, RedisCluster):
                    try:
                        # Learn the slot map once, before concurrent first commands race to do it.
                        await made.initialize()
                    except BaseException:
                        await asyncio.shield(made.aclose())
                        raise
                self._client = made
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
        args: list[str | int] = [
            int(plan.request_id is not None),
            *(item.cost for item in plan.items),
            *(item.attempts for item in plan.items),
        ]

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
