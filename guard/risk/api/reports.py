"""GET /v1/reports/daily (the compliance report) and GET /v1/risk/overview (what the dashboard shows)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from redis.exceptions import RedisError

from guard.http.auth import authenticate
from guard.http.keys import BUNDLE
from guard.http.responses import json_response
from guard.risk.api.common import account_view, bad_input, parse_day, risk_state, store_unavailable
from guard.risk.observer import RiskObserver
from guard.risk.reports import render_csv


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


async def overview(request: web.Request) -> web.Response:
    """What the dashboard shows: accounts with usage, top refusals, rules status, the caller's role."""
    who = authenticate(request, "risk")
    state = risk_state(request)
    try:
        report = await state.reports.period(state.reports.today(), state.reports.today())
    except RedisError as exc:
        raise store_unavailable(exc) from None
    store = request.app[BUNDLE]
    names: set[str] = {row["id"] for row in report["accounts"]}
    names.update(store.current.registry.accounts)
    return json_response(
        {
            "role": who.role,
            "key": who.name,
            "day": report["from"],
            "timezone": report["timezone"],
            "accounts": await account_views(request, sorted(names)[:500]),
            "top_accounts": top_refused(report["accounts"]),
            "top_staff": top_refused(report["staff"]),
            "totals": report["totals"],
            "rules": {
                "version": store.version,
                "loaded_at": store.loaded_at,
                "last_error": store.last_error,
                "last_error_at": store.last_error_at,
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


async def account_views(request: web.Request, names: list[str]) -> list[dict[str, Any]]:
    views: list[dict[str, Any]] = []
    for name in names:
        try:
            views.append(await account_view(request, name))
        except web.HTTPException:
            raise
        except Exception as exc:  # one broken account must not blank the page
            views.append({"account": name, "error": str(exc)})
    return views


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
