"""/metrics with prometheus-client: one process answers for its own app (a registry per app), and under
`guard serve --workers 2` every scrape, whichever worker answers it, counts the decisions of all workers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import RunningGuard, serve_workers, stub_upstream

from guard.http.keys import BUNDLE, METRICS

WECOM = "/cgi-bin/externalcontact/add_msg_template"
DECISIONS = 200
SCRAPES = 8


def decisions_total(text: str) -> float:
    """The sum of guard_decisions_total over its series, read with prometheus-client's own parser."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "guard_decisions"
        for sample in family.samples
        if sample.name == "guard_decisions_total"
    )


async def test_fresh_app_metrics_parse(guard: RunningGuard) -> None:
    async with guard.session.get(guard.url + "/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await resp.text()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    for name, kind in (
        ("guard_decisions", "counter"),
        ("guard_decision_seconds", "histogram"),
        ("guard_requests", "counter"),
        ("guard_upstream_errors", "counter"),
        ("guard_redis_errors", "counter"),
        ("guard_rules_info", "gauge"),
        ("guard_rules_reloads", "counter"),
        ("guard_risk_queue_depth", "gauge"),
    ):
        assert families[name].type == kind, name
    (info,) = families["guard_rules_info"].samples
    assert info.labels == {"version": guard.app[BUNDLE].version} and info.value == 1
    assert decisions_total(text) == 0
    await guard.post(WECOM, {"sender": "m1", "external_userid": ["wm1"], "text": {"content": "新品"}})
    async with guard.session.get(guard.url + "/metrics") as resp:
        assert decisions_total(await resp.text()) == 1


async def test_two_apps_in_one_process_count_apart(guard: RunningGuard) -> None:
    from support import running_guard

    from guard.config.settings import Settings

    async with running_guard(Settings(upstream=guard.url, reload_interval=0)) as other:
        await guard.post(WECOM, {"sender": "m1", "external_userid": ["wm1"], "text": {"content": "新品"}})
        assert guard.app[METRICS].decisions.get("broadcast", "allow", "") == 1
        assert other.app[METRICS].decisions.get("broadcast", "allow", "") == 0


# Many requests landing at once on processes sharing two cores with the test itself: more than the
# default 100 ms, so that a slow moment is not read as Redis being down.
BUSY_REDIS = {"GUARD_REDIS_TIMEOUT": "2.0"}


@pytest.mark.slow
async def test_every_scrape_of_two_workers_counts_every_decision(redis_url: str, tmp_path: Path) -> None:
    async with (
        stub_upstream() as stub,
        serve_workers(redis_url, stub.url, tmp_path / "guard.log", env=BUSY_REDIS) as url,
    ):
        body = {"kind": "message", "account": "wx_shop_01", "text": "新品到店", "dry_run": True}
        # A fresh connection per request: SO_REUSEPORT spreads connections, not requests.
        connector = aiohttp.TCPConnector(limit=20, force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one() -> str:
                async with session.post(url + "/v1/check", json=body) as resp:
                    return str((await resp.json())["decision"])

            results = await asyncio.gather(*(one() for _ in range(DECISIONS)))
            assert results == ["allow"] * DECISIONS

            scraped: list[float] = []
            for _ in range(SCRAPES):
                async with session.get(url + "/metrics") as resp:
                    assert resp.status == 200
                    text = await resp.text()
                scraped.append(decisions_total(text))
                # Labels in their declared order, as one process writes them.
                assert 'guard_decisions_total{action="message",result="allow",rule=""} ' in text
        assert scraped == [DECISIONS] * SCRAPES
