"""Following a Redis pub/sub channel for the life of the app: the one loop behind the account-overrides
sync and the rules-reload announcements."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("guard.pubsub")

# After a failure the subscription is made again after RETRY_FIRST seconds, doubling up to RETRY_MAX
# while it keeps failing; back to RETRY_FIRST once a subscription has held.
RETRY_FIRST = 1.0
RETRY_MAX = 30.0
# While subscriptions keep failing, one reminder line at most this often (the first failure is one line).
REMINDER_EVERY = 60.0


class _Outage:
    """The process's pub/sub failures, shared by every channel it follows, so an unreachable Redis gives
    one clear line (and a reminder a minute), not one line per channel per retry."""

    def __init__(self) -> None:
        self.failing: dict[str, float] = {}  # what -> when it started failing (monotonic)
        self.reminded = 0.0

    def failed(self, what: str, exc: BaseException) -> None:
        now = time.monotonic()
        first = not self.failing
        self.failing.setdefault(what, now)
        if first:
            self.reminded = now
            log.warning(
                "Redis pub/sub unreachable (%s): %s; retrying quietly (backoff up to %.0f s, a reminder "
                "every %.0f s)",
                what,
                exc,
                RETRY_MAX,
                REMINDER_EVERY,
            )
        elif now - self.reminded >= REMINDER_EVERY:
            self.reminded = now
            log.warning(
                "Redis pub/sub still unreachable after %.0f s (%s): %s; still retrying",
                now - min(self.failing.values()),
                ", ".join(sorted(self.failing)),
                exc,
            )
        else:
            log.debug("%s failed again: %s", what, exc)

    def recovered(self, what: str) -> None:
        since = self.failing.pop(what, None)
        if since is not None:
            log.info("%s subscribed again after %.0f s", what, time.monotonic() - since)

    def gone(self, what: str) -> None:
        self.failing.pop(what, None)


_outage = _Outage()


def raise_if_cancelled() -> None:
    """Raise CancelledError when the current task has been asked to stop — for a task whose awaits go
    through a library that may swallow the CancelledError (redis-py's pub/sub reads with a timeout turn a
    cancellation that lands as the timeout fires into "no message"). `Task.cancelling()` stays above zero
    until someone un-cancels, which only `asyncio.timeout` does, and only for the cancellation it made."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def follow_channel(
    client: Any,
    channel: str,
    handle: Callable[[dict[str, Any] | None], Awaitable[None]],
    *,
    idle: float,
    what: str,
) -> None:
    """Subscribe to `channel` and call `handle(message)` for every message, and `handle(None)` right after
    each (re)subscription and whenever `idle` seconds pass without one. A failure is logged once (shared
    with the other channels: see `_Outage`) and the subscription made again after a backoff (1 s doubling
    to 30 s, reset once a subscription holds); only a cancellation ends the loop. After every Redis call
    the task checks whether it was cancelled (`raise_if_cancelled`), since redis-py may swallow it."""
    delay = RETRY_FIRST
    try:
        while True:
            pubsub = None
            try:
                pubsub = client.pubsub()
                await pubsub.subscribe(channel)
                raise_if_cancelled()
                await handle(None)
                raise_if_cancelled()
                delay = RETRY_FIRST
                _outage.recovered(what)
                while True:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=idle)
                    raise_if_cancelled()
                    await handle(msg)
                    raise_if_cancelled()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                raise_if_cancelled()
                _outage.failed(what, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()
    finally:
        _outage.gone(what)
