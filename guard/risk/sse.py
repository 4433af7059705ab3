"""The live alert feed as Server-Sent Events.

Each event's id is the alert's stream id. A reader that reconnects with `Last-Event-ID` (the header
browsers send by themselves, or the `last_event_id` query parameter) continues strictly after that id:
it gets every alert it missed and none twice, as long as the alert is still in the capped stream.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable

from aiohttp import web

from guard.risk.model import Alert, valid_stream_id
from guard.risk.store import AlertStore

HEARTBEAT_SECONDS = 15.0
RETRY_MS = 2000


def sse_event(alert: Alert) -> bytes:
    # JSON has no raw newlines, so the data fits one `data:` line.
    return f"id: {alert.id}\nevent: alert\ndata: {alert.to_json()}\n\n".encode()


def resume_point(request: web.Request) -> str | None:
    """Where the reader wants to continue: Last-Event-ID header, else `last_event_id` / `since` query."""
    for value in (
        request.headers.get("Last-Event-ID"),
        request.query.get("last_event_id"),
        request.query.get("since"),
    ):
        if value:
            if not valid_stream_id(value):
                raise web.HTTPBadRequest(
                    text=f"Last-Event-ID must be a stream id such as 1700000000000-0, got {value[:40]!r}"
                )
            return value
    return None


async def _start(
    response: web.StreamResponse, store: AlertStore, cursor: str | None, stopping: asyncio.Event | None
) -> str | None:
    """Where the stream starts (the reader's id, else now), once the store answers; writes the preamble
    and a `gap` event when alerts after the reader's id were trimmed. None: the app is stopping."""
    gap = None
    head = f"retry: {RETRY_MS}\n"
    while True:
        try:
            if cursor is None:
                cursor = await store.last_id()
            else:
                gap = await store.trimmed_after(cursor)
            break
        except Exception as exc:  # the store (Redis) unreachable: keep the reader, say so, try again
            if stopping is not None and stopping.is_set():
                return None
            await response.write(
                f"{head}: alert store unavailable ({type(exc).__name__}); retrying\n\n".encode()
            )
            head = ""
            await asyncio.sleep(1.0)
    await response.write(f"{head}: stream from {cursor}\n\n".encode())
    if gap is not None:
        # Alerts after the reader's id were dropped by the feed's cap: say so rather than pretend.
        notice = json.dumps({"after": cursor, "lost_through": gap})
        await response.write(f"event: gap\ndata: {notice}\n\n".encode())
    return cursor


async def stream_alerts(
    request: web.Request,
    store: AlertStore,
    levels: Iterable[str] | None = None,
    account: str | None = None,
    heartbeat: float = HEARTBEAT_SECONDS,
    stopping: asyncio.Event | None = None,
) -> web.StreamResponse:
    resume = resume_point(request)  # a bad Last-Event-ID is refused before the stream starts
    level_set = set(levels) if levels is not None else None
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache, no-transform",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    cursor = await _start(response, store, resume, stopping)
    if cursor is None:
        return response
    try:
        while stopping is None or not stopping.is_set():
            try:
                alerts = await store.read(cursor, wait=heartbeat)
            except Exception as exc:  # any backend error; cancellation still propagates
                # The store (Redis) is unreachable: keep the reader, say so, try again.
                await response.write(
                    f": alert store unavailable ({type(exc).__name__}); retrying\n\n".encode()
                )
                await asyncio.sleep(1.0)
                continue
            chunk = bytearray()
            for alert in alerts:
                cursor = alert.id
                if level_set is not None and alert.level not in level_set:
                    continue
                if account is not None and alert.account != account:
                    continue
                chunk += sse_event(alert)
            await response.write(bytes(chunk) if chunk else b": keepalive\n\n")
    except ConnectionResetError:
        # The reader went away; it resumes with Last-Event-ID.
        pass
    return response
