"""The lean client's timeouts with one timer for the pool (guard.http.upstream.UpstreamPool.watch, issue
13): each request in flight still fails at its own due time — a read that waits `read_timeout`, or
connect + read in all — whatever else is in flight, answered or not; no timer or reference is left behind."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from test_upstream_client import OK, RawServer, answering, pool_of, post, raw_server

from guard.http.upstream import UpstreamPool


async def silent(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await server.next_request(reader)
    await reader.read()  # until the client gives up


async def timed_out_after(pool: UpstreamPool, server: RawServer, delay: float) -> float:
    """Seconds from the request (sent `delay` s from now) to its TimeoutError."""
    await asyncio.sleep(delay)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await post(pool, server)
    return time.monotonic() - started


async def test_requests_in_flight_each_time_out_at_their_own_due_time() -> None:
    answers = answering(OK)
    async with raw_server(silent) as quiet, raw_server(answers) as ok, pool_of(read_timeout=0.4) as pool:
        waits = asyncio.gather(*(timed_out_after(pool, quiet, delay) for delay in (0.0, 0.15, 0.3)))
        # Answered requests meanwhile, each done long before its due time.
        for _ in range(10):
            assert (await post(pool, ok))[0] == 200
            await asyncio.sleep(0.02)
        for waited in await waits:
            assert 0.38 <= waited < 0.75, waited
        assert not pool.busy
    assert pool.watchdog is None


async def test_a_request_whose_connection_answers_late_is_not_failed_early() -> None:
    """A request sent after an earlier one armed the pool's timer is due later: the timer, when it runs
    for the earlier one, does not fail it but comes back for it."""

    async def late(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await server.next_request(reader):
            await asyncio.sleep(0.3)
            writer.write(OK)
            await writer.drain()

    async with raw_server(silent) as quiet, raw_server(late) as slow, pool_of(read_timeout=0.4) as pool:
        first = asyncio.ensure_future(timed_out_after(pool, quiet, 0.0))
        await asyncio.sleep(0.2)
        assert (await post(pool, slow))[0] == 200  # sent at 0.2, answered at 0.5: after the first's due
        assert 0.38 <= await first < 0.75
        assert not pool.busy


async def test_nothing_is_left_once_the_pool_is_closed() -> None:
    async with raw_server(silent) as quiet:
        async with pool_of(read_timeout=5.0) as pool:
            task = asyncio.ensure_future(post(pool, quiet))
            await asyncio.sleep(0.1)
            assert pool.busy and pool.watchdog is not None
        with pytest.raises(aiohttp.ClientConnectionError):  # the pool's close fails the request in flight
            await task
        assert not pool.busy and pool.watchdog is None
