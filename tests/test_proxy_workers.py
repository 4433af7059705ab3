"""`guard serve --workers 2` on one Redis: real processes share the port (SO_REUSEPORT) and the counters."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from servers import free_port
from support import serve_workers, stub_upstream

GEWE_ADD = "/gewe/v2/api/contacts/addContacts"


# Many requests landing at once on processes sharing two cores with the test itself: more than the
# default 100 ms, so that a slow moment is not read as Redis being down.
BUSY_REDIS = {"GUARD_REDIS_TIMEOUT": "2.0"}


@pytest.mark.slow
async def test_two_workers_admit_exactly_five_of_1000_concurrent_adds(redis_url: str, tmp_path: Path) -> None:
    async with (
        stub_upstream() as stub,
        serve_workers(redis_url, stub.url, tmp_path / "guard.log", env=BUSY_REDIS) as url,
    ):
        body = b'{"appId":"wx-new-account","scene":3,"option":2,"v3":"v3","v4":"v4","content":"hello"}'
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one() -> int:
                async with session.post(
                    url + GEWE_ADD, data=body, headers={"Content-Type": "application/json"}
                ) as resp:
                    data = await resp.json()
                    return int(data["ret"])

            results = await asyncio.gather(*(one() for _ in range(1000)))

            # Whichever worker answers a scrape counts the decisions of both (prometheus-client's
            # multiprocess mode, tests/test_metrics_workers.py): every scrape sees all 1,000.
            scraped: set[float] = set()
            for _ in range(40):
                async with session.get(url + "/metrics") as resp:
                    text = await resp.text()
                scraped.add(
                    sum(
                        float(line.rsplit(" ", 1)[1])
                        for line in text.splitlines()
                        if line.startswith('guard_decisions_total{action="add_friend.active"')
                    )
                )
        counts = Counter(results)
        assert counts[200] == 5
        assert counts[490003] == 995
        assert stub.count(GEWE_ADD) == 5
        assert scraped == {1000}


def test_workers_without_redis_refuse_to_start() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUARD_")}
    out = subprocess.run(
        [sys.executable, "-m", "guard", "serve", "--workers", "2", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2
    assert "setting 'workers'" in out.stderr and "redis" in out.stderr
