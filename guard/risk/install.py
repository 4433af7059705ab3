"""The risk manager's side (alerts, dashboard, accounts and report endpoints), installed into the app.

`install(app)` is called by `guard.app` once the core app is assembled: it adds the routes, appends the
risk observer to `app[OBSERVERS]`, and adds one cleanup_ctx that at start-up connects the alert and
report stores (Redis when configured, else in memory) and starts the background tasks (the observer's
worker, one sender per webhook), and at shutdown stops them and closes what it opened.

The risk side's Redis client is its own (`_redis_client`); every store call on it survives a Redis restart
(`guard.risk.reconnect`). The observer's queue and spool are gauges of the app's metrics, its webhook
senders are its `direct` sinks (alerts about Redis itself are delivered from memory).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from guard.config.risk import RiskSettings
from guard.config.settings import Settings
from guard.core.types import DecisionObserver
from guard.http.keys import ACCOUNTS, METRICS, OBSERVERS, REDIS, RISK, SETTINGS
from guard.risk.api import add_routes
from guard.risk.observer import RiskObserver
from guard.risk.reports import MemoryReportStore, RedisReportStore, Reports, ReportStore
from guard.risk.sinks import WebhookSink
from guard.risk.state import RiskState
from guard.risk.store import AlertStore, MemoryAlertStore, RedisAlertStore
from ratelimit import RedisTarget, connect

log = logging.getLogger("guard.risk")

# Blocking reads (SSE, webhook senders) wait at most this long per Redis call.
BLOCK_SECONDS = 5.0


def _redis_client(settings: Settings, shared: Redis | RedisCluster | None) -> Redis | RedisCluster | None:
    """A connection of our own: blocking XREADs need a socket timeout longer than the proxy's. Single node
    or Cluster like `shared`, the app's client (the app asked Redis once, at start)."""
    url = settings.redis_url
    if not url or shared is None:
        return None
    target = RedisTarget.from_url(url, cluster=isinstance(shared, RedisCluster))
    return connect(target, socket_timeout=BLOCK_SECONDS + 5.0, socket_connect_timeout=2.0)


def install(app: web.Application, risk_settings: RiskSettings | None = None) -> None:
    """Add the risk endpoints, alert sinks and decision observers to `app`."""
    settings = app[SETTINGS]
    config = risk_settings or settings.risk
    tz = settings.tz
    observer = RiskObserver(config, tz)
    state = RiskState(settings=config, observer=observer)
    app[RISK] = state
    if OBSERVERS in app:
        app[OBSERVERS].append(observer)
    else:
        observers: list[DecisionObserver] = [observer]
        app[OBSERVERS] = observers
    if METRICS in app:
        metrics = app[METRICS]
        observer.metrics = metrics
        metrics.collectors.append(observer.collect)
        for kind in ("decision", "alert"):
            metrics.risk_dropped.inc(kind, by=0)  # the series exist from the start, at 0
    add_routes(app)
    app.on_shutdown.append(_stop_streams)
    app.cleanup_ctx.append(_risk_ctx)


def configure(app: web.Application, risk_settings: RiskSettings) -> None:
    """Replace the risk settings of an app that has not started yet (tests, embedders)."""
    state = app[RISK]
    state.settings = risk_settings
    state.observer.settings = risk_settings


async def _stop_streams(app: web.Application) -> None:
    state = app[RISK]
    state.stopping.set()
    for task in list(state.streams):
        task.cancel()


async def _risk_ctx(app: web.Application) -> AsyncIterator[None]:
    state = app[RISK]
    settings = app[SETTINGS]
    config = state.settings
    tz_name = settings.timezone
    tz = settings.tz
    client = _redis_client(settings, app.get(REDIS))
    alerts: AlertStore
    report_store: ReportStore
    if client is not None:
        alerts = RedisAlertStore(client, maxlen=config.alert_maxlen, block_cap=BLOCK_SECONDS)
        report_store = RedisReportStore(client, tz, retention_days=config.retention_days)
    else:
        alerts = MemoryAlertStore(maxlen=config.alert_maxlen)
        report_store = MemoryReportStore(retention_days=config.retention_days)
    state.alerts = alerts
    state.reports = Reports(report_store, tz, tz_name)
    state.observer.bind(alerts, state.reports, app[ACCOUNTS].staff_of)
    session = aiohttp.ClientSession() if config.webhooks else None
    owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tasks = [asyncio.create_task(state.observer.run(), name="risk-observer")]
    if session is not None:
        for hook in config.webhooks:
            sink = WebhookSink(hook, alerts, session, owner=owner)
            state.sinks.append(sink)
            state.observer.direct.append(sink)
            tasks.append(asyncio.create_task(sink.run(), name=f"webhook-{hook.name}"))
    try:
        yield
    finally:
        state.stopping.set()
        # Record what the proxy already handed us before stopping the worker.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(state.observer.drain(), timeout=5.0)
        if state.observer.waiting:
            log.error(
                "stopping with %d report counters and %d alerts still waiting for Redis; they are lost",
                state.observer.spooled_counters,
                state.observer.spooled_alerts,
            )
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        state.observer.direct.clear()
        await alerts.close()
        if session is not None:
            await session.close()
        if client is not None:
            await client.aclose()
