"""`guard serve --workers 2` on one Redis: real processes share the port (SO_REUSEPORT) and the counters."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from servers import free_port
from support import stub_upstream, wait_ready, wait_until

GEWE_ADD = "/gewe/v2/api/contacts/addContacts"


def _listens(pid: int, port: int) -> bool:
    """Whether process `pid` holds a socket listening on TCP `port` (its fds matched to /proc/net/tcp)."""
    inodes: set[str] = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:[") : -1])
    except OSError:
        return False
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, inode = fields[1], fields[3], fields[9]
        if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port and inode in inodes:
            return True
    return False


def _children(pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    )
    return [int(p) for p in out.stdout.split()]


@pytest.mark.slow
async def test_two_workers_admit_exactly_five_of_1000_concurrent_adds(redis_url: str, tmp_path: Path) -> None:
    async with stub_upstream() as stub:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("GUARD_")}
        # 1,000 requests land at once on two processes sharing two cores with the test itself: give
        # Redis calls more than the default 100 ms so that a slow moment is not read as Redis being down.
        env["GUARD_REDIS_TIMEOUT"] = "2.0"
        env["GUARD_UPSTREAMS"] = f"gewe={stub.url}"
        log = tmp_path / "guard.log"
        log_file = log.open("wb")
        proc = await asyncio.to_thread(
            subprocess.Popen,
            [
                sys.executable, "-m", "guard", "serve", "--workers", "2", "--redis", redis_url,
                "--port", str(port), "--upstream", stub.url,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            await asyncio.to_thread(wait_ready, url, proc, [log])
            workers = _children(proc.pid)
            assert len(workers) == 2
            # /readyz answered from one of them: the other may still be starting.
            await asyncio.to_thread(
                wait_until, lambda: all(_listens(w, port) for w in workers), what="both workers listening"
            )

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
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log_file.close()


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
