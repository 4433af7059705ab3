"""Prometheus metrics of the guard, kept with prometheus-client behind a small facade.

The rest of the guard calls `GuardMetrics` attributes: `.inc(*labels, by=1)`, `.set(value, *labels)`,
`.observe(value)`, `.get(*labels)`, `.clear()`; only this module knows prometheus-client.

One process (`guard serve`, the tests): every `GuardMetrics` has its own `CollectorRegistry`, so the many
apps a test process creates never collide, and /metrics renders that registry.

Several workers (`guard serve --workers N`): each scrape reaches one random worker (SO_REUSEPORT), so a
worker must answer for all of them. Chosen: prometheus-client's multiprocess mode rather than one process
that aggregates — no extra process, port or IPC to keep alive, and a worker that dies keeps its counts.
`guard serve` sets PROMETHEUS_MULTIPROC_DIR to a fresh private temporary directory before it starts the
workers (and removes it at exit); every worker writes its values to memory-mapped files there, and the
worker that answers a scrape reads all of them (`MultiProcessCollector`): counters and histograms are
summed over workers (also over workers that exited), gauges combine by their `multiprocess_mode` —
`livesum` for queue depths and backlogs (the total waiting), `livemax` for state and info gauges (a
breaker state is 1 when any live worker is in it; the rules version every live worker serves).
Gauges that mirror someone else's state (`collectors`) are set when /metrics is read and, in multiprocess
mode, also every second by each worker, since a scrape runs the collectors of one worker only.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, disable_created_metrics
from prometheus_client import Counter as _Counter
from prometheus_client import Gauge as _Gauge
from prometheus_client import Histogram as _Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.utils import floatToGoString

log = logging.getLogger("guard.metrics")

# The environment variable prometheus-client reads (at import) for its multiprocess mode.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
COLLECT_INTERVAL = 1.0

# No `*_created` series: the text format stays what it was (and they mean little summed over workers).
disable_created_metrics()  # type: ignore[no-untyped-call]


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


class Counter:
    _signed = False  # a counter never goes down; a gauge's `inc` may

    def __init__(
        self, name: str, help: str, labels: Sequence[str] = (), *, registry: CollectorRegistry
    ) -> None:
        self.name = name
        self.help = help
        self.label_names = tuple(labels)
        self.metric = self._make(registry)
        # Each label set's child, as prometheus-client's `labels()` returns it: `labels()` validates and
        # locks on every call, ~5 µs against ~0.2 µs for this lookup (3 counters per proxied request;
        # bench/stages.py "metrics: counters" 10 → 4 µs a request at 16 connections). `clear()` forgets
        # them with the metric's own.
        self._children: dict[tuple[str, ...], _Counter | _Gauge] = {}
        # Each label set's value holder (the child's `_value`; the metric's own without labels), for `inc`.
        self._values: dict[tuple[str, ...], Any] = {}

    def _make(self, registry: CollectorRegistry) -> _Counter | _Gauge:
        return _Counter(self.name, self.help, self.label_names, registry=registry)

    def _child(self, labels: Sequence[str]) -> _Counter | _Gauge:
        if not self.label_names:
            return self.metric
        key = tuple(labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.metric.labels(*key)
        return child

    def inc(self, *labels: str, by: float = 1.0) -> None:
        # The child's value holder incremented directly: prometheus-client's `inc` first checks, in two more
        # calls, that the metric has its label values, which a child from `_child` always has (0.52 → 0.40
        # µs an increment measured alone; bench/stages.py "metrics: counters" 4.2 → 1.9 µs a request at 16
        # connections). The holder is the child's own
        # (`MutexValue`, or in multiprocess mode its memory-mapped file's), so the counts are the same.
        value = self._values.get(labels)
        if value is None:
            child = self._child(labels)
            # `_value` is prometheus-client's private field: without it (a later release), the child's own
            # `inc` (same signature) is the holder.
            value = self._values[labels] = getattr(child, "_value", child)
        if by < 0 and not self._signed:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        value.inc(by)

    def get(self, *labels: str) -> float:
        """This process's value (0 for a label set never used; it is not created)."""
        if self.label_names and tuple(labels) not in self.metric._metrics:
            return 0.0
        return float(self._child(labels)._value.get())


class Gauge(Counter):
    _signed = True

    def __init__(
        self,
        name: str,
        help: str,
        labels: Sequence[str] = (),
        *,
        registry: CollectorRegistry,
        multiprocess_mode: str = "livesum",
    ) -> None:
        self.multiprocess_mode = multiprocess_mode
        super().__init__(name, help, labels, registry=registry)

    def _make(self, registry: CollectorRegistry) -> _Gauge:
        return _Gauge(
            self.name,
            self.help,
            self.label_names,
            registry=registry,
            multiprocess_mode=self.multiprocess_mode,  # type: ignore[arg-type]
        )

    def _gauge(self, labels: Sequence[str]) -> _Gauge:
        child = self._child(labels)
        assert isinstance(child, _Gauge)
        return child

    def set(self, value: float, *labels: str) -> None:
        self._gauge(labels).set(value)

    def clear(self) -> None:
        """Forget every label set. In multiprocess mode a worker's file keeps what it wrote, so the label
        sets are set to 0 first (and `GuardMetrics` leaves zeros of info gauges out of the exposition)."""
        for labels in list(self.metric._metrics):
            self._gauge(labels).set(0)
        self.metric.clear()
        self._children.clear()
        self._values.clear()


class Histogram:
    def __init__(
        self, name: str, help: str, buckets: Sequence[float], labels: Sequence[str] = (), *,
        registry: CollectorRegistry,
    ) -> None:  # fmt: skip
        self.name = name
        self.help = help
        self.buckets = tuple(sorted(buckets))
        self.label_names = tuple(labels)
        self.metric = _Histogram(name, help, self.label_names, registry=registry, buckets=self.buckets)
        self._children: dict[tuple[str, ...], _Histogram] = {}

    def observe(self, value: float, *labels: str) -> None:
        # As Counter._child: labels() costs ~5 µs a call.
        child = self._children.get(labels) if self.label_names else self.metric
        if child is None:
            child = self._children[labels] = self.metric.labels(*labels)
        # prometheus-client's `observe` without its observability check (a child always passes it) and with
        # the bucket found by bisection instead of a loop over the bounds: the same sum and bucket (the
        # first bound >= value; the last is +Inf; NaN counts in no bucket, as there), 0.75 → 0.61 µs an
        # observation measured alone ("metrics: histogram" 3.5 → 2.0 µs a request at 16 connections).
        # These are prometheus-client's private fields: should a release rename them, every observation
        # takes its public `observe` instead of failing the request.
        try:
            bounds, total, buckets = child._upper_bounds, child._sum, child._buckets
        except AttributeError:
            child.observe(value)
            return
        total.inc(value)
        i = bisect_left(bounds, value)
        if value <= bounds[i]:
            buckets[i].inc(1)


class _AllWorkers:
    """The exposition in multiprocess mode: every worker's files, without the zeros of info gauges (a
    rules version a worker no longer serves)."""

    def __init__(self, path: str, info: set[str]) -> None:
        self.collector = MultiProcessCollector(None, path)  # type: ignore[no-untyped-call]
        self.info = info

    def collect(self) -> Iterable[Metric]:
        for family in self.collector.collect():  # type: ignore[no-untyped-call]
            if family.name in self.info:
                family.samples = [s for s in family.samples if s.value != 0]
            yield family


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render_text(families: Iterable[Metric], label_order: dict[str, tuple[str, ...]]) -> str:
    """The text exposition format 0.0.4, as prometheus-client's `generate_latest` writes it but with the
    labels in their declared order (`le` last) rather than sorted, as the guard always wrote them."""
    lines: list[str] = []
    for family in families:
        name = family.name + "_total" if family.type == "counter" else family.name
        help_text = family.documentation.replace("\\", "\\\\").replace("\n", "\\n")
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {family.type}"]
        order = label_order.get(family.name, ())
        for sample in family.samples:
            names = [n for n in order if n in sample.labels] + [n for n in sample.labels if n not in order]
            labels = ",".join(f'{n}="{_escape(sample.labels[n])}"' for n in names)
            lines.append(f"{sample.name}{{{labels}}}" if labels else sample.name)
            lines[-1] += " " + floatToGoString(sample.value)  # type: ignore[no-untyped-call]
    return "\n".join(lines) + "\n"


class GuardMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.multiprocess_dir = multiprocess_dir()
        self.decisions = Counter(
            "guard_decisions_total",
            "Decisions by action, result and deciding rule.",
            ("action", "result", "rule"),
            registry=r,
        )
        self.latency = Histogram(
            "guard_decision_seconds",
            "Time from request to decision (parse, checks, counters), excluding the upstream.",
            (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=r,
        )
        self.requests = Counter(
            "guard_requests_total", "Requests by route kind and outcome.", ("route", "outcome"), registry=r
        )
        self.upstream_errors = Counter(
            "guard_upstream_errors_total", "Upstream failures by kind.", ("kind",), registry=r
        )
        self.upstream_refusals = Counter(
            "guard_upstream_refusals_total",
            "Forwarded actions the upstream refused (quota refunded).",
            registry=r,
        )
        self.redis_errors = Counter(
            "guard_redis_errors_total", "Counter storage failures.", ("where",), registry=r
        )
        # The counters' own view of Redis (ratelimit.RedisStorage), whatever the redis_down policy.
        self.redis_unavailable = Counter(
            "guard_redis_unavailable_total",
            "Counter calls answered without Redis, by operation and why: timeout, connection, error (Redis "
            "was asked), queue (no free slot towards Redis in time), circuit_open (not asked).",
            ("operation", "kind"),
            registry=r,
        )
        self.redis_breaker = Gauge(
            "guard_redis_breaker_state",
            "The counters' circuit breaker: 1 for the state it is in (closed, half-open, open).",
            ("state",),
            registry=r,
            multiprocess_mode="livemax",
        )
        self.redis_waiting = Gauge(
            "guard_redis_waiting", "Counter calls waiting in line for a free slot towards Redis.", registry=r
        )
        self.redis_backlog = Gauge(
            "guard_redis_backlog",
            "Counter operations waiting for Redis to answer again: settles, charges, refunds.",
            registry=r,
        )
        self.redis_reconciled = Counter(
            "guard_redis_reconciled_total",
            "Counter operations made good after a Redis fault: settled (a hit whose answer was lost, "
            "undone), late_hit (a reply after the guard gave up, undone), charged (an action let through "
            "uncounted), refunded; *_lost / dropped: could not be made good.",
            ("what",),
            registry=r,
        )
        self.observer_errors = Counter(
            "guard_observer_errors_total", "Observers that raised or timed out.", registry=r
        )
        self.rules_version = Gauge(
            "guard_rules_info",
            "The loaded rules bundle (value 1); version: the rules directory's hash, as `guard rules check` "
            "and GET /v1/rules show it.",
            ("version",),
            registry=r,
            multiprocess_mode="livemax",
        )
        self.rules_reloads = Counter(
            "guard_rules_reloads_total", "Rules reloads by result.", ("result",), registry=r
        )
        # The risk side (guard.risk.observer): its queue and its spool are gauges set when /metrics is read
        # (by `collectors`); losses are counted when they happen.
        self.risk_queue = Gauge(
            "guard_risk_queue_depth", "Decisions waiting for the risk observer's worker.", registry=r
        )
        self.risk_spool = Gauge(
            "guard_risk_spool",
            "Report counters and alerts the risk side keeps until Redis takes them.",
            ("kind",),
            registry=r,
        )
        self.risk_dropped = Counter(
            "guard_risk_dropped_total",
            "Decisions not counted in the reports and alerts not kept (queue or spool full).",
            ("kind",),
            registry=r,
        )
        # Called with this object before rendering: set gauges that mirror someone else's state.
        self.collectors: list[Callable[[GuardMetrics], None]] = []
        self._label_order = {
            m.metric._name: m.label_names for m in vars(self).values() if isinstance(m, Counter | Histogram)
        }
        self._exposed: CollectorRegistry = r
        if self.multiprocess_dir is not None:
            self._exposed = CollectorRegistry()
            self._exposed.register(_AllWorkers(self.multiprocess_dir, {self.rules_version.name}))
            threading.Thread(target=self._collect_forever, name="guard-metrics", daemon=True).start()

    def collect(self) -> None:
        for collect in self.collectors:
            collect(self)

    def _collect_forever(self) -> None:
        failed = False
        while True:
            time.sleep(COLLECT_INTERVAL)
            try:
                self.collect()
            except Exception:
                if not failed:
                    log.exception("setting the metrics' gauges failed")
                failed = True

    def render(self) -> str:
        """The text exposition format (0.0.4): this process's metrics, or every worker's."""
        self.collect()
        return render_text(self._exposed.collect(), self._label_order)
