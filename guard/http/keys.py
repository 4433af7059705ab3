"""Every typed key of the shared state of the guard's `web.Application` (aiohttp `AppKey`s), in one place.

Set by `guard.app` while the app is built and during start-up (inside its `cleanup_ctx`); read by the
proxy, the /v1 API and the risk side. Everything here is ready before the first request is served.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

from guard.core.types import DecisionObserver

if TYPE_CHECKING:
    import aiohttp
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

    from guard.config.settings import Settings
    from guard.core.accounts import AccountDirectory
    from guard.core.bundle import BundleStore
    from guard.core.pipeline import Pipeline
    from guard.http.auth import Authenticator
    from guard.http.upstream import UpstreamPool
    from guard.observe.audit import AuditLog
    from guard.observe.metrics import GuardMetrics
    from guard.risk.state import RiskState
    from ratelimit import Limiter

# The frozen settings the app was built with.
SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
# The reloadable rules bundle (content rules, limits, accounts registry, profiles, attachment policy):
# `BUNDLE.current` is what requests use now; `await BUNDLE.reload()` swaps in a new one.
BUNDLE: web.AppKey[BundleStore] = web.AppKey("bundle")
# The quota engine, over Redis or in-memory storage.
LIMITER: web.AppKey[Limiter] = web.AppKey("limiter")
# The shared redis-py client (single node or cluster) when a Redis URL is configured, else None: account
# overrides, the rules-reload channel.
REDIS: web.AppKey[Redis | RedisCluster | None] = web.AppKey("redis")
# The account directory: static registry + freeze / recovery overrides shared across processes.
ACCOUNTS: web.AppKey[AccountDirectory] = web.AppKey("accounts")
# Told about every decision and every guard-health event (alerts, reports).
OBSERVERS: web.AppKey[list[DecisionObserver]] = web.AppKey("observers")
# The checks pipeline (frozen → content → attachments → quota).
PIPELINE: web.AppKey[Pipeline] = web.AppKey("pipeline")
# The pooled client session to the upstreams.
CLIENT: web.AppKey[aiohttp.ClientSession] = web.AppKey("client")
# The lean keep-alive client of the guarded forward (guard.http.upstream); the streamed pass-through and
# what the lean client does not take use CLIENT.
UPSTREAM_POOL: web.AppKey[UpstreamPool] = web.AppKey("upstream_pool")
# Prometheus metrics.
METRICS: web.AppKey[GuardMetrics] = web.AppKey("metrics")
# Who is calling: client keys, their accounts and roles.
AUTH: web.AppKey[Authenticator] = web.AppKey("auth")
# One audit line per decision and per refused request.
AUDIT: web.AppKey[AuditLog] = web.AppKey("audit")
# Set by SIGHUP, POST /v1/rules/reload on another process (pub/sub), or a test: reload the rules at once.
RELOAD_NOW: web.AppKey[asyncio.Event] = web.AppKey("reload_now")
# This process's name on the rules-reload channel, so it ignores its own announcements.
PROCESS_TOKEN: web.AppKey[str] = web.AppKey("process_token")
# The risk side's state (settings, observer, alert and report stores, sinks, open SSE streams).
RISK: web.AppKey[RiskState] = web.AppKey("risk")
