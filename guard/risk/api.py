"""The risk manager's HTTP endpoints on the guard (all JSON; errors bilingual):

GET  /v1/alerts?since=&level=&account=&limit=   alert history, oldest first        (risk, admin)
GET  /v1/alerts/stream                          live alerts as Server-Sent Events  (risk, admin)
GET  /v1/accounts/{id}                          tier, today's usage per rule, frozen (risk, admin)
POST /v1/accounts/{id}/freeze | /unfreeze       stop / resume every guarded action  (admin)
POST /v1/accounts/{id}/recover                  start the 养号 `recovering` tier today (admin)
POST /v1/accounts/{id}/complaints               count a user complaint              (risk, admin)
GET  /v1/matrix/{name}/pick?action=             the matrix account with most quota left (any key)
GET  /v1/reports/daily?day=|from=&to=&format=   the daily compliance report         (risk, admin)
GET  /v1/risk/overview                          everything the dashboard shows      (risk, admin)
GET  /dashboard                                 the dashboard page (static; the key is entered there)
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from importlib import resources
from typing import Any

from aiohttp import web

from guard.config.risk import ALERT_LEVELS, RiskSettings
from guard.risk.model import Alert, mask_pii, valid_stream_id
from guard.risk.observer import RiskObserver
from guard.risk.reports import Reports, render_csv
from guard.risk.sinks import WebhookSink
from guard.risk.sse import stream_alerts
from guard.risk.store import AlertStore

ACCOUNT_ACTIONS = ("add_friend.active", "add_friend.passive", "broadcast", "moment", "message", "welcome")


@dataclass
class RiskState:
    """Everything the risk side holds while the app runs (one per app, behind `RISK`).

    Created by `install` before the app starts (app state cannot change once it runs); the stores are
    bound at start-up, when the Redis connection exists.
    """

    settings: RiskSettings
    observer: RiskObserver
    alerts: AlertStore = field(default=None)  # type: ignore[assignment]
    reports: Reports = field(default=None)  # type: ignore[assignment]
    sinks: list[WebhookSink] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    streams: set[asyncio.Task[Any]] = field(default_factory=set)


RISK: web.AppKey[RiskState] = web.AppKey("risk", RiskState)


def error(status: int, zh: str, en: str, **extra: Any) -> web.HTTPException:
    body = json.dumps({"error": en, "error_zh": zh, "message": f"{zh} / {en}", **extra}, ensure_ascii=False)
    cls = {400: web.HTTPBadRequest, 401: web.HTTPUnauthorized, 403: web.HTTPForbidden, 404: web.HTTPNotFound}
    return cls.get(status, web.HTTPServiceUnavailable)(text=body, content_type="application/json")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(
        data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False, default=str)
    )


# ---- auth ----


@dataclass(frozen=True, slots=True)
class Caller:
    name: str
    role: str
    client: Any = None  # the authenticator's Client (accounts it may act for)

    def may_act_for(self, account: str) -> bool:
        check = getattr(self.client, "may_act_for", None)
        return bool(check(account)) if check is not None else True


def caller(request: web.Request) -> Caller:
    """The key's name and role, through the app's authenticator (the proxy's own: same header, same
    query parameter — which the dashboard's EventSource uses, as it cannot send headers)."""
    from guard.http.keys import SETTINGS
    from guard.http.proxy import AUTH, presented_key

    settings = request.app[SETTINGS]
    presented = presented_key(request, settings)
    if not presented:
        auth = request.headers.get("Authorization", "")
        presented = auth[7:].strip() if auth.lower().startswith("bearer ") else None
    client = request.app[AUTH].identify(presented)
    if client is None:
        header, param = settings.key_header, settings.key_param
        raise error(
            401,
            f"缺少或无效的风控密钥。请在 {header} 请求头或 {param} 参数中携带密钥。",
            f"Missing or invalid guard key. Send it in the {header} header or the {param} query parameter.",
        )
    return Caller(client.name, client.role, client)


def require(request: web.Request, *roles: str) -> Caller:
    who = caller(request)
    if who.role not in roles:
        raise error(
            403,
            f"该密钥的角色（{who.role}）无权执行此操作，需要：{'/'.join(roles)}。",
            f"This key's role ({who.role}) may not do this; it needs: {'/'.join(roles)}.",
        )
    return who


# ---- helpers ----


def _state(request: web.Request) -> RiskState:
    return request.app[RISK]


def _levels(request: web.Request) -> list[str] | None:
    raw = request.query.get("level")
    if not raw:
        return None
    levels = [lv.strip() for lv in raw.split(",") if lv.strip()]
    bad = [lv for lv in levels if lv not in ALERT_LEVELS]
    if bad:
        raise error(
            400,
            f"未知的告警级别 {bad[0]!r}，可选：{', '.join(ALERT_LEVELS)}。",
            f"Unknown alert level {bad[0]!r}; use one of {', '.join(ALERT_LEVELS)}.",
        )
    return levels


def _account_id(request: web.Request) -> str:
    account = request.match_info["account"]
    if not account or len(account) > 200 or any(c.isspace() for c in account):
        raise error(400, "账号 id 无效。", "Invalid account id.")
    return account


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise error(400, "请求体不是有效的 JSON。", "The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise error(400, "请求体应为 JSON 对象。", "The body must be a JSON object.")
    return data


def _today(request: web.Request) -> date:
    return _state(request).reports.today()


def _directory(request: web.Request) -> Any:
    from guard.http.keys import ACCOUNTS

    directory = request.app.get(ACCOUNTS)
    if directory is None:
        raise error(503, "账号目录尚未就绪。", "The account directory is not ready.")
    return directory


def _limiter(request: web.Request) -> Any:
    from guard.http.keys import LIMITER

    return request.app.get(LIMITER)


def _rule_dict(outcome: Any) -> dict[str, Any]:
    return {
        "rule": outcome.rule,
        "window": outcome.window,
        "used": outcome.used,
        "limit": outcome.limit,
        "remaining": outcome.remaining,
        "attempts": outcome.attempts,
        "mode": outcome.mode,
        "resets_at": outcome.resets_at,
    }


async def account_view(request: web.Request, account: str) -> dict[str, Any]:
    directory = _directory(request)
    limiter = _limiter(request)
    today = _today(request)
    info = await directory.info(account, today)
    usage: dict[str, list[dict[str, Any]]] = {}
    for action_name, rules in info.rules.items():
        if not rules or limiter is None:
            continue
        outcomes = await limiter.usage(account, list(rules))
        usage[action_name] = [_rule_dict(o) for o in outcomes]
    return {
        "account": account,
        "tier": info.tier,
        "staff": info.staff,
        "matrix": info.matrix,
        "frozen": info.frozen,
        "frozen_by": info.frozen_by,
        "registered": info.registered.isoformat() if info.registered else None,
        "recovering_since": info.recovering_since.isoformat() if info.recovering_since else None,
        "day": today.isoformat(),
        "usage": usage,
    }


# ---- handlers ----


async def list_alerts(request: web.Request) -> web.Response:
    require(request, "risk", "admin")
    since = request.query.get("since") or None
    if since is not None and not valid_stream_id(since):
        raise error(
            400, "since 应为告警 id，如 1700000000000-0。", "since must be an alert id like 1700000000000-0."
        )
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        raise error(400, "limit 应为整数。", "limit must be an integer.") from None
    limit = max(1, min(limit, 1000))
    state = _state(request)
    alerts = await state.alerts.history(
        since=since, level=_levels(request), account=request.query.get("account") or None, limit=limit
    )
    gap = await state.alerts.trimmed_after(since) if since is not None else None
    return _json(
        {
            "alerts": [a.to_dict() for a in alerts],
            "last_id": await state.alerts.last_id(),
            # Set when alerts after `since` were dropped by the feed's cap (alert_maxlen).
            "lost_through": gap,
        }
    )


async def alert_stream(request: web.Request) -> web.StreamResponse:
    require(request, "risk", "admin")
    state = _state(request)
    task = asyncio.current_task()
    if task is not None:
        state.streams.add(task)
    try:
        return await stream_alerts(
            request,
            state.alerts,
            levels=_levels(request),
            account=request.query.get("account") or None,
            stopping=state.stopping,
        )
    finally:
        if task is not None:
            state.streams.discard(task)


async def get_account(request: web.Request) -> web.Response:
    require(request, "risk", "admin")
    return _json(await account_view(request, _account_id(request)))


async def freeze_account(request: web.Request) -> web.Response:
    who = require(request, "admin")
    account = _account_id(request)
    body = await _body(request)
    # Free text typed by an admin may name a customer or a phone number: masked like every alert text.
    reason = mask_pii(str(body.get("reason", ""))[:200])
    await _directory(request).freeze(account, by=who.name, reason=reason)
    await _state(request).observer.publish(
        Alert(
            level="redline",
            kind="account",
            rule="account:frozen",
            message_zh=f"账号 {account} 已被 {who.name} 冻结{('：' + reason) if reason else ''}",
            message_en=f"Account {account} frozen by {who.name}{(': ' + reason) if reason else ''}",
            account=account,
            window=str(time.time()),
        ),
        0,
    )
    return _json(await account_view(request, account))


async def unfreeze_account(request: web.Request) -> web.Response:
    who = require(request, "admin")
    account = _account_id(request)
    await _directory(request).unfreeze(account, by=who.name)
    await _state(request).observer.publish(
        Alert(
            level="warning",
            kind="account",
            rule="account:unfrozen",
            message_zh=f"账号 {account} 已被 {who.name} 解冻",
            message_en=f"Account {account} unfrozen by {who.name}",
            account=account,
            window=str(time.time()),
        ),
        0,
    )
    return _json(await account_view(request, account))


async def recover_account(request: web.Request) -> web.Response:
    require(request, "admin")
    account = _account_id(request)
    body = await _body(request)
    day = _today(request)
    if "day" in body:
        try:
            day = date.fromisoformat(str(body["day"]))
        except ValueError:
            raise error(400, "day 应为 YYYY-MM-DD。", "day must be YYYY-MM-DD.") from None
    await _directory(request).recover(account, day)
    return _json(await account_view(request, account))


async def add_complaint(request: web.Request) -> web.Response:
    require(request, "risk", "admin")
    account = _account_id(request)
    body = await _body(request)
    staff = body.get("staff")
    if staff is not None and not isinstance(staff, str):
        raise error(400, "staff 应为字符串。", "staff must be a string.")
    state = _state(request)
    directory = _directory(request)
    staff = staff or directory.staff_of(account)
    today, week = await state.reports.complaint(account, staff)
    settings = state.settings
    raised: list[dict[str, Any]] = []
    frozen = False
    breaches = []
    if today >= settings.complaints_per_day:
        breaches.append(("day", today, settings.complaints_per_day, state.reports.today().isoformat()))
    if week >= settings.complaints_per_week:
        week_start = state.reports.today() - timedelta(days=6)
        breaches.append(("week", week, settings.complaints_per_week, f"7d-from-{week_start.isoformat()}"))
    for period, count, limit, window in breaches:
        period_zh = "今日" if period == "day" else "近 7 天"
        alert = Alert(
            level="redline",
            kind="complaint",
            rule=f"complaints/{period}",
            message_zh=f"账号 {account} {period_zh}收到投诉 {count} 次（告警线 {limit}）",
            message_en=f"Account {account} got {count} complaints in the last {period} (alert at {limit})",
            account=account,
            staff=staff,
            window=window,
            used=count,
            limit=limit,
        )
        stored = await state.observer.publish(alert, 8 * 86400.0)
        if stored is not None:
            raised.append(stored.to_dict())
    if breaches and settings.complaints_auto_freeze:
        await directory.freeze(
            account, by="auto:complaints", reason=f"{today} complaints today, {week} in 7 days"
        )
        frozen = True
    return _json(
        {
            "account": account,
            "complaints_today": today,
            "complaints_7d": week,
            "alerts": raised,
            "frozen": frozen,
        }
    )


async def matrix_pick(request: web.Request) -> web.Response:
    who = caller(request)
    name = request.match_info["name"]
    action = request.query.get("action", "add_friend.active")
    if action == "add_friend":
        action = "add_friend.active"
    if action not in ACCOUNT_ACTIONS:
        raise error(
            400,
            f"未知的操作 {action[:40]!r}，可选：{', '.join(ACCOUNT_ACTIONS)}。",
            f"Unknown action {action[:40]!r}; use one of {', '.join(ACCOUNT_ACTIONS)}.",
        )
    directory = _directory(request)
    limiter = _limiter(request)
    members = directory.matrix_members(name)
    if not members:
        raise error(404, f"没有名为 {name} 的账号矩阵。", f"No account matrix named {name}.")
    today = _today(request)
    candidates = []
    for account in members:
        # A staff key is offered only accounts it may act for; frozen accounts never.
        if not who.may_act_for(account) or await directory.is_frozen(account):
            continue
        candidates.append((account, directory.rules_for(account, action, today)))
    picked = await limiter.pick(candidates) if candidates and limiter is not None else None
    remaining = None
    if picked is not None:
        rules = dict(candidates)[picked]
        outcomes = await limiter.usage(picked, list(rules)) if rules else ()
        remaining = min((o.remaining for o in outcomes), default=None)
    return _json(
        {"matrix": name, "action": action, "account": picked, "remaining": remaining, "members": members}
    )


def _parse_day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise error(400, f"{name} 应为 YYYY-MM-DD。", f"{name} must be YYYY-MM-DD.") from None


async def daily_report(request: web.Request) -> web.Response:
    require(request, "risk", "admin")
    reports = _state(request).reports
    q = request.query
    if "from" in q or "to" in q:
        start = _parse_day(q.get("from", q.get("to", "")), "from")
        end = _parse_day(q.get("to", q.get("from", "")), "to")
    else:
        start = end = _parse_day(q["day"], "day") if "day" in q else reports.today()
    try:
        report = await reports.period(start, end)
    except ValueError as exc:
        raise error(400, "报告时间段无效。", f"Invalid report period: {exc}") from None
    if q.get("format") == "csv":
        return web.Response(text=render_csv(report), content_type="text/csv", charset="utf-8")
    return _json(report)


async def overview(request: web.Request) -> web.Response:
    """What the dashboard shows: accounts with usage, top refusals, rules status, the caller's role."""
    who = require(request, "risk", "admin")
    state = _state(request)
    report = await state.reports.period(state.reports.today(), state.reports.today())
    names: set[str] = {row["id"] for row in report["accounts"]}
    try:
        from guard.http.keys import BUNDLE

        bundle = request.app.get(BUNDLE)
    except ImportError:
        bundle = None
    current = getattr(bundle, "current", None)
    registry = getattr(current, "accounts", None) or getattr(current, "registry", None)
    listed = getattr(registry, "accounts", None)
    if isinstance(listed, dict):
        names.update(listed)
    accounts = []
    for name in sorted(names)[:500]:
        try:
            accounts.append(await account_view(request, name))
        except web.HTTPException:
            raise
        except Exception as exc:  # one broken account must not blank the page
            accounts.append({"account": name, "error": str(exc)})
    rules = {
        "version": getattr(bundle, "version", None) or getattr(current, "version", None),
        "loaded_at": getattr(bundle, "loaded_at", None),
        "last_error": getattr(bundle, "last_error", None),
        "last_error_at": getattr(bundle, "last_error_at", None),
    }
    return _json(
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
                "waiting_for_redis": state.observer.waiting,
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


# ---- dashboard (static) ----

DASHBOARD_FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}


def _dashboard_file(name: str) -> bytes:
    return resources.files("guard.risk").joinpath("dashboard", name).read_bytes()


async def dashboard(request: web.Request) -> web.StreamResponse:
    name = request.match_info.get("file") or "index.html"
    if name not in DASHBOARD_FILES:
        raise web.HTTPNotFound()
    if request.path == "/dashboard":
        raise web.HTTPFound("/dashboard/")
    return web.Response(
        body=_dashboard_file(name),
        content_type=DASHBOARD_FILES[name],
        charset="utf-8",
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/alerts", list_alerts)
    app.router.add_get("/v1/alerts/stream", alert_stream)
    app.router.add_get("/v1/accounts/{account}", get_account)
    app.router.add_post("/v1/accounts/{account}/freeze", freeze_account)
    app.router.add_post("/v1/accounts/{account}/unfreeze", unfreeze_account)
    app.router.add_post("/v1/accounts/{account}/recover", recover_account)
    app.router.add_post("/v1/accounts/{account}/complaints", add_complaint)
    app.router.add_get("/v1/matrix/{name}/pick", matrix_pick)
    app.router.add_get("/v1/reports/daily", daily_report)
    app.router.add_get("/v1/risk/overview", overview)
    app.router.add_get("/dashboard", dashboard)
    app.router.add_get("/dashboard/", dashboard)
    app.router.add_get("/dashboard/{file}", dashboard)
