"""The guard's own HTTP API: POST /v1/check, GET /v1/rules, POST /v1/rules/reload, /healthz, /readyz,
/metrics. (The risk endpoints — alerts, accounts, reports — are added by guard.risk.install.)
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from guard.core import codes
from guard.core import fields as a
from guard.core.body import BodyError
from guard.core.shared_state import read_last_sync
from guard.core.types import ACTION_KINDS, Action, Attachment, Decision, TextField, Verdict
from guard.http.auth import authenticate
from guard.http.body import read_json
from guard.http.keys import BUNDLE, LIMITER, METRICS, PIPELINE, REDIS, SETTINGS
from guard.http.notify import record_decisions
from guard.http.reload import reload_rules
from guard.http.responses import api_error, json_response, match_json
from guard.observe.metrics import CONTENT_TYPE
from guard.observe.persistence import redis_persistence

# ---- POST /v1/check ----


def check_texts(body: Mapping[str, Any]) -> tuple[TextField, ...]:
    """`text` and `texts` (strings, or objects {where, text}) of a /v1/check body."""
    texts: list[TextField] = a.text(body, "text")
    for i, item in enumerate(a.opt_list(body, "texts") or []):
        if isinstance(item, str):
            texts.append(TextField(f"texts[{i}]", item))
        elif isinstance(item, dict):
            value = a.opt_str(item, "text", f"texts[{i}]")
            where = a.opt_str(item, "where", f"texts[{i}]") or f"texts[{i}]"
            if value:
                texts.append(TextField(where, value))
        else:
            raise a.wrong_type(f"texts[{i}]", "a string or an object {where, text}", item)
    return tuple(texts)


def check_attachments(body: Mapping[str, Any]) -> tuple[Attachment, ...]:
    """`attachments` of a /v1/check body: objects {kind, where, url, appid, page}."""
    attachments: list[Attachment] = []
    for i, item in enumerate(a.obj_list(body, "attachments")):
        where = f"attachments[{i}]"
        att_kind = a.opt_str(item, "kind", where)
        if not att_kind:
            raise BodyError(codes.BAD_REQUEST, f"{where}.kind is missing")
        attachments.append(
            Attachment(
                kind=att_kind,
                where=a.opt_str(item, "where", where) or where,
                url=a.opt_str(item, "url", where),
                appid=a.opt_str(item, "appid", where),
                page=a.opt_str(item, "page", where),
            )
        )
    return tuple(attachments)


def parse_check_body(body: Mapping[str, Any]) -> tuple[Action, bool]:
    """The /v1/check body: an Action as JSON (README "Quick tour")."""
    unknown = set(body) - {
        "kind", "account", "direction", "texts", "text", "attachments", "recipients", "request_id", "dry_run",
    }  # fmt: skip
    if unknown:
        raise BodyError(codes.BAD_REQUEST, f"unknown field {sorted(unknown)[0]!r}")
    kind = a.opt_str(body, "kind")
    if kind not in ACTION_KINDS:
        raise BodyError(codes.BAD_REQUEST, f"kind must be one of {', '.join(ACTION_KINDS)}, got {kind!r}")
    account = a.account_value(body.get("account"), "account")
    if not account:
        raise BodyError(codes.MISSING_ACCOUNT, "account is missing")
    direction = a.opt_str(body, "direction")
    if kind == "add_friend":
        if direction not in ("active", "passive"):
            raise BodyError(codes.BAD_REQUEST, "direction must be 'active' or 'passive' for add_friend")
    elif direction is not None:
        raise BodyError(codes.BAD_REQUEST, "direction applies to add_friend only")
    recipients = a.opt_int(body, "recipients")
    if recipients is not None and recipients < 0:
        raise BodyError(codes.BAD_REQUEST, "recipients must be >= 0")
    if kind == "broadcast" and recipients == 0:
        raise BodyError(codes.RECIPIENTS_UNKNOWN, "a broadcast needs recipients >= 1", where="recipients")
    dry_run = a.opt_bool(body, "dry_run") or False
    action = Action(
        kind=kind,  # type: ignore[arg-type]
        account=account,
        direction=direction,  # type: ignore[arg-type]
        texts=check_texts(body),
        attachments=check_attachments(body),
        recipients=recipients if recipients is not None else (1 if kind != "moment" else 0),
        request_id=a.opt_str(body, "request_id"),
        profile="api",
    )
    return action, dry_run


def verdict_details(verdict: Verdict) -> dict[str, object]:
    details: dict[str, object] = dict(verdict.details)
    if verdict.matches:
        details["matches"] = [{**match_json(m), "action": m.action} for m in verdict.matches]
    return details


def decision_json(decision: Decision) -> dict[str, Any]:
    refusal = decision.refusal
    verdicts = [
        {
            "check": v.check,
            "outcome": v.outcome,
            "code": v.code or None,
            "rule": v.rule,
            "reason_zh": v.reason_zh,
            "reason_en": v.reason_en,
            "details": verdict_details(v),
        }
        for v in decision.verdicts
    ]
    out: dict[str, Any] = {
        "decision": decision.result,
        "allowed": refusal is None,
        "account": decision.action.account,
        "action": decision.action.limit_name,
        "verdicts": verdicts,
    }
    if refusal is not None:
        code = codes.BY_CODE.get(refusal.code)
        out.update(
            code=refusal.code,
            code_name=code.name if code else None,
            rule=refusal.rule,
            message=f"{refusal.reason_zh} / {refusal.reason_en}",
        )
    if decision.quota is not None:
        out["quota"] = [o._asdict() for o in decision.quota.outcomes]
    return out


# /v1/check forwards nothing, so its errors say the request was not checked (the codes' general texts
# speak of forwarding, which is true on a platform's path).
CHECK_ERRORS: dict[str, tuple[str, str]] = {
    codes.BAD_REQUEST.name: (
        "请求无法解析（JSON 格式、编码或字段类型有误），未作检查。请修正请求后重试。",
        "The request could not be parsed (JSON syntax, encoding or a field type), so nothing was checked. "
        "Fix the request and retry.",
    ),
    codes.BODY_TOO_LARGE.name: (
        "请求体超过大小上限，未作检查。请缩短内容。",
        "The request body is over the size limit, so nothing was checked. Shorten it.",
    ),
    codes.UNSUPPORTED_BODY.name: (
        "请求体类型或压缩方式不受支持（需 JSON，gzip/deflate 可用），未作检查。",
        "The body type or encoding is not supported (JSON required; gzip/deflate accepted); "
        "nothing was checked.",
    ),
    codes.MISSING_ACCOUNT.name: (
        "请求中没有账号（account），无法核对额度，未作检查。请补充 account 字段。",
        "The request names no account, so its limits cannot be checked; nothing was checked. Add `account`.",
    ),
    codes.RECIPIENTS_UNKNOWN.name: (
        "群发需要 recipients（接收人数）≥ 1 才能核对每日群发人数上限，未作检查。",
        "A broadcast needs recipients >= 1 to check the daily recipient limit; nothing was checked.",
    ),
    codes.ACCOUNT_NOT_PERMITTED.name: (
        "你的密钥无权操作该账号，未作检查。请使用你负责的账号，或联系管理员授权。",
        "Your key may not act for this account, so nothing was checked. "
        "Use an account you manage or ask an admin.",
    ),
}


def check_error(code: codes.GuardCode, detail: str) -> web.HTTPException:
    zh, en = CHECK_ERRORS.get(code.name, ("", ""))
    return api_error(code, detail, zh=zh, en=en)


async def check(request: web.Request) -> web.StreamResponse:
    client = authenticate(request)
    started = time.perf_counter()
    try:
        _, parsed = await read_json(request, request.app[SETTINGS].body_limit)
        action, dry_run = parse_check_body(a.root_object(parsed))
    except BodyError as exc:
        raise check_error(exc.code, exc.detail) from None
    if not client.may_act_for(action.account):
        raise check_error(codes.ACCOUNT_NOT_PERMITTED, f"account {action.account}")
    decisions = await request.app[PIPELINE].decide([action], dry_run=dry_run)
    request.app[METRICS].latency.observe(time.perf_counter() - started)
    await record_decisions(request.app, decisions, "checked", client=client, dry_run=dry_run)
    out = decision_json(decisions[0])
    out["dry_run"] = dry_run
    return json_response(out)


# ---- rules ----


async def rules_status(app: web.Application) -> dict[str, Any]:
    store = app[BUNDLE]
    bundle = store.current
    return {
        # The rules directory's hash (rules.directory_hash): what `guard rules check DIR` prints and
        # guard_rules_info{version} shows.
        "version": store.version,
        "directory": str(bundle.directory),
        "loaded_at": store.loaded_at,
        "reloads": store.reloads,
        "last_error": store.last_error,
        "last_error_at": store.last_error_at,
        "categories": list(bundle.ruleset.categories),
        "engine": bundle.ruleset.engine,  # the Aho-Corasick engine the rules are compiled with
        "profiles": [p.name for p in bundle.profiles.profiles],
        "tiers": list(bundle.limits.tier_names),
        "accounts": len(bundle.registry),
        # The last `guard intercept sync` of any instance (None without Redis or before the first).
        "intercept": await read_last_sync(app[REDIS]),
    }


async def rules_get(request: web.Request) -> web.StreamResponse:
    authenticate(request)
    return json_response(await rules_status(request.app))


async def rules_reload(request: web.Request) -> web.StreamResponse:
    client = authenticate(request, "admin")
    ok = await reload_rules(request.app, f"POST /v1/rules/reload by {client.name}", publish=True)
    status = await rules_status(request.app)
    status["reloaded"] = ok
    return json_response(status, 200 if ok else 422)


# ---- operations ----


async def healthz(request: web.Request) -> web.StreamResponse:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.StreamResponse:
    app = request.app
    problems: list[str] = []
    if not app[BUNDLE].loaded:
        problems.append("rules not loaded")
    redis_ok: bool | None = None
    if app[SETTINGS].redis_url:
        try:
            redis_ok = bool(await app[LIMITER].ping())
        except Exception:
            redis_ok = False
        if not redis_ok:
            problems.append("redis unreachable")
            app[METRICS].redis_errors.inc("readyz")
    body = {
        "ready": not problems,
        "problems": problems,
        "rules_version": app[BUNDLE].version,
        "redis": redis_ok,
        "counters": "redis" if app[SETTINGS].redis_url else "memory",
        "shared_state": app[REDIS] is not None,
    }
    body["redis_persistence"] = await redis_persistence(app[REDIS] if redis_ok else None)  # a warning only
    return json_response(body, 200 if not problems else 503)


async def metrics(request: web.Request) -> web.StreamResponse:
    # This process's metrics, or every worker's under `guard serve --workers N` (guard.observe.metrics).
    return web.Response(
        body=request.app[METRICS].render().encode("utf-8"),
        headers={"Content-Type": CONTENT_TYPE, "X-Prometheus-Format": "0.0.4"},
    )


def setup(app: web.Application) -> None:
    app.router.add_post("/v1/check", check)
    app.router.add_get("/v1/rules", rules_get)
    app.router.add_post("/v1/rules/reload", rules_reload)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
