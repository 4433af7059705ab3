"""Rules reloads of a running guard: the one `reload_rules` behind the file watch, SIGHUP,
`POST /v1/rules/reload` and the announcements of the other guard processes on Redis pub/sub.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import web

from guard.core.pubsub import follow_channel
from guard.http.keys import BUNDLE, METRICS, PROCESS_TOKEN, REDIS, RELOAD_NOW, SETTINGS
from guard.http.notify import notify_system

log = logging.getLogger("guard.reload")

RELOAD_CHANNEL = "siyu-guard:rules:reload"


async def reload_rules(app: web.Application, why: str, *, publish: bool = False) -> bool:
    """Reload the rules bundle of this process; tell the observers when it fails, the other processes
    when asked to (`publish`)."""
    store = app[BUNDLE]
    metrics = app[METRICS]
    ok = await store.reload()
    metrics.rules_reloads.inc("ok" if ok else "error")
    if ok:
        metrics.rules_version.clear()
        metrics.rules_version.set(1, store.version)
        log.info("rules reloaded (%s): version %s", why, store.version)
    else:
        await notify_system(
            app,
            "rules_reload_failed",
            f"rules reload failed; still serving version {store.version}",
            {"error": store.last_error or "", "trigger": why},
        )
    client = app[REDIS]
    if publish and client is not None:
        try:
            await client.publish(RELOAD_CHANNEL, app[PROCESS_TOKEN])
        except Exception as exc:
            log.warning("could not announce the reload to the other guard processes: %s", exc)
    return ok


async def watch_rules(app: web.Application) -> None:
    """Reload when a file under the rules directory changes (polling), or when asked (RELOAD_NOW)."""
    settings = app[SETTINGS]
    event = app[RELOAD_NOW]
    interval = settings.reload_interval if settings.reload_interval > 0 else None
    while True:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval):
                await event.wait()
        if event.is_set():
            event.clear()
            await reload_rules(app, "signal")
        elif await app[BUNDLE].changed():
            await reload_rules(app, "file change")


async def listen_reloads(app: web.Application) -> None:
    """Reload when another guard process announces a reload on Redis pub/sub."""

    async def announced(msg: dict[str, Any] | None) -> None:
        if msg is None:
            return
        data = msg.get("data")
        sender = data.decode() if isinstance(data, bytes) else str(data)
        if sender != app[PROCESS_TOKEN]:
            await reload_rules(app, "announced by another process")

    await follow_channel(app[REDIS], RELOAD_CHANNEL, announced, idle=5.0, what="rules reload channel")
