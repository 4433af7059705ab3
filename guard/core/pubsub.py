"""Following a Redis pub/sub channel for the life of the app: the one loop behind the account-overrides
sync and the rules-reload announcements."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("guard.pubsub")


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
    each (re)subscription and whenever `idle` seconds pass without one. A failure is logged and the
    subscription made again a second later; only a cancellation ends the loop. After every Redis call
    the task checks whether it was cancelled (`raise_if_cancelled`), since redis-py may swallow it."""
    while True:
        pubsub = None
        try:
            pubsub = client.pubsub()
            await pubsub.subscribe(channel)
            raise_if_cancelled()
            await handle(None)
            raise_if_cancelled()
            while True:
                msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=idle)
                raise_if_cancelled()
                await handle(msg)
                raise_if_cancelled()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise_if_cancelled()
            log.warning("%s failed: %s; subscribing again", what, exc)
            await asyncio.sleep(1.0)
        finally:
            if pubsub is not None:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
