"""A lean, auto-pipelined Redis connection for the counters' hot path (single node).

redis-py's asyncio client spends most of a counter hit on its own bookkeeping (pool acquire and release,
command packing in Python, a read per reply). Here every command is one `hiredis.pack_command` call and
one future: while commands are in flight, the ones issued in the same event-loop tick go out in ONE
socket write (a command with nothing in flight is written at once), and the replies are parsed by
hiredis as they arrive and handed back in order (Redis answers a connection's commands in the order it
received them). Each command is still its own command — an EVALSHA stays one atomic script
run; only the syscalls are shared.

A command that times out does not desynchronise the connection: its reply still arrives and is dropped.
The caller (RedisStorage) bounds every command with its timeout and closes the connection after one
timed out, so a hung server is never waited on twice; the next command connects again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from typing import Any, NamedTuple, cast
from urllib.parse import unquote, urlsplit

import hiredis
from redis.exceptions import NoScriptError, ResponseError


class ConnectionSpec(NamedTuple):
    """Where and how to connect: a `redis://` URL's host, port, database and credentials."""

    host: str
    port: int
    db: int = 0
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str) -> ConnectionSpec | None:
        """The spec of a plain TCP `redis://` URL; None for what this connection does not speak (TLS,
        Unix sockets, extra options): those stay with redis-py."""
        parts = urlsplit(url)
        if parts.scheme != "redis" or parts.query or not parts.hostname:
            return None
        path = parts.path.lstrip("/")
        try:
            db = int(path) if path else 0
            port = parts.port or 6379
        except ValueError:
            return None
        return cls(
            parts.hostname,
            port,
            db,
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None,
        )


class PipelinedConnection(asyncio.Protocol):
    """One TCP connection to Redis; `execute` may be called by many tasks at once."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._reader = hiredis.Reader()
        self._pending: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._outgoing: list[bytes] = []
        self._flush_scheduled = False
        self._closed = self._loop.create_future()
        self.broken: BaseException | None = None

    @classmethod
    async def open(cls, spec: ConnectionSpec) -> PipelinedConnection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(cls, spec.host, spec.port)
        try:
            if spec.password is not None:
                auth = (spec.username, spec.password) if spec.username else (spec.password,)
                await conn.execute("AUTH", *auth)
            if spec.db:
                await conn.execute("SELECT", spec.db)
        except BaseException:
            await asyncio.shield(conn.aclose())
            raise
        return conn

    # ---- asyncio.Protocol ----

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they have the same methods.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        pending = self._pending
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as exc:
                self._break(ConnectionError(f"Redis protocol error: {exc}"))
                return
            if reply is False:
                return
            if not pending:
                self._break(ConnectionError("Redis sent a reply nobody asked for"))
                return
            future = pending.popleft()
            if future.done():  # its caller timed out or was cancelled: drop the late reply
                continue
            if isinstance(reply, hiredis.ReplyError):
                message = str(reply)
                future.set_exception(
                    NoScriptError(message) if message.startswith("NOSCRIPT") else ResponseError(message)
                )
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self.broken is None:
            self.broken = exc or ConnectionError("Redis closed the connection")
        self._fail_pending()
        if not self._closed.done():
            self._closed.set_result(None)

    # ---- commands ----

    @property
    def usable(self) -> bool:
        return self.broken is None and self._transport is not None

    def execute(self, *args: Any) -> asyncio.Future[Any]:
        """Send one command (in the next write of this tick) and return the future of its reply."""
        future: asyncio.Future[Any] = self._loop.create_future()
        if not self.usable:
            future.set_exception(ConnectionError(f"Redis connection is closed: {self.broken}"))
            return future
        packed = hiredis.pack_command(args)
        if not self._pending:
            # Nothing in flight (one request at a time): no one to share a write with, send it now.
            self._pending.append(future)
            assert self._transport is not None
            self._transport.write(packed)
            return future
        self._outgoing.append(packed)
        self._pending.append(future)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._flush_scheduled = False
        outgoing, self._outgoing = self._outgoing, []
        if self._transport is None or not outgoing:
            return
        self._transport.write(outgoing[0] if len(outgoing) == 1 else b"".join(outgoing))

    def _break(self, exc: BaseException) -> None:
        if self.broken is None:
            self.broken = exc
        if self._transport is not None:
            self._transport.abort()
        self._fail_pending()

    def _fail_pending(self) -> None:
        self._outgoing.clear()
        while self._pending:
            future = self._pending.popleft()
            if not future.done():
                # Commands queued behind one that timed out have waited just as long: they time out too.
                error: BaseException = (
                    TimeoutError("an earlier command on this connection timed out")
                    if isinstance(self.broken, TimeoutError)
                    else ConnectionError(f"Redis connection lost: {self.broken}")
                )
                future.set_exception(error)

    def abort(self, reason: BaseException) -> None:
        """Drop the connection now (a command on it timed out); waiting commands fail."""
        self._break(reason)

    async def aclose(self) -> None:
        if self.broken is None:
            self.broken = ConnectionError("connection closed by the client")
        if self._transport is not None:
            self._transport.close()
        if not self._closed.done():
            # connection_lost comes on a later tick: wait for it, so no transport outlives the close.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await asyncio.shield(self._closed)
