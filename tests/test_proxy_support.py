"""Shared pieces of the proxy tests: a stub upstream that records exactly what reaches it, and a guard
served by a real aiohttp runner on a free loopback port. (No tests here; the test_proxy_* files import it.)
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from servers import free_port

from guard.app import create_app
from guard.config.settings import Settings

DEFAULT_RULES = Path(__file__).resolve().parent.parent / "rules" / "default"


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
            import json

            body = json.dumps(body, ensure_ascii=False)
        if isinstance(body, str):
            body = body.encode()
        headers = {"Content-Type": "application/json", **kw.pop("headers", {})}
        async with self.session.post(self.url + path, data=body, headers=headers, **kw) as resp:
            raw = await resp.read()
            try:
                import json

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
