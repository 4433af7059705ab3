"""The dashboard in a real browser (Debian chromium driven by Playwright): the risk manager enters the key
once (or none, on a guard with no keys), the guard refuses a broadcast, and the alert appears on the open
page without a reload; with 500 accounts the one closest to a limit comes first and an idle frozen account
can be unfrozen from the page. Screenshots land in tests/artifacts/."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from support import RunningGuard, StubUpstream, rules_copy, running_guard, stub_upstream

from guard.config.settings import ClientKey, Settings
from guard.http.auth import hash_key

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
BROADCAST = "/cgi-bin/externalcontact/add_msg_template"
ACCOUNTS_TOML = """
[accounts.store-01]
staff = "alice"
matrix = "east"
[accounts.store-02]
staff = "bob"
matrix = "east"
"""
KEYS = (
    ClientKey("scrm", hash_key("staff-key"), ("*",), "staff"),
    ClientKey("risk-manager", hash_key("admin-key"), ("*",), "admin"),
    ClientKey("risk-desk", hash_key("risk-key"), ("*",), "risk"),
)
STAFF = {"X-Guard-Key": "staff-key"}
ADMIN = {"X-Guard-Key": "admin-key"}


def broadcast(sender: str, text: str = "新品到店") -> dict[str, Any]:
    return {"chat_type": "single", "external_userid": ["wmA1"], "sender": sender, "text": {"content": text}}


BLOCKED_TEXT = "内部渠道稳赚不赔，保本理财，联系 13812345678"


@asynccontextmanager
async def guard_with(
    tmp_path: Path, accounts: str, keys: tuple[ClientKey, ...]
) -> AsyncIterator[tuple[RunningGuard, StubUpstream]]:
    async with stub_upstream() as stub:
        settings = Settings(
            upstream=stub.url,
            upstreams={"gewe": stub.url},
            reload_interval=0,
            keys=keys,
            rules_dir=rules_copy(tmp_path, accounts),
        )
        async with running_guard(settings) as g:
            yield g, stub


@asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail("Debian chromium is not installed: run the README's test command (bash tests/run.sh)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            yield browser
        finally:
            await browser.close()


async def screenshot(page: Any, name: str) -> None:
    await asyncio.to_thread(ARTIFACTS.mkdir, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / name), full_page=True)


async def test_refused_broadcast_appears_live_on_the_open_dashboard(tmp_path: Path) -> None:
    async with guard_with(tmp_path, ACCOUNTS_TOML, KEYS) as (running, stub), chromium() as browser:
        # Some activity before the page opens: an allowed broadcast and a second one over the limit.
        assert (await running.post(BROADCAST, broadcast("store-02"), headers=STAFF))[2]["errcode"] == 0
        assert (await running.post(BROADCAST, broadcast("store-02"), headers=STAFF))[2]["errcode"] == 490003

        page = await browser.new_page(viewport={"width": 1360, "height": 1000})
        await page.goto(running.url + "/dashboard")
        await page.fill("#key", "admin-key")
        await page.click("#login-form button[type=submit]")
        await page.wait_for_selector("#conn.on", timeout=15_000)
        await page.wait_for_selector(".account[data-account='store-02']", timeout=15_000)
        # The redline from before the page opened is in the history.
        await page.wait_for_selector("tr.alert.redline", timeout=15_000)
        marker = await page.evaluate("window.__marker = 'same page'; window.__marker")

        _, _, data = await running.post(BROADCAST, broadcast("store-01", BLOCKED_TEXT), headers=STAFF)
        assert data["errcode"] == 490001 and stub.count() == 1

        row = await page.wait_for_selector("tr.alert.block", timeout=15_000)
        assert row is not None
        text = await row.inner_text()
        assert "store-01" in text and "alice" in text and "13812345678" not in text
        # No reload happened: the page's own state is still there.
        assert await page.evaluate("window.__marker") == marker
        # Level colours all different; usage bars against limits, only for what was used; admin buttons.
        colours = {
            level: await page.eval_on_selector(
                f".legend .lvl.{level}", "e => getComputedStyle(e).backgroundColor"
            )
            for level in ("redline", "block", "warning", "system")
        }
        assert len(set(colours.values())) == 4 and "rgba(0, 0, 0, 0)" not in colours.values()
        bar = await page.inner_text(
            ".account[data-account='store-02'] .bar[data-rule='broadcast'][data-window='day']"
        )
        assert "1 / 1" in bar
        # store-02 is at its limit: listed first; store-01 used nothing: no bar at all.
        assert await page.get_attribute(".account >> nth=0", "data-account") == "store-02"
        assert await page.locator(".account[data-account='store-01'] .bar").count() == 0
        assert await page.locator(".account[data-account='store-01'] button.freeze").count() == 1
        # Times in the guard's timezone, whatever the browser's.
        assert "Asia/Shanghai" in await page.inner_text("#tz")
        # The refusals chart (content category and quota) and the staff compliance table.
        await page.wait_for_selector("#chart-refused .chart-legend [data-category='finance']", timeout=15_000)
        assert await page.locator("#chart-refused .chart-legend [data-category='quota']").count() == 1
        assert await page.locator("#chart-refused rect[data-series]").count() >= 2
        assert "store-01" in await page.inner_text("#staff tr[data-staff='alice'].bad")
        body = await page.inner_text("body")
        assert "实时告警" in body and "Live alerts" in body and "Account usage today" in body
        # The overview refreshes 0.5 s after an alert; then take the picture.
        await page.wait_for_timeout(900)
        await screenshot(page, "dashboard.png")

        # Freeze from the page (admin key): the account is refused at once.
        page.on("dialog", lambda dialog: dialog.accept())
        await page.click(".account[data-account='store-02'] button.freeze")
        await page.wait_for_selector(".account.frozen[data-account='store-02']", timeout=15_000)
        _, _, data = await running.post(BROADCAST, broadcast("store-02"), headers=STAFF)
        assert data["errcode"] == 490004
        # The key is kept: a reload goes straight back to the dashboard.
        await page.reload()
        await page.wait_for_selector("#conn.on", timeout=15_000)
        assert await page.is_hidden("#login")

        # A risk (not admin) key sees everything but gets no freeze buttons; a wrong key is refused.
        viewer = await browser.new_page()
        await viewer.goto(running.url + "/dashboard")
        await viewer.fill("#key", "wrong-key")
        await viewer.click("#login-form button[type=submit]")
        await viewer.wait_for_selector("#login-error:has-text('invalid')", timeout=15_000)
        await viewer.fill("#key", "risk-key")
        await viewer.click("#login-form button[type=submit]")
        await viewer.wait_for_selector(".account[data-account='store-02']", timeout=15_000)
        assert await viewer.locator("button.freeze, button.unfreeze").count() == 0
        assert await viewer.locator("tr.alert.block").count() == 1


async def test_zero_config_dashboard_is_live_without_a_key(tmp_path: Path) -> None:
    """No keys configured (the loopback guard out of the box): no login, the live feed connects, and a
    refusal made after the page opened appears in the alerts table."""
    async with guard_with(tmp_path, ACCOUNTS_TOML, ()) as (running, _), chromium() as browser:
        page = await browser.new_page(viewport={"width": 1360, "height": 1000})
        await page.goto(running.url + "/dashboard")
        await page.wait_for_selector("#conn.on", timeout=15_000)
        assert await page.is_hidden("#login") and await page.is_hidden("#logout")
        await page.wait_for_selector(".account[data-account='store-01'] button.freeze", timeout=15_000)
        assert await page.locator("tr.alert").count() == 0

        _, _, data = await running.post(BROADCAST, broadcast("store-01", BLOCKED_TEXT))
        assert data["errcode"] == 490001
        row = await page.wait_for_selector("tr.alert.block", timeout=15_000)
        assert row is not None and "store-01" in await row.inner_text()
        await page.wait_for_selector("#chart-refused rect[data-series]", timeout=15_000)
        await page.wait_for_timeout(900)
        await screenshot(page, "dashboard-zero-config.png")


def many_accounts(n: int) -> str:
    lines = []
    for i in range(n):
        lines += [f'[accounts."acct-{i:03d}"]', f'staff = "staff-{i % 50:02d}"', f'matrix = "m{i % 10}"']
        if i == 321:
            lines.append('tier = "mature"')  # two broadcasts a day: one used is 50 %
        lines.append("")
    return "\n".join(lines)


async def test_five_hundred_accounts_nearest_a_limit_first_and_an_idle_frozen_one_unfrozen(
    tmp_path: Path,
) -> None:
    async with guard_with(tmp_path, many_accounts(500), KEYS) as (running, _), chromium() as browser:
        assert (await running.post(BROADCAST, broadcast("acct-321"), headers=STAFF))[2]["errcode"] == 0
        assert (await running.post(BROADCAST, broadcast("acct-123"), headers=STAFF))[2]["errcode"] == 0
        assert (await running.post(BROADCAST, broadcast("acct-123"), headers=STAFF))[2]["errcode"] == 490003
        # Frozen, idle today: one in the registry, one only in the overrides.
        for account in ("acct-450", "walk-in-9"):
            status, _, _ = await running.post(f"/v1/accounts/{account}/freeze", {}, headers=ADMIN)
            assert status == 200

        page = await browser.new_page(viewport={"width": 1360, "height": 1000})
        page.on("dialog", lambda dialog: dialog.accept())
        started = time.monotonic()
        await page.goto(running.url + "/dashboard")
        await page.fill("#key", "admin-key")
        await page.click("#login-form button[type=submit]")
        await page.wait_for_selector(".account[data-account='acct-123']", timeout=15_000)
        assert time.monotonic() - started < 10
        await page.wait_for_selector("#conn.on", timeout=15_000)
        order = await page.eval_on_selector_all(".account", "cards => cards.map(c => c.dataset.account)")
        assert order[:2] == ["acct-123", "acct-321"]
        assert len(order) == 60  # a page at a time, "show more" for the rest
        assert "501" in await page.inner_text("#shown")
        await page.wait_for_timeout(300)
        await screenshot(page, "dashboard-500.png")

        # Search by staff / matrix; filter near a limit.
        await page.fill("#search", "staff-21")
        await page.wait_for_function("document.querySelectorAll('.account').length === 10")
        assert await page.get_attribute(".account >> nth=0", "data-account") == "acct-321"
        await page.fill("#search", "")
        await page.select_option("#filter", "near")
        await page.wait_for_function("document.querySelectorAll('.account').length === 1")
        assert await page.get_attribute(".account >> nth=0", "data-account") == "acct-123"

        # The frozen ones, idle today, each with Unfreeze; unfreeze one from the page.
        await page.select_option("#filter", "frozen")
        await page.wait_for_function("document.querySelectorAll('.account').length === 2")
        await screenshot(page, "dashboard-500-frozen.png")
        await page.click(".account[data-account='walk-in-9'] button.unfreeze")
        await page.wait_for_function("document.querySelectorAll('.account').length === 1")
        assert await page.get_attribute(".account >> nth=0", "data-account") == "acct-450"
        async with running.session.get(running.url + "/v1/accounts/walk-in-9", headers=ADMIN) as resp:
            assert (await resp.json())["frozen"] is False
