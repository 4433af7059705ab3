"""The dashboard in a real browser (Debian chromium driven by Playwright): the risk manager enters the key
once, the guard refuses a broadcast, and the alert appears on the open page without a reload."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

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


@pytest.fixture
async def guard(tmp_path: Path) -> AsyncIterator[tuple[RunningGuard, StubUpstream]]:
    keys = (
        ClientKey("scrm", hash_key("staff-key"), ("*",), "staff"),
        ClientKey("risk-manager", hash_key("admin-key"), ("*",), "admin"),
        ClientKey("risk-desk", hash_key("risk-key"), ("*",), "risk"),
    )
    async with stub_upstream() as stub:
        settings = Settings(
            upstream=stub.url,
            upstreams={"gewe": stub.url},
            reload_interval=0,
            keys=keys,
            rules_dir=rules_copy(tmp_path, ACCOUNTS_TOML),
        )
        async with running_guard(settings) as g:
            yield g, stub


async def test_refused_broadcast_appears_live_on_the_open_dashboard(
    guard: tuple[RunningGuard, StubUpstream],
) -> None:
    if shutil.which(CHROMIUM) is None:
        pytest.fail("Debian chromium is not installed: run the README's test command (bash tests/run.sh)")
    from playwright.async_api import async_playwright

    running, stub = guard
    staff = {"X-Guard-Key": "staff-key"}
    # Some activity before the page opens: an allowed broadcast and a second one over the limit.
    ok = {
        "chat_type": "single",
        "external_userid": ["wmA1"],
        "sender": "store-02",
        "text": {"content": "新品到店"},
    }
    assert (await running.post(BROADCAST, ok, headers=staff))[2]["errcode"] == 0
    assert (await running.post(BROADCAST, ok, headers=staff))[2]["errcode"] == 490003

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
            page = await browser.new_page(viewport={"width": 1360, "height": 1000})
            await page.goto(running.url + "/dashboard")
            await page.fill("#key", "admin-key")
            await page.click("#login-form button[type=submit]")
            await page.wait_for_selector("#conn.on", timeout=15_000)
            await page.wait_for_selector(".account[data-account='store-02']", timeout=15_000)
            # The redline from before the page opened is in the history.
            await page.wait_for_selector("tr.alert.redline", timeout=15_000)
            marker = await page.evaluate("window.__marker = 'same page'; window.__marker")

            blocked = {
                "chat_type": "single",
                "external_userid": ["wmA1"],
                "sender": "store-01",
                "text": {"content": "内部渠道稳赚不赔，保本理财，联系 13812345678"},
            }
            _, _, data = await running.post(BROADCAST, blocked, headers=staff)
            assert data["errcode"] == 490001 and stub.count() == 1

            row = await page.wait_for_selector("tr.alert.block", timeout=15_000)
            assert row is not None
            text = await row.inner_text()
            assert "store-01" in text and "alice" in text and "13812345678" not in text
            # No reload happened: the page's own state is still there.
            assert await page.evaluate("window.__marker") == marker
            # Level colours, usage bars against limits, admin buttons, bilingual labels.
            colour = await page.eval_on_selector(
                "tr.alert.block .lvl", "e => getComputedStyle(e).backgroundColor"
            )
            assert colour not in ("", "rgba(0, 0, 0, 0)")
            bar = await page.inner_text(
                ".account[data-account='store-02'] .bar[data-rule='broadcast'][data-window='day']"
            )
            assert "1 / 1" in bar
            assert await page.locator(".account[data-account='store-01'] button.freeze").count() == 1
            body = await page.inner_text("body")
            assert "实时告警" in body and "Live alerts" in body and "Account usage today" in body
            await page.wait_for_timeout(
                900
            )  # the overview refreshes 0.5 s after an alert; then take the picture
            await asyncio.to_thread(ARTIFACTS.mkdir, exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

            # Freeze from the page (admin key): the account is refused at once.
            page.on("dialog", lambda dialog: dialog.accept())
            await page.click(".account[data-account='store-02'] button.freeze")
            await page.wait_for_selector(".account.frozen[data-account='store-02']", timeout=15_000)
            _, _, data = await running.post(BROADCAST, {**ok, "sender": "store-02"}, headers=staff)
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
        finally:
            await browser.close()
