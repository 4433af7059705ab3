"""Where alerts live: a capped Redis Stream shared by every guard process, or an in-memory ring buffer.

Both backends have the same semantics:
- `publish` stores an alert unless one with the same (account, rule, level, window) was stored within
  its dedup lifetime, and returns it with its stream id (`MILLISECONDS-SEQUENCE`, increasing);
- `history` and `read` return alerts strictly after an id, oldest first, so a reader that remembers the
  last id it saw gets every later alert once;
- named cursors remember how far a sink (a webhook) has delivered, so what is not delivered stays
  in the stream and is sent after a restart;
- a lease lets exactly one process of many run a sink.

Every Redis call of `RedisAlertStore` may be repeated, and is, once, after a dropped connection (a
restarted Redis: `guard.risk.reconnect.once`): reads and plain sets are idempotent, and `publish` passes a
token that the dedup claim keeps, so the same publish sent twice stores one entry and answers its id.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

from guard.risk.model import Alert, stream_id_key
from guard.risk.reconnect import once
from ratelimit import Script

DEFAULT_MAXLEN = 100_000
# How long the claim of an alert without dedup (its token's own claim) is kept: it only has to outlive
# the repeats of that one publish.
TOKEN_CLAIM_SECONDS = 3600.0

# Dedup-and-add and the leases are one Lua script each (guard/risk/lua/alerts_*.lua, called by SHA): the
# dedup claim and the XADD must be atomic. All keys share the `{guard:alerts}` hash tag, so the scripts
# also run on a Redis Cluster.
PUBLISH = Script.packaged("guard.risk", "alerts_publish")
LEASE = Script.packaged("guard.risk", "alerts_lease")
RELEASE = Script.packaged("guard.risk", "alerts_release")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _matches(alert: Alert, level: Iterable[str] | None, account: str | None) -> bool:
    if level is not None and alert.level not in level:
        return False
    return account is None or alert.account == account


class AlertStore(ABC):
    """The alert feed. Subclasses: `RedisAlertStore`, `MemoryAlertStore`."""

    backend: str = ""

    @abstractmethod
    async def publish(self, alert: Alert, dedup_ttl: float = 0.0, token: str | None = None) -> Alert | None:
        """Store `alert` and return it with its id, or None when it is a duplicate within `dedup_ttl` s.

        `token` names this publish: calling again with the same token (a retry) stores nothing more and
        answers the same id. Without one, each call is its own publish."""

    @abstractmethod
    async def _after(self, after: str, count: int) -> list[Alert]:
        """Up to `count` alerts with ids strictly greater than `after`, oldest first."""

    @abstractmethod
    async def _newest(self, count: int) -> list[Alert]:
        """The newest `count` alerts, oldest first."""

    @abstractmethod
    async def read(self, after: str, wait: float, count: int = 100) -> list[Alert]:
        """Alerts after `after`, waiting up to `wait` seconds for the first one; [] when none came."""

    @abstractmethod
    async def trimmed_after(self, after: str) -> str | None:
        """When alerts after `after` were dropped by the cap: the id of the newest one dropped; else None."""

    @abstractmethod
    async def last_id(self) -> str:
        """The id of the newest alert, `0-0` when the feed is empty."""

    @abstractmethod
    async def get_cursor(self, name: str) -> str | None: ...

    @abstractmethod
    async def set_cursor(self, name: str, stream_id: str) -> None: ...

    @abstractmethod
    async def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        """Take or renew the lease `name` for `owner`; False while another owner holds it."""

    @abstractmethod
    async def release_lease(self, name: str, owner: str) -> None: ...

    _closed = False

    async def close(self) -> None:
        """Wake every waiting reader; later reads return at once."""
        self._closed = True

    async def history(
        self,
        since: str | None = None,
        level: Iterable[str] | None = None,
        account: str | None = None,
        limit: int = 100,
    ) -> list[Alert]:
        """Filtered alerts, oldest first: the first `limit` after `since`, or the newest `limit`."""
        levels = set(level) if level is not None else None
        if since is None:
            # Newest first, widening the scan until enough alerts pass the filter.
            scan = max(limit, 100)
            while True:
                batch = await self._newest(scan)
                found = [a for a in batch if _matches(a, levels, account)]
                if len(found) >= limit or len(batch) < scan:
                    return found[-limit:] if limit > 0 else []
                scan *= 4
        collected: list[Alert] = []
        cursor = since
        while len(collected) < limit:
            batch = await self._after(cursor, max(limit, 100))
            if not batch:
                break
            collected.extend(a for a in batch if _matches(a, levels, account))
            cursor = batch[-1].id
        return collected[:limit]


class RedisAlertStore(AlertStore):
    """A capped Redis Stream (`XADD MAXLEN ~`), dedup claims with `SET NX PX`, cursors and leases."""

    backend = "redis"

    def __init__(
        self, client: Any, prefix: str = "guard:alerts", maxlen: int = DEFAULT_MAXLEN, block_cap: float = 5.0
    ) -> None:
        self._redis = client
        self._tag = "{" + prefix + "}"
        self.stream_key = f"{self._tag}:stream"
        self.maxlen = maxlen
        # A blocking XREAD holds a connection: bounded so a reader notices a closed store soon.
        self.block_cap = block_cap
        self._closed = False

    def _dedup_key(self, alert: Alert) -> str:
        digest = hashlib.sha1(alert.dedup_key().encode(), usedforsecurity=False).hexdigest()
        return f"{self._tag}:dedup:{digest}"

    async def publish(self, alert: Alert, dedup_ttl: float = 0.0, token: str | None = None) -> Alert | None:
        token = token or uuid.uuid4().hex
        if dedup_ttl > 0:
            claim, ttl_ms = self._dedup_key(alert), max(1, int(dedup_ttl * 1000))
        else:
            # No dedup: the claim is this publish's own, so only its repeats find it.
            claim, ttl_ms = f"{self._tag}:once:{token}", int(TOKEN_CLAIM_SECONDS * 1000)
        keys = [self.stream_key, claim, f"{self._tag}:last"]
        args = [alert.to_json(), str(ttl_ms), str(self.maxlen), token]
        stream_id = await once(self._redis, lambda: PUBLISH(self._redis, keys, args))
        if stream_id is None:
            return None
        return alert.with_id(_text(stream_id))

    @staticmethod
    def _decode(entries: Iterable[Any]) -> list[Alert]:
        alerts: list[Alert] = []
        for raw_id, fields in entries:
            payload = fields.get(b"a", fields.get("a"))
            if payload is None:
                continue
            alerts.append(Alert.from_json(payload, _text(raw_id)))
        return alerts

    async def _after(self, after: str, count: int) -> list[Alert]:
        entries = await once(
            self._redis, lambda: self._redis.xrange(self.stream_key, min=f"({after}", count=count)
        )
        return self._decode(entries)

    async def _newest(self, count: int) -> list[Alert]:
        entries = await once(self._redis, lambda: self._redis.xrevrange(self.stream_key, count=count))
        return list(reversed(self._decode(entries)))

    async def read(self, after: str, wait: float, count: int = 100) -> list[Alert]:
        if self._closed:
            return []
        block_ms = max(1, int(min(wait, self.block_cap) * 1000))
        reply = await once(
            self._redis, lambda: self._redis.xread({self.stream_key: after}, count=count, block=block_ms)
        )
        if not reply:
            return []
        # redis-py answers a list of [stream, entries] (RESP2) or a dict (RESP3).
        if isinstance(reply, dict):
            return self._decode(next(iter(reply.values()))[0])
        return self._decode(reply[0][1])

    async def trimmed_after(self, after: str) -> str | None:
        oldest = await once(self._redis, lambda: self._redis.xrange(self.stream_key, count=1))
        if not oldest:
            return None
        fields = oldest[0][1]
        prev = fields.get(b"p", fields.get("p"))
        if prev is None:
            return None
        prev_id = _text(prev)
        return prev_id if stream_id_key(prev_id) > stream_id_key(after) else None

    async def last_id(self) -> str:
        entries = await once(self._redis, lambda: self._redis.xrevrange(self.stream_key, count=1))
        return _text(entries[0][0]) if entries else "0-0"

    async def get_cursor(self, name: str) -> str | None:
        value = await once(self._redis, lambda: self._redis.get(f"{self._tag}:cursor:{name}"))
        return _text(value) if value is not None else None

    async def set_cursor(self, name: str, stream_id: str) -> None:
        await once(self._redis, lambda: self._redis.set(f"{self._tag}:cursor:{name}", stream_id))

    async def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        keys, args = [f"{self._tag}:lease:{name}"], [owner, str(int(ttl * 1000))]
        return bool(await once(self._redis, lambda: LEASE(self._redis, keys, args)))

    async def release_lease(self, name: str, owner: str) -> None:
        await once(self._redis, lambda: RELEASE(self._redis, [f"{self._tag}:lease:{name}"], [owner]))

    async def close(self) -> None:
        self._closed = True


class MemoryAlertStore(AlertStore):
    """The same feed in one process: a ring buffer of the newest `maxlen` alerts (the embedded default)."""

    backend = "memory"

    def __init__(self, maxlen: int = DEFAULT_MAXLEN, clock: Any = time.time) -> None:
        self._buffer: collections.deque[Alert] = collections.deque(maxlen=maxlen)
        self._dedup: dict[str, float] = {}
        self._cursors: dict[str, str] = {}
        self._leases: dict[str, tuple[str, float]] = {}
        self._changed = asyncio.Condition()
        self._clock = clock
        self._last = (0, 0)
        self._evicted: str | None = None
        self._closed = False

    def _next_id(self) -> str:
        ms = int(self._clock() * 1000)
        last_ms, last_seq = self._last
        self._last = (ms, 0) if ms > last_ms else (last_ms, last_seq + 1)
        return f"{self._last[0]}-{self._last[1]}"

    def _purge(self, now: float) -> None:
        if len(self._dedup) > 1024:
            for key in [k for k, until in self._dedup.items() if until <= now]:
                del self._dedup[key]

    async def publish(self, alert: Alert, dedup_ttl: float = 0.0, token: str | None = None) -> Alert | None:
        now = self._clock()
        if dedup_ttl > 0:
            key = alert.dedup_key()
            if self._dedup.get(key, 0.0) > now:
                return None
            self._purge(now)
            self._dedup[key] = now + dedup_ttl
        stored = alert.with_id(self._next_id())
        if len(self._buffer) == self._buffer.maxlen:
            self._evicted = self._buffer[0].id
        self._buffer.append(stored)
        async with self._changed:
            self._changed.notify_all()
        return stored

    async def _after(self, after: str, count: int) -> list[Alert]:
        key = stream_id_key(after)
        out: list[Alert] = []
        # Newest alerts sit at the right: walk back to the first one after `key`.
        for alert in reversed(self._buffer):
            if stream_id_key(alert.id) <= key:
                break
            out.append(alert)
        out.reverse()
        return out[:count]

    async def _newest(self, count: int) -> list[Alert]:
        return list(self._buffer)[-count:] if count > 0 else []

    async def read(self, after: str, wait: float, count: int = 100) -> list[Alert]:
        found = await self._after(after, count)
        if found or self._closed or wait <= 0:
            return found
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self._closed or self._has_after(after)), wait
                )
            except TimeoutError:
                return []
        return await self._after(after, count)

    def _has_after(self, after: str) -> bool:
        return bool(self._buffer) and stream_id_key(self._buffer[-1].id) > stream_id_key(after)

    async def trimmed_after(self, after: str) -> str | None:
        if self._evicted is None:
            return None
        return self._evicted if stream_id_key(self._evicted) > stream_id_key(after) else None

    async def last_id(self) -> str:
        return self._buffer[-1].id if self._buffer else "0-0"

    async def get_cursor(self, name: str) -> str | None:
        return self._cursors.get(name)

    async def set_cursor(self, name: str, stream_id: str) -> None:
        self._cursors[name] = stream_id

    async def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        now = self._clock()
        holder = self._leases.get(name)
        if holder is None or holder[0] == owner or holder[1] <= now:
            self._leases[name] = (owner, now + ttl)
            return True
        return False

    async def release_lease(self, name: str, owner: str) -> None:
        holder = self._leases.get(name)
        if holder is not None and holder[0] == owner:
            del self._leases[name]

    async def close(self) -> None:
        self._closed = True
        async with self._changed:
            self._changed.notify_all()
