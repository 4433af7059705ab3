"""Riding out a Redis restart on the risk side's own client: reconnect and retry a call once.

After a restart every connection the pool kept is dead, and redis-py notices only when a command fails on
one (`ConnectionError: Connection closed by server`); a client made by `Redis.from_url` retries nothing
by itself. So each store method that is safe to repeat says so by going through `once`: on a
`ConnectionError` it drops the pool's idle connections (all from before the restart) and makes the call
once more on a fresh one.

Safe to repeat: every read (XRANGE, XREAD, GET, HGETALL), the writes that set a value (cursors, leases),
and the two scripts made idempotent for it: publishing an alert (`alerts_publish.lua` remembers the
publisher's token with the dedup claim, so a repeat answers the first id) and adding report counts
(`report_add.lua` remembers each writer's last batch number per day). A `TimeoutError` is not retried here:
a hung server would only hang the second call too; the observer's spool retries those later.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

T = TypeVar("T")


async def drop_idle(client: Any) -> None:
    """Close the idle connections of a single-node client's pool (a Cluster client re-discovers its nodes
    by itself after a connection error)."""
    if isinstance(client, Redis):
        with contextlib.suppress(Exception):
            await client.connection_pool.disconnect(inuse_connections=False)


async def once(client: Any, call: Callable[[], Awaitable[T]]) -> T:
    """`call()`, and after a connection error (a restarted server) once more on a fresh connection."""
    try:
        return await call()
    except RedisConnectionError:
        await drop_idle(client)
        return await call()
