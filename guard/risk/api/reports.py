"""GET /v1/reports/daily (the compliance report) and GET /v1/risk/overview (what the dashboard shows)."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from typing import Any

from aiohttp import web
from redis.exceptions import RedisError

from guard.core.shared_state import read_last_sync
from guard.http.auth import authenticate
from guard.http.keys import BUNDLE, REDIS
from guard.http.responses import json_response
from guard.risk.api.common import (
    account_view,
    bad_input,
    directory_of,
    parse_day,
    risk_state,
    store_unavailable,
)
from guard.risk.observer import RiskObserver
from guard.risk.reports import render_csv
from guard.risk.state import RiskState


async def daily_report(request: web.Request) -> web.Response:
    authenticate(request, "risk")
    reports = risk_state(request).reports
    q = request.query
    if "from" in q or "to" in q:
        start = parse_day(q.get("from", q.get("to", "")), "from")
        end = parse_day(q.get("to", q.get("from", "")), "to")
    else:
        start = end = parse_day(q["day"], "day") if "day" in q else reports.today()
    try:
        report = await reports.period(start, end)
    except ValueError as exc:
        raise bad_input("报告时间段无效。", f"Invalid report period: {exc}") from None
    except RedisError as exc:
        raise store_unavailable(exc) from None
    if q.get("format") == "csv":
        return web.Response(text=render_csv(report), content_type="text/csv", charset="utf-8")
    return json_response(report)


# The overview lists at most this many accounts: frozen ones first, then those active today, then the
# rest of the registry (the dashboard sorts them by how close each is to a limit).
MAX_ACCOUNTS = 2000


async def overview(request: web.Request) -> web.Response:
    """What the dashboard shows: accounts with usage, top refusals, rules status, the caller's role, the
    refusals and red-line alerts per hour today, and today's compliance per staff member."""
    who = authenticate(request, "risk")
    state = risk_state(request)
    reports = state.reports
    today = reports.today()
    try:
        report = await reports.period(today, today)
        hourly = await reports.hourly(today)
        redlines = await redline_per_hour(state, today)
    except RedisError as exc:
        raise store_unavailable(exc) from None
    store = request.app[BUNDLE]
    rows = {row["id"]: row for row in report["accounts"]}
    # Frozen accounts come first so an idle frozen one still gets its card (and its Unfreeze button).
    names = dict.fromkeys(
        [*directory_of(request).frozen_overrides(), *rows, *sorted(store.current.registry.accounts)]
    )
    views = [
        dashboard_account(v, rows.get(v["account"]))
        for v in await account_views(request, list(names)[:MAX_ACCOUNTS])
    ]
    views.sort(key=lambda v: (-v.get("peak", 0.0), not v.get("frozen"), -v.get("refused", 0), v["account"]))
    return json_response(
        {
            "role": who.role,
            "key": who.name,
            "day": report["from"],
            "timezone": report["timezone"],
            "accounts": views,
            "accounts_total": len(names),
            "top_accounts": top_refused(report["accounts"]),
            "top_staff": top_refused(report["staff"]),
            "totals": report["totals"],
            "hourly": {"refused": hourly, "redline": redlines},
            "staff": staff_rows(report),
            "clean_staff": report["clean_staff"],
            "rules": {
                "version": store.version,
                "loaded_at": store.loaded_at,
                "last_error": store.last_error,
                "last_error_at": store.last_error_at,
                "intercept": await read_last_sync(request.app[REDIS]),
            },
            "alerts_backend": state.alerts.backend,
            "observer": observer_status(state.observer),
            "webhooks": [
                {
                    "name": s.settings.name,
                    "sent": s.sent_alerts,
                    "failures": s.failures,
                    "last_error": s.last_error,
                }
                for s in state.sinks
            ],
        }
    )


def dashboard_account(view: dict[str, Any], row: dict[str, Any] | None) -> dict[str, Any]:
    """An account view as the dashboard lists it: only the rules used today (or tried past their limit),
    `peak` = the highest used / limit of its enforced rules, `refused` = its refusals today."""
    if "usage" not in view:
        return view
    usage: dict[str, list[dict[str, Any]]] = {}
    peak = 0.0
    for action, rules in view["usage"].items():
        used = [r for r in rules if r["used"] or r["attempts"]]
        if used:
            usage[action] = used
        for r in used:
            if r["mode"] == "enforce" and r["limit"] and r["limit"] > 0:
                peak = max(peak, r["used"] / r["limit"])
    return {**view, "usage": usage, "peak": round(peak, 4), "refused": row["refused_total"] if row else 0}


def staff_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each staff member's day, the figures of `guard report`, with the accounts they used."""
    accounts: dict[str, list[str]] = {}
    for row in report["accounts"]:
        for staff in row["linked"]:
            accounts.setdefault(staff, []).append(row["id"])
    return [
        {
            "id": row["id"],
            "allowed": row["allowed_total"],
            "refused": row["refused_total"],
            "complaints": row["complaints"],
            "violations": row["violations"],
            "sensitive_hits": sum(row["sensitive_hits"].values()),
            "limits_reached": sum(row["limits_reached"].values()),
            "accounts": sorted(accounts.get(row["id"], [])),
        }
        for row in report["staff"]
    ]


async def redline_per_hour(state: RiskState, day: date, most: int = 5000) -> list[int]:
    """Red-line alerts per local hour (0-23) of `day` (one alert per account, rule and window: each is its
    own event). Reads forward from the day's start (alert ids are millisecond times), up to `most`."""
    tz = state.reports.tz
    start_ms = int(datetime.combine(day, datetime.min.time(), tz).timestamp() * 1000)
    counts = [0] * 24
    for alert in await state.alerts.history(since=f"{start_ms - 1}-0", level=["redline"], limit=most):
        local = datetime.fromtimestamp(alert.at, tz)
        if local.date() == day:
            counts[local.hour] += 1
    return counts


async def account_views(request: web.Request, names: list[str], parallel: int = 16) -> list[dict[str, Any]]:
    """The views of `names`, in order, `parallel` at a time (each is a few counter reads: with Redis,
    hundreds of accounts one after the other would take seconds)."""
    gate = asyncio.Semaphore(parallel)

    async def one(name: str) -> dict[str, Any]:
        async with gate:
            try:
                return await account_view(request, name)
            except web.HTTPException:
                raise
            except Exception as exc:  # one broken account must not blank the page
                return {"account": name, "error": str(exc)}

    return list(await asyncio.gather(*(one(name) for name in names)))


def top_refused(rows: list[dict[str, Any]], most: int = 10) -> list[dict[str, Any]]:
    return [{"id": r["id"], "refused": r["refused_total"]} for r in rows if r["refused_total"]][:most]


def observer_status(observer: RiskObserver) -> dict[str, int]:
    return {
        "published": observer.published,
        "dropped": observer.dropped,
        "alerts_dropped": observer.alerts_dropped,
        "queue_depth": observer.queue_depth,
        "waiting_for_redis": observer.waiting,
        "spooled_counters": observer.spooled_counters,
        "spooled_alerts": observer.spooled_alerts,
    }
