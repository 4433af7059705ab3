"""Log lines written once per event-loop turn (guard.observe.audit.TurnWriter, issue 13): every line still
goes out, in the order written, with the same bytes; at the end of its loop turn rather than at once, and
at once where no loop runs; nothing is left behind on clean-up, a reconfiguration or exit."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import threading
from collections.abc import Iterator

import pytest
import structlog
from test_audit_line import STOCK_CHAIN, lines_of, records

from guard.core.types import read_verdicts
from guard.observe import audit
from guard.observe.audit import AuditLog, TurnWriter


class Stream(io.StringIO):
    """A stream that counts its writes (a write of the real stderr is a system call)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def configure(stream: Stream) -> None:
    """`configure_logging`, its lines going to `stream` in place of stderr (which pytest swaps in and out
    around a test: not patched here)."""
    audit.configure_logging("info")
    assert audit._out is not None
    audit._out.stream = stream


@pytest.fixture
def stderr() -> Iterator[Stream]:
    """`configure_logging` onto a counting stream; the logging set-up restored after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    access = logging.getLogger("aiohttp.access").level
    stream = Stream()
    configure(stream)
    try:
        yield stream
    finally:
        audit.flush_lines()
        structlog.reset_defaults()
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.getLogger("aiohttp.access").setLevel(access)


STAMP = re.compile(r'"timestamp": "[^"]*"')


def unstamped(text: str) -> list[str]:
    return [STAMP.sub("T", line) for line in text.splitlines()]


def write_records(log: AuditLog) -> None:
    """What `lines_of` writes: each record's line twice (verdicts read here and not), then an event."""
    for record in records():
        log.decision(record)
        refusal, warnings = read_verdicts(record.decision.verdicts)
        log.decision(record, refusal, warnings)
    log.event("refused", reason="unauthorized", path="/x", method="POST")


def test_lines_outside_a_loop_go_out_at_once(stderr: Stream) -> None:
    log = AuditLog()
    log.decision(records()[0])
    assert stderr.getvalue().count("\n") == 1
    logging.getLogger("guard.test").warning("now")
    lines = stderr.getvalue().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["event"] == "now"


def test_lines_of_a_turn_go_out_at_its_end_in_one_write_with_the_stock_chains_bytes(
    stderr: Stream,
) -> None:
    stock = unstamped("\n".join(lines_of(STOCK_CHAIN)))
    configure(stderr)  # lines_of reconfigured structlog
    log = AuditLog()

    async def main() -> None:
        for turn in range(3):
            before = stderr.writes
            write_records(log)
            assert stderr.getvalue().count("\n") == turn * 7  # nothing written during the turn
            await asyncio.sleep(0)  # the turn ends
            assert stderr.getvalue().count("\n") == (turn + 1) * 7
            assert stderr.writes == before + 1  # seven lines, one write

    asyncio.run(main())
    assert unstamped(stderr.getvalue()) == stock * 3
    assert all(STAMP.search(line) for line in stderr.getvalue().splitlines())


def test_audit_and_stdlib_lines_keep_their_order(stderr: Stream) -> None:
    log = AuditLog()
    other = logging.getLogger("guard.test")

    async def main() -> None:
        for i in range(50):
            other.warning("before %d", i)
            log.decision(records()[i % 3])
            log.event("refused", reason=f"r{i}")
            if i % 7 == 0:
                await asyncio.sleep(0)
            other.error("after %d", i)

    asyncio.run(main())
    events = [json.loads(line)["event"] for line in stderr.getvalue().splitlines()]
    expected = [e for i in range(50) for e in (f"before {i}", "decision", "refused", f"after {i}")]
    assert events == expected


def test_clean_up_reconfiguration_and_exit_write_what_waits(stderr: Stream) -> None:
    log = AuditLog()

    async def pending_then(step: str, count: int) -> None:
        log.decision(records()[0])
        assert stderr.getvalue().count("\n") == count
        if step == "flush_lines":  # the app's clean-up and the interpreter's exit (atexit)
            audit.flush_lines()
        else:
            configure(stderr)
            log._line = None  # the old configuration's writer (a new AuditLog would not have it)
        assert stderr.getvalue().count("\n") == count + 1

    for count, step in enumerate(("flush_lines", "configure_logging")):
        asyncio.run(pending_then(step, count))


def test_a_loop_that_ended_with_lines_waiting_loses_none(stderr: Stream) -> None:
    """A turn-end that never ran (the loop stopped and closed first): the next line, under another loop or
    none, writes the waiting ones first."""
    log = AuditLog()
    for next_under_a_loop in (False, True):
        loop = asyncio.new_event_loop()
        before = stderr.getvalue().count("\n")

        def write_and_stop(loop: asyncio.AbstractEventLoop = loop) -> None:
            log.decision(records()[0])
            log.event("first")
            loop.stop()  # the loop ends after this batch of callbacks: the turn-end queued now never runs

        loop.call_soon(write_and_stop)
        loop.run_forever()
        loop.close()
        assert stderr.getvalue().count("\n") == before
        if next_under_a_loop:

            async def later() -> None:
                log.event("second")
                await asyncio.sleep(0)

            asyncio.run(later())
        else:
            log.event("second")
        events = [json.loads(line)["event"] for line in stderr.getvalue().splitlines()[before:]]
        assert events == ["decision", "first", "second"]


def test_a_thread_without_a_loop_writes_after_what_waits(stderr: Stream) -> None:
    log = AuditLog()
    other = logging.getLogger("guard.test")

    async def main() -> None:
        log.decision(records()[0])
        # The rules reload's worker thread, say: no loop there.
        await asyncio.to_thread(other.warning, "from a thread")
        log.event("after")
        await asyncio.sleep(0)

    asyncio.run(main())
    events = [json.loads(line)["event"] for line in stderr.getvalue().splitlines()]
    assert events == ["decision", "from a thread", "after"]


def test_many_threads_and_a_loop_lose_no_line() -> None:
    stream = Stream()
    out = TurnWriter(stream)
    lines_per_thread = 300

    def thread(n: int) -> None:
        for i in range(lines_per_thread):
            out.line(f"t{n}-{i}")

    async def main() -> None:
        workers = [threading.Thread(target=thread, args=(n,)) for n in range(4)]
        for worker in workers:
            worker.start()
        for i in range(lines_per_thread):
            out.line(f"loop-{i}")
            if i % 10 == 0:
                await asyncio.sleep(0)
        for worker in workers:
            await asyncio.to_thread(worker.join)

    asyncio.run(main())
    out.drain()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 5 * lines_per_thread
    for prefix in ("loop-", "t0-", "t1-", "t2-", "t3-"):
        mine = [line for line in lines if line.startswith(prefix)]
        assert mine == [f"{prefix}{i}" for i in range(lines_per_thread)]  # each writer's own order


def test_a_stream_that_fails_at_the_turns_end_does_not_spin_the_loop() -> None:
    class Closed(Stream):
        def write(self, text: str) -> int:
            self.writes += 1
            raise ValueError("I/O operation on closed file.")

    stream = Closed()
    out = TurnWriter(stream)

    async def main() -> None:
        out.line("lost")
        for _ in range(5):
            await asyncio.sleep(0)

    asyncio.run(main())
    assert stream.writes == 1 and out._loop is None and not out._pending
