"""A lean HTTP/1.1 client for the guarded forward: one pre-joined write out, llhttp (httptools) in.

Why it exists (the design says: write your own only where a benchmark in bench/ shows it pays): in
`bench/stages.py` aiohttp's client was the biggest single row of a guarded request (ClientSession._request,
ClientRequest.__init__, update_auto_headers, update_body_from_data, the writer, the response object), and
the guarded forward needs little of it: its body is already in memory, its answer is read whole; no
redirects, cookies, proxies, auth or decompression. Measured with `bench/stages.py --tree` on the commit
before and with this client, alternating, 3 rounds, medians (load 0.4-2.0), µs of CPU a request:
the forward's rows ("forward: aiohttp client" + "client receive" → "forward: lean client" + "request
bytes" + "client receive") 131 → 49 at 16 connections and 160 → 71 at one; the event loop's share ("the
rest": aiohttp's connector, timers and tasks) 86 → 53 and 142 → 83; the whole process (plain runs, no
hooks) 510 → 346 and 689 → 533.

What it does:
- one pool of keep-alive connections per origin (scheme, host, port), asyncio Protocols made by
  `loop.create_connection` (TLS with SNI through `ssl.create_default_context()` for https);
- a request is ONE `transport.write` of request line (the raw path and query as given, never re-quoted),
  `Host`, the given headers as they are (names, values, order, duplicates), `Content-Length`, the body
  bytes unchanged;
- the answer is parsed by `httptools.HttpResponseParser` (llhttp, in C): Content-Length, chunked and
  close-delimited bodies, interim 1xx answers skipped; headers as a `CIMultiDictProxy` (every value, in
  order, decoded as aiohttp decodes them);
- a connection goes back to the pool only after a complete answer that allows keep-alive and nothing
  more arrived; one the server closed while idle is dropped before reuse; at most `max_idle` idle ones per
  origin, each closed after `keepalive_timeout` seconds idle (one timer handle for the pool);
- the read and whole-request timeouts of the requests in flight share one timer for the pool too (`watch`);
- a request that was written is NEVER retried (a broadcast must not go out twice): a failure after the
  write is the caller's error.

Errors are aiohttp's, so the proxy's `except` clauses stay as they were: `TimeoutError` (connect, a read
that waits longer than `read_timeout`, or connect + read in all), `aiohttp.ClientConnectorError` (and its
TLS subclasses) when no connection can be made, `aiohttp.ServerDisconnectedError` /
`aiohttp.ClientPayloadError` when the server closes before the answer is complete,
`UpstreamProtocolError` (an `aiohttp.ClientConnectionError`) for an answer that cannot be parsed.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import aiohttp
import httptools
from aiohttp.client_reqrep import ConnectionKey
from multidict import CIMultiDict, CIMultiDictProxy

Origin = tuple[str, str, int]  # scheme, host, port
Answer = tuple[int, CIMultiDictProxy[str], bytes]

# aiohttp's keep-alive default for pooled connections.
KEEPALIVE_TIMEOUT = 15.0
MAX_IDLE_PER_ORIGIN = 100
_NO_BODY = (204, 304)


class UpstreamProtocolError(aiohttp.ClientConnectionError):
    """The upstream's answer is not HTTP/1.x this client can read (garbage, an upgrade)."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where a base URL points: the pool's key, the Host header, the path the base URL itself carries."""

    origin: Origin
    host_header: str
    prefix: str

    @property
    def tls(self) -> bool:
        return self.origin[0] == "https"


@functools.lru_cache(maxsize=64)
def target_of(base: str) -> Target | None:
    """The Target of an upstream base URL, or None when this client does not handle it (credentials in
    the URL, a query or fragment, a non-ASCII host, a bad port): the caller then uses aiohttp."""
    parts = urlsplit(base)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or parts.query or parts.fragment or "@" in parts.netloc:
        return None
    host = parts.hostname
    if not host or not host.isascii() or "%" in host:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    default = 443 if scheme == "https" else 80
    host_header = f"[{host}]" if ":" in host else host
    if port is not None and port != default:
        host_header += f":{port}"
    return Target((scheme, host, port or default), host_header, parts.path)


def request_head(method: str, path: str, host: str, headers: Iterable[tuple[str, str]], length: int) -> bytes:
    """Request line, Host, the headers as given, Content-Length, the blank line: the bytes of the head.
    Values go out as they came in (aiohttp's server decodes them as UTF-8 with surrogateescape)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append(f"Content-Length: {length}\r\n\r\n")
    head = "\r\n".join(lines)
    # A CR or LF inside a name or value would split the head: refuse it, as aiohttp's writer does.
    if head.count("\n") != len(lines) + 1 or head.count("\r") != len(lines) + 1:
        raise ValueError("newline or carriage return in the request line or a header")
    return head.encode("utf-8", "surrogateescape")


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection: at most one request in flight; the answer parsed as it arrives."""

    def __init__(self, pool: UpstreamPool, origin: Origin) -> None:
        self.pool = pool
        self.origin = origin
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        # Made once connected and dropped when the connection is gone: the parser holds this protocol's
        # callbacks, a reference cycle only the collector would free otherwise (a connection that failed
        # leaves no garbage: tests/test_guard_pauses.py).
        self.parser: httptools.HttpResponseParser | None = None
        self.lost = self.loop.create_future()  # set when the connection is gone
        self.closed = False
        self.idle_since = 0.0
        # The request in flight, if any.
        self.waiter: asyncio.Future[Answer] | None = None
        self.read_timeout = 0.0
        self.deadline = 0.0
        self.last_data = 0.0
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.headers: CIMultiDict[str] | None = None
        self.body: list[bytes] = []
        self.answered = False  # a complete answer was delivered for the request in flight
        self.reusable = False

    # ---- asyncio.Protocol ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A TCP or TLS transport (uvloop's are not registered as asyncio.Transport: no isinstance check).
        self.transport = cast(asyncio.Transport, transport)
        self.parser = httptools.HttpResponseParser(self)

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        if parser is None or self.waiter is None or self.answered:
            # Bytes nobody asked for (while idle, or after the answer): the connection cannot be reused.
            self.reusable = False
            self.close()
            return
        self.last_data = self.loop.time()
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.fail(UpstreamProtocolError(f"the upstream switched protocols ({self.status})"))
        except httptools.HttpParserError as exc:
            self.fail(UpstreamProtocolError(f"unreadable answer from the upstream: {exc}"))

    def eof_received(self) -> bool | None:
        self.ended()
        return None  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.ended(exc)
        self.parser = None
        self.pool.forget(self)
        if not self.lost.done():
            self.lost.set_result(None)

    # ---- httptools callbacks -------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.answered:
            self.reusable = False  # another answer after the one asked for: the connection is unusable
        self.status = 0
        self.raw_headers = []
        self.headers = None
        self.body = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        assert self.parser is not None  # callbacks run inside feed_data
        self.status = self.parser.get_status_code()
        self.headers = CIMultiDict(
            (name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"))
            for name, value in self.raw_headers
        )

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:
            return  # an interim answer (100 Continue, 103 Early Hints): the real one follows
        assert self.parser is not None
        self.reusable = self.parser.should_keep_alive()
        self.deliver()

    # ---- one request ---------------------------------------------------------------------------------------

    def send(self, data: bytes, read_timeout: float, deadline: float) -> asyncio.Future[Answer]:
        """Write the request (one write) and return the future of its answer."""
        assert self.transport is not None
        waiter: asyncio.Future[Answer] = self.loop.create_future()
        self.waiter = waiter
        self.answered = False
        self.reusable = False
        self.status = 0
        self.headers = None
        self.read_timeout = read_timeout
        self.deadline = deadline
        self.last_data = self.loop.time()
        self.pool.watch(self)
        self.transport.write(data)
        return waiter

    @property
    def due(self) -> float:
        """When the request in flight times out: a read waited `read_timeout`, or the whole request ran
        past its deadline."""
        return min(self.last_data + self.read_timeout, self.deadline)

    def check_timeout(self, now: float) -> float | None:
        """Fail the request in flight if it is due (`now`: the loop's time); else when it will be (None:
        nothing in flight)."""
        if self.waiter is None or self.waiter.done():
            return None
        due = self.due
        if now + 0.001 >= due:
            self.fail(TimeoutError(f"no answer from the upstream within {self.read_timeout:g}s"))
            return None
        return due

    def deliver(self) -> None:
        waiter = self.waiter
        self.answered = True
        self.stop_timer()
        if waiter is not None and not waiter.done():
            assert self.headers is not None
            waiter.set_result((self.status, CIMultiDictProxy(self.headers), b"".join(self.body)))

    def fail(self, exc: BaseException) -> None:
        self.stop_timer()
        self.reusable = False
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()

    def ended(self, exc: BaseException | None = None) -> None:
        """The server closed (EOF) or the connection is lost: a close-delimited answer is complete now;
        anything else in flight failed."""
        self.reusable = False
        waiter = self.waiter
        if waiter is None or waiter.done() or self.answered:
            return
        headers = self.headers
        if headers is None or self.status < 200:  # nothing, or only an interim answer
            failure: BaseException = aiohttp.ServerDisconnectedError()
        elif (
            exc is None
            and self.status not in _NO_BODY
            and "Content-Length" not in headers
            and "chunked" not in headers.get("Transfer-Encoding", "").lower()
        ):
            self.deliver()  # read until close: the body is what arrived
            return
        else:
            failure = aiohttp.ClientPayloadError("the upstream closed before the answer was complete")
        if exc is not None:
            failure.__cause__ = exc
        self.fail(failure)

    def stop_timer(self) -> None:
        """No timeout for this connection any more (its request is over)."""
        self.pool.busy.discard(self)

    def finish(self) -> None:
        """The request is over: forget it (the answer or the error went to the caller)."""
        self.waiter = None
        self.body = []
        self.raw_headers = []
        self.headers = None

    def close(self) -> None:
        self.stop_timer()
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()

    @property
    def usable(self) -> bool:
        """Idle and open: the server has not closed it, it can carry another request."""
        return not self.closed and self.transport is not None and not self.transport.is_closing()


class UpstreamPool:
    """Keep-alive connections per origin. Built and closed with the app (`UPSTREAM_POOL`)."""

    def __init__(
        self,
        connect_timeout: float,
        read_timeout: float,
        *,
        keepalive_timeout: float = KEEPALIVE_TIMEOUT,
        max_idle: int = MAX_IDLE_PER_ORIGIN,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.keepalive_timeout = keepalive_timeout
        self.max_idle = max_idle
        self.ssl_context = ssl_context
        self.idle: dict[Origin, list[UpstreamConnection]] = {}  # oldest first; reuse takes the newest
        self.connections: set[UpstreamConnection] = set()  # every open one, idle or busy
        self.sweeper: asyncio.TimerHandle | None = None
        # The connections with a request in flight, and one timer for all of their timeouts (`watch`).
        self.busy: set[UpstreamConnection] = set()
        self.watchdog: asyncio.TimerHandle | None = None
        self.watchdog_due = 0.0
        self.closed = False

    async def request(
        self, method: str, target: Target, path: str, headers: Iterable[tuple[str, str]], body: bytes
    ) -> Answer:
        """Send one request, read its answer whole. Never retried once written."""
        if self.closed:
            raise aiohttp.ClientConnectionError("the upstream pool is closed")
        data = request_head(method, path, target.host_header, headers, len(body)) + body
        started = self.loop.time()
        conn = self.idle_connection(target.origin)
        if conn is None:
            conn = await self.connect(target)
        deadline = started + self.connect_timeout + self.read_timeout
        try:
            answer = await conn.send(data, self.read_timeout, deadline)
        except BaseException:
            conn.close()  # an error, or the caller cancelled: whatever is left on it is nobody's
            raise
        finally:
            conn.finish()
        if conn.reusable and conn.usable:
            self.release(conn)
        else:
            conn.close()
        return answer

    def idle_connection(self, origin: Origin) -> UpstreamConnection | None:
        """The most recently used idle connection that is still open; dead ones are dropped."""
        idle = self.idle.get(origin)
        while idle:
            conn = idle.pop()
            if conn.usable:
                return conn
            conn.close()
        return None

    async def connect(self, target: Target) -> UpstreamConnection:
        _, host, port = target.origin
        context: ssl.SSLContext | None = None
        if target.tls:
            context = self.ssl_context or default_ssl_context()
        conn = UpstreamConnection(self, target.origin)
        try:
            async with asyncio.timeout(self.connect_timeout):
                await self.loop.create_connection(lambda: conn, host, port, ssl=context)
        except ssl.SSLCertVerificationError as exc:
            key = connection_key(target, context)
            raise aiohttp.ClientConnectorCertificateError(key, exc) from exc
        except ssl.SSLError as exc:
            raise aiohttp.ClientConnectorSSLError(connection_key(target, context), exc) from exc
        except OSError as exc:
            raise aiohttp.ClientConnectorError(connection_key(target, context), exc) from exc
        if self.closed:
            conn.close()
            raise aiohttp.ClientConnectionError("the upstream pool is closed")
        self.connections.add(conn)
        return conn

    def release(self, conn: UpstreamConnection) -> None:
        """Back to the pool after a complete answer (keep-alive allowed); over the cap, closed."""
        idle = self.idle.setdefault(conn.origin, [])
        if self.closed or len(idle) >= self.max_idle:
            conn.close()
            return
        conn.idle_since = self.loop.time()
        idle.append(conn)
        if self.sweeper is None:
            self.sweeper = self.loop.call_at(conn.idle_since + self.keepalive_timeout, self.sweep)

    def watch(self, conn: UpstreamConnection) -> None:
        """Time `conn`'s request out when it is due. One timer for the pool, armed for the earliest due
        request, rather than a timer armed and cancelled per request: `loop.call_at` + `cancel` cost
        2.5-6 µs a request on uvloop (timeit), a set add and discard ~0.1. As before, a request fails at
        its own due time: the timer runs `check_timeouts` then, which fails what is due and arms itself for
        the next due request. Requests sent later are due later (the same timeouts for the whole pool), so
        the timer rarely moves; under steady load it runs about once per `read_timeout`."""
        self.busy.add(conn)
        due = conn.due
        watchdog = self.watchdog
        if watchdog is None or due < self.watchdog_due:
            if watchdog is not None:
                watchdog.cancel()
            self.watchdog_due = due
            self.watchdog = self.loop.call_at(due, self.check_timeouts)

    def check_timeouts(self) -> None:
        """The pool's timer: fail the requests that are due; come back when the next one is."""
        self.watchdog = None
        now = self.loop.time()
        next_due: float | None = None
        for conn in list(self.busy):
            due = conn.check_timeout(now)
            if due is None:
                self.busy.discard(conn)
            elif next_due is None or due < next_due:
                next_due = due
        if next_due is not None and not self.closed:
            self.watchdog_due = next_due
            self.watchdog = self.loop.call_at(next_due, self.check_timeouts)

    def sweep(self) -> None:
        """Close the connections idle for `keepalive_timeout`; come back for the next to expire."""
        self.sweeper = None
        expired = self.loop.time() - self.keepalive_timeout
        next_due: float | None = None
        for idle in self.idle.values():
            while idle and idle[0].idle_since <= expired:
                idle.pop(0).close()
            if idle:
                due = idle[0].idle_since + self.keepalive_timeout
                next_due = due if next_due is None else min(next_due, due)
        if next_due is not None and not self.closed:
            self.sweeper = self.loop.call_at(next_due, self.sweep)

    def forget(self, conn: UpstreamConnection) -> None:
        """`conn` is gone (closed by either side)."""
        self.connections.discard(conn)
        idle = self.idle.get(conn.origin)
        if idle and conn in idle:
            idle.remove(conn)

    async def close(self, grace: float = 2.0) -> None:
        """Close every connection, idle or busy, and wait (up to `grace` s) until each is gone."""
        self.closed = True
        if self.sweeper is not None:
            self.sweeper.cancel()
            self.sweeper = None
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        conns = list(self.connections)
        self.idle.clear()
        for conn in conns:
            conn.fail(aiohttp.ClientConnectionError("the upstream pool is closed"))
        pending = [conn.lost for conn in conns if not conn.lost.done()]
        if pending:
            await asyncio.wait(pending, timeout=grace)
        for conn in conns:
            if not conn.lost.done() and conn.transport is not None:
                conn.transport.abort()


@functools.cache
def default_ssl_context() -> ssl.SSLContext:
    """Certificates verified against the system's CAs, host names checked (SNI sent)."""
    return ssl.create_default_context()


def connection_key(target: Target, context: ssl.SSLContext | None) -> ConnectionKey:
    """aiohttp's description of a connection, for its connector errors (their message names the host)."""
    _, host, port = target.origin
    return ConnectionKey(host, port, target.tls, context or True, None, None, None)
