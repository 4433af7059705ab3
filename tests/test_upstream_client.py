"""The guarded forward's own HTTP/1.1 client (guard.http.upstream) against real servers started here: a raw
asyncio server that records the bytes that arrive and answers what the test scripts, aiohttp servers
(plain and TLS with a self-signed certificate), and the guard itself in front of the stub upstream."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ipaddress
import json
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from servers import free_port
from support import RunningGuard, StubUpstream, eventually, running_guard

from guard.config.settings import Settings
from guard.http.keys import UPSTREAM_POOL
from guard.http.upstream import Answer, Target, UpstreamPool, UpstreamProtocolError, request_head, target_of

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request's bytes as they arrived (head and a Content-Length body); b"" at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return b""
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await reader.readexactly(length)


Handler = Callable[["RawServer", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class RawServer:
    """Counts connections, keeps every request's bytes, runs `handler` per connection."""

    handler: Handler
    port: int = 0
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    closed: int = 0  # connections that saw the client's EOF
    server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def target(self) -> Target:
        target = target_of(self.url)
        assert target is not None
        return target

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(self, reader, writer)
        finally:
            writer.close()
            await writer.wait_closed()

    async def next_request(self, reader: asyncio.StreamReader) -> bytes:
        request = await read_request(reader)
        if request:
            self.requests.append(request)
        else:
            self.closed += 1
        return request


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[RawServer]:
    server = RawServer(handler)
    server.server = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    server.port = server.server.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        server.server.close()
        await server.server.wait_closed()


def answering(*answers: bytes, close_after: bool = False) -> Handler:
    """Answer each request on a connection with the next of `answers` (the last one repeats)."""

    async def handler(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = 0
        while await server.next_request(reader):
            writer.write(answers[min(n, len(answers) - 1)])
            await writer.drain()
            n += 1
            if close_after:
                return
        return

    return handler


@asynccontextmanager
async def pool_of(**kw: float | int | ssl.SSLContext) -> AsyncIterator[UpstreamPool]:
    pool = UpstreamPool(kw.pop("connect_timeout", 5.0), kw.pop("read_timeout", 5.0), **kw)  # type: ignore[arg-type]
    try:
        yield pool
    finally:
        await pool.close()


async def post(pool: UpstreamPool, server: RawServer, body: bytes = b"{}", path: str = "/x") -> Answer:
    return await pool.request("POST", server.target, path, [("Content-Type", "application/json")], body)


# ---- the request on the wire -------------------------------------------------------------------------------


async def test_the_request_arrives_exactly_as_given() -> None:
    body = gzip.compress('{"text":{"content":"新品到店"}}'.encode()) + b"\xff\xfe\x00\xd6\xd0"
    headers = [
        ("X-Trace", "abc"),
        ("x-dup", "one"),
        ("X-Dup", "two"),
        ("Content-Encoding", "gzip"),
        ("content-type", "application/json; charset=utf-8"),
        ("X-Odd", "中文 value"),
    ]
    path = "/cgi-bin/externalcontact/add_msg_template?access_token=T%2Bk%2f&debug=1&q=%E4%B8%AD+x&flag"
    async with raw_server(answering(OK)) as server, pool_of() as pool:
        status, answer_headers, payload = await pool.request("POST", server.target, path, headers, body)
    assert (status, payload, answer_headers["Content-Type"]) == (200, b"ok", "text/plain")
    expected = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nX-Trace: abc\r\nx-dup: one\r\n"
        "X-Dup: two\r\nContent-Encoding: gzip\r\ncontent-type: application/json; charset=utf-8\r\n"
        f"X-Odd: 中文 value\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    assert server.requests == [expected]


def test_targets_of_base_urls() -> None:
    assert target_of("https://qyapi.weixin.qq.com") == Target(
        ("https", "qyapi.weixin.qq.com", 443), "qyapi.weixin.qq.com", ""
    )
    assert target_of("http://Example.COM:80/gewe/v2") == Target(
        ("http", "example.com", 80), "example.com", "/gewe/v2"
    )
    assert target_of("http://[::1]:8080") == Target(("http", "::1", 8080), "[::1]:8080", "")
    # What the lean client leaves to aiohttp: credentials, a query in the base, a non-ASCII host.
    assert target_of("http://user:pw@example.com") is None
    assert target_of("http://example.com/?a=1") is None
    assert target_of("http://例子.中国") is None
    assert target_of("http://example.com:99999") is None


def test_a_newline_in_a_header_is_refused() -> None:
    with pytest.raises(ValueError):
        request_head("POST", "/x", "h", [("X-A", "1\r\nX-Injected: 1")], 0)
    with pytest.raises(ValueError):
        request_head("POST", "/x\nGET /y", "h", [], 0)


# ---- answers -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "status", "body"),
    [
        (OK, 200, b"ok"),
        (
            b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{"a\r\n4\r\n":1}\r\n0\r\n\r\n',
            200,
            b'{"a":1}',
        ),
        (b"HTTP/1.1 204 No Content\r\n\r\n", 204, b""),
        (b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n", 304, b""),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nnew", 201, b"new"),
        (b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK, 200, b"ok"),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, b"ok"),
    ],
    ids=["content-length", "chunked", "204", "304", "100-continue", "103", "http/1.0"],
)
async def test_answers(answer: bytes, status: int, body: bytes) -> None:
    async with raw_server(answering(answer)) as server, pool_of() as pool:
        got_status, _, payload = await post(pool, server)
        assert (got_status, payload) == (status, body)
        # and the connection still carries the next request when the answer allowed it
        got_status, _, payload = await post(pool, server)
        assert (got_status, payload) == (status, body)
    assert len(server.requests) == 2
    assert server.connections == (2 if answer.startswith(b"HTTP/1.0") else 1)


async def test_a_close_delimited_answer() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + b'{"errcode":0}' * 1000
    async with raw_server(answering(answer, close_after=True)) as server, pool_of() as pool:
        for _ in range(2):
            status, _, payload = await post(pool, server)
            assert (status, payload) == (200, b'{"errcode":0}' * 1000)
    assert (server.connections, len(server.requests)) == (2, 2)


async def test_multi_valued_headers_are_kept_in_order() -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nX-Upstream: wecom\r\nset-cookie: b=2\r\n"
        b"X-Bytes: caf\xc3\xa9\r\nContent-Length: 0\r\n\r\n"
    )
    async with raw_server(answering(answer)) as server, pool_of() as pool:
        _, headers, _ = await post(pool, server)
    assert headers.getall("Set-Cookie") == ["a=1", "b=2"]
    assert list(headers.items()) == [
        ("Set-Cookie", "a=1"),
        ("X-Upstream", "wecom"),
        ("set-cookie", "b=2"),
        ("X-Bytes", "café"),
        ("Content-Length", "0"),
    ]


# ---- keep-alive --------------------------------------------------------------------------------------------


async def test_sequential_requests_share_one_connection() -> None:
    async with raw_server(answering(OK)) as server, pool_of() as pool:
        for n in range(3):
            assert (await post(pool, server, body=b'{"n":%d}' % n))[0] == 200
        assert len(pool.connections) == 1
    assert (server.connections, len(server.requests)) == (1, 3)


async def test_a_connection_close_answer_is_not_reused() -> None:
    answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    async with raw_server(answering(answer)) as server, pool_of() as pool:
        assert (await post(pool, server))[0] == 200
        assert (await post(pool, server))[0] == 200
    assert (server.connections, len(server.requests)) == (2, 2)


async def test_a_pooled_connection_the_server_closed_is_not_used() -> None:
    # The server answers one request per connection with keep-alive, then closes it while it is idle.
    async with raw_server(answering(OK, close_after=True)) as server, pool_of() as pool:
        assert (await post(pool, server, body=b"1"))[0] == 200
        await eventually(lambda: server.connections == 1 and not pool.connections, what="idle close seen")
        assert (await post(pool, server, body=b"2"))[0] == 200
    assert server.connections == 2
    assert [r[-1:] for r in server.requests] == [b"1", b"2"]  # each sent once


async def test_a_request_the_server_drops_is_not_sent_again() -> None:
    async def drop(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.next_request(reader)  # read it, answer nothing, hang up

    async with raw_server(drop) as server, pool_of() as pool:
        with pytest.raises(aiohttp.ServerDisconnectedError) as raised:
            await post(pool, server, body=b"broadcast")
        assert isinstance(raised.value, aiohttp.ClientError)
        await asyncio.sleep(0.2)  # time for a retry, if there were one
    assert (server.connections, len(server.requests)) == (1, 1)


async def test_a_pooled_connection_dropped_mid_request_is_not_retried() -> None:
    async def once_then_drop(
        server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await server.next_request(reader)
        writer.write(OK)
        await writer.drain()
        await server.next_request(reader)  # the second request on this connection: no answer

    async with raw_server(once_then_drop) as server, pool_of() as pool:
        assert (await post(pool, server))[0] == 200
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await post(pool, server, body=b"second")
        await asyncio.sleep(0.2)
    assert (server.connections, len(server.requests)) == (1, 2)


async def test_an_interim_answer_alone_is_no_answer() -> None:
    continue_only = b"HTTP/1.1 100 Continue\r\n\r\n"
    async with raw_server(answering(continue_only, close_after=True)) as server, pool_of() as pool:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await post(pool, server)
    assert len(server.requests) == 1


async def test_a_half_sent_answer_is_an_error() -> None:
    partial = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part"
    async with raw_server(answering(partial, close_after=True)) as server, pool_of() as pool:
        with pytest.raises(aiohttp.ClientPayloadError):
            await post(pool, server)
    assert len(server.requests) == 1


async def test_idle_connections_close_after_the_keepalive_timeout() -> None:
    async with raw_server(answering(OK)) as server, pool_of(keepalive_timeout=0.2) as pool:
        assert (await post(pool, server))[0] == 200
        assert len(pool.connections) == 1
        await eventually(lambda: server.closed == 1, what="the idle connection closed")
        assert not pool.connections and not any(pool.idle.values())
        assert pool.sweeper is None
        assert (await post(pool, server))[0] == 200
    assert server.connections == 2


# ---- failures ----------------------------------------------------------------------------------------------


async def test_an_upstream_that_never_answers_times_out() -> None:
    async def silent(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.next_request(reader)
        await reader.read()  # until the client gives up

    async with raw_server(silent) as server, pool_of(read_timeout=0.3) as pool:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await post(pool, server)
        assert 0.25 <= time.monotonic() - started < 2.0
        await eventually(lambda: not pool.connections, what="the connection closed")
    assert len(server.requests) == 1


async def test_a_dripping_upstream_times_out_as_a_whole() -> None:
    async def drip(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.next_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(100):
            await asyncio.sleep(0.1)  # a byte each 0.1 s: no single read waits 0.3 s
            writer.write(b"x")

    async with raw_server(drip) as server, pool_of(connect_timeout=0.2, read_timeout=0.3) as pool:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await post(pool, server)
        assert 0.45 <= time.monotonic() - started < 2.0  # connect + read in all


async def test_connection_refused_is_a_client_error() -> None:
    target = target_of(f"http://127.0.0.1:{free_port()}")
    assert target is not None
    async with pool_of() as pool:
        with pytest.raises(aiohttp.ClientConnectorError) as raised:
            await pool.request("POST", target, "/x", [], b"{}")
    assert isinstance(raised.value, aiohttp.ClientError)


@pytest.mark.parametrize(
    "garbage",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 101 Switching\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
    ],
    ids=["not-http", "bad-status", "upgrade"],
)
async def test_a_garbage_answer_is_a_client_error(garbage: bytes) -> None:
    async with raw_server(answering(garbage)) as server, pool_of() as pool:
        with pytest.raises(UpstreamProtocolError) as raised:
            await post(pool, server)
        assert isinstance(raised.value, aiohttp.ClientError)
        await eventually(lambda: not pool.connections, what="the connection closed")


# ---- TLS ---------------------------------------------------------------------------------------------------


def self_signed() -> tuple[bytes, bytes]:
    """A certificate for localhost and 127.0.0.1 and its key, PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@asynccontextmanager
async def tls_upstream(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[str, bytes, list[str], list[bytes]]]:
    cert, key = self_signed()
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert)
    (folder / "key.pem").write_bytes(key)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    names: list[str] = []
    server_context.sni_callback = lambda _obj, name, _ctx: names.append(str(name)) or None

    bodies: list[bytes] = []

    async def echo(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        return web.Response(body=bodies[-1], headers={"X-Path": request.path_qs})

    app = web.Application()
    app.router.add_post("/{tail:.*}", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=server_context).start()
    try:
        yield f"https://localhost:{port}", cert, names, bodies
    finally:
        await runner.cleanup()


async def test_https_with_a_trusted_self_signed_certificate(tmp_path_factory: pytest.TempPathFactory) -> None:
    async with tls_upstream(tmp_path_factory) as (url, cert, names, _):
        context = ssl.create_default_context(cadata=cert.decode())
        target = target_of(url)
        assert target is not None and target.tls
        async with pool_of(ssl_context=context) as pool:
            for n in range(2):
                status, headers, payload = await pool.request(
                    "POST", target, f"/a?n={n}", [], b"hello %d" % n
                )
                assert (status, payload, headers["X-Path"]) == (200, b"hello %d" % n, f"/a?n={n}")
            assert len(pool.connections) == 1
    assert names == ["localhost"]  # SNI sent; one handshake for both requests


async def test_https_refuses_an_untrusted_certificate(tmp_path_factory: pytest.TempPathFactory) -> None:
    async with tls_upstream(tmp_path_factory) as (url, _, _, bodies):
        target = target_of(url)
        assert target is not None
        async with pool_of() as pool:  # the system's CAs
            with pytest.raises(aiohttp.ClientConnectorCertificateError) as raised:
                await pool.request("POST", target, "/a", [], b"x")
        assert isinstance(raised.value, aiohttp.ClientError)
    assert bodies == []


# ---- many at once, closing ---------------------------------------------------------------------------------


async def test_300_concurrent_requests_each_get_their_own_answer() -> None:
    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        await asyncio.sleep(0.001 * (len(body) % 7))  # answers come back out of order
        return web.Response(body=body[::-1], headers={"X-Echo": request.headers["X-Id"]})

    app = web.Application()
    app.router.add_post("/echo", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    target = target_of(f"http://127.0.0.1:{port}")
    assert target is not None
    try:
        async with pool_of(max_idle=100) as pool:

            async def one(n: int) -> None:
                body = f"request {n} ".encode() * (1 + n % 50)
                status, headers, payload = await pool.request(
                    "POST", target, "/echo", [("X-Id", str(n))], body
                )
                assert (status, headers["X-Echo"], payload) == (200, str(n), body[::-1])

            for _ in range(2):
                await asyncio.gather(*(one(n) for n in range(300)))
                assert len(pool.idle[target.origin]) <= 100
            await eventually(lambda: len(pool.connections) <= 100, what="the idle cap kept")
    finally:
        await runner.cleanup()


async def test_close_closes_every_connection() -> None:
    async def hold(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while request := await server.next_request(reader):
            if b"hang" not in request:
                writer.write(OK)
                await writer.drain()

    async with raw_server(hold) as server:
        pool = UpstreamPool(5.0, 5.0)
        await asyncio.gather(*(post(pool, server) for _ in range(3)))  # three connections at once
        in_flight = asyncio.ensure_future(post(pool, server, body=b"hang"))  # on one of them, busy
        await eventually(lambda: len(server.requests) == 4, what="the hanging request arrived")
        assert len(pool.connections) == 3 and server.connections == 3
        await pool.close()
        with pytest.raises(aiohttp.ClientConnectionError):
            await in_flight
        assert not pool.connections
        await eventually(lambda: server.closed == 3, what="every socket closed")
        with pytest.raises(aiohttp.ClientConnectionError):
            await post(pool, server)


def test_under_uvloop() -> None:
    # `guard serve` runs on uvloop, whose transports are its own classes.
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> None:
        async with raw_server(answering(OK)) as server, pool_of() as pool:
            for n in range(2):
                status, headers, payload = await post(pool, server, body=b"%d" % n)
                assert (status, headers["Content-Type"], payload) == (200, "text/plain", b"ok")
            assert len(pool.connections) == 1
        assert (server.connections, len(server.requests)) == (1, 2)
        # an idle connection the server closed is seen and not used
        async with raw_server(answering(OK, close_after=True)) as server, pool_of() as pool:
            assert (await post(pool, server))[0] == 200
            await eventually(lambda: not pool.connections, what="idle close seen")
            assert (await post(pool, server))[0] == 200
        assert (server.connections, len(server.requests)) == (2, 2)

    uvloop.run(scenario())


# ---- in the guard ------------------------------------------------------------------------------------------


async def test_the_guard_forwards_through_the_pool(guard: RunningGuard, stub: StubUpstream) -> None:
    # Sent raw: client libraries fold duplicate headers, the guard must not.
    port = int(guard.url.rsplit(":", 1)[1])
    for sender in ("wangwu", "zhaoliu"):  # a broadcast a day each
        body = json.dumps(
            {"chat_type": "single", "external_userid": ["wm1"], "sender": sender, "text": {"content": "新品"}}
        ).encode()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /cgi-bin/externalcontact/add_msg_template?access_token=T%2Bk HTTP/1.1\r\n"
            b"Host: guard\r\nContent-Type: application/json\r\nX-Trace: 1\r\nx-trace: 2\r\n"
            + f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        answer = await reader.read()
        writer.close()
        await writer.wait_closed()
        assert answer.startswith(b"HTTP/1.1 200 ") and b"X-Upstream: wecom" in answer
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["errcode"] == 0
    pool = guard.app[UPSTREAM_POOL]
    assert len(pool.connections) == 1  # both went through the lean client, on one connection
    assert stub.count() == 2
    seen = stub.seen[-1]
    assert seen.path_qs == "/cgi-bin/externalcontact/add_msg_template?access_token=T%2Bk"
    raw = [(bytes(k), bytes(v)) for k, v in seen.raw_headers]
    assert [k for k, _ in raw] == [b"Host", b"Content-Type", b"X-Trace", b"x-trace", b"Content-Length"]
    assert raw[2:4] == [(b"X-Trace", b"1"), (b"x-trace", b"2")]


async def test_an_upstream_url_with_credentials_goes_through_aiohttp(stub: StubUpstream) -> None:
    # The lean client takes no credentials from the URL: the aiohttp session forwards, with its Basic auth.
    upstream = stub.url.replace("http://", "http://user:pw@")
    settings = Settings(upstream=upstream, upstreams={"gewe": upstream}, reload_interval=0)
    async with running_guard(settings) as guard:
        status, _, data = await guard.post(
            "/gewe/v2/api/message/postText", {"appId": "wx1", "toWxid": "wxid_a", "content": "hello"}
        )
        assert (status, data["ret"]) == (200, 200)
        assert not guard.app[UPSTREAM_POOL].connections
    assert stub.count() == 1
    assert stub.seen[0].headers["Authorization"] == "Basic dXNlcjpwdw=="
