"""The bookkeeping's shortcuts (issue 13) do what the longer way did: the risk observer's record with its
staff, alert tokens and reset times, the alert's dict and JSON, the metrics' direct increments."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, fields, replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter
from prometheus_client import Histogram as PromHistogram

from guard.config.risk import RiskSettings
from guard.core.types import Action, Decision, DecisionRecord, Verdict
from guard.observe.metrics import Counter, Gauge, Histogram
from guard.risk.model import Alert
from guard.risk.observer import RiskObserver

TZ = ZoneInfo("Asia/Shanghai")


def observer(staff: str | None = None) -> RiskObserver:
    return RiskObserver(RiskSettings(), TZ, staff_of=lambda account: staff)


def test_record_with_staff_is_replace() -> None:
    decision = Decision(Action("broadcast", "acct-1", recipients=2), (Verdict("content", "allow"),))
    record = DecisionRecord(
        decision, "upstream_error", 12.5, client="key-a", upstream_status=502, dry_run=True
    )
    for staff_of, expected in ((None, "key-a"), ("张三", "张三")):
        ours = observer(staff_of)._with_staff(record)
        assert ours == replace(record, staff=expected)
        # Every field carried over: a field added to DecisionRecord must be added to `_with_staff` too.
        assert [getattr(ours, f.name) for f in fields(ours)] == [
            getattr(replace(record, staff=expected), f.name) for f in fields(ours)
        ]
    local = replace(record, client="local")
    assert observer()._with_staff(local) is local  # nobody: the record itself
    named = replace(record, staff="李四")
    assert observer("张三")._with_staff(named) is named


def test_alert_tokens_are_unique_per_alert_and_observer() -> None:
    first, second = observer(), observer()
    for obs in (first, second):
        for n in range(3):
            alert = Alert("system", "system", f"rule-{n}", "zh", "en", window=str(n))
            obs._spool_alert(alert, 0.0)
    tokens = [item.token for obs in (first, second) for item in obs._alerts]
    assert len(set(tokens)) == 6
    assert all(token.startswith(first._writer) for token in tokens[:3])


@pytest.mark.parametrize("tz", ["Asia/Shanghai", "America/New_York", "UTC"])
def test_reset_text_is_strftime(tz: str) -> None:
    obs = RiskObserver(RiskSettings(), ZoneInfo(tz))
    # Midnights, a DST change in New York, the same instant twice (cached), then back to an earlier one.
    for at in (1_796_083_200, 1_796_083_200, 1_772_953_200, 1_772_956_800, 1_796_083_260, 1_796_083_200):
        assert obs._resets_text(at) == datetime.fromtimestamp(at, ZoneInfo(tz)).strftime("%m-%d %H:%M")


def alerts() -> list[Alert]:
    return [
        Alert("redline", "quota", "broadcast/day", "账号 a 已达上限", "Account a", account="a", staff="s",
              window="1796083200", used=3, limit=3, attempts=4, at=1.5,
              details={"action": "broadcast", "resets_at": 1796083200, "sent_from_memory": ["webhook"]}),
        Alert("system", "system", "redis_down", "风控系统异常", "Guard health", id="1-0",
              details={"error": "x\n\"y\"", "odd": datetime(2026, 1, 1)}),
        Alert("block", "content", "content:finance", "zh", "en", excerpt="稳赚…", details={}),
    ]  # fmt: skip


@pytest.mark.parametrize("alert", alerts())
def test_alert_dict_and_json_as_asdict_and_dumps(alert: Alert) -> None:
    expected = asdict(alert)
    expected["details"] = dict(alert.details)
    assert alert.to_dict() == expected and list(alert.to_dict()) == list(expected)
    assert alert.to_dict()["details"] is not alert.details
    dumped = json.dumps(expected, ensure_ascii=False, separators=(",", ":"), default=str)
    assert alert.to_json() == dumped


def test_counter_and_gauge_increments_as_prometheus_client() -> None:
    ours_registry, theirs_registry = CollectorRegistry(), CollectorRegistry()
    ours = Counter("c", "help", ("a", "b"), registry=ours_registry)
    plain = Counter("p", "help", registry=ours_registry)
    theirs = PromCounter("c", "help", ("a", "b"), registry=theirs_registry)
    for labels, by in ((("x", "y"), 1.0), (("x", "z"), 2.5), (("x", "y"), 1.0), (("x", "y"), 0.0)):
        ours.inc(*labels, by=by)
        theirs.labels(*labels).inc(by)
        plain.inc(by=by)
    for labels in (("x", "y"), ("x", "z")):
        value = theirs_registry.get_sample_value("c_total", dict(zip(("a", "b"), labels, strict=True)))
        assert ours.get(*labels) == value
    assert plain.get() == 4.5
    with pytest.raises(ValueError, match="non-negative"):
        ours.inc("x", "y", by=-1)
    assert ours.get("x", "y") == 2.0
    gauge = Gauge("g", "help", ("k",), registry=ours_registry)
    gauge.inc("q", by=3)
    gauge.inc("q", by=-1)  # a gauge may go down
    assert gauge.get("q") == 2.0
    gauge.clear()
    assert gauge.get("q") == 0.0
    gauge.inc("q")
    assert gauge.get("q") == 1.0 and ours_registry.get_sample_value("g", {"k": "q"}) == 1.0


@pytest.mark.parametrize("labels", [(), ("route",)])
def test_histogram_observations_as_prometheus_client(labels: tuple[str, ...]) -> None:
    buckets = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
    ours_registry, theirs_registry = CollectorRegistry(), CollectorRegistry()
    ours = Histogram("h", "help", buckets, labels, registry=ours_registry)
    theirs = PromHistogram("h", "help", labels, registry=theirs_registry, buckets=buckets)
    values = [0.0, -1.0, 0.0005, 0.00050001, 0.001, 0.7, 1.0, 1.5, math.inf, math.nan, 3e-4, 0.05]
    for value in values:
        ours.observe(value, *(("r",) if labels else ()))
        (theirs.labels("r") if labels else theirs).observe(value)

    def samples(registry: CollectorRegistry) -> list[tuple[str, dict[str, str], float | str]]:
        out: list[tuple[str, dict[str, str], float | str]] = []
        for family in registry.collect():
            for s in family.samples:
                out.append((s.name, s.labels, "nan" if math.isnan(s.value) else s.value))
        return out

    assert samples(ours_registry) == samples(theirs_registry)


async def test_offered_and_awaited_observers_each_get_every_decision() -> None:
    """`record_decisions` hands a record to the observers with `offer_decision` without a coroutine and
    awaits the others; one that raises is counted and skipped, the rest still get the record."""
    from aiohttp import web

    from guard.config.settings import Settings
    from guard.http.keys import ACCOUNTS, AUDIT, METRICS, OBSERVERS, SETTINGS
    from guard.http.notify import notify_decision, record_decisions
    from guard.observe.audit import AuditLog
    from guard.observe.metrics import GuardMetrics

    got: list[tuple[str, DecisionRecord]] = []

    class Offered:
        def offer_decision(self, record: DecisionRecord) -> None:
            got.append(("offered", record))

    class BrokenOffer:
        def offer_decision(self, record: DecisionRecord) -> None:
            raise RuntimeError("observer bug")

    class Awaited:
        async def on_decision(self, record: DecisionRecord) -> None:
            got.append(("awaited", record))

    class Directory:
        def staff_of(self, account: str) -> str | None:
            return None

    app = web.Application()
    app[SETTINGS] = Settings()
    app[METRICS] = GuardMetrics()
    app[ACCOUNTS] = Directory()  # type: ignore[assignment]
    app[AUDIT] = AuditLog()
    app[OBSERVERS] = [Awaited(), BrokenOffer(), Offered()]  # type: ignore[list-item]
    decisions = [Decision(Action("broadcast", f"acct-{n}"), (Verdict("content", "allow"),)) for n in range(2)]
    await record_decisions(app, decisions, "forwarded", client=None, upstream_status=200)
    assert sorted(kind for kind, _ in got) == ["awaited"] * 2 + ["offered"] * 2
    assert [r.decision for kind, r in got if kind == "offered"] == decisions
    assert [r.decision for kind, r in got if kind == "awaited"] == decisions
    assert app[METRICS].observer_errors.get() == 2
    got.clear()
    await notify_decision(app, DecisionRecord(decisions[0], "refused", 1.0))
    assert sorted(kind for kind, _ in got) == ["awaited", "offered"]
    assert app[METRICS].observer_errors.get() == 3
