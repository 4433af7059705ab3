"""Assembly of the guard's aiohttp application: shared state (guard.http.keys), start-up and clean-up in one
`cleanup_ctx`, the /v1 API, the risk side (`guard.risk.install`) and the catch-all proxy route.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import redis.asyncio as aioredis
from aiohttp import web
from redis.asyncio.cluster import RedisCluster

from guard.config.settings import Settings
from guard.core.accounts import AccountDirectory
from guard.core.bundle import Bundle, BundleStore, build_bundle
from guard.core.pipeline import Pipeline
from guard.http import api, proxy
from guard.http.auth import Authenticator
from guard.http.keys import (
    ACCOUNTS,
    AUDIT,
    AUTH,
    BUNDLE,
    CLIENT,
    LIMITER,
    METRICS,
    OBSERVERS,
    PIPELINE,
    PROCESS_TOKEN,
    REDIS,
    RELOAD_NOW,
    SETTINGS,
    UPSTREAM_POOL,
)
from guard.http.notify import notify_system
from guard.http.reload import listen_reloads, watch_rules
from guard.http.upstream import UpstreamPool
from guard.observe.audit import AuditLog, flush_lines
from guard.observe.metrics import GuardMetrics
from guard.risk import install as risk
from ratelimit import CircuitBreaker, Limiter, MemoryStorage, RedisStorage, Storage, StorageEvents
from ratelimit.breaker import STATES as BREAKER_STATES

log = logging.getLogger("guard.app")


async def connect_redis(settings: Settings) -> aioredis.Redis | RedisCluster:
    """A redis.asyncio client for the shared state the risk side and the account overrides keep.

    This is the one place the guard asks Redis whether it is a Cluster (unless configured): the kind of
    the client it returns is that answer for the counters and the risk side's own clients."""
    from ratelimit import RedisTarget, connect, probe

    assert settings.redis_url is not None
    target = RedisTarget.from_url(settings.redis_url, cluster=settings.redis_cluster)
    if target.cluster is None:
        try:
            target = target.known(await probe(target, socket_timeout=2.0, socket_connect_timeout=2.0))
        except Exception as exc:
            log.warning("could not ask Redis whether it is a cluster (%s); assuming a single node", exc)
            target = target.known(False)
    return connect(target, socket_timeout=2.0, socket_connect_timeout=2.0)


def counter_storage(settings: Settings, cluster: bool | None, events: StorageEvents | None = None) -> Storage:
    """Redis counters when a URL is configured (`cluster`: single node or Cluster, None = ask Redis on first
    use), else counters in this process. `events`: told of Redis failures and breaker changes."""
    if settings.redis_url:
        return RedisStorage.from_url(
            settings.redis_url,
            cluster=cluster,
            # No request is let through to find out whether a failed Redis is back (into a Redis that
            # still hangs it would wait the whole `redis_timeout`, once every cool-down): the storage's
            # background ping finds out within PROBE_INTERVAL and closes the breaker.
            breaker=CircuitBreaker(calls_probe=False),
            timeout=settings.redis_timeout,
            max_connections=settings.redis_max_in_flight,
            queue_timeout=settings.redis_queue_timeout,
            events=events,
        )
    return MemoryStorage()


class CounterEvents:
    """What the Redis counters report (ratelimit.StorageEvents), as metrics, and as the risk side's
    `redis_down` system event, whatever the failure policy: with `redis_down = allow` an outage lets actions
    through uncounted, which the risk manager must hear of too. At most one event per `DOWN_EVERY` seconds
    per process (the risk side deduplicates across processes)."""

    DOWN_EVERY = 10.0

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self._told_at = -self.DOWN_EVERY
        self._tasks: set[asyncio.Task[None]] = set()
        app[METRICS].redis_breaker.set(1.0, "closed")

    def watch(self, storage: Storage) -> Storage:
        """Show `storage`'s line and backlog in /metrics (read when /metrics is rendered)."""
        if isinstance(storage, RedisStorage):

            def collect(metrics: GuardMetrics) -> None:
                metrics.redis_waiting.set(storage.waiting)
                metrics.redis_backlog.set(storage.backlog)

            self.app[METRICS].collectors.append(collect)
        return storage

    def failure(self, operation: str, kind: str, detail: str) -> None:
        metrics = self.app[METRICS]
        metrics.redis_unavailable.inc(operation, kind)
        if kind in ("timeout", "connection", "error"):  # Redis was asked and failed
            metrics.redis_errors.inc("counters")
            self._tell_down(f"{operation}: {detail}")

    def breaker(self, state: str) -> None:
        for name in BREAKER_STATES:
            self.app[METRICS].redis_breaker.set(1.0 if name == state else 0.0, name)
        if state == "open":
            self._tell_down("circuit breaker open after repeated failures")

    def reconciled(self, what: str) -> None:
        self.app[METRICS].redis_reconciled.inc(what)

    def _tell_down(self, detail: str) -> None:
        now = time.monotonic()
        if now - self._told_at < self.DOWN_EVERY:
            return
        self._told_at = now
        message = "counters (Redis) unavailable: guarded actions are refused, or let through uncounted where "
        message += "redis_down allows it"
        event = notify_system(self.app, "redis_down", message, {"error": detail})
        task = asyncio.get_running_loop().create_task(event)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        await stop_tasks(list(self._tasks))


def freeze_heap(*, full: bool) -> None:
    """Move every object alive now into the collector's permanent generation, which no collection walks.

    Why: the rules bundle and the tables behind it (pypinyin's phrase dictionary, the folding tables, the
    matcher's automaton: ~250,000 tracked objects, ~190,000 of them small lists) live as long as the
    process, and every full (generation-2) collection walked them all: 60-90 ms with the event loop
    stopped, seen as p99 latency and as Redis calls timing out. Frozen, they are skipped; a full
    collection then walks only what changed since. Refcounting still frees frozen objects: a replaced
    bundle goes when its last request lets go of it (it holds no reference cycles: dropping one leaves
    nothing for the collector, measured). `full`: collect everything first (at start, before serving);
    after a reload only the young generations, so that little garbage is frozen along."""
    gc.collect(2 if full else 1)
    gc.freeze()


class FullCollections:
    """Full (generation-2) collections while serving: only when they are cheap, or when garbage may have
    piled up — never on CPython's own schedule.

    Why: with the static tables frozen (`freeze_heap`), what a full collection walks is every object
    alive outside them — under load, the state of every request in flight (at 256 connections ~30,000
    objects, 10-35 ms with the loop stopped). CPython starts one whenever a quarter more objects reached
    the oldest generation since the last, i.e. about every second under load, though the request path
    leaves no cyclic garbage (its objects are freed by reference counting) and the collections find
    nothing.

    So automatic full collections are switched off (`gc.set_threshold` with a third threshold no count
    reaches), and a task looks every `every` seconds at how many objects a full collection would walk (all
    three generations): it runs one when they are at most `cheap` (a few ms at most: at rest, or under
    moderate load) and `gap` seconds passed since the last; and at any size once they have grown past
    `growth` times what survived the last full collection and past `floor`, so that cyclic garbage that
    piles up under sustained load is still collected and memory stays bounded. The request path leaves
    none (failed forwards and clients that hang up mid-answer drop their tracebacks:
    `guard.http.proxy.forget_frames`); what is left is CPython's own, e.g. ~7 objects a closed connection.
    `floor` sits above what 256 connections keep in flight: with 20,000, every climb of the load to 256
    connections walked them all once (4-7 ms, bench/faults.py --soak). Without cyclic garbage the count
    does not grow under steady load (objects leave as they die), and no full collection runs until the
    load eases.

    The middle generation is collected every `middle` young collections instead of 10: under load it
    too holds requests in flight, and a third of them at a time keeps each collection to a few ms.

    Young collections: while what a full collection would walk is at most `cheap` (few requests in flight:
    ~3,500 objects at 16 connections), a young collection starts after `light_young` net allocations
    instead of CPython's 700, since each walks little then and there are a third as many of them (the
    collector's CPU at 16 connections 8-10 -> 0.5 µs a request, bench/stages.py); above `cheap`, CPython's
    own threshold again: at 256 connections a fixed 3,000 made each young or middle collection walk that
    much more at once — 17-21 ms instead of 4-6 (bench/faults.py --soak). The look that decides runs every
    `every` seconds (a look walks the tracked objects' list: ~0.1 ms at 16 connections), so a sudden climb
    of the load keeps the light threshold for at most that long: looking once a second and 3,000, the
    longest pause of a run at 256 connections was 39 ms against 8.6 before; every 0.2 s and 2,000, 5.0 ms
    (bench/faults.py --connections 16,256, the same hour)."""

    def __init__(
        self,
        *,
        every: float = 0.2,
        middle: int = 3,
        cheap: int = 10_000,
        gap: float = 5.0,
        growth: float = 1.25,
        floor: int = 50_000,
        light_young: int = 2_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.every, self.middle, self.cheap, self.gap = every, middle, cheap, gap
        self.light_young = light_young
        self.growth, self.floor = growth, floor
        self._clock = clock
        self._last = clock()
        self._survivors = 0
        self._saved: tuple[int, int, int] | None = None
        self._task: asyncio.Task[None] | None = None
        self.runs = {"cheap": 0, "grown": 0}

    def start(self) -> None:
        """Switch automatic full collections off and start looking (on the running loop)."""
        threshold0, threshold1, threshold2 = gc.get_threshold()
        self._saved = (threshold0, threshold1, threshold2)
        gc.set_threshold(threshold0, min(threshold1, self.middle), 2**31 - 1)
        self._last = self._clock()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="guard-full-collections")

    async def stop(self) -> None:
        if self._task is not None:
            await stop_tasks([self._task])
            self._task = None
        if self._saved is not None:
            gc.set_threshold(*self._saved)
            self._saved = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            self.step()

    def step(self) -> str | None:
        """Look once; run a full collection if it is due. Returns why it ran ("cheap", "grown") or None."""
        size = len(gc.get_objects())  # every generation: what a full collection walks (frozen ones aside)
        if self._saved is not None:  # started: the young threshold follows the load
            young = self.light_young if size <= self.cheap else self._saved[0]
            threshold = gc.get_threshold()
            if threshold[0] != young:
                gc.set_threshold(young, threshold[1], threshold[2])
        if size <= self.cheap:
            if self._clock() - self._last < self.gap:
                return None
            why = "cheap"
        elif size >= max(self.floor, self.growth * self._survivors):
            why = "grown"
        else:
            return None
        gc.collect(2)
        self._survivors = len(gc.get_objects())
        self._last = self._clock()
        self.runs[why] += 1
        return why


def build_and_freeze(directory: Path | None) -> Bundle:
    """`build_bundle`, then `freeze_heap`: for the start-up load and every reload of `guard serve`."""
    bundle = build_bundle(directory)
    freeze_heap(full=False)
    return bundle


async def stop_tasks(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel background tasks and wait for them to end. (The ones that talk to Redis pub/sub check for
    a cancellation redis-py swallowed: `guard.core.pubsub.raise_if_cancelled`.)"""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _core(app: web.Application) -> AsyncIterator[None]:
    """Start-up and clean-up of everything the guard shares between requests."""
    settings = app[SETTINGS]
    app[REDIS] = await connect_redis(settings) if settings.redis_url else None
    if app.get(LIMITER) is None:
        # Single node or Cluster: what connect_redis found out (the kind of the shared client).
        cluster = isinstance(app[REDIS], RedisCluster)
        events = CounterEvents(app) if settings.redis_url else None
        storage = counter_storage(settings, cluster, events)
        if events is not None:
            events.watch(storage)
        app[LIMITER] = Limiter(storage, tz=settings.timezone)
        # Connect the counters now rather than under the first burst (failing, it only counts as one).
        await app[LIMITER].ping()
    limiter = app[LIMITER]
    store = app[BUNDLE]
    directory = AccountDirectory(bundle=lambda: store.current, limiter=limiter, redis=app[REDIS])
    app[ACCOUNTS] = directory
    await directory.start()
    app[PIPELINE] = Pipeline(store, limiter, directory, settings.failure_policy)
    app[CLIENT] = proxy.client_session(settings.connect_timeout, settings.read_timeout)
    app[UPSTREAM_POOL] = UpstreamPool(settings.connect_timeout, settings.read_timeout)
    loop = asyncio.get_running_loop()
    on_sighup = False
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGHUP"):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, app[RELOAD_NOW].set)
            on_sighup = True
    tasks = [asyncio.create_task(watch_rules(app), name="guard-rules-watch")]
    if app[REDIS] is not None:
        tasks.append(asyncio.create_task(listen_reloads(app), name="guard-rules-channel"))
        tasks.append(asyncio.create_task(directory.run_sync(), name="guard-accounts-sync"))
    try:
        yield
    finally:
        await stop_tasks(tasks)
        if on_sighup:
            loop.remove_signal_handler(signal.SIGHUP)
        await app[CLIENT].close()
        await app[UPSTREAM_POOL].close()
        await limiter.aclose()
        events = getattr(limiter.storage, "events", None)
        if isinstance(events, CounterEvents):
            await events.aclose()
        shared = app[REDIS]
        if shared is not None:
            await shared.aclose()
        # The log lines of the last loop turn (guard.observe.audit.TurnWriter), written now rather than
        # left to a later turn or the interpreter's exit.
        flush_lines()


def create_app(
    settings: Settings,
    *,
    limiter: Limiter | None = None,
    clock: Callable[[], float] | None = None,
    freeze: bool = False,
) -> web.Application:
    """The guard as an aiohttp application. The rules are loaded here (a broken rules directory stops the
    start with its error); connections are opened when the app starts. `limiter` / `clock` let tests
    inject a limiter over their own storage or a moved clock. `freeze` (`guard serve`): the heap is
    frozen after the rules load and after each reload (`freeze_heap`)."""
    app = web.Application(
        # Request bodies are read raw: the guard decodes gzip/deflate itself within the size limit and
        # forwards the original (still compressed) bytes.
        handler_args={"auto_decompress": False},
        client_max_size=settings.body_limit,
    )
    app[SETTINGS] = settings
    app[OBSERVERS] = []
    app[METRICS] = GuardMetrics()
    store = BundleStore(settings.rules_dir, build_and_freeze) if freeze else BundleStore(settings.rules_dir)
    store.load_now()
    app[BUNDLE] = store
    app[METRICS].rules_version.set(1, store.version)
    app[AUTH] = Authenticator(settings.keys)
    app[AUDIT] = AuditLog()
    app[RELOAD_NOW] = asyncio.Event()
    app[PROCESS_TOKEN] = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    if limiter is None and clock is not None:
        events = CounterEvents(app) if settings.redis_url else None
        storage = counter_storage(settings, settings.redis_cluster, events)
        if events is not None:
            events.watch(storage)
        limiter = Limiter(storage, tz=settings.timezone, clock=clock)
    if limiter is not None:
        app[LIMITER] = limiter
    app.cleanup_ctx.append(_core)
    api.setup(app)
    risk.install(app)
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    return app
