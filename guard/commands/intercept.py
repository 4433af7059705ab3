"""`guard intercept plan|sync [--rules DIR]`: the rules directory as WeCom's own chat intercept rules.

plan: print `{"rules": [add_intercept_rule bodies], "left_out": [...], ...}`; exit 1 when a blocking term
is left out, 2 for a bad rules directory (`file:line: reason`).
sync: apply the plan with the corp's credentials (`wecom_corpid`, `wecom_secret`), touching only the rules
the guard owns; print {created, updated, deleted, unchanged, errors, left_out}; exit 1 when a write failed
or a blocking term was left out, 2 when WeCom or the settings cannot be used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

from guard.config.settings import SettingsError, load_settings
from guard.core.shared_state import INTERCEPT_LAST_SYNC, encode_summary, sync_summary
from guard.wecom.client import WeComClient, WeComError
from guard.wecom.intercept import Plan, build_plan
from guard.wecom.sync import sync_plan
from ratelimit import RedisTarget, connect, resolve
from rules import RulesInvalid


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "intercept", help="WeCom's own chat intercept rules (敏感词规则) from the rules directory"
    )
    isub = p.add_subparsers(dest="intercept_command", required=True, metavar="SUBCOMMAND")
    plan = isub.add_parser(
        "plan",
        help="print the add_intercept_rule bodies for the rules directory",
        description='Print {"rules": [add_intercept_rule bodies], "left_out": [...]}. '
        "Exit 1 when a blocking term is left out, 2 for a bad rules directory.",
    )
    plan.add_argument(
        "--rules", metavar="DIR", default=None, help="rules directory (default: the shipped rules)"
    )
    plan.set_defaults(run=run_plan)
    sync = isub.add_parser(
        "sync",
        help="apply the plan to the corp's intercept rules (only the guard's own)",
        description="Create, update and delete the guard's own intercept rules "
        "(named <prefix><category>-<n>) so that they match the plan; rules made by hand are never "
        "touched. Needs wecom_corpid and wecom_secret (GUARD_WECOM_CORPID / GUARD_WECOM_SECRET).",
    )
    sync.add_argument("--rules", metavar="DIR", default=None, help="rules directory (default: rules_dir)")
    sync.add_argument("--config", metavar="FILE", type=Path, default=None, help="TOML settings file")
    sync.add_argument("--upstream", metavar="URL", default=None, help="WeCom API base URL")
    sync.add_argument("--dry-run", action="store_true", help="read the corp's rules, say what would change")
    sync.set_defaults(run=run_sync)


def _plan_or_errors(rules_dir: str | Path | None) -> Plan | None:
    try:
        return build_plan(rules_dir)
    except RulesInvalid as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        print("guard intercept: the rules directory is invalid (see above)", file=sys.stderr)
        return None


def _say_left_out(plan: Plan) -> None:
    for item in plan.left_out:
        what = "term" if item.kind == "term" else f"{item.kind} variant"
        print(f"left out ({item.category}, {what}): {item.term!r}: {item.reason}", file=sys.stderr)


def run_plan(args: argparse.Namespace) -> int:
    plan = _plan_or_errors(args.rules)
    if plan is None:
        return 2
    print(json.dumps(plan.to_json(), ensure_ascii=False))
    _say_left_out(plan)
    return 1 if plan.blocking_left_out else 0


async def _sync(upstream: str, corpid: str, secret: str, plan: Plan, dry_run: bool) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        client = WeComClient(upstream, corpid, secret, session=session)
        return await sync_plan(client, plan, dry_run=dry_run)


async def _record(redis_url: str, cluster: bool | None, report: Mapping[str, Any]) -> None:
    """Leave the outcome where every guard instance shows it (/v1/rules, the dashboard)."""
    target = await resolve(RedisTarget.from_url(redis_url, cluster=cluster), socket_timeout=5.0)
    client = connect(target, socket_timeout=5.0, socket_connect_timeout=5.0)
    try:
        await client.set(INTERCEPT_LAST_SYNC, encode_summary(sync_summary(report)))
    finally:
        await client.aclose()


def run_sync(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(
            config=args.config, flags={"rules_dir": args.rules, "upstream": args.upstream}
        )
    except SettingsError as exc:
        print(f"guard intercept sync: {exc}", file=sys.stderr)
        return 2
    if not settings.wecom_corpid or not settings.wecom_secret:
        print(
            "guard intercept sync: set wecom_corpid and wecom_secret "
            "(GUARD_WECOM_CORPID / GUARD_WECOM_SECRET): the corp id and the secret of an app "
            "configured under 客户联系 → 可调用接口的应用",
            file=sys.stderr,
        )
        return 2
    plan = _plan_or_errors(settings.rules_dir)
    if plan is None:
        return 2
    try:
        report = asyncio.run(
            _sync(settings.upstream, settings.wecom_corpid, settings.wecom_secret, plan, args.dry_run)
        )
    except WeComError as exc:
        print(f"guard intercept sync: nothing written: {exc}", file=sys.stderr)
        return 2
    report["left_out"] = [item.to_json() for item in plan.left_out]
    if settings.redis_url and not args.dry_run:
        try:
            asyncio.run(_record(settings.redis_url, settings.redis_cluster, report))
        except Exception as exc:  # the sync itself is done; only its record for the dashboard is missing
            print(f"guard intercept sync: could not record the outcome in Redis: {exc}", file=sys.stderr)
    print(json.dumps(report, ensure_ascii=False))
    _say_left_out(plan)
    for error in report["errors"]:
        print(
            f"error ({error['rule_name']}): {error['call']} errcode {error['errcode']}: {error['errmsg']}",
            file=sys.stderr,
        )
    return 1 if report["errors"] or plan.blocking_left_out else 0
