"""Daily compliance aggregates: per account and per staff member, what was allowed and refused by action,
sensitive hits by category, limits reached and complaints — and the staff with no violation in a period
(the handbook's compliance bonus).

One Redis hash per calendar day (in the configured timezone) holds every counter of that day, incremented
by every guard process and expiring after the retention period: one call of `lua/report_add.lua` (by SHA)
applies a decision batch's increments and the expiry to that key, at most once per (writer, batch number)
— a companion key in the same hash slot remembers each writer's last batch — so a batch sent again after
a lost answer or a restart is not counted twice, and it runs on a Cluster as it does on a single node.
Without Redis the same counters live in this process. `tally` (a pure function) turns one decision into
counter increments; `build_report` (pure) turns a period's counters into the report.
"""

from __future__ import annotations

import csv
import io
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from guard.core.types import DecisionRecord
from guard.risk.reconnect import once
from ratelimit import Script

DEFAULT_RETENTION_DAYS = 90
SEP = "\t"  # between the parts of a counter name; account and staff ids never contain a tab

# Counter names: "<a|s>\t<id>\t<metric>\t<detail>", e.g. "a\tacct-1\trefused\tbroadcast"; metrics:
# allowed, refused, upstream_refused (by action), hit (by category), limit (by rule), complaints, linked
# (an account's staff members).
# And one per hour and refusal category: "h\t<unix hour>\trefused\t<category>" (the hour as
# int(at // 3600), so the counter needs no timezone; the dashboard's chart of refusals per hour).


def day_of(at: float, tz: ZoneInfo) -> date:
    return datetime.fromtimestamp(at, tz).date()


def _clean(value: str) -> str:
    return value.replace(SEP, " ").replace("\n", " ")


def _field(scope: str, ident: str, metric: str, detail: str = "") -> str:
    return SEP.join((scope, _clean(ident), metric, _clean(detail)))


def content_categories(record: DecisionRecord) -> list[str]:
    """The sensitive-word categories that fired in this decision (warned or refused), one per match."""
    found: list[str] = []
    for verdict in record.decision.verdicts:
        if verdict.check == "content" and verdict.outcome != "allow":
            found.extend(verdict.categories)
    return found


def limits_reached(record: DecisionRecord) -> list[str]:
    """The quota rules this decision reached or was refused by: `broadcast/day`, …"""
    quota = record.decision.quota
    names = [
        f"{outcome.rule}/{outcome.window}"
        for outcome in (quota.outcomes if quota is not None else ())
        if ("limit" in outcome.crossed or not outcome.allowed) and outcome.mode == "enforce"
    ]
    refusal = record.decision.refusal
    if not names and refusal is not None and refusal.rule.startswith("quota:"):
        names.append(refusal.rule.split(":", 1)[1])
    return names


def staff_of_record(record: DecisionRecord) -> str | None:
    """The staff member behind a decision: the registry's owner of the account, else the client key's name
    (keys are usually issued per staff member or tool; the anonymous local caller is nobody)."""
    if record.staff:
        return record.staff
    if record.client and record.client != "local":
        return record.client
    return None


def refusal_category(record: DecisionRecord) -> str:
    """What refused a decision, for the chart per hour: the content category of a prohibited term
    (finance, contact, …), else the check (quota, frozen, attachments, request)."""
    refusal = record.decision.refusal
    if refusal is None:
        return "other"
    if refusal.check == "content":
        cats = refusal.categories
        return cats[0] if cats else (refusal.rule.split(":", 1)[1] if ":" in refusal.rule else "content")
    return refusal.check


def tally(record: DecisionRecord) -> dict[str, int]:
    """The counter increments one decision makes (pure; dry runs count nothing)."""
    if record.dry_run:
        return {}
    action = record.decision.action
    kind = action.kind
    refused = record.disposition == "refused" or not record.decision.allowed
    upstream_refused = record.disposition in ("upstream_refused", "upstream_error")
    out: dict[str, int] = {}
    staff = staff_of_record(record)
    scopes = [("a", action.account)]
    if staff:
        scopes.append(("s", staff))
    for scope, ident in scopes:

        def add(metric: str, detail: str = "", n: int = 1, scope: str = scope, ident: str = ident) -> None:
            key = _field(scope, ident, metric, detail)
            out[key] = out.get(key, 0) + n

        if refused:
            add("refused", kind)
        elif upstream_refused:
            add("upstream_refused", kind)
        else:
            add("allowed", kind)
        # One hit per category per message: how many messages touched each category.
        for cat in dict.fromkeys(content_categories(record)):
            add("hit", cat)
        for name in limits_reached(record):
            add("limit", name)
    if staff:
        out[_field("a", action.account, "linked", staff)] = 1
    if refused:
        out[_field("h", str(int(record.at // 3600)), "refused", refusal_category(record))] = 1
    return out


def hourly_refusals(counters: Mapping[str, int], day: date, tz: ZoneInfo) -> dict[str, list[int]]:
    """Refusals per local hour (0-23) of `day` and category, from one day's counters."""
    out: dict[str, list[int]] = {}
    for name, n in counters.items():
        parts = name.split(SEP)
        if len(parts) != 4 or parts[0] != "h" or parts[2] != "refused" or not parts[1].isdigit():
            continue
        local = datetime.fromtimestamp(int(parts[1]) * 3600, tz)
        if local.date() != day:
            continue
        out.setdefault(parts[3], [0] * 24)[local.hour] += n
    return dict(sorted(out.items(), key=lambda kv: (-sum(kv[1]), kv[0])))


class ReportStore(ABC):
    """Day → counters. `add` returns the new values of the counters it incremented.

    `add` with a `writer` and a `batch` number applies that batch at most once, however often it is sent:
    a writer numbers its batches from 1 up and sends the next one for a day only once the previous one was
    applied (the observer's spool). Without them each call is its own writer (a repeat of the same call
    after a dropped connection still counts once).
    """

    @abstractmethod
    async def add(
        self, day: date, counts: Mapping[str, int], *, writer: str | None = None, batch: int = 1
    ) -> list[int]: ...

    @abstractmethod
    async def read(self, day: date) -> dict[str, int]: ...


ADD = Script.packaged("guard.risk", "report_add")


class RedisReportStore(ReportStore):
    def __init__(
        self,
        client: Any,
        tz: ZoneInfo,
        retention_days: int = DEFAULT_RETENTION_DAYS,
        prefix: str = "siyu-guard:report",
    ) -> None:
        self._redis = client
        self._tz = tz
        self.retention_days = retention_days
        self._prefix = prefix

    def key(self, day: date) -> str:
        return f"{self._prefix}:{day.isoformat()}"

    def applied_key(self, day: date) -> str:
        """Each writer's last applied batch for `day`: in the day hash's slot (its name is the day key's
        hash tag, or shares the day key's own tag)."""
        key = self.key(day)
        return f"{key}:applied" if "{" in key else f"{{{key}}}:applied"

    def _expire_at(self, day: date) -> int:
        end = datetime.combine(day + timedelta(days=1 + self.retention_days), datetime.min.time(), self._tz)
        return int(end.timestamp())

    async def add(
        self, day: date, counts: Mapping[str, int], *, writer: str | None = None, batch: int = 1
    ) -> list[int]:
        if not counts:
            return []
        keys = [self.key(day), self.applied_key(day)]
        args: list[str | int] = [self._expire_at(day), writer or f"once-{uuid.uuid4().hex}", batch]
        for name, n in counts.items():
            args += (name, n)
        results = await once(self._redis, lambda: ADD(self._redis, keys, args))
        return [int(v) for v in results]

    async def read(self, day: date) -> dict[str, int]:
        raw = await once(self._redis, lambda: self._redis.hgetall(self.key(day)))
        return {
            (k.decode() if isinstance(k, bytes) else str(k)): int(v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()
        }


class MemoryReportStore(ReportStore):
    def __init__(self, retention_days: int = DEFAULT_RETENTION_DAYS) -> None:
        self.retention_days = retention_days
        self._days: dict[date, dict[str, int]] = {}

    async def add(
        self, day: date, counts: Mapping[str, int], *, writer: str | None = None, batch: int = 1
    ) -> list[int]:
        counters = self._days.setdefault(day, {})
        out = []
        for name, n in counts.items():
            counters[name] = counters.get(name, 0) + n
            out.append(counters[name])
        newest = max(self._days)
        for old in [d for d in self._days if (newest - d).days > self.retention_days]:
            del self._days[old]
        return out

    async def read(self, day: date) -> dict[str, int]:
        return dict(self._days.get(day, {}))


def _empty_row(ident: str) -> dict[str, Any]:
    return {
        "id": ident,
        "allowed": {},
        "refused": {},
        "upstream_refused": {},
        "sensitive_hits": {},
        "limits_reached": {},
        "complaints": 0,
        "allowed_total": 0,
        "refused_total": 0,
        "violations": 0,
        "linked": [],
    }


def build_report(days: Mapping[date, Mapping[str, int]], tz_name: str) -> dict[str, Any]:
    """Merge the counters of `days` into the report: rows per account and per staff, totals, clean staff."""
    rows: dict[str, dict[str, dict[str, Any]]] = {"a": {}, "s": {}}
    for counters in days.values():
        for name, n in counters.items():
            parts = name.split(SEP)
            if len(parts) != 4 or parts[0] not in rows:
                continue
            scope, ident, metric, detail = parts
            row = rows[scope].setdefault(ident, _empty_row(ident))
            if metric == "complaints":
                row["complaints"] += n
            elif metric == "linked":
                if detail not in row["linked"]:
                    row["linked"].append(detail)
            else:
                table = {
                    "allowed": "allowed",
                    "refused": "refused",
                    "upstream_refused": "upstream_refused",
                    "hit": "sensitive_hits",
                    "limit": "limits_reached",
                }.get(metric)
                if table is None:
                    continue
                row[table][detail] = row[table].get(detail, 0) + n
    for scope_rows in rows.values():
        for row in scope_rows.values():
            row["allowed_total"] = sum(row["allowed"].values())
            row["refused_total"] = sum(row["refused"].values())
            # A violation is something the handbook punishes: a refused action or a customer complaint.
            row["violations"] = row["refused_total"] + row["complaints"]
            row["linked"].sort()
    accounts = sorted(rows["a"].values(), key=lambda r: (-r["refused_total"], r["id"]))
    staff = sorted(rows["s"].values(), key=lambda r: (-r["refused_total"], r["id"]))
    ordered = sorted(days)
    return {
        "from": ordered[0].isoformat() if ordered else None,
        "to": ordered[-1].isoformat() if ordered else None,
        "timezone": tz_name,
        "accounts": accounts,
        "staff": staff,
        "totals": {
            "allowed": sum(r["allowed_total"] for r in accounts),
            "refused": sum(r["refused_total"] for r in accounts),
            "complaints": sum(r["complaints"] for r in accounts),
            "sensitive_hits": sum(sum(r["sensitive_hits"].values()) for r in accounts),
            "limits_reached": sum(sum(r["limits_reached"].values()) for r in accounts),
        },
        "clean_staff": sorted(r["id"] for r in staff if r["violations"] == 0),
    }


class Reports:
    """The report side as the app uses it: record decisions and complaints, build reports."""

    def __init__(self, store: ReportStore, tz: ZoneInfo, tz_name: str = "Asia/Shanghai") -> None:
        self.store = store
        self.tz = tz
        self.tz_name = tz_name

    def today(self, now: float | None = None) -> date:
        return day_of(time.time() if now is None else now, self.tz)

    async def record(self, record: DecisionRecord) -> None:
        counts = tally(record)
        if counts:
            await self.store.add(day_of(record.at, self.tz), counts)

    async def complaint(self, account: str, staff: str | None, at: float | None = None) -> tuple[int, int]:
        """Count one complaint; returns (complaints today, complaints in the last 7 days) for `account`."""
        day = day_of(time.time() if at is None else at, self.tz)
        counts = {_field("a", account, "complaints"): 1}
        if staff:
            counts[_field("s", staff, "complaints")] = 1
            counts[_field("a", account, "linked", staff)] = 1
        today = (await self.store.add(day, counts))[0]
        week = today
        name = _field("a", account, "complaints")
        for back in range(1, 7):
            week += (await self.store.read(day - timedelta(days=back))).get(name, 0)
        return today, week

    async def period(self, start: date, end: date) -> dict[str, Any]:
        if end < start:
            raise ValueError("the period ends before it starts")
        if (end - start).days > 366:
            raise ValueError("a report covers at most 366 days")
        days: dict[date, dict[str, int]] = {}
        current = start
        while current <= end:
            days[current] = await self.store.read(current)
            current += timedelta(days=1)
        report = build_report(days, self.tz_name)
        report["from"], report["to"] = start.isoformat(), end.isoformat()
        return report

    async def hourly(self, day: date) -> dict[str, list[int]]:
        """`day`'s refusals per local hour and category (the `h` counters)."""
        return hourly_refusals(await self.store.read(day), day, self.tz)


# --- rendering -------------------------------------------------------------------------------------


def _fmt(counts: Mapping[str, int]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "-"


CSV_COLUMNS = (
    "scope",
    "id",
    "allowed_total",
    "refused_total",
    "complaints",
    "violations",
    "allowed",
    "refused",
    "sensitive_hits",
    "limits_reached",
    "linked",
)


def report_rows(report: Mapping[str, Any]) -> Iterable[list[str]]:
    for scope, key in (("account", "accounts"), ("staff", "staff")):
        for row in report[key]:
            yield [
                scope,
                row["id"],
                str(row["allowed_total"]),
                str(row["refused_total"]),
                str(row["complaints"]),
                str(row["violations"]),
                _fmt(row["allowed"]),
                _fmt(row["refused"]),
                _fmt(row["sensitive_hits"]),
                _fmt(row["limits_reached"]),
                " ".join(row["linked"]) or "-",
            ]


def render_csv(report: Mapping[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(report_rows(report))
    return buf.getvalue()


def render_table(report: Mapping[str, Any]) -> str:
    head = [
        f"Daily compliance report 每日合规报告  {report['from']} … {report['to']}  ({report['timezone']})",
        "",
    ]
    columns = ["scope", "id", "allowed", "refused", "complaints", "sensitive hits", "limits reached"]
    body = [[r[0], r[1], r[2], r[3], r[4], r[8], r[9]] for r in report_rows(report)]
    widths = [max(len(c), *(len(row[i]) for row in body)) if body else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in body)
    if not body:
        lines.append("(no decisions recorded 无记录)")
    totals = report["totals"]
    lines += [
        "",
        f"totals 合计: allowed 放行 {totals['allowed']}, refused 拦截 {totals['refused']}, "
        f"complaints 投诉 {totals['complaints']}, sensitive hits 敏感词 {totals['sensitive_hits']}, "
        f"limits reached 触达上限 {totals['limits_reached']}",
        "staff with no violation 无违规员工 (compliance bonus 合规奖励): "
        + (", ".join(report["clean_staff"]) or "-"),
    ]
    return "\n".join(head + lines) + "\n"
