"""`guard report`: the daily compliance report, per account and per staff member.

Reads the daily aggregates from Redis (`--redis URL`, or the redis_url of the config / environment),
or asks a running guard (`--url http://127.0.0.1:8080 --key KEY`) — the way to reach the in-memory
aggregates of a guard started without Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "report",
        help="daily compliance report per account and staff (每日合规报告)",
        description="Daily compliance report: allowed / refused by action, sensitive hits by category, "
        "limits reached, complaints, and the staff with no violation (compliance bonus).",
    )
    p.add_argument("--day", help="the day, YYYY-MM-DD (default: today in the guard's timezone)")
    p.add_argument("--from", dest="start", help="first day of a period, YYYY-MM-DD")
    p.add_argument("--to", dest="end", help="last day of a period, YYYY-MM-DD (default: --from)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--config", type=Path, help="the guard's TOML config (for redis_url, timezone, [risk])")
    p.add_argument("--redis", help="Redis URL holding the aggregates (default: the config's redis_url)")
    p.add_argument("--url", help="ask a running guard instead, e.g. http://127.0.0.1:8080")
    p.add_argument("--key", help="a risk or admin key for --url")
    p.set_defaults(run=run)


class ReportError(Exception):
    pass


def _day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ReportError(f"{name} must be a date YYYY-MM-DD, got {value!r}") from None


def _period(args: argparse.Namespace, today: date) -> tuple[date, date]:
    if args.day and (args.start or args.end):
        raise ReportError("use either --day or --from/--to, not both")
    if args.start or args.end:
        start = _day(args.start or args.end, "--from")
        end = _day(args.end or args.start, "--to")
    else:
        start = end = _day(args.day, "--day") if args.day else today
    if end < start:
        raise ReportError("--to is before --from")
    if (end - start) > timedelta(days=366):
        raise ReportError("a report covers at most 366 days")
    return start, end


async def _from_guard(args: argparse.Namespace) -> dict[str, Any]:
    import aiohttp

    params: dict[str, str] = {}
    if args.day:
        params["day"] = args.day
    if args.start or args.end:
        params["from"] = args.start or args.end
        params["to"] = args.end or args.start
    headers = {"X-Guard-Key": args.key} if args.key else {}
    url = args.url.rstrip("/") + "/v1/reports/daily"
    async with aiohttp.ClientSession() as session, session.get(url, params=params, headers=headers) as resp:
        text = await resp.text()
        if resp.status in (401, 403):
            raise ReportError(_refused(url, resp.status, bool(args.key)))
        if resp.status != 200:
            raise ReportError(f"{url} answered HTTP {resp.status}: {_message(text)}")
        data = json.loads(text)
    if not isinstance(data, dict):
        raise ReportError(f"{url} did not answer a report")
    return data


def _refused(url: str, status: int, with_key: bool) -> str:
    if not with_key:
        return f"{url} needs a client key (HTTP {status}): pass --key KEY, a key with the risk or admin role"
    if status == 401:
        return f"{url} does not know this key (HTTP 401): check --key"
    return f"{url} refused this key (HTTP 403): the report needs a key with the risk or admin role"


def _message(text: str) -> str:
    """The `message` of a guard's error answer, else the start of the body."""
    try:
        data = json.loads(text)
    except ValueError:
        return text[:300]
    message = data.get("message") if isinstance(data, dict) else None
    return message if isinstance(message, str) else text[:300]


async def _from_redis(args: argparse.Namespace) -> dict[str, Any]:
    from guard.config.settings import load_settings
    from guard.risk.reports import RedisReportStore, Reports, day_of
    from ratelimit import RedisTarget, connect, resolve

    flags: dict[str, object] = {"redis_url": args.redis}
    settings = load_settings(config=args.config, env=os.environ, flags=flags)
    if not settings.redis_url:
        raise ReportError(
            "no Redis configured: pass --redis URL (or redis_url in --config), or ask a running guard "
            "with --url http://127.0.0.1:8080 --key KEY (a guard without Redis keeps its figures in memory)"
        )
    tz = ZoneInfo(settings.timezone)
    risk = settings.risk
    # The dates are checked before Redis is asked anything.
    start, end = _period(args, day_of(time.time(), tz))
    target = await resolve(
        RedisTarget.from_url(settings.redis_url, cluster=settings.redis_cluster),
        socket_timeout=5.0,
        socket_connect_timeout=5.0,
    )
    # As before: the Cluster client gets no connect timeout of its own (redis-py's default).
    client = connect(target, socket_timeout=5.0, socket_connect_timeout=None if target.cluster else 5.0)
    try:
        reports = Reports(RedisReportStore(client, tz, risk.retention_days), tz, settings.timezone)
        return await reports.period(start, end)
    finally:
        await client.aclose()


def run(args: argparse.Namespace) -> int:
    from guard.risk.reports import render_csv, render_table

    try:
        if args.url:
            _period(args, date.today())  # validate the dates before asking
            report = asyncio.run(_from_guard(args))
        else:
            report = asyncio.run(_from_redis(args))
    except (ReportError, ValueError) as exc:
        print(f"guard report: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"guard report: cannot reach the report store: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if type(exc).__module__.startswith(("redis", "aiohttp")):
            print(f"guard report: cannot reach the report store: {exc}", file=sys.stderr)
            return 2
        raise
    if args.format == "json":
        sys.stdout.write(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    elif args.format == "csv":
        sys.stdout.write(render_csv(report))
    else:
        sys.stdout.write(render_table(report))
    return 0
