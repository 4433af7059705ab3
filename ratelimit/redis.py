"""Redis counters: each operation is one Lua script run (EVALSHA), on a single node or a Cluster.

Scripts are `.lua` files loaded once per server (SCRIPT LOAD only when Redis answers NOSCRIPT) and
called by SHA. Every key of one account carries the hash tag `{acct:<id>}`, so a script's keys share
one Cluster slot.

A plain `redis://` URL — a single node or a Cluster — is spoken to over auto-pipelined connections
(ratelimit.connection: the hits of one event-loop tick share a socket write; each is still its own
EVALSHA); URLs that connection does not speak (TLS, Unix sockets) go through redis-py clients made by
`ratelimit.clients.connect`.

How a call can fail, and what the guard may conclude (RedisStorage):
- Concurrency towards Redis is bounded (`max_connections` operations in flight per storage). The others
  wait in line, each at most `queue_timeout`: a burst is queued, not failed. Waiting in line says nothing
  about Redis (it is the guard being busy); past `queue_timeout` the call fails without touching the
  breaker.
- `timeout` measures Redis: a command's clock starts when it is written to the socket, and a late timer
  is not trusted before the loop has read its sockets (see ratelimit.connection). A timeout or a broken
  connection counts as a failure; `failures` in a row open the circuit breaker (every call, waiting ones
  included, fails at once — on a single node also those already written, as if timed out), and a
  background ping closes it on Redis's first answer.
- A hit the guard gave up on never keeps a charge. The hit script gets the guard's deadline on Redis's
  own clock and does nothing when it runs after it (status LATE), so a command that reaches Redis late (a
  hung server woken by SIGCONT, a command left in a socket buffer) is a no-op. We chose that over
  refunding afterwards because it needs no second round trip, holds when Redis comes back after the guard
  process is gone, and cannot race a refund against the late hit. A hit that was written but never
  answered — timed out (it may have run in the margin kept for the reply's travel, its reply then lost)
  or its connection lost — may have run: every hit leaves its token in a list of the account's recent
  hits by this process, and once the hit's deadline has passed and Redis answers, the hit is settled
  (settle.lua: undone if it ran, nothing if not). Refunds carry the deadline too: one that failed is made
  later when it surely did not happen.
- What is owed to Redis waits in a backlog worked through once Redis answers (`_flush`): the settles
  first (each looks for its token among the process's recent hits, which newer hits push out), then in
  order the refunds and the charges of actions let through while Redis was down (`charge_later`, for
  `redis_down = allow`). So after a fault what Redis counted equals what the guard let through.
- A connection that broke is replaced on the next call, and an operation is tried again once on a fresh
  connection when that is safe: always when the command was never written; after it was written only
  when running it twice does no harm — reads, PING, a freeze switch, a hit or a refund with a request
  id (the record makes a second run answer like the first; the hit's token tells our own lost attempt
  from an earlier request with the same id). A hit without a request id is settled instead.

`Script` is the one way Lua runs against Redis here, for the counters and for whoever imports it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import itertools
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypeVar

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeout
from redis.retry import Retry

from ratelimit.breaker import CircuitBreaker
from ratelimit.clients import RedisTarget, connect, resolve
from ratelimit.connection import (
    CONFIRM_SECONDS,
    DEADLINE_PLACEHOLDER,
    ConnectionLost,
    ConnectionSpec,
    PipelinedCluster,
    PipelinedConnection,
    PipelinedNode,
    ReplyTimeout,
    script_budget,
)
from ratelimit.storage import (
    STATUS_DONE,
    STATUS_DUPLICATE,
    STATUS_LATE,
    HitPlan,
    PlanItem,
    RawHit,
    RawRead,
    RawRule,
    ReadPlan,
    RefundPlan,
    decode_numbers,
    frozen_key,
    hit_keys,
    recent_key,
    request_key,
)
from ratelimit.types import StorageUnavailable, new_tuple

log = logging.getLogger("ratelimit.redis")

T = TypeVar("T")
Pipelined = PipelinedNode | PipelinedCluster
Client = Redis | RedisCluster | Pipelined | PipelinedConnection
# isinstance with a tuple: with an `X | Y` union it costs ~4 times as much (0.65 against 0.17 µs), on
# every call of the hot path.
_PIPELINED = (PipelinedNode, PipelinedCluster, PipelinedConnection)
_PIPELINED_CLIENTS = (PipelinedNode, PipelinedCluster)

_FAILURES = (RedisError, RedisClusterException, OSError, TimeoutError)
# While the breaker is open, Redis is pinged this often (seconds) and the breaker closed on its answer.
PROBE_INTERVAL = 0.05
# The reconciliation backlog: at most this many operations; a failed one is tried again after (s).
BACKLOG_MAX = 100_000
BACKLOG_RETRY = 0.25


class Script:
    """A Lua script called by its SHA1 (EVALSHA); SCRIPT LOAD only when the server answers NOSCRIPT (first
    use on that server, or after SCRIPT FLUSH / a restart). Works on a redis-py client (single node or
    Cluster: the keys route it) and on the pipelined connections of ratelimit.connection.

    On a pipelined client, `reply_timeout` bounds the reply from when the command is written and `deadline`
    adds the deadline argument (filled in at write time, see ratelimit.connection)."""

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8"), usedforsecurity=False).hexdigest()

    @classmethod
    def packaged(cls, package: str, name: str) -> Script:
        """`<package>/lua/<name>.lua`, read once (package data)."""
        source = resources.files(package).joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")
        return cls(name, source)

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> Script:
        file = Path(path)
        return cls(file.stem, file.read_text(encoding="utf-8"))

    def __repr__(self) -> str:
        return f"Script({self.name!r}, sha={self.sha[:12]})"

    async def __call__(
        self,
        client: Client,
        keys: Sequence[str],
        args: Sequence[str | int],
        *,
        reply_timeout: float | None = None,
        deadline: bool = False,
        late: Callable[[Any], bool] | None = None,
    ) -> Any:
        """Run the script. `late`: tells a reply saying the script ran after its deadline, and so did
        nothing (hit.lua's {3}, refund.lua's -1): such a reply raises LateReply."""
        if isinstance(client, _PIPELINED):
            if deadline:
                command = ("EVALSHA", self.sha, len(keys), *keys, *args, DEADLINE_PLACEHOLDER)
            else:
                command = ("EVALSHA", self.sha, len(keys), *keys, *args)
            if isinstance(client, PipelinedConnection):
                try:
                    reply = await client.execute(*command, reply_timeout=reply_timeout, deadline=deadline)
                except NoScriptError:
                    await client.execute("SCRIPT", "LOAD", self.source, reply_timeout=reply_timeout)
                    reply = await client.execute(*command, reply_timeout=reply_timeout, deadline=deadline)
            else:
                key = keys[0] if keys else None
                try:
                    reply = await client.call(key, *command, reply_timeout=reply_timeout, deadline=deadline)
                except NoScriptError:
                    await client.call(key, "SCRIPT", "LOAD", self.source, reply_timeout=reply_timeout)
                    reply = await client.call(key, *command, reply_timeout=reply_timeout, deadline=deadline)
        else:
            if deadline:
                raise ValueError("a redis-py client takes the deadline as an argument of the script")
            try:
                reply = await client.evalsha(self.sha, len(keys), *keys, *args)
            except NoScriptError:
                await client.script_load(self.source)
                reply = await client.evalsha(self.sha, len(keys), *keys, *args)
        if late is not None and late(reply):
            after = f" ({reply_timeout:g} s)" if reply_timeout is not None else ""
            raise LateReply(f"Redis ran {self.name} after its deadline{after}")
        return reply


HIT = Script.packaged("ratelimit", "hit")
REFUND = Script.packaged("ratelimit", "refund")
READ = Script.packaged("ratelimit", "read")
SETTLE = Script.packaged("ratelimit", "settle")


class StorageEvents(Protocol):
    """What RedisStorage tells its owner (metrics, alerts). Called on the event loop; must not block."""

    def failure(self, operation: str, kind: str, detail: str) -> None:
        """An operation failed with StorageUnavailable. `kind`: timeout, connection, error (Redis was
        asked and failed), queue (no free slot in time), circuit_open (not asked: the breaker is open)."""

    def breaker(self, state: str) -> None:
        """The circuit breaker changed state: closed, open or half-open."""

    def reconciled(self, what: str) -> None:
        """Something owed to Redis after a fault was made good: settled (a lost hit that ran, undone),
        late_hit (an answer after the guard gave up, refunded), charged (an action let through
        uncounted), refunded; or could not be: settle_lost / charge_lost / refund_lost, dropped."""


class _NoEvents:
    def failure(self, operation: str, kind: str, detail: str) -> None:
        return None

    def breaker(self, state: str) -> None:
        return None

    def reconciled(self, what: str) -> None:
        return None


class _Later(NamedTuple):
    """An operation to make good once Redis answers again (RedisStorage's backlog)."""

    what: str
    account: str
    run: Callable[[], Awaitable[None]]
    not_before: float  # monotonic
    # After a failure: try again later (True), or give up (it may have happened).
    redo: Callable[[StorageUnavailable], bool]


def _always(exc: StorageUnavailable) -> bool:
    return True


def _redo_refund(plan: RefundPlan) -> Callable[[StorageUnavailable], bool]:
    return lambda exc: not exc.maybe_applied or plan.request_id is not None


class LateReply(TimeoutError):
    """Redis ran the script after the deadline it was given: it did nothing."""


class _Trace:
    """What the attempts of one operation did: `maybe_ran` once one was written and its answer lost. (A
    timed-out hit or refund did not run: its deadline.)"""

    __slots__ = ("maybe_ran",)

    def __init__(self) -> None:
        self.maybe_ran = False


class _Refused(Exception):
    """A call waiting for a slot was turned away: the breaker opened."""


class _Gate:
    """At most `size` operations in flight; the others wait in line (first come, first served), each at
    most the `patience` it gives."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.free = size
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def try_acquire(self) -> bool:
        """A slot now if one is free and nobody waits (no await: the common case of `acquire`)."""
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return True
        return False

    async def acquire(self, patience: float) -> None:
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(patience):
                await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release()  # granted just as we gave up: hand the slot on
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)  # the line holds only callers still waiting
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1

    def turn_away(self) -> None:
        """Every call waiting in line fails now (the breaker opened)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(_Refused())


def _may_retry(
    exc: ConnectionLost | RedisConnectionError, attempt: int, repeatable: bool, trace: _Trace
) -> bool:
    """After attempt 1 or 2 lost its connection: note in `trace` whether it may have run, and say whether
    to try once more on a fresh connection — when it was never written, or when running it twice does no
    harm (`repeatable`)."""
    if isinstance(exc, ConnectionLost):
        trace.maybe_ran = trace.maybe_ran or exc.sent
        return attempt == 1 and (not exc.sent or repeatable)
    trace.maybe_ran = True  # redis-py does not say whether it was written
    return attempt == 1 and repeatable


def _kind(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | RedisTimeout):
        return "timeout"
    if isinstance(exc, OSError | RedisConnectionError):
        return "connection"
    return "error"


def _unanswered(exc: StorageUnavailable) -> bool:
    """The call timed out waiting for its reply (not: Redis answered that it ran too late). A hit with a
    deadline may still have run, in the margin kept for the reply's travel, and its reply then been lost
    (the connection broke before it was read): only a settle can tell."""
    return exc.kind == "timeout" and not isinstance(exc.__cause__, LateReply)


def _is_late(reply: Any) -> bool:
    """The script ran after its deadline and did nothing: hit.lua answers {3}, refund.lua -1."""
    if isinstance(reply, list):
        return len(reply) == 1 and int(reply[0]) == STATUS_LATE
    return isinstance(reply, int) and reply == -1


class RedisStorage:
    name = "redis"

    def __init__(
        self,
        target: RedisTarget,
        *,
        timeout: float = 0.1,
        breaker: CircuitBreaker | None = None,
        max_connections: int = 64,
        queue_timeout: float = 5.0,
        connect_timeout: float | None = None,
        events: StorageEvents | None = None,
    ) -> None:
        """Counters at `target`; a target not known to be single node or Cluster is asked (`probe`) on
        first use.

        `timeout`: seconds Redis may take to answer a command, from when it is written. `max_connections`:
        operations in flight at once (and the redis-py pool size per node); the others wait in line up
        to `queue_timeout` seconds. `connect_timeout`: seconds to open a connection (default 5 × timeout,
        at least 0.5). `events`: told of failures and breaker changes.
        """
        if timeout <= 0 or max_connections < 1 or queue_timeout <= 0:
            raise ValueError("timeout and queue_timeout must be > 0 and max_connections >= 1")
        self._target = target
        self._spec = ConnectionSpec.from_url(target.url)
        self._client: Client | None = None
        self._detect_lock = asyncio.Lock()
        self.timeout = timeout
        self.queue_timeout = queue_timeout
        self.connect_timeout = connect_timeout or max(0.5, 5 * timeout)
        self.max_connections = max_connections
        self.events: StorageEvents = events or _NoEvents()
        self.breaker = breaker or CircuitBreaker()
        self.breaker.on_change = self._breaker_changed
        self._gate = _Gate(max_connections)
        self._prober: asyncio.Task[None] | None = None
        self._backlog: collections.deque[_Later] = collections.deque()
        self._settles: collections.deque[_Later] = collections.deque()
        self._flusher: asyncio.Task[None] | None = None
        # Hit tokens: unique per storage (random prefix) and per hit (a counter).
        self._token_prefix = secrets.token_hex(4)
        self._token_count = itertools.count(1)
        # hit.lua's encoded items, by the id() of the limiter's tuple of items (`_specs`).
        self._encoded: dict[int, tuple[tuple[PlanItem, ...], tuple[str, ...]]] = {}
        # redis-py clients only: Redis's clock minus ours, its uncertainty, when measured (monotonic).
        self._clock: tuple[float, float, float] | None = None

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        cluster: bool | None = None,
        timeout: float = 0.1,
        breaker: CircuitBreaker | None = None,
        max_connections: int = 64,
        queue_timeout: float = 5.0,
        events: StorageEvents | None = None,
    ) -> RedisStorage:
        """A storage for `url`; `cluster=None` asks the server (INFO cluster) on first use."""
        return cls(
            RedisTarget.from_url(url, cluster=cluster),
            timeout=timeout,
            breaker=breaker,
            max_connections=max_connections,
            queue_timeout=queue_timeout,
            events=events,
        )

    @property
    def cluster(self) -> bool | None:
        return self._target.cluster

    @property
    def waiting(self) -> int:
        """Operations waiting in line for a slot."""
        return self._gate.waiting

    # ---- clients ----

    async def _get_client(self) -> Client:
        client = self._client
        if client is not None:
            return client
        async with self._detect_lock:
            if self._client is None:
                self._client = await self._make_client()
            return self._client

    async def _make_client(self) -> Client:
        no_retry = Retry(NoBackoff(), 0)
        self._target = await resolve(
            self._target,
            socket_timeout=self.connect_timeout,
            socket_connect_timeout=self.connect_timeout,
            retry=no_retry,
        )
        spec = self._spec
        if spec is not None:
            options = {"connect_timeout": self.connect_timeout, "timeout": self.timeout}
            if not self._target.cluster:
                return PipelinedNode(spec, **options)
            cluster = PipelinedCluster(spec, **options)
            try:
                await cluster.initialize()  # the slot map once, before concurrent first commands
            except BaseException:
                await asyncio.shield(cluster.aclose())
                raise
            return cluster
        made = connect(
            self._target,
            max_connections=self.max_connections + 4,  # + room for pings beside a full line
            # redis-py's own read timeout is only a backstop: `_measured` times each call.
            socket_timeout=max(1.0, 10 * self.timeout),
            socket_connect_timeout=self.connect_timeout,
            # No hidden retries: the breaker and the caller's policy decide what happens next.
            retry=no_retry,
        )
        try:
            if isinstance(made, RedisCluster):
                # Learn the slot map once, before concurrent first commands race to do it.
                await made.initialize()
            await self._measure_clock(made)
        except BaseException:
            await asyncio.shield(made.aclose())
            raise
        return made

    async def _measure_clock(self, client: Redis | RedisCluster) -> None:
        before = time.time()
        reply: Any = await client.time()
        after = time.time()
        if isinstance(reply, dict):  # a Cluster may answer per node
            reply = next(iter(reply.values()))
        redis_now = int(reply[0]) + int(reply[1]) / 1e6
        self._clock = (redis_now - (before + after) / 2, (after - before) / 2, time.monotonic())

    # ---- one operation: breaker, line, attempts ----

    def _unavailable(self, what: str, kind: str, reason: str) -> StorageUnavailable:
        self.events.failure(what, kind, reason)
        return StorageUnavailable(self.name, f"{what}: {reason}", kind=kind)

    async def _run(
        self,
        what: str,
        operation: Callable[[Client], Awaitable[T]],
        *,
        repeatable: bool,
        queued: bool = True,
    ) -> T:
        """Run `operation` under the breaker, in line for a slot (`queued`), on a client; once more on a
        fresh connection when the first attempt was never written, or when `repeatable` (running it
        twice does no harm)."""
        if not self.breaker.allow():
            self._ensure_probe()
            raise self._unavailable(what, "circuit_open", "circuit open after repeated failures")
        # A free slot is taken without awaiting (`try_acquire`). Then the breaker cannot have opened since
        # `allow()` just above: only a call that waited in line looks at it again.
        if queued and not self._gate.try_acquire():
            try:
                await self._gate.acquire(self.queue_timeout)
            except _Refused:
                self.breaker.release()
                raise self._unavailable(what, "circuit_open", "circuit opened while waiting") from None
            except TimeoutError:
                self.breaker.release()
                raise self._unavailable(
                    what,
                    "queue",
                    f"no free slot within {self.queue_timeout:g} s "
                    f"({self.max_connections} calls in flight, {self._gate.waiting} waiting)",
                ) from None
            except BaseException:
                self.breaker.release()
                raise
            if self.breaker.state == "open":  # it opened while this call waited for its slot
                self._gate.release()
                raise self._unavailable(what, "circuit_open", "circuit opened while waiting")
        trace = _Trace()
        try:
            # `_attempts` written out: one coroutine frame less for every step of every counter call (~0.5 µs
            # a hit, 16 hits at once on a real Redis).
            for attempt in (1, 2):
                client = self._client
                if client is None:
                    client = await self._get_client()  # failing here, nothing was sent
                try:
                    result = await operation(client)
                    break
                except (ConnectionLost, RedisConnectionError) as exc:
                    if not _may_retry(exc, attempt, repeatable, trace):
                        raise
            else:
                raise AssertionError("unreachable: the second attempt returns or raises")
        except _FAILURES as exc:
            self.breaker.record_failure()
            kind = _kind(exc)
            reason = "timed out" if kind == "timeout" else "connection failed" if kind == "connection" else ""
            detail = f"{type(exc).__name__}: {exc}"
            failed = self._unavailable(what, kind, f"{reason} ({detail})" if reason else detail)
            failed.maybe_applied = trace.maybe_ran
            raise failed from exc
        except BaseException:
            # Cancelled by the caller: says nothing about Redis.
            self.breaker.release()
            raise
        finally:
            if queued:
                self._gate.release()
        self.breaker.record_success()
        return result

    async def _attempts(
        self, operation: Callable[[Client], Awaitable[T]], repeatable: bool, trace: _Trace | None = None
    ) -> T:
        """`operation` on a client, once more on a fresh connection when `_may_retry` says so (the same
        attempts as `_run`'s, without the breaker and the line: for the background ping)."""
        trace = trace or _Trace()
        for attempt in (1, 2):
            client = self._client
            if client is None:
                client = await self._get_client()  # failing here, nothing was sent
            try:
                return await operation(client)
            except (ConnectionLost, RedisConnectionError) as exc:
                if not _may_retry(exc, attempt, repeatable, trace):
                    raise
        raise AssertionError("unreachable")

    def _script(
        self,
        client: Client,
        script: Script,
        keys: Sequence[str],
        args: Sequence[str | int],
        *,
        deadline: bool = False,
    ) -> Awaitable[Any]:
        """Run `script`; with `deadline`, a run after the guard gave up does nothing (LateReply).

        Not a coroutine: on a pipelined client it hands back the script's own coroutine (one frame less
        for every step of every counter call)."""
        if isinstance(client, _PIPELINED_CLIENTS):
            late = _is_late if deadline else None
            return script(client, keys, args, reply_timeout=self.timeout, deadline=deadline, late=late)
        assert not isinstance(client, PipelinedConnection)
        return self._script_redis_py(client, script, keys, args, deadline)

    async def _script_redis_py(
        self,
        client: Redis | RedisCluster,
        script: Script,
        keys: Sequence[str],
        args: Sequence[str | int],
        deadline: bool,
    ) -> Any:
        if not deadline:
            return await self._measured(script(client, keys, args))
        # redis-py: the deadline is fixed before the command is written; when the loop was too busy to
        # write it in time, Redis answers LATE having done nothing — it is up, so try again (within the
        # time a call may wait in line).
        give_up = time.monotonic() + self.queue_timeout
        while True:
            reply = await self._measured(script(client, keys, [*args, await self._deadline(client)]))
            if not _is_late(reply):
                return reply
            if time.monotonic() >= give_up:
                raise LateReply(f"Redis ran {script.name} after its deadline ({self.timeout:g} s)")

    async def _deadline(self, client: Redis | RedisCluster) -> str:
        """The deadline argument for a call on a redis-py client (µs on Redis's clock)."""
        if self._clock is None or time.monotonic() - self._clock[2] > 60.0:
            await self._measure_clock(client)
        assert self._clock is not None
        offset, error, _ = self._clock
        budget = script_budget(self.timeout, error)
        return f"{int((time.time() + offset + budget) * 1_000_000):016d}"

    async def _measured(self, call: Awaitable[T]) -> T:
        """`call` on a redis-py client within `timeout`; a deadline that passed while the loop was busy
        is looked at again once the loop has read its sockets."""
        task = asyncio.ensure_future(call)
        try:
            due = time.monotonic() + self.timeout
            while not task.done():
                left = due - time.monotonic()
                if left <= 0:
                    await asyncio.sleep(CONFIRM_SECONDS)
                    if task.done():
                        break
                    raise ReplyTimeout(f"no reply from Redis within {self.timeout:g} s")
                await asyncio.wait((task,), timeout=left)
            return task.result()
        finally:
            if not task.done():
                task.cancel()
                task.add_done_callback(_consume)

    # ---- breaker: tell, turn the line away, ping in the background ----

    def _breaker_changed(self, state: str) -> None:
        self.events.breaker(state)
        if state == "closed":
            self._kick()
        if state == "open":
            self._gate.turn_away()
            # Calls already waiting for Redis's reply fail now too, not each at the end of its own
            # timeout (a single node: on a Cluster one failing master must not fail the others' calls).
            # They are left as calls that timed out: a hit among them is settled after its deadline.
            if isinstance(self._client, PipelinedNode):
                self._client.give_up("no reply from Redis: given up when the circuit breaker opened")
            self._ensure_probe()

    def _ensure_probe(self) -> None:
        """Ping in the background while the breaker is open: with a breaker that lets no call probe, the
        ping is the only way it closes, so a call turned away starts it again if it is not running."""
        if self.breaker.state != "closed" and (self._prober is None or self._prober.done()):
            with contextlib.suppress(RuntimeError):  # no running loop: the next call starts it
                self._prober = asyncio.get_running_loop().create_task(self._probe())

    async def _probe(self) -> None:
        """While the breaker is open: PING every PROBE_INTERVAL; the first answer closes it."""

        async def ping(client: Client) -> Any:
            return await self._ping(client)

        while self.breaker.state != "closed":
            await asyncio.sleep(PROBE_INTERVAL)
            if self.breaker.state == "closed":
                return
            try:
                await self._attempts(ping, True)
            except _FAILURES:
                continue
            self.breaker.record_success()
            return

    # ---- reconciliation: what is made good once Redis answers again ----

    def _later(self, entry: _Later) -> None:
        if self.backlog >= BACKLOG_MAX:
            dropped = (self._backlog or self._settles).popleft()
            log.error("reconciliation backlog full: dropped a %s of %s", dropped.what, dropped.account)
            self.events.reconciled("dropped")
        self._queue_of(entry).append(entry)
        self._kick()

    def _queue_of(self, entry: _Later) -> collections.deque[_Later]:
        # Settles go first: each looks for its hit's token among the process's recent hits, which every
        # newer hit of the account (a charge made good here, a live request) pushes towards the end.
        return self._settles if entry.what == "settle" else self._backlog

    def _kick(self) -> None:
        """Work through the backlog unless that is under way or the breaker is open (its closing kicks
        again)."""
        if not self.backlog or (self._flusher is not None and not self._flusher.done()):
            return
        if self.breaker.state == "open":
            return
        with contextlib.suppress(RuntimeError):  # no running loop (closing): nothing to do now
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while queue := self._settles or self._backlog:
            entry = queue[0]
            wait = entry.not_before - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue  # look again: a settle may have been queued meanwhile
            queue.popleft()
            try:
                await entry.run()
            except asyncio.CancelledError:
                queue.appendleft(entry)  # not made good: still owed (aclose reports it)
                raise
            except StorageUnavailable as exc:
                if entry.redo(exc):
                    self._queue_of(entry).append(entry)  # behind what its failure queued (a settle)
                else:
                    log.error("could not %s for %s, and cannot tell whether it happened: %s",
                              entry.what, entry.account, exc)  # fmt: skip
                    self.events.reconciled(f"{entry.what}_lost")
                if self.breaker.state == "open":
                    return  # the breaker's closing kicks again
                await asyncio.sleep(BACKLOG_RETRY)

    @property
    def backlog(self) -> int:
        """Operations waiting for Redis to answer again (settles, charges, refunds)."""
        return len(self._settles) + len(self._backlog)

    def _settle_later(self, plan: HitPlan, token: str) -> None:
        """A hit was written but its answer lost: once its deadline passed and Redis answers, undo it if
        it ran (settle.lua), since the guard answered without it."""
        keys = [
            recent_key(plan.account, self._token_prefix),
            request_key(plan.account, plan.request_id, plan.day_end),
            *plan.keys,
        ]
        args: list[str | int] = [token, int(plan.request_id is not None), *(i.cost for i in plan.items)]

        async def run() -> None:
            async def settle(client: Client) -> Any:
                return await self._script(client, SETTLE, keys, args)

            found = int(await self._run("settle", settle, repeatable=True))
            if found:
                self.events.reconciled("settled")

        self._later(_Later("settle", plan.account, run, time.monotonic() + self.timeout, _always))

    def charge_later(self, plan: HitPlan) -> None:
        """Charge `plan` once Redis answers again: an action the guard let through while the counters
        were unavailable (`redis_down = allow`). Give its items `enforce=False`: it was sent, so it
        counts even past a limit."""

        async def run() -> None:
            await self.hit(plan, "charge")
            self.events.reconciled("charged")

        # A failed attempt queued its own settle first when it may have run: charging again is safe.
        self._later(_Later("charge", plan.account, run, time.monotonic(), _always))

    # ---- the Storage protocol ----

    async def hit(self, plan: HitPlan, what: str = "hit") -> RawHit:
        """Run hit.lua for `plan`. `what`: the operation its failures are reported as ("charge" for a
        `charge_later`)."""
        token = "" if plan.dry_run else f"{self._token_prefix}{next(self._token_count):x}"
        frozen, request, recent = hit_keys(plan.account, plan.request_id, plan.day_end, self._token_prefix)
        keys = (frozen, request, recent, *plan.keys)
        args: tuple[str | int, ...] = (
            int(plan.dry_run),
            int(plan.request_id is not None),
            plan.request_ttl,
            plan.descriptor,
            *self._specs(plan.items),
            token,
        )

        # A plain function returning `_script`'s coroutine, not a coroutine of its own: one frame less for
        # every step of every hit.
        def run(client: Client) -> Awaitable[Any]:
            return self._script(client, HIT, keys, args, deadline=True)

        try:
            # With a request id a second run answers like the first (the record): safe to repeat.
            reply = await self._run(what, run, repeatable=plan.request_id is not None)
        except StorageUnavailable as exc:
            if token and (exc.maybe_applied or _unanswered(exc)):
                exc.maybe_applied = True
                self._settle_later(plan, token)
            raise
        status = int(reply[0])
        if status == STATUS_DUPLICATE:
            if token and _text(reply[3]) == token:
                # Our own first attempt ran but its answer was lost with the connection: not a retry.
                allowed, rules = decode_numbers(_text(reply[2]))
                return RawHit(STATUS_DONE, allowed, rules)
            return RawHit(status, False, descriptor=_text(reply[1]), numbers=_text(reply[2]))
        # Four numbers per rule. RawRule's fields in order, without its Python-level __new__ (per rule); by
        # index rather than zip of one iterator four times (two rules: ~2.0 -> 1.3 µs, timeit, busy machine).
        size = len(reply)
        if size % 4 != 2:
            raise ValueError(f"hit.lua answered {size} values: not 2 + 4 per rule")
        rules = tuple(
            [
                new_tuple(
                    RawRule, (int(reply[i]), int(reply[i + 1]), int(reply[i + 2]), bool(int(reply[i + 3])))
                )
                for i in range(2, size, 4)
            ]
        )
        # RawHit's fields in order (status, allowed, rules, descriptor, numbers), without its __new__ either.
        raw: RawHit = new_tuple(RawHit, (status, bool(int(reply[1])), rules, "", ""))
        return raw

    def _specs(self, items: tuple[PlanItem, ...]) -> tuple[str, ...]:
        """hit.lua's argument per item ('limit:warn_at:alert_over:enforce:cost:ttl'). The limiter hands every
        hit of the same rules within a second the same tuple of items: encoded once for all of them."""
        known = self._encoded.get(id(items))
        if known is not None and known[0] is items:
            return known[1]
        specs = tuple(
            f"{item.limit}:{item.warn_at}:{item.alert_over}:{int(item.enforce)}:{item.cost}:{item.ttl}"
            for item in items
        )
        if len(self._encoded) >= 256:
            self._encoded.clear()
        # The entry keeps `items` alive, so no other tuple can take its id() while it is here.
        self._encoded[id(items)] = (items, specs)
        return specs

    def refund_later(self, plan: RefundPlan) -> None:
        """Make the refund once Redis answers again, after whatever the backlog holds (a `charge_later`)."""
        self._refund_later(plan, "refunded")

    async def refund(self, plan: RefundPlan) -> bool:
        """Give back a charge. When Redis cannot be reached now, the refund is made once it answers again
        if it surely did not happen now (it timed out past its deadline or was never written; with a
        request id it happens at most once anyway); StorageUnavailable is raised all the same."""
        try:
            return await self._refund_once(plan)
        except StorageUnavailable as exc:
            if _redo_refund(plan)(exc):
                self._refund_later(plan, "refunded")
            else:
                log.error("refund for %s lost with its connection: it may not have happened", plan.account)
                self.events.reconciled("refund_lost")
            raise

    def _refund_later(self, plan: RefundPlan, done: str) -> None:
        async def run() -> None:
            await self._refund_once(plan)
            self.events.reconciled(done)

        self._later(_Later("refund", plan.account, run, time.monotonic(), _redo_refund(plan)))

    async def _refund_once(self, plan: RefundPlan) -> bool:
        keys = [request_key(plan.account, plan.request_id, plan.day_end), *(item.key for item in plan.items)]
        args: list[str | int] = [
            int(plan.request_id is not None),
            *(item.cost for item in plan.items),
            *(item.attempts for item in plan.items),
        ]

        async def run(client: Client) -> Any:
            return await self._script(client, REFUND, keys, args, deadline=True)

        # With a request id the record makes a refund happen at most once: safe to repeat.
        return bool(int(await self._run("refund", run, repeatable=plan.request_id is not None)))

    async def read(self, plan: ReadPlan) -> RawRead:
        keys = [frozen_key(plan.account), *plan.keys]

        async def run(client: Client) -> Any:
            return await self._script(client, READ, keys, [])

        reply = [int(v) for v in await self._run("read", run, repeatable=True)]
        counts = tuple((reply[i], reply[i + 1]) for i in range(1, len(reply), 2))
        return RawRead(bool(reply[0]), counts)

    async def set_frozen(self, account: str, frozen: bool) -> None:
        key = frozen_key(account)

        async def run(client: Client) -> Any:
            # The switch has no expiry on purpose: a freeze lasts until someone lifts it.
            command = ("SET", key, b"1") if frozen else ("DEL", key)
            if isinstance(client, PipelinedNode | PipelinedCluster):
                return await client.call(key, *command, reply_timeout=self.timeout)
            assert not isinstance(client, PipelinedConnection)
            return await self._measured(client.set(key, b"1") if frozen else client.delete(key))

        await self._run("freeze" if frozen else "unfreeze", run, repeatable=True)

    async def _ping(self, client: Client) -> Any:
        if isinstance(client, PipelinedNode):
            return await client.call(None, "PING", reply_timeout=self.timeout)
        if isinstance(client, PipelinedCluster):
            # Any slot's master: the Cluster answers when its map is known and a node is up.
            return await client.call("ping", "PING", reply_timeout=self.timeout)
        assert not isinstance(client, PipelinedConnection)
        return await self._measured(client.ping())

    async def ping(self) -> bool:
        """True when Redis answers within the timeout (for readiness probes); never raises. Does not wait
        in line behind counter calls; False at once while the breaker is open."""

        async def run(client: Client) -> Any:
            return await self._ping(client)

        try:
            return bool(await self._run("ping", run, repeatable=True, queued=False))
        except StorageUnavailable:
            return False

    async def aclose(self) -> None:
        if self.backlog:
            owed = [*self._settles, *self._backlog]
            log.error(
                "closing with %d operations still waiting for Redis (%s); they are not made good",
                len(owed),
                ", ".join(sorted({entry.what for entry in owed})),
            )
        tasks = [t for t in (self._prober, self._flusher) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        self._prober = self._flusher = None
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
