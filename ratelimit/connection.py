"""Lean, auto-pipelined Redis connections for the counters' hot path: one node (`PipelinedNode`) or a
Cluster (`PipelinedCluster`), over `PipelinedConnection`s.

redis-py's asyncio client spends most of a counter hit on its own bookkeeping (pool acquire and release,
command packing in Python, a read per reply). Here every command is one `hiredis.pack_command` call and
one future: while commands are in flight, the ones issued in the same event-loop tick go out in ONE
socket write (a command with nothing in flight is written at once), and the replies are parsed by
hiredis as they arrive and handed back in order (Redis answers a connection's commands in the order it
received them). Each command is still its own command — an EVALSHA stays one atomic script run; only the
syscalls are shared.

Timeouts measure Redis, not the guard. A command's clock starts when it is WRITTEN to the socket (not when
a caller asked for it), with a monotonic deadline per command. One timer per connection watches the
oldest deadline; when it passes, the connection looks again after the loop has read its sockets (a timer
that fires late because the loop was busy — uvloop runs due timers before it polls — must not fail a
reply that is already waiting in the socket buffer), and only then fails the commands still unanswered.

A command may carry its deadline to Redis (`deadline=True`): its last argument is a fixed-width
placeholder, replaced when the command is written by the moment, on Redis's own clock (`TIME`), after
which the script must do nothing — `write + timeout × (1 - REPLY_MARGIN)` minus the uncertainty of the
clock offset (measured with TIME when the connection opens, again every minute; see `script_budget`).
The caller gives up at `write + timeout` at the earliest, so a script that did run had its reply on the
way at least `REPLY_MARGIN × timeout` before that; a command that timed out on the guard's side either
never runs or runs as a no-op — or ran in that margin, which the caller settles afterwards (the counters
look up the hit's token once its deadline has passed: ratelimit.redis). A reply that still arrives for a
command its caller gave up on is read and dropped.

A timed-out command does not desynchronise the connection and does not drop it under other callers: the
connection is retired (no new commands; the next caller gets a fresh connection), keeps reading the late
replies, and closes once nothing is pending (or after `RETIRE_SECONDS`). A connection the server closed is
noticed at once (connection_lost) and replaced on the next call, so a Redis restart costs no request that
arrives after Redis is back.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, cast
from urllib.parse import unquote, urlsplit

import hiredis
from redis.crc import key_slot
from redis.exceptions import NoScriptError, ResponseError

# The deadline argument: microseconds since the epoch on Redis's clock, 16 digits (zero-padded).
DEADLINE_PLACEHOLDER = "0" * 16
_DEADLINE_TAIL = len(DEADLINE_PLACEHOLDER) + 2  # the digits and their CRLF end a packed command
# Part of a command's timeout kept back for its reply to travel (Redis answers a batch at the end of its
# event-loop turn, then the network): a script may start no later than write + timeout × (1 - margin).
REPLY_MARGIN = 0.2
# How long after its deadline an unanswered command is failed: one more look once the loop has polled.
CONFIRM_SECONDS = 0.001
# A retired connection (a command on it timed out) is closed at the latest this long after retirement.
RETIRE_SECONDS = 2.0
# The clock offset to Redis is measured again this often (seconds); within a second while it is known no
# better than PRECISE_CLOCK (seconds).
CLOCK_REFRESH_SECONDS = 60.0
PRECISE_CLOCK = 0.002


def script_budget(timeout: float, clock_error: float) -> float:
    """How long after a command is written its script may still start: the timeout less the margin for the
    reply and the uncertainty of the clock offset — but never less than half the timeout, so that one
    imprecise measurement (re-measured within a second) cannot make every hit late."""
    return max(timeout * (1.0 - REPLY_MARGIN) - clock_error, timeout / 2)


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


class ConnectionLost(ConnectionError):
    """The connection is gone. `sent`: the command had been written, so it may have run on Redis."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class ReplyTimeout(TimeoutError):
    """No reply within the command's timeout, counted from when it was written."""


class _Sent:
    __slots__ = ("due", "future", "packed", "timeout", "with_deadline", "written")

    def __init__(
        self,
        future: asyncio.Future[Any],
        packed: bytes,
        timeout: float | None,
        with_deadline: bool,
    ) -> None:
        self.future = future
        self.packed = packed
        self.timeout = timeout
        self.with_deadline = with_deadline
        self.written = False
        self.due: float | None = None  # time.monotonic() when written, + timeout


class PipelinedConnection(asyncio.Protocol):
    """One TCP connection to Redis; `execute` may be called by many tasks at once."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._reader = hiredis.Reader()
        self._pending: collections.deque[_Sent] = collections.deque()
        self._outgoing: list[_Sent] = []
        self._flush_scheduled = False
        self._closed = self._loop.create_future()
        self._timer: asyncio.TimerHandle | None = None
        self._suspect_since: float | None = None
        self._retire_timer: asyncio.TimerHandle | None = None
        self.broken: BaseException | None = None
        self.retired = False
        # Redis's clock minus ours (seconds), how far off that may be, and when it was measured.
        self.clock_offset = 0.0
        self.clock_error = 0.0
        self._clock_due = 0.0  # monotonic: when to measure the offset again (0: never measured)
        self._clock_pending = False
        self.on_lost: Callable[[PipelinedConnection], None] | None = None

    @classmethod
    async def open(
        cls,
        spec: ConnectionSpec,
        *,
        connect_timeout: float | None = None,
        reply_timeout: float | None = None,
    ) -> PipelinedConnection:
        """Connect (within `connect_timeout`), authenticate, select the database and measure the clock
        offset to Redis (each reply within `reply_timeout` of writing its command)."""
        loop = asyncio.get_running_loop()
        sock = await connect_socket(spec.host, spec.port, connect_timeout)
        try:
            _, conn = await loop.create_connection(cls, sock=sock)
        except BaseException:
            sock.close()
            raise
        try:
            if spec.password is not None:
                auth = (spec.username, spec.password) if spec.username else (spec.password,)
                await conn.execute("AUTH", *auth, reply_timeout=reply_timeout)
            if spec.db:
                await conn.execute("SELECT", spec.db, reply_timeout=reply_timeout)
            await conn.measure_clock(reply_timeout)
        except BaseException:
            conn.abort(ConnectionError("connection set-up failed"))
            await asyncio.shield(conn.aclose())
            raise
        return conn

    async def measure_clock(self, reply_timeout: float | None = None) -> None:
        """The offset of Redis's clock (TIME) to ours: the best of up to five round trips. One too imprecise
        (the loop was busy: it read the answer late) is measured again in a second (`_refresh_clock`)."""
        best: tuple[float, float] | None = None
        for _ in range(5):
            before = time.time()
            reply = await self.execute("TIME", reply_timeout=reply_timeout)
            after = time.time()
            redis_now = int(reply[0]) + int(reply[1]) / 1e6
            sample = (redis_now - (before + after) / 2, (after - before) / 2)
            if best is None or sample[1] < best[1]:
                best = sample
            if best[1] < 0.001:
                break
        assert best is not None
        self.clock_offset, self.clock_error = best
        self._clock_measured()

    def _clock_measured(self) -> None:
        again = CLOCK_REFRESH_SECONDS if self.clock_error <= PRECISE_CLOCK else 1.0
        self._clock_due = time.monotonic() + again

    def _refresh_clock(self) -> None:
        """Measure the offset again in the background (clocks drift); keep the old one unless the new
        sample is about as precise."""
        self._clock_pending = True
        before = time.time()
        future = self.execute("TIME", reply_timeout=1.0)

        def done(f: asyncio.Future[Any]) -> None:
            self._clock_pending = False
            if f.cancelled() or f.exception() is not None:
                return
            after = time.time()
            reply = f.result()
            error = (after - before) / 2
            if error <= max(self.clock_error, PRECISE_CLOCK):
                self.clock_offset = int(reply[0]) + int(reply[1]) / 1e6 - (before + after) / 2
                self.clock_error = error
            self._clock_measured()

        future.add_done_callback(done)

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
                break
            if not pending:
                self._break(ConnectionError("Redis sent a reply nobody asked for"))
                return
            sent = pending.popleft()
            future = sent.future
            if future.done():  # its caller gave up (timed out or cancelled): the reply is late
                continue
            if isinstance(reply, hiredis.ReplyError):
                message = str(reply)
                future.set_exception(
                    NoScriptError(message) if message.startswith("NOSCRIPT") else ResponseError(message)
                )
            else:
                future.set_result(reply)
        if self.retired and not pending:
            self.close_now()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self.broken is None:
            self.broken = exc or ConnectionError("Redis closed the connection")
        self._fail_pending()
        for timer in (self._timer, self._retire_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._retire_timer = None
        if not self._closed.done():
            self._closed.set_result(None)
        if self.on_lost is not None:
            self.on_lost(self)

    # ---- commands ----

    @property
    def usable(self) -> bool:
        """Open and taking new commands (not broken, not retired after a timeout)."""
        return self.broken is None and self._transport is not None and not self.retired

    def execute(
        self,
        *args: Any,
        reply_timeout: float | None = None,
        deadline: bool = False,
    ) -> asyncio.Future[Any]:
        """Send one command (in the next write of this tick) and return the future of its reply.

        `reply_timeout`: seconds the reply may take from when the command is written (None: no limit).
        `deadline`: the last argument is `DEADLINE_PLACEHOLDER`, replaced at write time by the moment on
        Redis's clock (µs) after which the script must do nothing (needs `reply_timeout`).
        """
        future: asyncio.Future[Any] = self._loop.create_future()
        if not self.usable:
            reason = "retired after a timeout" if self.retired and self.broken is None else self.broken
            future.set_exception(ConnectionLost(f"Redis connection is closed: {reason}", sent=False))
            return future
        if deadline and reply_timeout is None:
            raise ValueError("a command with a deadline needs a reply timeout")
        sent = _Sent(future, hiredis.pack_command(args), reply_timeout, deadline)
        if self._clock_due and not self._clock_pending and time.monotonic() >= self._clock_due:
            self._refresh_clock()
        if not self._pending:
            # Nothing in flight (one request at a time): no one to share a write with, send it now.
            self._pending.append(sent)
            self._write([sent])
            return future
        self._outgoing.append(sent)
        self._pending.append(sent)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._flush_scheduled = False
        outgoing, self._outgoing = self._outgoing, []
        if self._transport is None or not outgoing:
            return
        self._write(outgoing)

    def _write(self, batch: list[_Sent]) -> None:
        """Write `batch`: each command's clock starts now, and its deadline on Redis's clock is filled in."""
        assert self._transport is not None
        # The real time, not loop.time(): uvloop's is cached at the start of the loop's turn, which may have
        # begun long before this write.
        now = time.monotonic()
        wall = 0.0
        earliest: float | None = None
        chunks: list[bytes] = []
        for sent in batch:
            sent.written = True
            packed = sent.packed
            if sent.timeout is not None:
                sent.due = now + sent.timeout
                if earliest is None or sent.due < earliest:
                    earliest = sent.due
                if sent.with_deadline:
                    if not wall:
                        wall = time.time()
                    budget = script_budget(sent.timeout, self.clock_error)
                    micros = int((wall + self.clock_offset + budget) * 1_000_000)
                    packed = packed[:-_DEADLINE_TAIL] + b"%016d\r\n" % micros
            chunks.append(packed)
        self._transport.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if earliest is not None and self._timer is None:
            self._timer = self._loop.call_later(earliest - now, self._watch)

    def _watch(self) -> None:
        """The oldest deadline passed (or the confirming look): fail what is still unanswered."""
        self._timer = None
        now = time.monotonic()
        live = [s for s in self._pending if s.due is not None and not s.future.done()]
        if not live:
            self._suspect_since = None
            return
        if self._suspect_since is None:
            earliest = min(s.due for s in live if s.due is not None)
            if earliest > now:
                self._timer = self._loop.call_later(earliest - now, self._watch)
                return
            # Past due. Before blaming Redis, let the loop read what has arrived meanwhile: a timer
            # scheduled from here fires only after the loop polled its sockets (asyncio and uvloop).
            self._suspect_since = now
            self._timer = self._loop.call_later(CONFIRM_SECONDS, self._watch)
            return
        cutoff, self._suspect_since = self._suspect_since, None
        failed = False
        for sent in live:
            if sent.due is not None and sent.due <= cutoff:
                sent.future.set_exception(
                    ReplyTimeout(f"no reply from Redis within {sent.timeout:g} s of writing the command")
                )
                failed = True
        if failed:
            self._retire()
        rest = [s.due for s in live if s.due is not None and not s.future.done()]
        if rest:
            self._timer = self._loop.call_later(max(0.0, min(rest) - now), self._watch)

    def _retire(self) -> None:
        """Take no new commands; close once every reply arrived, at the latest after RETIRE_SECONDS
        (every command on it is past its deadline by then)."""
        if self.retired:
            return
        self.retired = True
        longest = max((s.timeout or 0.0 for s in self._pending), default=0.0)
        self._retire_timer = self._loop.call_later(max(RETIRE_SECONDS, 2 * longest), self.close_now)

    def close_now(self) -> None:
        if self._transport is not None:
            if self.broken is None:
                self.broken = ConnectionError("connection closed by the client")
            self._transport.abort()

    def _break(self, exc: BaseException) -> None:
        if self.broken is None:
            self.broken = exc
        if self._transport is not None:
            self._transport.abort()
        self._fail_pending()

    def _fail_pending(self) -> None:
        self._outgoing.clear()
        while self._pending:
            sent = self._pending.popleft()
            if not sent.future.done():
                sent.future.set_exception(
                    ConnectionLost(f"Redis connection lost: {self.broken}", sent=sent.written)
                )

    def abort(self, reason: BaseException) -> None:
        """Drop the connection now; waiting commands fail."""
        self._break(reason)

    def give_up(self, reason: str) -> int:
        """Fail every command still waiting for its reply now, as if its timeout had passed, and retire
        the connection; returns how many. For when Redis is known to be failing (the caller's breaker
        opened): a command written just before that would otherwise wait out its own whole timeout —
        under SIGSTOP, answers up to ~1.5 timeouts late instead of ~1 (bench/faults.py --redis-faults).
        A hit failed here is in the state of one that timed out: it may run on Redis up to its deadline,
        so the caller settles it once that deadline has passed (ratelimit.redis)."""
        given_up = 0
        unwritten, self._outgoing = len(self._outgoing), []
        for _ in range(unwritten):  # never written: the newest of the pending, no reply will match them
            sent = self._pending.pop()
            if not sent.future.done():
                sent.future.set_exception(ReplyTimeout(reason))
                given_up += 1
        for sent in self._pending:
            if not sent.future.done():
                sent.future.set_exception(ReplyTimeout(reason))
                given_up += 1
        if given_up:
            self._retire()
        return given_up

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


async def connect_socket(host: str, port: int, handshake_timeout: float | None) -> socket.socket:
    """A TCP socket connected to `host`:`port` within `handshake_timeout` seconds — of the network and
    Redis, not of this event loop: when the deadline passes the socket itself is asked whether the kernel
    finished the handshake meanwhile (a busy loop just did not get to it yet), and only an unfinished
    handshake times out."""
    loop = asyncio.get_running_loop()
    family, kind, proto, _, address = (await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM))[0]
    sock = socket.socket(family, kind, proto)
    sock.setblocking(False)
    try:
        connecting = asyncio.ensure_future(loop.sock_connect(sock, address))
        try:
            due = None if handshake_timeout is None else time.monotonic() + handshake_timeout
            while not connecting.done():
                left = None if due is None else due - time.monotonic()
                if left is not None and left <= 0:
                    if not _connected(sock):
                        raise TimeoutError(
                            f"no TCP connection to {host}:{port} within {handshake_timeout:g} s"
                        )
                    left = None  # connected: only the loop is behind
                await asyncio.wait((connecting,), timeout=left)
            connecting.result()
        finally:
            if not connecting.done():
                connecting.cancel()
                connecting.add_done_callback(_consume)
    except BaseException:
        sock.close()
        raise
    return sock


def _connected(sock: socket.socket) -> bool:
    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
        return False
    try:
        sock.getpeername()
    except OSError:  # ENOTCONN: the handshake is still under way
        return False
    return True


class PipelinedNode:
    """One Redis node: its current `PipelinedConnection`, opened on first use and again whenever the last
    one broke or was retired. Concurrent callers share one connection attempt."""

    def __init__(self, spec: ConnectionSpec, *, connect_timeout: float, timeout: float) -> None:
        self.spec = spec
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.conn: PipelinedConnection | None = None
        self._opening: asyncio.Task[PipelinedConnection] | None = None
        self._all: set[PipelinedConnection] = set()

    async def connection(self) -> PipelinedConnection:
        conn = self.conn
        if conn is not None and conn.usable:
            return conn
        opening = self._opening
        if opening is None:
            opening = self._opening = asyncio.get_running_loop().create_task(self._open())
            opening.add_done_callback(self._opened)
        return await asyncio.shield(opening)

    async def _open(self) -> PipelinedConnection:
        conn = await PipelinedConnection.open(
            self.spec, connect_timeout=self.connect_timeout, reply_timeout=self.timeout
        )
        conn.on_lost = self._all.discard
        self._all.add(conn)
        self.conn = conn
        return conn

    def _opened(self, task: asyncio.Task[PipelinedConnection]) -> None:
        self._opening = None
        if not task.cancelled():
            task.exception()  # retrieved: every waiter got it already

    def call(
        self, key: str | None, *args: Any, reply_timeout: float | None = None, deadline: bool = False
    ) -> Awaitable[Any]:
        """`execute` on the current connection (`key` is for the Cluster's routing; unused here).

        Not a coroutine: with a usable connection, the reply's future itself (one frame less for each
        step of every counter call; the callers await it at once)."""
        conn = self.conn
        if conn is not None and conn.usable:
            return conn.execute(*args, reply_timeout=reply_timeout, deadline=deadline)
        return self._call(args, reply_timeout, deadline)

    async def _call(self, args: tuple[Any, ...], reply_timeout: float | None, deadline: bool) -> Any:
        conn = await self.connection()
        return await conn.execute(*args, reply_timeout=reply_timeout, deadline=deadline)

    def give_up(self, reason: str) -> int:
        """`PipelinedConnection.give_up` on every connection of this node."""
        return sum(conn.give_up(reason) for conn in list(self._all))

    async def aclose(self) -> None:
        if self._opening is not None:
            self._opening.cancel()
            with contextlib.suppress(BaseException):
                await self._opening
        for conn in list(self._all):
            await conn.aclose()
        self._all.clear()
        self.conn = None


class PipelinedCluster:
    """A Redis Cluster over `PipelinedNode`s: the slot map is read with CLUSTER SLOTS, each command goes
    to the master of its first key's slot; MOVED updates the map (and reads it again), ASK sends ASKING
    and the command to the named node. A node that cannot be reached fails its own slots only, and has the
    map read again (from any node the map named: a replica promoted after its master died takes over)."""

    MAX_REDIRECTS = 5

    def __init__(self, spec: ConnectionSpec, *, connect_timeout: float, timeout: float) -> None:
        self.spec = spec
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self._nodes: dict[tuple[str, int], PipelinedNode] = {}
        self._slots: list[tuple[str, int]] = []
        # Every node the Cluster named in its slot map (masters and their replicas): where to read the map
        # again when the URL's node is gone — after its master died and a replica took over its slots.
        self._known: dict[tuple[str, int], None] = {}
        self._refreshing: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def _node(self, address: tuple[str, int]) -> PipelinedNode:
        node = self._nodes.get(address)
        if node is None:
            spec = self.spec._replace(host=address[0], port=address[1], db=0)
            node = self._nodes[address] = PipelinedNode(
                spec, connect_timeout=self.connect_timeout, timeout=self.timeout
            )
        return node

    async def initialize(self) -> None:
        """Read the slot map from the first node that answers: one we are talking to now, then the URL's,
        then every other node the Cluster named (the URL's node may be the master that died)."""
        talking = [
            address for address, node in self._nodes.items() if node.conn is not None and node.conn.usable
        ]
        candidates = [*talking, (self.spec.host, self.spec.port), *self._known, *self._nodes]
        error: BaseException | None = None
        for address in dict.fromkeys(candidates):
            try:
                reply = await self._node(address).call(None, "CLUSTER", "SLOTS", reply_timeout=self.timeout)
            except (OSError, TimeoutError, ResponseError) as exc:
                error = exc
                continue
            slots: list[tuple[str, int]] = [("", 0)] * 16384
            known: dict[tuple[str, int], None] = {}
            for start, end, *served_by in reply:
                # The master first, then its replicas: each [host, port, id, …].
                nodes = [(_host(entry[0]) or address[0], int(entry[1])) for entry in served_by]
                slots[int(start) : int(end) + 1] = [nodes[0]] * (int(end) - int(start) + 1)
                known.update(dict.fromkeys(nodes))
            self._slots = slots
            self._known = known
            return
        raise ConnectionLost(f"no Cluster node answered CLUSTER SLOTS: {error}", sent=False)

    def _refresh_soon(self) -> None:
        if self._refreshing is None or self._refreshing.done():
            task = asyncio.get_running_loop().create_task(self._refresh())
            self._refreshing = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _refresh(self) -> None:
        with contextlib.suppress(OSError, TimeoutError, ResponseError):
            await self.initialize()

    async def call(
        self, key: str | None, *args: Any, reply_timeout: float | None = None, deadline: bool = False
    ) -> Any:
        if not self._slots:
            await self.initialize()
        slot = key_slot(key.encode("utf-8")) if key is not None else 0
        address = self._slots[slot]
        asking = False
        for _ in range(self.MAX_REDIRECTS):
            if not address[0]:
                raise ConnectionLost(f"slot {slot} is served by no node", sent=False)
            try:
                conn = await self._node(address).connection()
            except OSError:
                # No connection (refused, or no answer in time): the node is down. Read the map again, as
                # for a connection lost below — else, with every connection to the dead master failing
                # here, the map would never learn which replica took its slots over.
                self._refresh_soon()
                raise
            if asking:
                # Written in the same write as the command, right before it.
                conn.execute("ASKING").add_done_callback(_consume)
            try:
                return await conn.execute(*args, reply_timeout=reply_timeout, deadline=deadline)
            except ResponseError as exc:
                kind, _, rest = str(exc).partition(" ")
                if kind not in ("MOVED", "ASK"):
                    raise
                moved_slot, _, where = rest.partition(" ")
                host, _, port = where.rpartition(":")
                address = (host or address[0], int(port))
                if kind == "MOVED":
                    self._slots[int(moved_slot)] = address
                    self._refresh_soon()
                    asking = False
                else:
                    asking = True
            except OSError:
                # The node is gone or restarting: read the map again (a failover moves its slots).
                self._refresh_soon()
                raise
        raise ConnectionLost(f"slot {slot}: too many Cluster redirections", sent=False)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        for node in list(self._nodes.values()):
            await node.aclose()
        self._nodes.clear()


def _host(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
