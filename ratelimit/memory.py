"""The embedded default: the scripts' semantics in one process, no Redis.

Each method runs to completion without awaiting, so it is atomic under asyncio; a lock also makes it
safe when several threads share one storage. Expiry follows the limiter's clock (`plan.now`), so
tests that move the clock see windows expire exactly as Redis keys would.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from ratelimit.storage import (
    ALERT_OVER,
    LIMIT,
    STATUS_DONE,
    STATUS_DUPLICATE,
    STATUS_FROZEN,
    WARN,
    HitPlan,
    RawHit,
    RawRead,
    RawRule,
    ReadPlan,
    RefundPlan,
    encode_numbers,
    frozen_key,
    request_key,
)


@dataclass
class _Counter:
    used: int = 0
    attempts: int = 0
    flags: int = 0
    expires_at: float = 0.0


@dataclass
class MemoryStorage:
    name: str = "memory"
    _counters: dict[str, _Counter] = field(default_factory=dict)
    _records: dict[str, tuple[str, str, float]] = field(default_factory=dict)
    _frozen: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _last_sweep: float = 0.0

    def _sweep(self, now: float) -> None:
        # Drop expired windows at most once a minute of clock time, so memory stays bounded.
        if now - self._last_sweep < 60:
            return
        self._last_sweep = now
        for key in [k for k, c in self._counters.items() if c.expires_at <= now]:
            del self._counters[key]
        for key in [k for k, r in self._records.items() if r[2] <= now]:
            del self._records[key]

    def _counter(self, key: str, now: float) -> _Counter | None:
        counter = self._counters.get(key)
        if counter is not None and counter.expires_at <= now:
            del self._counters[key]
            return None
        return counter

    def __len__(self) -> int:
        """Live keys (counters, request records, frozen switches), as Redis would count them."""
        return len(self._counters) + len(self._records) + len(self._frozen)

    def expires_at(self, key: str) -> float | None:
        """When a counter key expires (by the limiter's clock), or None if there is no such key."""
        counter = self._counters.get(key)
        return counter.expires_at if counter is not None else None

    async def hit(self, plan: HitPlan) -> RawHit:
        with self._lock:
            return self._hit(plan)

    def _hit(self, plan: HitPlan) -> RawHit:
        now = plan.now
        self._sweep(now)
        rkey = request_key(plan.account, plan.request_id, plan.day_end)
        if frozen_key(plan.account) in self._frozen:
            return RawHit(STATUS_FROZEN, False)
        if plan.request_id is not None:
            record = self._records.get(rkey)
            if record is not None and record[2] > now:
                return RawHit(STATUS_DUPLICATE, False, descriptor=record[0], numbers=record[1])

        current = [self._counter(key, now) for key in plan.keys]
        passes = [
            (c.used if c else 0) + item.cost <= item.limit
            for c, item in zip(current, plan.items, strict=True)
        ]
        allowed = all(ok or not item.enforce for ok, item in zip(passes, plan.items, strict=True))

        rules: list[RawRule] = []
        for key, counter, item, ok in zip(plan.keys, current, plan.items, passes, strict=True):
            used = counter.used if counter else 0
            attempts = counter.attempts if counter else 0
            flags = counter.flags if counter else 0
            new_used = used + item.cost if allowed else used
            new_attempts = attempts + item.cost
            crossed = 0
            if item.warn_at >= 0 and new_used >= item.warn_at and not flags & WARN and allowed:
                crossed |= WARN
            if not ok and not flags & LIMIT:
                crossed |= LIMIT
            if item.alert_over >= 0 and new_attempts > item.alert_over and not flags & ALERT_OVER:
                crossed |= ALERT_OVER
            if not plan.dry_run:
                if counter is None:
                    counter = self._counters[key] = _Counter(expires_at=now + item.ttl)
                counter.used = new_used
                counter.attempts = new_attempts
                counter.flags = flags | crossed
            rules.append(RawRule(new_used, new_attempts, crossed, ok))

        result = tuple(rules)
        if plan.request_id is not None and not plan.dry_run:
            self._records[rkey] = (plan.descriptor, encode_numbers(allowed, result), now + plan.request_ttl)
        return RawHit(STATUS_DONE, allowed, result)

    async def refund(self, plan: RefundPlan) -> bool:
        with self._lock:
            if plan.request_id is not None:
                record = self._records.pop(request_key(plan.account, plan.request_id, plan.day_end), None)
                if record is None or record[2] <= plan.now:
                    return False
            for item in plan.items:
                counter = self._counter(item.key, plan.now)
                if counter is not None:
                    counter.used = max(0, counter.used - item.cost)
                    counter.attempts = max(0, counter.attempts - item.attempts)
            return True

    async def read(self, plan: ReadPlan) -> RawRead:
        with self._lock:
            counts = []
            for key in plan.keys:
                counter = self._counter(key, plan.now)
                counts.append((counter.used, counter.attempts) if counter else (0, 0))
            return RawRead(frozen_key(plan.account) in self._frozen, tuple(counts))

    async def set_frozen(self, account: str, frozen: bool) -> None:
        with self._lock:
            if frozen:
                self._frozen.add(frozen_key(account))
            else:
                self._frozen.discard(frozen_key(account))

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None
