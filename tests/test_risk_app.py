"""The risk side inside the real guard app (in-memory backends): alerts from real decisions, the report
equal to the decisions made, roles, freeze / unfreeze / recover, complaints, matrix pick, dashboard."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from support import RunningGuard, StubUpstream, eventually, rules_copy, running_guard

from guard.config.risk import RiskSettings
from guard.config.settings import ClientKey, Settings
from guard.http.auth import hash_key
from guard.http.keys import RISK

BROADCAST = "/cgi-bin/externalcontact/add_msg_template"
ADD = "/gewe/v2/api/contacts/addContacts"
KEYS = (
    ClientKey("alice-tool", hash_key("staff-key"), ("acct-*", "wx_*"), "staff"),
    ClientKey("risk-desk", hash_key("risk-key"), ("*",), "risk"),
    ClientKey("boss", hash_key("admin-key"), ("*",), "admin"),
    ClientKey("narrow", hash_key("narrow-key"), ("acct-a",), "staff"),
)
STAFF = {"X-Guard-Key": "staff-key"}
RISK_KEY = {"X-Guard-Key": "risk-key"}
JSON_STAFF = {**STAFF, "Content-Type": "application/json"}
ADMIN = {"X-Guard-Key": "admin-key"}
ACCOUNTS_TOML = """
[accounts.acct-a]
staff = "alice"
matrix = "north"
[accounts.acct-b]
staff = "bob"
matrix = "north"
[accounts.acct-c]
staff = "bob"
matrix = "north"
"""


def broadcast(sender: str, content: str = "双十一新品到店，欢迎来门店试穿") -> dict[str, Any]:
    return {
        "chat_type": "single",
        "external_userid": ["wmA1", "wmA2"],
        "sender": sender,
        "text": {"content": content},
    }


def add_friend(app_id: str) -> dict[str, Any]:
    return {
        "appId": app_id,
        "scene": 3,
        "option": 2,
        "v3": "v3_x",
        "v4": "v4_x",
        "content": "你好，我是门店顾问",
    }


@pytest.fixture
async def guard(stub: StubUpstream, tmp_path: Path) -> AsyncIterator[RunningGuard]:
    rules = rules_copy(tmp_path, accounts=ACCOUNTS_TOML)
    settings = Settings(
        upstream=stub.url, upstreams={"gewe": stub.url}, reload_interval=0, keys=KEYS, rules_dir=rules
    )
    async with running_guard(settings) as g:
        yield g


async def get(guard: RunningGuard, path: str, headers: dict[str, str], **kw: Any) -> tuple[int, Any]:
    async with guard.session.get(guard.url + path, headers=headers, **kw) as resp:
        raw = await resp.read()
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, raw.decode()


async def post(guard: RunningGuard, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
    status, _, data = await guard.post(path, body, headers=headers)
    return status, data


async def settle(guard: RunningGuard) -> None:
    await guard.app[RISK].observer.drain()


async def test_a_refused_broadcast_raises_a_masked_block_alert(
    guard: RunningGuard, stub: StubUpstream
) -> None:
    text = "稳赚不赔的理财产品，加微信 13812345678 了解，保本高收益，名额有限"
    status, data = await post(guard, BROADCAST, broadcast("acct-a", text), STAFF)
    assert data["errcode"] == 490001
    assert stub.count() == 0
    await settle(guard)
    status, feed = await get(guard, "/v1/alerts", RISK_KEY)
    assert status == 200
    (alert,) = feed["alerts"]
    assert alert["level"] == "block" and alert["account"] == "acct-a" and alert["staff"] == "alice"
    assert alert["rule"].startswith("content:")
    assert "13812345678" not in json.dumps(alert, ensure_ascii=False)
    assert text not in json.dumps(alert, ensure_ascii=False)
    assert alert["excerpt"]
    # The same refusal again in the same window is not a second alert.
    await post(guard, BROADCAST, broadcast("acct-a", text), STAFF)
    await settle(guard)
    assert len((await get(guard, "/v1/alerts", RISK_KEY))[1]["alerts"]) == 1


async def test_thresholds_fire_once_per_window_while_a_staff_member_hammers(guard: RunningGuard) -> None:
    # A new account: active adds limit 5 (warn at 4), alert over 10 attempts.
    for _ in range(25):
        await post(guard, ADD, add_friend("wx_new1"), STAFF)
    await settle(guard)
    _status, feed = await get(guard, "/v1/alerts", RISK_KEY, params={"account": "wx_new1"})
    got = sorted((a["level"], a["rule"]) for a in feed["alerts"])
    assert got == [
        ("redline", "add_friend.active/day"),
        ("redline", "add_friend.active/day:attempts"),
        ("warning", "add_friend.active/day"),
    ]
    redline = next(
        a for a in feed["alerts"] if a["rule"] == "add_friend.active/day" and a["level"] == "redline"
    )
    assert (redline["used"], redline["limit"]) == (5, 5)


async def test_report_figures_equal_the_decisions(guard: RunningGuard, stub: StubUpstream) -> None:
    made = {"allowed": 0, "refused": 0}
    for sender in ("acct-a", "acct-a", "acct-b", "acct-c", "acct-c"):
        status, data = await post(guard, BROADCAST, broadcast(sender), STAFF)
        made["allowed" if data["errcode"] == 0 else "refused"] += 1
    status, data = await post(guard, BROADCAST, broadcast("acct-b", "内部投资渠道稳赚不赔"), STAFF)
    made["refused"] += 1
    for _ in range(3):
        status, data = await post(guard, ADD, add_friend("wx_clean"), STAFF)
        made["allowed" if data["ret"] == 200 else "refused"] += 1
    assert made == {"allowed": 6, "refused": 3}
    assert stub.count() == 6
    await settle(guard)
    status, report = await get(guard, "/v1/reports/daily", RISK_KEY)
    assert status == 200
    assert report["totals"]["allowed"] == 6 and report["totals"]["refused"] == 3
    rows = {r["id"]: r for r in report["accounts"]}
    assert rows["acct-a"]["allowed"] == {"broadcast": 1} and rows["acct-a"]["refused"] == {"broadcast": 1}
    assert (
        rows["acct-b"]["refused"] == {"broadcast": 1} and sum(rows["acct-b"]["sensitive_hits"].values()) >= 1
    )
    assert rows["acct-a"]["limits_reached"] == {"broadcast/day": 1}
    assert rows["wx_clean"]["allowed"] == {"add_friend": 3}
    staff = {r["id"]: r for r in report["staff"]}
    assert staff["alice"]["refused_total"] == 1 and staff["bob"]["refused_total"] == 2
    # wx_clean has no registry owner: its decisions count for the key that made them.
    assert staff["alice-tool"]["allowed_total"] == 3
    assert report["clean_staff"] == ["alice-tool"]
    status, csv_text = await get(guard, "/v1/reports/daily", RISK_KEY, params={"format": "csv"})
    assert csv_text.startswith("scope,id,")


async def test_roles_guard_the_risk_endpoints(guard: RunningGuard) -> None:
    assert (await get(guard, "/v1/alerts", {}))[0] == 401
    status, data = await get(guard, "/v1/alerts", STAFF)
    assert status == 403 and "risk" in data["message"]
    assert (await get(guard, "/v1/alerts", RISK_KEY))[0] == 200
    assert (await get(guard, "/v1/alerts", {}, params={"guard_key": "risk-key"}))[0] == 200
    assert (await get(guard, "/v1/alerts", {"Authorization": "Bearer risk-key"}))[0] == 200
    assert (await post(guard, "/v1/accounts/acct-a/freeze", {}, RISK_KEY))[0] == 403
    assert (await get(guard, "/v1/alerts", RISK_KEY, params={"level": "loud"}))[0] == 400
    assert (await get(guard, "/v1/alerts", RISK_KEY, params={"since": "x"}))[0] == 400


async def test_freeze_refuses_at_once_and_unfreeze_restores(guard: RunningGuard, stub: StubUpstream) -> None:
    status, view = await post(guard, "/v1/accounts/acct-b/freeze", {"reason": "complaints"}, ADMIN)
    assert status == 200 and view["frozen"] is True
    status, data = await post(guard, BROADCAST, broadcast("acct-b"), STAFF)
    assert data["errcode"] == 490004 and stub.count() == 0
    status, view = await post(guard, "/v1/accounts/acct-b/unfreeze", {}, ADMIN)
    assert view["frozen"] is False
    status, data = await post(guard, BROADCAST, broadcast("acct-b"), STAFF)
    assert data["errcode"] == 0 and stub.count() == 1
    status, view = await get(guard, "/v1/accounts/acct-b", RISK_KEY)
    assert view["tier"] == "new" and view["staff"] == "bob" and view["matrix"] == "north"
    day = next(r for r in view["usage"]["broadcast"] if r["window"] == "day")
    assert (day["used"], day["limit"]) == (1, 1)
    await settle(guard)
    rules = [a["rule"] for a in (await get(guard, "/v1/alerts", RISK_KEY))[1]["alerts"]]
    assert "account:frozen" in rules and "account:unfrozen" in rules


async def test_recover_starts_the_recovering_tier(guard: RunningGuard) -> None:
    status, view = await post(guard, "/v1/accounts/acct-c/recover", {}, ADMIN)
    assert status == 200 and view["tier"] == "recovering" and view["recovering_since"] == view["day"]
    status, data = await post(guard, BROADCAST, broadcast("acct-c"), STAFF)
    assert data["errcode"] == 490003  # the first 养号 week allows no broadcast
    assert (await post(guard, "/v1/accounts/acct-c/recover", {"day": "soon"}, ADMIN))[0] == 400


async def test_complaints_alert_at_the_threshold_and_may_auto_freeze(
    stub: StubUpstream, tmp_path: Path
) -> None:
    rules = rules_copy(tmp_path, accounts=ACCOUNTS_TOML)
    settings = Settings(
        upstream=stub.url, upstreams={"gewe": stub.url}, reload_interval=0, keys=KEYS, rules_dir=rules
    )
    async with running_guard(settings) as guard:
        # The complaint thresholds are read per request, so they can be set on the running app here.
        guard.app[RISK].settings = RiskSettings(
            complaints_per_day=2, complaints_per_week=3, complaints_auto_freeze=True
        )
        status, first = await post(guard, "/v1/accounts/acct-a/complaints", {}, RISK_KEY)
        assert (
            status == 200 and first["complaints_today"] == 1 and first["alerts"] == [] and not first["frozen"]
        )
        status, second = await post(guard, "/v1/accounts/acct-a/complaints", {"staff": "alice"}, RISK_KEY)
        assert second["complaints_today"] == 2 and second["frozen"] is True
        assert [a["rule"] for a in second["alerts"]] == ["complaints/day"]
        status, data = await post(guard, BROADCAST, broadcast("acct-a"), STAFF)
        assert data["errcode"] == 490004
        status, report = await get(guard, "/v1/reports/daily", RISK_KEY)
        rows = {r["id"]: r for r in report["accounts"]}
        assert rows["acct-a"]["complaints"] == 2


async def test_matrix_pick_prefers_the_account_with_most_quota_left(guard: RunningGuard) -> None:
    await post(guard, BROADCAST, broadcast("acct-a"), STAFF)
    await post(guard, "/v1/accounts/acct-b/freeze", {}, ADMIN)
    status, pick = await get(guard, "/v1/matrix/north/pick", STAFF, params={"action": "broadcast"})
    assert status == 200 and pick["account"] == "acct-c" and pick["remaining"] == 1
    assert (await get(guard, "/v1/matrix/nowhere/pick", STAFF))[0] == 404
    # A key limited to acct-a is never offered acct-c (and acct-a has no broadcast left today).
    narrow = {"X-Guard-Key": "narrow-key"}
    status, pick = await get(guard, "/v1/matrix/north/pick", narrow, params={"action": "broadcast"})
    assert status == 200 and pick["account"] is None
    status, pick = await get(guard, "/v1/matrix/north/pick", narrow, params={"action": "add_friend"})
    assert pick["account"] == "acct-a"
    assert (await get(guard, "/v1/matrix/north/pick", STAFF, params={"action": "spam"}))[0] == 400


async def test_dashboard_is_served(guard: RunningGuard) -> None:
    async with guard.session.get(guard.url + "/dashboard", allow_redirects=True) as resp:
        html = await resp.text()
        assert resp.status == 200 and "风控看板" in html and "Risk dashboard" in html
    for name in ("app.js", "style.css"):
        async with guard.session.get(f"{guard.url}/dashboard/{name}") as resp:
            assert resp.status == 200
    status, overview = await get(guard, "/v1/risk/overview", ADMIN)
    assert status == 200 and overview["role"] == "admin"
    assert {a["account"] for a in overview["accounts"]} >= {"acct-a", "acct-b", "acct-c"}
    assert overview["accounts_total"] >= 3 and len(overview["hourly"]["redline"]) == 24
    assert overview["hourly"]["refused"] == {} and overview["staff"] == [] and overview["clean_staff"] == []
    # An account frozen outside the registry, idle today, is still listed (first: frozen before idle).
    assert (await post(guard, "/v1/accounts/ghost-9/freeze", {}, ADMIN))[0] == 200
    await settle(guard)
    status, overview = await get(guard, "/v1/risk/overview", ADMIN)
    ghost = overview["accounts"][0]
    assert ghost["account"] == "ghost-9" and ghost["frozen"] and ghost["usage"] == {} and ghost["peak"] == 0
    assert overview["hourly"]["redline"][datetime.now(ZoneInfo(overview["timezone"])).hour] >= 1


async def test_app_webhook_sink_delivers_alerts_from_real_decisions(
    stub: StubUpstream, tmp_path: Path
) -> None:
    from aiohttp import web
    from servers import free_port

    from guard.app import create_app
    from guard.config.risk import WebhookSettings
    from guard.risk.install import configure

    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    receiver = web.Application()
    receiver.router.add_post("/robot", hook)
    receiver_runner = web.AppRunner(receiver)
    await receiver_runner.setup()
    receiver_port = free_port()
    await web.TCPSite(receiver_runner, "127.0.0.1", receiver_port).start()

    rules = rules_copy(tmp_path, accounts=ACCOUNTS_TOML)
    app = create_app(
        Settings(
            upstream=stub.url, upstreams={"gewe": stub.url}, reload_interval=0, keys=KEYS, rules_dir=rules
        )
    )
    robot = WebhookSettings(name="robot", url=f"http://127.0.0.1:{receiver_port}/robot", levels=("block",))
    configure(app, RiskSettings(webhooks=(robot,)))
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    import aiohttp

    try:
        async with aiohttp.ClientSession() as session:
            # The sender takes the current end of the feed as its start: send once it has.
            await eventually(
                lambda: app[RISK].alerts.get_cursor("webhook:robot"), what="the sender's start position"
            )
            body = json.dumps(broadcast("acct-a", "稳赚不赔的理财")).encode()
            async with session.post(
                f"http://127.0.0.1:{port}{BROADCAST}", data=body, headers=JSON_STAFF
            ) as resp:
                assert (await resp.json())["errcode"] == 490001
            # Not a block: a quota redline, filtered out by the sink's levels.
            for _ in range(2):
                body = json.dumps(broadcast("acct-b")).encode()
                async with session.post(f"http://127.0.0.1:{port}{BROADCAST}", data=body, headers=JSON_STAFF):
                    pass
            await eventually(lambda: received, what="the block alert at the robot")
        (message,) = received
        assert message["msgtype"] == "markdown"
        content = message["markdown"]["content"]
        assert "拦截 block" in content and "acct-a" in content and "redline" not in content
    finally:
        await runner.cleanup()
        await receiver_runner.cleanup()


async def test_report_command_asks_a_running_guard(guard: RunningGuard) -> None:
    import subprocess
    import sys

    await post(guard, BROADCAST, broadcast("acct-a"), STAFF)
    await post(guard, BROADCAST, broadcast("acct-a"), STAFF)
    await settle(guard)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "guard", "report", "--url", guard.url, *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)

    done = await asyncio.to_thread(run, "--key", "risk-key", "--format", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["totals"] == {
        "allowed": 1,
        "refused": 1,
        "complaints": 0,
        "sensitive_hits": 0,
        "limits_reached": 1,
    }
    done = await asyncio.to_thread(run, "--key", "staff-key")
    assert done.returncode == 2 and "403" in done.stderr


async def test_an_open_alert_stream_does_not_hold_up_shutdown(stub: StubUpstream, tmp_path: Path) -> None:
    import aiohttp
    from aiohttp import web
    from servers import free_port

    from guard.app import create_app

    app = create_app(Settings(upstream=stub.url, upstreams={"gewe": stub.url}, reload_interval=0, keys=KEYS))
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async with aiohttp.ClientSession() as session:
        resp = await session.get(f"http://127.0.0.1:{port}/v1/alerts/stream", headers=RISK_KEY)
        assert resp.status == 200
        await resp.content.readline()
        # A deadlock guard, not a speed target: shutdown must finish although a reader is connected.
        await asyncio.wait_for(runner.cleanup(), 60)
        # The reader sees its stream end (as after any disconnect, it resumes with Last-Event-ID).
        with contextlib.suppress(aiohttp.ClientPayloadError):
            await asyncio.wait_for(resp.content.read(), 60)
        assert resp.content.at_eof() or resp.content.exception() is not None
        resp.close()


async def test_a_failed_rules_reload_is_a_system_alert_shown_on_the_overview(
    guard: RunningGuard, tmp_path: Path
) -> None:
    words = next((tmp_path / "rules" / "words").glob("*.txt"))
    words.write_bytes(b"\xff\xfe not utf-8 \xff\n")
    status, answer = await post(guard, "/v1/rules/reload", {}, ADMIN)
    assert status == 422 and answer["reloaded"] is False
    await settle(guard)
    _, feed = await get(guard, "/v1/alerts", RISK_KEY, params={"level": "system"})
    (alert,) = feed["alerts"]
    assert alert["rule"] == "rules_reload_failed" and "Guard health" in alert["message_en"]
    _, overview = await get(guard, "/v1/risk/overview", RISK_KEY)
    assert overview["rules"]["last_error"] and overview["role"] == "risk"
    assert overview["observer"] == {
        "published": 1,
        "dropped": 0,
        "alerts_dropped": 0,
        "queue_depth": 0,
        "waiting_for_redis": 0,
        "spooled_counters": 0,
        "spooled_alerts": 0,
    }
