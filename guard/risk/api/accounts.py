"""The account endpoints: view, freeze / unfreeze, recover (养号), complaints, and the matrix pick."""

from __future__ import annotations

import time
from datetime import date, timedelta
from typing import Any

from aiohttp import web

from guard.config.risk import AlertLevel
from guard.core import codes
from guard.core.types import ACTION_NAMES
from guard.http.auth import authenticate
from guard.http.responses import api_error, json_response
from guard.observe.masking import mask_pii
from guard.risk.api.common import (
    account_id,
    account_view,
    bad_input,
    directory_of,
    json_body,
    limiter_of,
    risk_state,
    today_of,
)
from guard.risk.model import Alert


async def announce(
    request: web.Request, account: str, level: AlertLevel, rule: str, zh: str, en: str
) -> None:
    """Tell the risk feed what a risk manager did to an account (each action its own alert: no dedup)."""
    alert = Alert(
        level=level,
        kind="account",
        rule=rule,
        message_zh=zh,
        message_en=en,
        account=account,
        window=str(time.time()),
    )
    await risk_state(request).observer.publish(alert, 0)


async def get_account(request: web.Request) -> web.Response:
    authenticate(request, "risk")
    return json_response(await account_view(request, account_id(request)))


async def freeze_account(request: web.Request) -> web.Response:
    who = authenticate(request, "admin")
    account = account_id(request)
    body = await json_body(request)
    # Free text typed by an admin may name a customer or a phone number: masked like every alert text.
    reason = mask_pii(str(body.get("reason", ""))[:200])
    await directory_of(request).freeze(account, by=who.name, reason=reason)
    await announce(
        request,
        account,
        "redline",
        "account:frozen",
        f"账号 {account} 已被 {who.name} 冻结{('：' + reason) if reason else ''}",
        f"Account {account} frozen by {who.name}{(': ' + reason) if reason else ''}",
    )
    return json_response(await account_view(request, account))


async def unfreeze_account(request: web.Request) -> web.Response:
    who = authenticate(request, "admin")
    account = account_id(request)
    await directory_of(request).unfreeze(account, by=who.name)
    await announce(
        request,
        account,
        "warning",
        "account:unfrozen",
        f"账号 {account} 已被 {who.name} 解冻",
        f"Account {account} unfrozen by {who.name}",
    )
    return json_response(await account_view(request, account))


async def recover_account(request: web.Request) -> web.Response:
    authenticate(request, "admin")
    account = account_id(request)
    body = await json_body(request)
    day = today_of(request)
    if "day" in body:
        try:
            day = date.fromisoformat(str(body["day"]))
        except ValueError:
            raise bad_input("day 应为 YYYY-MM-DD。", "day must be YYYY-MM-DD.") from None
    await directory_of(request).recover(account, day)
    return json_response(await account_view(request, account))


async def add_complaint(request: web.Request) -> web.Response:
    authenticate(request, "risk")
    account = account_id(request)
    body = await json_body(request)
    staff = body.get("staff")
    if staff is not None and not isinstance(staff, str):
        raise bad_input("staff 应为字符串。", "staff must be a string.")
    state = risk_state(request)
    directory = directory_of(request)
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
    return json_response(
        {
            "account": account,
            "complaints_today": today,
            "complaints_7d": week,
            "alerts": raised,
            "frozen": frozen,
        }
    )


async def matrix_pick(request: web.Request) -> web.Response:
    who = authenticate(request)
    name = request.match_info["name"]
    action = request.query.get("action", "add_friend.active")
    if action == "add_friend":
        action = "add_friend.active"
    if action not in ACTION_NAMES:
        raise bad_input(
            f"未知的操作 {action[:40]!r}，可选：{', '.join(ACTION_NAMES)}。",
            f"Unknown action {action[:40]!r}; use one of {', '.join(ACTION_NAMES)}.",
        )
    directory = directory_of(request)
    limiter = limiter_of(request)
    members = directory.matrix_members(name)
    if not members:
        raise api_error(
            codes.NOT_FOUND, zh=f"没有名为 {name} 的账号矩阵。", en=f"No account matrix named {name}."
        )
    today = today_of(request)
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
    return json_response(
        {"matrix": name, "action": action, "account": picked, "remaining": remaining, "members": members}
    )
