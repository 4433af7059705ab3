"""The one way to make a redis-py client: where (`RedisTarget`), single node or Cluster (`probe`), and
`connect`.

A target is a URL plus whether it is a Cluster: `redis://` (TCP), `rediss://` (TLS) or `unix:///path`
(a Unix socket, single node only). `cluster=None` means not known yet: `probe` asks the server once
(`INFO cluster`) and `resolve` returns the target with the answer, so a process asks once at start and
hands the known target to everything that connects. `connect` makes a `redis.asyncio.Redis` or a
`RedisCluster` for a known target; every timeout, pool size and retry policy is the caller's choice
(left out: redis-py's default).

A Redis restart must not cost the first command of every pooled connection: a pooled connection whose
server closed it is opened again when it is taken from the pool, before a command is written on it. (redis-py
skips that check while its "maintenance notifications" are on, which they are by default: `connect` turns
them off — they are a Redis Enterprise feature the guard does not use.) Nothing is retried after a command
was written, unless the caller's `retry` says so: whether that is safe depends on the command.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.maint_notifications import MaintNotificationsConfig
from redis.retry import Retry

SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True)
class RedisTarget:
    """Where Redis is: `url`, and `cluster` (True / False, or None while not known)."""

    url: str
    cluster: bool | None = None

    def __post_init__(self) -> None:
        scheme = urlsplit(self.url).scheme
        if scheme not in SCHEMES:
            raise ValueError(
                f"a Redis URL starts with redis://, rediss:// or unix://, not {scheme or '?'}://"
            )
        if scheme == "unix" and self.cluster:
            raise ValueError("a Redis Cluster is not reached over a Unix socket")

    @classmethod
    def from_url(cls, url: str, *, cluster: bool | None = None) -> RedisTarget:
        return cls(url, cluster)

    def known(self, cluster: bool) -> RedisTarget:
        """This target with the answer to "is it a Cluster?"."""
        return replace(self, cluster=cluster)

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "rediss"

    @property
    def unix(self) -> bool:
        return urlsplit(self.url).scheme == "unix"

    def __repr__(self) -> str:
        # Never show the password of the URL (logs, test reports).
        parts = urlsplit(self.url)
        url = self.url
        if parts.password is not None:
            host = parts.hostname or ""
            if parts.port is not None:
                host = f"{host}:{parts.port}"
            user = f"{parts.username}:***@" if parts.username else "***@"
            url = urlunsplit(parts._replace(netloc=user + host))
        return f"RedisTarget({url!r}, cluster={self.cluster})"


def _options(
    socket_timeout: float | None,
    socket_connect_timeout: float | None,
    max_connections: int | None,
    retry: Retry | None,
) -> dict[str, Any]:
    given = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_connect_timeout,
        "max_connections": max_connections,
        "retry": retry,
    }
    return {name: value for name, value in given.items() if value is not None}


def connect(
    target: RedisTarget,
    *,
    socket_timeout: float | None = None,
    socket_connect_timeout: float | None = None,
    max_connections: int | None = None,
    retry: Retry | None = None,
) -> Redis | RedisCluster:
    """A client for `target` (which must be known: see `resolve`). No connection is opened yet.

    An option left at None is redis-py's default; `max_connections` is per node on a Cluster.
    """
    if target.cluster is None:
        raise ValueError(f"{target!r}: single node or Cluster is not known yet; resolve the target first")
    options = _options(socket_timeout, socket_connect_timeout, max_connections, retry)
    # See the module docstring: a connection the server closed is noticed before it is used.
    options["maint_notifications_config"] = MaintNotificationsConfig(enabled=False)
    if target.cluster:
        return RedisCluster.from_url(target.url, **options)
    return Redis.from_url(target.url, **options)


async def probe(
    target: RedisTarget,
    *,
    socket_timeout: float | None = None,
    socket_connect_timeout: float | None = None,
    retry: Retry | None = None,
) -> bool:
    """Ask the server once (`INFO cluster`, over a connection of its own) whether it is a Cluster node.
    Failures (unreachable, timeout) are raised as redis-py raises them."""
    client = Redis.from_url(target.url, **_options(socket_timeout, socket_connect_timeout, None, retry))
    try:
        info = await client.info("cluster")
    finally:
        await client.aclose()
    return bool(int(info.get("cluster_enabled", 0)))


async def resolve(
    target: RedisTarget,
    *,
    socket_timeout: float | None = None,
    socket_connect_timeout: float | None = None,
    retry: Retry | None = None,
) -> RedisTarget:
    """`target` itself when it is known, else with the server's answer (`probe`)."""
    if target.cluster is not None:
        return target
    answer = await probe(
        target, socket_timeout=socket_timeout, socket_connect_timeout=socket_connect_timeout, retry=retry
    )
    return target.known(answer)
