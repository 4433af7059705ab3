"""The relayed answer written straight through aiohttp's writer (guard.http.proxy.send_answer, issue 13)
against aiohttp's own way (`web.Response`, `prepare`, `write_eof`): the same bytes on the wire for many
statuses, header sets and bodies, on kept-alive connections; the requests it must not take (HTTP/1.0, a
client that closes, HEAD, answers without a body, an `on_response_prepare` receiver) take aiohttp's way."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from multidict import CIMultiDict

from guard.http.proxy import direct_answer, relayed_answer, send_answer

ANSWERS: dict[str, tuple[int, list[tuple[str, str]], bytes]] = {}
TAKEN: list[bool] = []


async def direct(request: web.Request) -> web.StreamResponse:
    status, headers, payload = ANSWERS[request.match_info["id"]]
    TAKEN.append(direct_answer(request, status))
    response = relayed_answer(request, status, CIMultiDict(headers), payload)
    await send_answer(request, response, payload)
    return response


async def long_way(request: web.Request) -> web.StreamResponse:
    status, headers, payload = ANSWERS[request.match_info["id"]]
    response = web.Response(status=status, body=payload, headers=CIMultiDict(headers))
    await response.prepare(request)
    await response.write_eof()
    return response


@asynccontextmanager
async def server(prepare_receiver: bool = False) -> AsyncIterator[int]:
    app = web.Application()
    app.router.add_route("*", "/direct/{id}", direct)
    app.router.add_route("*", "/aiohttp/{id}", long_way)
    if prepare_receiver:

        async def stamp(request: web.Request, response: web.StreamResponse) -> None:
            response.headers["X-Prepared"] = "1"

        app.on_response_prepare.append(stamp)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes, head_only: bool = False
) -> bytes:
    """One request and its whole answer: the head, and the Content-Length body unless `head_only`."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    found = re.search(rb"\r\ncontent-length: *(\d+)", head, re.IGNORECASE)
    if found and not head_only:
        return head + await reader.readexactly(int(found.group(1)))
    return head


DATE = re.compile(rb"\r\nDate: [^\r]*", re.IGNORECASE)


def same(answer: bytes) -> bytes:
    return DATE.sub(b"\r\nDate: D", answer)


def random_answer(rng: random.Random) -> tuple[int, list[tuple[str, str]], bytes]:
    status = rng.choice([200, 200, 200, 201, 202, 299, 400, 404, 418, 429, 500, 502, 503, 599])
    pool = [
        ("Content-Type", "application/json; charset=utf-8"), ("Content-Type", "text/plain"),
        ("Date", "Mon, 30 Nov 2026 12:00:00 GMT"), ("Server", "upstream/1.0"), ("X-Upstream", "wecom"),
        ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("X-Guard-Decision", "allow"),
        ("X-Guard-Rule", "content:%E9%87%91"),
        ("Cache-Control", "no-store"), ("X-Empty", ""), ("x-lower", "v"), ("X-Latin", "caf\u00e9"),
    ]  # fmt: skip
    headers = rng.sample(pool, rng.randint(0, len(pool)))
    payload = rng.choice(
        [b"", b"{}", b'{"errcode":0,"errmsg":"ok"}', "中文".encode() * 50, bytes(range(256)) * 40]
    )
    return status, headers, payload


async def test_direct_answers_are_aiohttps_bytes() -> None:
    rng = random.Random(11)
    TAKEN.clear()
    async with server() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for n in range(400):
                ANSWERS[str(n)] = random_answer(rng)
                for method in ("POST", "PUT", "GET"):
                    head = " /{}/" + f"{n} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok"
                    ours = await exchange(reader, writer, (method + head.format("direct")).encode())
                    theirs = await exchange(reader, writer, (method + head.format("aiohttp")).encode())
                    assert same(ours) == same(theirs), (ANSWERS[str(n)], ours, theirs)
        finally:
            writer.close()
    assert TAKEN.count(True) >= 1000  # one kept-alive connection for them all: the direct way taken


async def test_what_the_direct_way_does_not_take_goes_aiohttps_way() -> None:
    """HTTP/1.0, `Connection: close`, HEAD, answers without a body, an `on_response_prepare` receiver."""
    cases = [
        ("POST", "HTTP/1.0", "", 200),
        ("POST", "HTTP/1.0", "Connection: keep-alive\r\n", 200),
        ("POST", "HTTP/1.1", "Connection: close\r\n", 200),
        ("HEAD", "HTTP/1.1", "", 200),
        ("POST", "HTTP/1.1", "", 204),
        ("POST", "HTTP/1.1", "", 304),
        ("POST", "HTTP/1.1", "", 200),  # the direct way, unless there is a receiver
    ]
    for receiver in (False, True):
        async with server(prepare_receiver=receiver) as port:
            for n, (method, version, extra, status) in enumerate(cases):
                key = f"c{n}"
                body = b"" if status in (204, 304) else b"{}"
                ANSWERS[key] = (status, [("Content-Type", "application/json")], body)
                TAKEN.clear()
                answers = []
                for kind in ("direct", "aiohttp"):
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    request = (
                        f"{method} /{kind}/{key} {version}\r\nHost: x\r\n{extra}Content-Length: 0\r\n\r\n"
                    )
                    answers.append(
                        await exchange(reader, writer, request.encode(), head_only=method == "HEAD")
                    )
                    writer.close()
                plain = n == len(cases) - 1
                assert [plain and not receiver] == TAKEN, (method, version, extra, status)
                assert same(answers[0]) == same(answers[1]), (method, version, extra, status, answers)
                if receiver:
                    assert b"X-Prepared: 1" in answers[0]
