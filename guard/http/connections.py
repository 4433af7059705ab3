"""The guard's own server connections: how long a client may take, and how many sockets may sit open
without a client key.

aiohttp's server gives three of the knobs (`keepalive_timeout`, `max_line_size`, `max_field_size`, passed
by `guard serve`); this module adds what it lacks, as a small piece at the protocol level:

- **header timeout**: a new connection must deliver its first request's header block within
  `header_timeout` seconds, else it is closed. aiohttp arms no timer for this: up to 3.14.4 a connection
  that never sends a complete request stays open forever, and 3.14.5 closes it only at
  `keepalive_timeout` (75 s here) — measured: 300 idle sockets and sockets that sent half a header were all
  still open after 130 s with aiohttp's defaults, and held the file descriptors keyed clients needed.
  A later request on a kept-alive connection is bounded by aiohttp's own keep-alive timer, which closes a
  connection still waiting for a whole header block at `keepalive_timeout` after the previous answer.
- **body timeout**: a request's body must have arrived `body_timeout` seconds after its header block
  (an absolute deadline: a client dripping a byte now and then is closed all the same).
- **unauthenticated connections**: a connection counts as unauthenticated from its accept until it
  delivers a request that carries a valid client key (with no keys configured: any complete request).
  When more than `max_unauthenticated` are open, the oldest of them is closed, so a client opening
  hundreds of sockets without a key cannot use up the file descriptors (or memory) keyed clients need:
  a keyed client's new connection is the newest and sends its request at once.

The pieces hook into aiohttp's low-level `web.Server` (its documented `connection_made` /
`connection_lost` calls from each connection's protocol, and `request_factory`, called once a request's
header block has been parsed); no request handler or middleware is involved, so requests on
authenticated connections pay one dict look-up.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger("guard.connections")


def unauthenticated_cap(configured: int) -> int:
    """The effective `max_unauthenticated`: the configured number, or (0) a quarter of this process's
    open-file limit, between 16 and 1024 — well below the limit, so keyed clients, the upstream pool and
    Redis always find a descriptor."""
    if configured > 0:
        return configured
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1024
    return max(16, min(1024, soft // 4))


@dataclass
class ConnectionStats:
    """What the guard closed, by reason (for logs and the benchmark)."""

    header_timeouts: int = 0
    body_timeouts: int = 0
    evicted: int = 0


class ConnectionGuard:
    """Header and body timers and the cap on unauthenticated connections of one aiohttp `web.Server`.

    `authenticates(request)` says whether a request (its header block parsed, body not yet read) carries
    a valid client key; it is asked for each request of a connection until one does."""

    def __init__(
        self,
        *,
        header_timeout: float,
        body_timeout: float,
        max_unauthenticated: int,
        authenticates: Callable[[web.BaseRequest], bool],
    ) -> None:
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.max_unauthenticated = max(1, max_unauthenticated)
        self.authenticates = authenticates
        self.stats = ConnectionStats()
        # Unauthenticated connections, oldest first → the timer of their first header block (None once
        # it has arrived).
        self._pending: dict[RequestHandler, asyncio.TimerHandle | None] = {}

    @property
    def unauthenticated(self) -> int:
        return len(self._pending)

    def install(self, server: web.Server) -> None:
        """Hook into `server` (`runner.server` after `runner.setup()`, before the site starts)."""
        made, lost, factory = server.connection_made, server.connection_lost, server.request_factory

        def connection_made(handler: RequestHandler, transport: asyncio.Transport) -> None:
            made(handler, transport)
            self._opened(handler)

        def connection_lost(handler: RequestHandler, exc: BaseException | None = None) -> None:
            self._closed(handler)
            lost(handler, exc)

        def request_factory(message: Any, payload: Any, protocol: Any, writer: Any, task: Any) -> Any:
            request = factory(message, payload, protocol, writer, task)
            self._request(protocol, request, payload)
            return request

        # Instance attributes over the Server's own methods: each connection's protocol calls them.
        server.connection_made = connection_made  # type: ignore[method-assign]
        server.connection_lost = connection_lost  # type: ignore[method-assign]
        server.request_factory = request_factory

    # ---- events ----

    def _opened(self, handler: RequestHandler) -> None:
        loop = asyncio.get_running_loop()
        self._pending[handler] = loop.call_later(self.header_timeout, self._header_expired, handler)
        if len(self._pending) > self.max_unauthenticated:
            oldest = next(iter(self._pending))
            self._drop(oldest)
            self.stats.evicted += 1
            if self.stats.evicted == 1 or self.stats.evicted % 1000 == 0:
                log.warning(
                    "more than %d connections without a client key: closing the oldest (%d closed so far)",
                    self.max_unauthenticated,
                    self.stats.evicted,
                )

    def _closed(self, handler: RequestHandler) -> None:
        timer = self._pending.pop(handler, None)
        if timer is not None:
            timer.cancel()

    def _request(self, handler: RequestHandler, request: web.BaseRequest, payload: Any) -> None:
        if handler in self._pending:
            timer = self._pending[handler]
            if timer is not None:
                timer.cancel()
                self._pending[handler] = None
            if self.authenticates(request):
                del self._pending[handler]
        if not payload.is_eof():
            loop = asyncio.get_running_loop()
            deadline = loop.call_later(self.body_timeout, self._body_expired, handler, payload)
            payload.on_eof(deadline.cancel)

    # ---- timers ----

    def _header_expired(self, handler: RequestHandler) -> None:
        if handler in self._pending and self._pending[handler] is not None:
            self.stats.header_timeouts += 1
            self._drop(handler)

    def _body_expired(self, handler: RequestHandler, payload: Any) -> None:
        if not payload.is_eof() and handler.transport is not None:
            self.stats.body_timeouts += 1
            handler.force_close()

    def _drop(self, handler: RequestHandler) -> None:
        timer = self._pending.pop(handler, None)
        if timer is not None:
            timer.cancel()
        handler.force_close()
