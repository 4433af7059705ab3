"""Delivering the alert stream to a webhook, in any `AlertFormat`.

One background task per webhook, owned by the app's cleanup_ctx. It reads the alert stream after the
webhook's delivered cursor, so the proxy path never waits for a webhook and an alert that could not be
delivered stays in the stream until it is. Alerts are batched into one message per send, and a
`RateGate` keeps the sends under the robot's cap (20 messages a minute by default) in every window.
With Redis, a lease makes one guard process the sender for all of them, and the gate's history is
shared so a new sender does not exceed the cap either.

Alerts from memory: a system alert about Redis itself cannot wait for Redis. The risk observer `offer`s it
to every sink of its process, which delivers it at once (a second task beside the stream reader, same
gate, no lease: each process tells of its own outage), once per dedup key. When the observer writes the
alert's stream copy it asks `handover`: a sink that has started to send it keeps it and the copy names the
sink in `details.sent_from_memory`, so no sender of that webhook sends it again from the stream; a sink
that had not started leaves it to the stream (durable, resumable), or takes it back if the write failed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import aiohttp

from guard.config.risk import WebhookSettings
from guard.core.pubsub import raise_if_cancelled
from guard.risk.model import Alert
from guard.risk.sinks.format import AlertFormat, JsonWebhook
from guard.risk.sinks.wecom import WeComRobot
from guard.risk.store import AlertStore

log = logging.getLogger("guard.alerts.webhook")

# Alerts from memory kept per sink (delivered ones are forgotten first when it is full).
DIRECT_MAX = 1000
# The stream reader retries a failing store (Redis down) after at most this long.
STORE_RETRY_MAX = 5.0


@dataclass(slots=True)
class _FromMemory:
    """An alert offered from memory: `new` (not sent yet), `owned` (a send started: this sink delivers it,
    retrying), `held` (left to the stream while its copy is written), `sent`."""

    alert: Alert
    state: Literal["new", "owned", "held", "sent"] = "new"
    stored: bool = False


class RateGate:
    """At most `cap` sends in any window of `window` seconds.

    Measured conservatively: send k may start only `window` seconds after send k-cap FINISHED, so a
    receiver that timestamps arrivals can never see more than `cap` in a window, whatever the latency.
    """

    def __init__(self, cap: int, window: float, clock: Callable[[], float] = time.time) -> None:
        self.cap = cap
        self.window = window
        self._clock = clock
        self._done: collections.deque[float] = collections.deque(maxlen=cap)

    def delay(self) -> float:
        if len(self._done) < self.cap:
            return 0.0
        return max(0.0, self._done[0] + self.window - self._clock())

    def finished(self) -> None:
        self._done.append(self._clock())

    def dump(self) -> str:
        return json.dumps(list(self._done))

    def load(self, raw: str | None) -> None:
        if not raw:
            return
        try:
            times = [float(t) for t in json.loads(raw)]
        except (ValueError, TypeError):
            return
        for t in times[-self.cap :]:
            self._done.append(t)


class WebhookSink:
    """Delivers the alert stream to one webhook, in order, each alert once (barring a crash mid-send)."""

    def __init__(
        self,
        settings: WebhookSettings,
        store: AlertStore,
        session: aiohttp.ClientSession,
        owner: str | None = None,
        lease_seconds: float = 15.0,
    ) -> None:
        self.settings = settings
        self.store = store
        self.session = session
        self.owner = owner or f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.lease_seconds = lease_seconds
        self.gate = RateGate(settings.per_window, settings.window_seconds)
        self.format: AlertFormat = WeComRobot() if settings.kind == "wecom" else JsonWebhook()
        self.cursor_name = f"webhook:{settings.name}"
        self.sent_messages = 0
        self.sent_alerts = 0
        self.failures = 0
        self.last_error: str | None = None
        self.sent_from_memory = 0
        self._leader = False
        # Where this sender has delivered up to while the store could not be told (Redis failing right
        # after a send): the stream is read from here, not from the stored cursor, so nothing is sent twice.
        self._unstored: str | None = None
        self._memory: dict[str, _FromMemory] = {}
        self._memory_wake = asyncio.Event()
        # The stream reader and the memory sender share the gate: one send at a time.
        self._send_lock = asyncio.Lock()

    @property
    def name(self) -> str:
        return self.settings.name

    async def _hold_lease(self) -> bool:
        got = await self.store.acquire_lease(self.cursor_name, self.owner, self.lease_seconds)
        if got and not self._leader:
            # A new sender: take over the previous sender's send history so the cap holds across the switch.
            self.gate.load(await self.store.get_cursor(self.cursor_name + ":sent"))
        self._leader = got
        return got

    async def _sleep(self, seconds: float) -> bool:
        """Sleep while keeping the lease; False if it was lost meanwhile."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            await asyncio.sleep(min(left, self.lease_seconds / 3))
            if not await self._hold_lease():
                return False
        return True

    async def run(self) -> None:
        """Deliver the stream (and, beside it, the alerts offered from memory) until cancelled."""
        memory = asyncio.create_task(self._run_memory(), name=f"webhook-{self.name}-memory")
        try:
            await self._run_stream()
        finally:
            memory.cancel()
            await asyncio.gather(memory, return_exceptions=True)

    async def _run_stream(self) -> None:
        backoff = self.settings.backoff_initial
        store_backoff = min(self.settings.backoff_initial, STORE_RETRY_MAX)
        while True:
            try:
                # redis-py's blocking reads may swallow a cancellation that lands as they time out: a
                # stop asked for is honoured here whatever the last Redis call did.
                raise_if_cancelled()
                delivered = await self._deliver_next()
                store_backoff = min(self.settings.backoff_initial, STORE_RETRY_MAX)
                if delivered:
                    backoff = self.settings.backoff_initial
                elif delivered is not None:
                    self.failures += 1
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, self.settings.backoff_max)
            except asyncio.CancelledError:
                if self._leader:
                    with contextlib.suppress(Exception):
                        release = self.store.release_lease(self.cursor_name, self.owner)
                        await asyncio.wait_for(asyncio.shield(release), 1.0)
                raise
            except Exception as exc:
                # The store itself failing (Redis down): wait and retry; alerts stay in the stream.
                raise_if_cancelled()
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("webhook %s: %s", self.settings.name, self.last_error)
                await asyncio.sleep(store_backoff)
                store_backoff = min(store_backoff * 2, STORE_RETRY_MAX)

    def _wants(self, alert: Alert) -> bool:
        """An alert of this webhook's levels that no sender of it took from memory already."""
        if alert.level not in self.settings.levels:
            return False
        taken = alert.details.get("sent_from_memory")
        return not (isinstance(taken, list | tuple) and self.name in taken)

    async def _deliver_next(self) -> bool | None:
        """Send the next batch of wanted alerts: True once delivered, False when the send failed, None when
        there was nothing to send (not the sender, nothing new, or only alerts of other levels)."""
        if not await self._hold_lease():
            await asyncio.sleep(self.lease_seconds / 3)
            return None
        cursor = await self._cursor()
        pending = await self.store.read(cursor, wait=min(2.0, self.lease_seconds / 3))
        if not pending:
            return None
        if not any(self._wants(a) for a in pending):
            await self.store.set_cursor(self.cursor_name, pending[-1].id)
            return None
        delay = self.gate.delay()
        if delay > 0 and not await self._sleep(delay):
            return None
        # Take everything that arrived while we waited: one message carries the batch.
        pending = await self.store.read(cursor, wait=0, count=max(100, self.settings.batch_max * 5))
        wanted = [a for a in pending if self._wants(a)][: self.settings.batch_max]
        if not wanted:
            await self.store.set_cursor(self.cursor_name, pending[-1].id)
            return None
        delivered = await self._send(wanted)
        if delivered:
            # Known before the store is told (that may fail): skip the alerts of other levels up to the
            # next wanted one only.
            self._unstored = wanted[delivered - 1].id
            self.sent_messages += 1
            self.sent_alerts += delivered
        await self.store.set_cursor(self.cursor_name + ":sent", self.gate.dump())
        if not delivered:
            return False
        await self._store_unstored()
        return True

    async def _cursor(self) -> str:
        """The stream position to deliver after: the stored cursor, or where this sender got to since."""
        cursor = await self.store.get_cursor(self.cursor_name)
        if cursor is None:
            # First start: deliver from now on, not the whole history.
            cursor = await self.store.last_id()
            await self.store.set_cursor(self.cursor_name, cursor)
        reached = self._unstored
        if reached is not None:
            if _stream_order(reached) > _stream_order(cursor):
                await self._store_unstored()
                return reached
            self._unstored = None  # the stored cursor is past it (another sender went on meanwhile)
        return cursor

    async def _store_unstored(self) -> None:
        position = self._unstored
        if position is not None:
            await self.store.set_cursor(self.cursor_name, position)
            if self._unstored == position:
                self._unstored = None

    # ---- alerts from memory ----

    def offer(self, alert: Alert) -> None:
        """Deliver `alert` from memory (a system alert while Redis is unreachable), once per dedup key."""
        key = alert.dedup_key()
        if alert.level not in self.settings.levels or key in self._memory:
            return
        if len(self._memory) >= DIRECT_MAX:
            for old in [k for k, m in self._memory.items() if m.state == "sent"]:
                del self._memory[old]
        if len(self._memory) >= DIRECT_MAX:
            log.error(
                "webhook %s: %d alerts from memory wait already; %s not sent", self.name, DIRECT_MAX, key
            )
            return
        self._memory[key] = _FromMemory(alert)
        self._memory_wake.set()

    def handover(self, key: str) -> bool:
        """Its stream copy is being written: True when this sink keeps the alert (it started to send it),
        False when it leaves it to the stream (paused until `settle`)."""
        item = self._memory.get(key)
        if item is None:
            return False
        if item.state == "new":
            item.state = "held"
            return False
        return True

    def settle(self, key: str, stored: bool) -> None:
        """The stream copy of `key` was written (`stored`) or not: forget the alert, or take it back."""
        item = self._memory.get(key)
        if item is None:
            return
        if item.state == "held":
            if stored:
                del self._memory[key]
            else:
                item.state = "new"
                self._memory_wake.set()
        elif stored:
            item.stored = True
            if item.state == "sent":
                del self._memory[key]

    async def _run_memory(self) -> None:
        backoff = self.settings.backoff_initial
        while True:
            batch = [m for m in self._memory.values() if m.state in ("new", "owned")]
            if not batch:
                self._memory_wake.clear()
                await self._memory_wake.wait()
                continue
            batch = batch[: self.settings.batch_max]
            for item in batch:
                item.state = "owned"
            delivered = await self._send([m.alert for m in batch])
            for item in batch[:delivered]:
                item.state = "sent"
                if item.stored:
                    self._memory.pop(item.alert.dedup_key(), None)
            if delivered:
                self.sent_messages += 1
                self.sent_alerts += delivered
                self.sent_from_memory += delivered
                backoff = self.settings.backoff_initial
            else:
                self.failures += 1
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.settings.backoff_max)

    async def _send(self, alerts: Sequence[Alert]) -> int:
        """POST one message, within the gate; the number of alerts delivered (0 on failure)."""
        async with self._send_lock:
            delay = self.gate.delay()
            if delay > 0:
                await asyncio.sleep(delay)
            return await self._post(alerts)

    async def _post(self, alerts: Sequence[Alert]) -> int:
        payload, used = self.format.render(alerts)
        body = json.dumps(payload, ensure_ascii=False).encode()
        try:
            async with self.session.post(
                self.settings.url,
                data=body,
                headers={"Content-Type": "application/json; charset=utf-8"},
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
            ) as resp:
                text = await resp.text(errors="replace")
                if resp.status >= 300:
                    self.last_error = f"HTTP {resp.status}"
                    return 0
                refused = self.format.refusal(text)
                if refused is not None:
                    self.last_error = refused
                    return 0
            self.last_error = None
            return used
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            return 0
        finally:
            self.gate.finished()
            if self.last_error:
                log.warning("webhook %s not delivered: %s", self.settings.name, self.last_error)


def _stream_order(stream_id: str) -> tuple[int, int]:
    """A Redis stream id (`<ms>-<seq>`) as numbers, to compare two positions."""
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)
