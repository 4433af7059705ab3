"""GET /v1/reports/daily (the compliance report) and GET /v1/risk/overview (what the dashboard shows)."""

from __future__ import annotations

from aiohttp import web
from redis.exceptions import RedisError

from guard.http.auth import authenticate
from guard.http.keys import BUNDLE
from guard.http.responses import json_response
from guard.risk.api.common import account_view, bad_input, parse_day, risk_state, store_unavailable
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
    names: set[str] = {row["id"] for row in report["accounts"]}
    store = request.app[BUNDLE]
    names.update(store.current.registry.accounts)
    accounts = []
    for name in sorted(names)[:500]:
        try:
            accounts.append(await account_view(request, name))
        except web.HTTPException:
            raise
        except Exception as exc:  # one broken account must not blank the page
            accounts.append({"account": name, "error": str(exc)})
    rules = {
        "version": store.version,
        "loaded_at": store.loaded_at,
        "last_error": store.last_error,
        "last_error_at": store.last_error_at,
    }
    return json_response(
        {
            "role": who.role,
            "key": who.name,
            "day": report["from"],
            "timezone": report["timezone"],
            "accounts": accounts,
            "top_accounts": [
                {"id": r["id"], "refused": r["refused_total"]}
                for r in report["accounts"]
                if r["refused_total"]
            ][:10],
            "top_staff": [
                {"id": r["id"], "refused": r["refused_total"]} for r in report["staff"] if r["refused_total"]
            ][:10],
            "totals": report["totals"],
            "rules": rules,
            "alerts_backend": state.alerts.backend,
            "observer": {
                "published": state.observer.published,
                "dropped": state.observer.dropped,
                "alerts_dropped": state.observer.alerts_dropped,
                "queue_depth": state.observer.queue_depth,
                "waiting_for_redis": state.observer.waiting,
                "spooled_counters": state.observer.spooled_counters,
                "spooled_alerts": state.observer.spooled_alerts,
            },
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
