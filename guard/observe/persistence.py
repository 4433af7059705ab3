"""Does the Redis in use keep its data across a restart?

The guard keeps in Redis what must outlive any one guard process: the day's counters, account freezes
and recoveries, the alert stream and its dedup claims. A Redis with neither an append-only file nor RDB
snapshots forgets all of it when it restarts: the day's limits start again from zero (a fault probe let
8 adds through against a limit of 5), frozen accounts are unfrozen, the alert history is empty. The
guard cannot prevent that; it says so — at start (`guard serve` logs a warning) and in `/readyz`
(`redis_persistence`, a warning, not a failure: such a Redis still counts correctly while it runs).

How it asks: `CONFIG GET appendonly` and `CONFIG GET save` (persisting nothing = `appendonly no` and an
empty `save`); where CONFIG is disabled (managed services rename it), `INFO persistence` (`aof_enabled`,
and whether any RDB snapshot was taken since start). On a Cluster every primary is asked.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

# How long one answer is kept: /readyz is polled every few seconds by load balancers.
CACHE_SECONDS = 30.0
_cache: weakref.WeakKeyDictionary[Any, tuple[float, dict[str, Any]]] = weakref.WeakKeyDictionary()

WARNING = (
    "Redis persists nothing (no append-only file, no RDB snapshots): a Redis restart resets today's "
    "counters, unfreezes frozen accounts and empties the alert history; enable appendonly (or save)"
)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(reply: Any) -> dict[str, str]:
    """A CONFIG GET reply as {name: value}, whatever shape the client parsed it into."""
    if isinstance(reply, dict):
        return {_text(k): _text(v) for k, v in reply.items()}
    items = list(reply or [])
    return {_text(items[i]): _text(items[i + 1]) for i in range(0, len(items) - 1, 2)}


async def _node_persistence(node: Any) -> dict[str, Any]:
    """One node: {"persistent": True | False | None (cannot tell), "source", "appendonly", "save"}."""
    try:
        appendonly = _pairs(await node.execute_command("CONFIG", "GET", "appendonly")).get("appendonly")
        save = _pairs(await node.execute_command("CONFIG", "GET", "save")).get("save")
    except Exception:
        appendonly = save = None
    if appendonly is not None and save is not None:
        return {
            "persistent": appendonly.lower() == "yes" or bool(save.strip()),
            "source": "config",
            "appendonly": appendonly,
            "save": save,
        }
    # CONFIG is disabled: what INFO shows. An AOF is certain; RDB save points are not listed there, so a
    # snapshot taken since start is the only sign of them.
    raw = await node.execute_command("INFO", "persistence")
    if isinstance(raw, dict):
        info = {_text(k): _text(v) for k, v in raw.items()}
    else:
        lines = (line.partition(":") for line in _text(raw).splitlines())
        info = {name.strip(): value.strip() for name, sep, value in lines if sep}
    aof = info.get("aof_enabled") == "1"
    snapshots = int(info.get("rdb_saves", "0") or 0) > 0 or info.get("rdb_bgsave_in_progress") == "1"
    return {
        "persistent": True if aof or snapshots else None,
        "source": "info",
        "appendonly": "yes" if aof else "no",
        "save": None,
    }


async def redis_persistence(client: Redis | RedisCluster | None, within: float = 1.0) -> dict[str, Any]:
    """Whether the Redis behind `client` persists its data: {"persistent": True | False | None (cannot
    tell), "warning": str | None, "nodes": [...]}; None when the guard uses no Redis. Answers are kept
    for CACHE_SECONDS; a Redis that does not answer `within` seconds gives `persistent: None`."""
    if client is None:
        return {"persistent": None, "warning": None, "nodes": []}
    now = time.monotonic()
    cached = _cache.get(client)
    if cached is not None and now - cached[0] < CACHE_SECONDS:
        return cached[1]
    try:
        async with asyncio.timeout(within):
            if isinstance(client, RedisCluster):
                await client.initialize()
                nodes = [await _node_persistence(node) for node in client.get_primaries()]
            else:
                nodes = [await _node_persistence(client)]
    except Exception as exc:
        # Not cached: Redis being unreachable is /readyz's own finding; ask again next time.
        return {"persistent": None, "warning": None, "nodes": [], "error": type(exc).__name__}
    if any(n["persistent"] is False for n in nodes):
        persistent: bool | None = False
        warning: str | None = WARNING
    elif all(n["persistent"] for n in nodes):
        persistent, warning = True, None
    else:
        persistent = None
        warning = (
            "cannot tell whether Redis persists its data (CONFIG is disabled and INFO shows no "
            "append-only file and no snapshot since start): without persistence a Redis restart resets "
            "today's counters, unfreezes frozen accounts and empties the alert history"
        )
    result = {"persistent": persistent, "warning": warning, "nodes": nodes}
    _cache[client] = (now, result)
    return result
