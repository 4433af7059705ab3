"""GET /v1/alerts (history) and GET /v1/alerts/stream (live, Server-Sent Events)."""

from __future__ import annotations

import asyncio

from aiohttp import web
from redis.exceptions import RedisError

from guard.http.auth import authenticate
from guard.http.responses import json_response
from guard.risk.api.common import alert_levels, bad_input, risk_state, store_unavailable
from guard.risk.model import valid_stream_id
from guard.risk.sse import stream_alerts


async def list_alerts(request: web.Request) -> web.Response:
    authenticate(request, "risk")
    since = request.query.get("since") or None
    if since is not None and not valid_stream_id(since):
        raise bad_input(
            "since 应为告警 id，如 1700000000000-0。", "since must be an alert id like 1700000000000-0."
        )
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        raise bad_input("limit 应为整数。", "limit must be an integer.") from None
    limit = max(1, min(limit, 1000))
    state = risk_state(request)
    levels, account = alert_levels(request), request.query.get("account") or None
    try:
        alerts = await state.alerts.history(since=since, level=levels, account=account, limit=limit)
        gap = await state.alerts.trimmed_after(since) if since is not None else None
        last_id = await state.alerts.last_id()
    except RedisError as exc:
        raise store_unavailable(exc) from None
    return json_response(
        {
            "alerts": [a.to_dict() for a in alerts],
            "last_id": last_id,
            # Set when alerts after `since` were dropped by the feed's cap (alert_maxlen).
            "lost_through": gap,
        }
    )


async def alert_stream(request: web.Request) -> web.StreamResponse:
    authenticate(request, "risk")
    state = risk_state(request)
    task = asyncio.current_task()
    if task is not None:
        state.streams.add(task)
    try:
        return await stream_alerts(
            request,
            state.alerts,
            levels=alert_levels(request),
            account=request.query.get("account") or None,
            stopping=state.stopping,
        )
    finally:
        if task is not None:
            state.streams.discard(task)
