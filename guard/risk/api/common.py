"""What the risk endpoints share: the error for bad input, reading the path, query and body, and the
account view (tier, usage per rule, freeze) that several of them answer with."""

from __future__ import annotations

from datetime import date
from typing import Any

from aiohttp import web

from guard.config.risk import ALERT_LEVELS
from guard.core import codes
from guard.core.accounts import AccountDirectory
from guard.core.body import BodyError, parse_json
from guard.http.keys import ACCOUNTS, LIMITER, RISK
from guard.http.responses import api_error
from guard.risk.state import RiskState
from ratelimit import Limiter


def bad_input(zh: str, en: str) -> web.HTTPException:
    return api_error(codes.BAD_REQUEST, zh=zh, en=en)


def store_unavailable(exc: Exception) -> web.HTTPException:
    """503 when the alert / report store (Redis) cannot answer, even after reconnecting once."""
    return api_error(
        codes.COUNTERS_UNAVAILABLE,
        type(exc).__name__,
        zh="告警与报告存储（Redis）暂不可用，请稍后重试。",
        en="The alert and report store (Redis) is unreachable; try again shortly.",
    )


def risk_state(request: web.Request) -> RiskState:
    return request.app[RISK]


def alert_levels(request: web.Request) -> list[str] | None:
    raw = request.query.get("level")
    if not raw:
        return None
    levels = [lv.strip() for lv in raw.split(",") if lv.strip()]
    bad = [lv for lv in levels if lv not in ALERT_LEVELS]
    if bad:
        raise bad_input(
            f"未知的告警级别 {bad[0]!r}，可选：{', '.join(ALERT_LEVELS)}。",
            f"Unknown alert level {bad[0]!r}; use one of {', '.join(ALERT_LEVELS)}.",
        )
    return levels


def account_id(request: web.Request) -> str:
    account = request.match_info["account"]
    if not account or len(account) > 200 or any(c.isspace() for c in account):
        raise bad_input("账号 id 无效。", "Invalid account id.")
    return account


async def json_body(request: web.Request) -> dict[str, Any]:
    """The optional JSON object of a risk endpoint (`{}` when there is none), read as strictly as a guarded
    request's (UTF-8, no duplicate keys); whatever its content type, so `curl -d '{…}'` works."""
    if not request.can_read_body:
        return {}
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = parse_json(raw)
    except BodyError as exc:
        raise api_error(exc.code, exc.detail) from None
    if not isinstance(data, dict):
        raise bad_input("请求体应为 JSON 对象。", "The body must be a JSON object.")
    return data


def today_of(request: web.Request) -> date:
    return risk_state(request).reports.today()


def directory_of(request: web.Request) -> AccountDirectory:
    return request.app[ACCOUNTS]


def limiter_of(request: web.Request) -> Limiter:
    return request.app[LIMITER]


def rule_dict(outcome: Any) -> dict[str, Any]:
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
    directory = directory_of(request)
    limiter = limiter_of(request)
    today = today_of(request)
    info = await directory.info(account, today)
    usage: dict[str, list[dict[str, Any]]] = {}
    for action_name, rules in info.rules.items():
        if not rules or limiter is None:
            continue
        outcomes = await limiter.usage(account, list(rules))
        usage[action_name] = [rule_dict(o) for o in outcomes]
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


def parse_day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise bad_input(f"{name} 应为 YYYY-MM-DD。", f"{name} must be YYYY-MM-DD.") from None
