"""Typed keys of the shared state of the guard's `web.Application` (aiohttp `AppKey`s).

Set by `guard.app` during start-up (inside its one `cleanup_ctx`); read by the proxy, the /v1 API and the
risk side (`guard.risk.install`). Everything here is ready before the first request is served.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from guard.core.types import DecisionObserver

if TYPE_CHECKING:
    import aiohttp

    from guard.config.settings import Settings
    from guard.core.accounts import AccountDirectory
    from guard.core.bundle import BundleStore
    from guard.core.pipeline import Pipeline
    from guard.observe.metrics import GuardMetrics

# The frozen settings the app was built with.
SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
# The reloadable rules bundle (content rules, limits, accounts registry, profiles, attachment policy):
# `BUNDLE.current` is what requests use now; `await BUNDLE.reload()` swaps in a new one.
BUNDLE: web.AppKey[BundleStore] = web.AppKey("bundle")
# The quota engine (`ratelimit.Limiter`), over Redis or in-memory storage.
LIMITER: web.AppKey[Any] = web.AppKey("limiter")
# A `redis.asyncio` client (single node or cluster) when a Redis URL is configured, else None.
# The risk side uses it for alert streams, deduplication and report aggregates.
REDIS: web.AppKey[Any] = web.AppKey("redis")
# The account directory: static registry + freeze / recovery overrides shared across processes.
ACCOUNTS: web.AppKey[AccountDirectory] = web.AppKey("accounts")
# Told about every decision and every guard-health event (alerts, reports). Append during install().
OBSERVERS: web.AppKey[list[DecisionObserver]] = web.AppKey("observers")
# The checks pipeline (frozen → content → attachments → quota).
PIPELINE: web.AppKey[Pipeline] = web.AppKey("pipeline")
# The pooled client session to the upstreams.
CLIENT: web.AppKey[aiohttp.ClientSession] = web.AppKey("client")
# Prometheus metrics.
METRICS: web.AppKey[GuardMetrics] = web.AppKey("metrics")
