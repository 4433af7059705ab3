"""Prometheus metrics of one guard process, rendered in the text exposition format (no dependency).

Counters and histograms are plain dicts keyed by label tuples: the proxy path only increments numbers.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class Counter:
    def __init__(self, name: str, help: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help
        self.label_names = tuple(labels)
        self.values: dict[tuple[str, ...], float] = {}

    def inc(self, *labels: str, by: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + by

    def get(self, *labels: str) -> float:
        return self.values.get(labels, 0.0)

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        for labels, value in sorted(self.values.items()):
            yield f"{self.name}{_labels(self.label_names, labels)} {value:g}"


class Gauge(Counter):
    def set(self, value: float, *labels: str) -> None:
        self.values[labels] = value

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} gauge"
        for labels, value in sorted(self.values.items()):
            yield f"{self.name}{_labels(self.label_names, labels)} {value:g}"


class Histogram:
    def __init__(self, name: str, help: str, buckets: Sequence[float], labels: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help
        self.buckets = tuple(sorted(buckets))
        self.label_names = tuple(labels)
        self.series: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}

    def observe(self, value: float, *labels: str) -> None:
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = ([0] * (len(self.buckets) + 1), [0.0])
        series[0][bisect.bisect_left(self.buckets, value)] += 1
        series[1][0] += value

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        for labels, (counts, total) in sorted(self.series.items()):
            running = 0
            for bound, count in zip(self.buckets, counts, strict=False):
                running += count
                le = f'le="{bound:g}"'
                yield f"{self.name}_bucket{_labels(self.label_names, labels, le)} {running}"
            running += counts[-1]
            inf = 'le="+Inf"'
            yield f"{self.name}_bucket{_labels(self.label_names, labels, inf)} {running}"
            yield f"{self.name}_sum{_labels(self.label_names, labels)} {total[0]:g}"
            yield f"{self.name}_count{_labels(self.label_names, labels)} {running}"


class GuardMetrics:
    def __init__(self) -> None:
        self.decisions = Counter(
            "guard_decisions_total",
            "Decisions by action, result and deciding rule.",
            ("action", "result", "rule"),
        )
        self.latency = Histogram(
            "guard_decision_seconds",
            "Time from request to decision (parse, checks, counters), excluding the upstream.",
            (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
        )
        self.requests = Counter(
            "guard_requests_total", "Requests by route kind and outcome.", ("route", "outcome")
        )
        self.upstream_errors = Counter("guard_upstream_errors_total", "Upstream failures by kind.", ("kind",))
        self.upstream_refusals = Counter(
            "guard_upstream_refusals_total", "Forwarded actions the upstream refused (quota refunded)."
        )
        self.redis_errors = Counter("guard_redis_errors_total", "Counter storage failures.", ("where",))
        self.observer_errors = Counter("guard_observer_errors_total", "Observers that raised or timed out.")
        self.rules_version = Gauge("guard_rules_info", "The loaded rules bundle (value 1).", ("version",))
        self.rules_reloads = Counter("guard_rules_reloads_total", "Rules reloads by result.", ("result",))
        # The risk side (guard.risk.observer): its queue and its spool are gauges set when /metrics is read
        # (by `collectors`); losses are counted when they happen.
        self.risk_queue = Gauge("guard_risk_queue_depth", "Decisions waiting for the risk observer's worker.")
        self.risk_spool = Gauge(
            "guard_risk_spool",
            "Report counters and alerts the risk side keeps until Redis takes them.",
            ("kind",),
        )
        self.risk_dropped = Counter(
            "guard_risk_dropped_total",
            "Decisions not counted in the reports and alerts not kept (queue or spool full).",
            ("kind",),
        )
        # Called with this object before rendering: set gauges that mirror someone else's state.
        self.collectors: list[Callable[[GuardMetrics], None]] = []

    def render(self) -> str:
        for collect in self.collectors:
            collect(self)
        lines: list[str] = []
        for metric in (
            self.decisions,
            self.latency,
            self.requests,
            self.upstream_errors,
            self.upstream_refusals,
            self.redis_errors,
            self.observer_errors,
            self.rules_version,
            self.rules_reloads,
            self.risk_queue,
            self.risk_spool,
            self.risk_dropped,
        ):
            lines.extend(metric.render())
        return "\n".join(lines) + "\n"
