"""Shared helpers of the tests; the fixtures built on them live in conftest.py, the redis-server processes
in servers.py (kept free of guard imports: bench/ uses it too).

Waiting: a test never sleeps a fixed time for something to happen; it waits for the thing itself with
`eventually` (async) or `wait_until` (sync), under a generous deadline, and fails naming what did not
happen. Time: code that takes a clock gets a `Clock` that the test moves forward.

Stand-ins: a stub upstream that records exactly what reaches it, a guard served by a real aiohttp runner
on a free loopback port, a writable copy of the shipped rules, and waiting for a `guard serve` process.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from redis.asyncio.cluster import RedisCluster
from servers import free_port

from guard.app import create_app
from guard.config.settings import Settings
from ratelimit.types import Mode, Window

DEFAULT_RULES = Path(__file__).resolve().parent.parent / "rules" / "default"

# Generous on purpose: a busy CI machine may be slow, and a passing test never waits this long.
DEADLINE = 30.0


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 300 else text[:300] + "…"


async def eventually(
    check: Callable[[], Any],
    *,
    within: float = DEADLINE,
    interval: float = 0.05,
    what: str = "the condition",
) -> Any:
    """Call `check()` (plain or async) until it returns a truthy value, and return that value.

    Raises AssertionError naming `what` (and the last value seen) when `within` seconds pass first.
    """
    end = time.monotonic() + within
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= end:
            raise AssertionError(f"{what}: not reached within {within:g} s (last seen: {_shown(value)})")
        await asyncio.sleep(interval)


def wait_until(
    check: Callable[[], Any],
    *,
    within: float = DEADLINE,
    interval: float = 0.05,
    what: str = "the condition",
) -> Any:
    """`eventually` for code outside an event loop (blocks the thread between calls)."""
    end = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= end:
            raise AssertionError(f"{what}: not reached within {within:g} s (last seen: {_shown(value)})")
        time.sleep(interval)


class Clock:
    """A clock the test moves: pass it where the code under test takes `clock=` (seconds, like time.time)."""

    def __init__(self, start: float | datetime = 1_700_000_000.0) -> None:
        self.now = 0.0
        self.set(start)

    def __call__(self) -> float:
        return self.now

    def set(self, when: float | datetime) -> None:
        self.now = when.timestamp() if isinstance(when, datetime) else float(when)

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def blocked_clients(client: Any) -> int:
    """How many connections wait in a blocking command (XREAD BLOCK …) on the Redis behind `client`; a
    cluster client sums its nodes."""
    if isinstance(client, RedisCluster):
        nodes = await client.info("clients", target_nodes=RedisCluster.ALL_NODES)
        return sum(int(node["blocked_clients"]) for node in nodes.values())
    info = await client.info("clients")
    return int(info["blocked_clients"])


# --- stand-ins: an upstream, a served guard, guard processes ---------------------------------------------


@dataclass
class Seen:
    method: str
    path_qs: str
    headers: dict[str, str]
    raw_headers: list[tuple[str, str]]
    body: bytes


@dataclass
class StubUpstream:
    """Answers WeCom-style `{"errcode":0}` / GeWe-style `{"ret":200}` unless told otherwise per path."""

    seen: list[Seen] = field(default_factory=list)
    # path → ("json", status, body) | ("hang", seconds)
    answers: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    url: str = ""
    runner: web.AppRunner | None = None

    def count(self, path: str | None = None) -> int:
        return sum(1 for s in self.seen if path is None or s.path_qs.split("?")[0] == path)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(
            Seen(
                request.method,
                request.path_qs,
                dict(request.headers),
                [(k, v) for k, v in request.raw_headers],  # type: ignore[misc]
                body,
            )
        )
        answer = self.answers.get(request.path)
        if answer is not None and answer[0] == "hang":
            await asyncio.sleep(answer[1])
        if answer is not None and answer[0] == "json":
            return web.Response(status=answer[1], body=answer[2], content_type="application/json")
        if answer is not None and answer[0] == "raw":
            return web.Response(status=answer[1], body=answer[2], headers=answer[3])
        if "/cgi-bin/" in request.path:
            return web.json_response(
                {"errcode": 0, "errmsg": "ok", "msgid": "m1"}, headers={"X-Upstream": "wecom"}
            )
        return web.json_response({"ret": 200, "msg": "操作成功", "data": {}})


@asynccontextmanager
async def stub_upstream() -> AsyncIterator[StubUpstream]:
    stub = StubUpstream()
    app = web.Application(handler_args={"auto_decompress": False})
    app.router.add_route("*", "/{tail:.*}", stub.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    stub.url = f"http://127.0.0.1:{port}"
    stub.runner = runner
    try:
        yield stub
    finally:
        await runner.cleanup()


@dataclass
class RunningGuard:
    app: web.Application
    url: str
    session: aiohttp.ClientSession

    async def post(
        self, path: str, body: bytes | str | dict[str, Any], **kw: Any
    ) -> tuple[int, dict[str, str], Any]:
        if isinstance(body, dict):
            body = json.dumps(body, ensure_ascii=False)
        if isinstance(body, str):
            body = body.encode()
        headers = {"Content-Type": "application/json", **kw.pop("headers", {})}
        async with self.session.post(self.url + path, data=body, headers=headers, **kw) as resp:
            raw = await resp.read()
            try:
                data: Any = json.loads(raw)
            except ValueError:
                data = raw
            return resp.status, dict(resp.headers), data


@asynccontextmanager
async def running_guard(settings: Settings, **kw: Any) -> AsyncIterator[RunningGuard]:
    settings = replace(settings, port=free_port())
    app = create_app(settings, **kw)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", settings.port)
    await site.start()
    session = aiohttp.ClientSession(auto_decompress=False)
    try:
        yield RunningGuard(app, f"http://127.0.0.1:{settings.port}", session)
    finally:
        await session.close()
        await runner.cleanup()


def rules_copy(tmp: Path, accounts: str = "", limits: str | None = None) -> Path:
    """A writable copy of the shipped rules with an accounts registry of the test's own."""
    target = tmp / "rules"
    shutil.copytree(DEFAULT_RULES, target)
    if accounts:
        (target / "accounts.toml").write_text(accounts, encoding="utf-8")
    if limits is not None:
        (target / "limits.toml").write_text(limits, encoding="utf-8")
    return target


def wait_ready(url: str, proc: subprocess.Popen[bytes], logs: list[Path], within: float = 60.0) -> None:
    """Until the `guard serve` process `proc` answers 200 on `url`/readyz; fails at once, with the tail of
    its `logs`, when the process exits first."""

    def ready() -> bool:
        if proc.poll() is not None:
            text = "\n".join(p.read_text(errors="replace") for p in logs if p.exists())
            raise RuntimeError(f"guard exited with {proc.returncode}:\n{text[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    wait_until(ready, within=within, interval=0.1, what=f"{url}/readyz answering 200")


# ---- `guard serve --workers N` as a user starts it ----


def listens(pid: int, port: int) -> bool:
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


def children(pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    )
    return [int(p) for p in out.stdout.split()]


@asynccontextmanager
async def serve_workers(
    redis_url: str,
    upstream: str,
    log: Path,
    *,
    workers: int = 2,
    env: dict[str, str] | None = None,
    rules: Path | None = None,
) -> AsyncIterator[str]:
    """`python3 -m guard serve --workers N` on a free port over one Redis, both profiles' upstreams at
    `upstream`; yields its URL once every worker listens, and stops it (SIGTERM) afterwards."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("GUARD_", "PROMETHEUS_"))}
    environ["GUARD_UPSTREAMS"] = f"gewe={upstream}"
    environ.update(env or {})
    argv = [
        sys.executable, "-m", "guard", "serve", "--workers", str(workers), "--redis", redis_url,
        "--port", str(port), "--upstream", upstream,
    ]  # fmt: skip
    if rules is not None:
        argv += ["--rules", str(rules)]
    with log.open("wb") as log_file:
        proc = await asyncio.to_thread(
            subprocess.Popen, argv, env=environ, stdout=subprocess.DEVNULL, stderr=log_file
        )
        try:
            url = f"http://127.0.0.1:{port}"
            await asyncio.to_thread(wait_ready, url, proc, [log])
            pids = children(proc.pid)
            assert len(pids) == workers, pids
            # /readyz answered from one of them: the others may still be starting.
            await asyncio.to_thread(
                wait_until, lambda: all(listens(w, port) for w in pids), what="every worker listening"
            )
            yield url
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, 30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@dataclass
class MutableRule:
    """A limit rule whose fields may change (not frozen, unlike `ratelimit.Rule` and the rules' own specs):
    the limiter must read it on every hit and never know it again by identity."""

    name: str
    window: Window
    limit: int
    warn_at: int | None = None
    alert_over: int | None = None
    mode: Mode = "enforce"
