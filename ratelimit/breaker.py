"""A small circuit breaker: stop waiting on a dead Redis, and try it again on its own.

closed → (``failures`` consecutive failures) → open: every call fails at once for ``cooldown`` seconds
→ half-open: the next call is let through as a probe (others keep failing fast) → closed on success,
open again on failure. The breaker itself runs no task: the first call after the cooldown is the probe
(RedisStorage also pings Redis in the background while the breaker is open, and closes it on the first
answer). ``on_change`` is told every change of state ("closed", "open", "half-open").

``calls_probe=False``: no call is ever the probe — the breaker stays open, failing every call at once,
until its owner's own probe succeeds (``record_success``). RedisStorage's default breaker: its background
ping finds Redis back within ``PROBE_INTERVAL`` anyway, and a call let through as the probe into a Redis
that still hangs would make its request wait the whole Redis timeout once every cooldown.
"""

from __future__ import annotations

import time
from collections.abc import Callable

STATES = ("closed", "half-open", "open")


class CircuitBreaker:
    def __init__(
        self,
        *,
        failures: int = 3,
        cooldown: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        calls_probe: bool = True,
    ):
        if failures < 1 or cooldown < 0:
            raise ValueError("failures must be >= 1 and cooldown >= 0")
        self.failures = failures
        self.cooldown = cooldown
        self.calls_probe = calls_probe
        self._clock = clock
        self._consecutive = 0
        self._opened_at: float | None = None
        self._probing = False
        self.on_change: Callable[[str], None] | None = None

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if not self.calls_probe:
            return "open"
        if self._probing or self._clock() - self._opened_at >= self.cooldown:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        """May a call go to the storage now? (Claims the probe slot when half-open.)"""
        if self._opened_at is None:
            return True
        if not self.calls_probe or self._probing or self._clock() - self._opened_at < self.cooldown:
            return False
        self._probing = True
        if self.on_change is not None:
            self.on_change("half-open")
        return True

    def record_success(self) -> None:
        was_closed = self._opened_at is None
        self._consecutive = 0
        self._opened_at = None
        self._probing = False
        if not was_closed and self.on_change is not None:
            self.on_change("closed")

    def release(self) -> None:
        """The call ended without an answer either way (e.g. the caller cancelled it): free the probe."""
        self._probing = False

    def record_failure(self) -> None:
        # Tripped from closed, or a failed probe: "open" (again). More failures of calls that were in
        # flight when it opened only restart the cooldown.
        tripped = self._opened_at is None or self._probing
        self._consecutive += 1
        if self._probing or self._consecutive >= self.failures:
            self._opened_at = self._clock()
            if tripped and self.on_change is not None:
                self.on_change("open")
        self._probing = False
