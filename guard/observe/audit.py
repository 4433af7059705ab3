"""Structured logs: structlog JSON lines, and one audit line per decision.

Personal data never reaches a log line: message text is not logged (only which field matched which
category and term of the dictionary), customer ids are counted, not listed, and any free text that must
appear (an error detail, a matched excerpt) goes through `mask()` first, which hides phone numbers,
WeChat ids and all but the edges of the text.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, WrappedLogger

from guard.core.types import DecisionRecord, Verdict, read_verdicts, result_of
from guard.observe.masking import mask

_NS_PER_SECOND = 1_000_000_000


class UtcIsoStamper:
    """`structlog.processors.TimeStamper(fmt="iso", utc=True)` — the same `timestamp` value, e.g.
    `2026-11-30T05:55:17.582489Z` (no fraction when the microseconds are 0, as `isoformat` writes it) — with
    the date and time of day formatted once per second instead of a `datetime` made and formatted per line
    (1.7 → 0.6 µs a line measured alone). Microseconds are floored, as `datetime.now` floors them."""

    __slots__ = ("_second",)

    def __init__(self) -> None:
        # (second, its "YYYY-MM-DDTHH:MM:SS"): one tuple, so another thread never sees half an update.
        self._second: tuple[int, str] = (-1, "")

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        event_dict["timestamp"] = self.now()
        return event_dict

    def now(self) -> str:
        """The `timestamp` value of a line written now."""
        second, ns = divmod(time.time_ns(), _NS_PER_SECOND)
        cached = self._second
        if cached[0] != second:
            text = datetime.fromtimestamp(second, UTC).replace(tzinfo=None).isoformat()
            cached = self._second = (second, text)
        micro = ns // 1000
        return f"{cached[1]}.{micro:06d}Z" if micro else cached[1] + "Z"


class ReusedEncoder:
    """A `JSONRenderer` serializer: what `json.dumps(obj, **kw)` returns, from one encoder made on the first
    call rather than one per line (`json.dumps` makes a new `JSONEncoder` whenever it is given options, and
    its `encode` a new C encoder on every call; the renderer always passes the same options).

    The encoder is json's own C encoder (`json.encoder.c_make_encoder`, what `JSONEncoder.encode` runs
    for a one-shot encode) made once with the options of `JSONEncoder(**kw)`: 4.9 → 3.0 µs an audit line
    measured alone (3.8 with a reused `JSONEncoder.encode`). It is made without the circular-reference
    check's `markers` dict: shared across calls, that dict keeps stale entries after an encoding error.
    A structure that contains itself then fails with RecursionError instead of ValueError; a log line is
    never one. Without the C encoder (another Python) `JSONEncoder.encode` is used."""

    __slots__ = ("_encode",)

    def __init__(self) -> None:
        self._encode: Callable[[Any], str] | None = None

    def __call__(self, obj: Any, **kw: Any) -> str:
        encode = self._encode
        if encode is None:
            encode = self._encode = _one_encoder(json.JSONEncoder(**kw))
        return encode(obj)


def _one_encoder(encoder: json.JSONEncoder) -> Callable[[Any], str]:
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None or encoder.indent is not None:
        return encoder.encode
    strings = json.encoder.encode_basestring_ascii if encoder.ensure_ascii else json.encoder.encode_basestring
    iterencode = make(
        None, encoder.default, strings, encoder.indent, encoder.key_separator, encoder.item_separator,
        encoder.sort_keys, encoder.skipkeys, encoder.allow_nan,
    )  # fmt: skip

    def encode(obj: Any) -> str:
        return "".join(iterencode(obj, 0))

    return encode


def _fields_logger(level: int) -> type[Any]:
    """`structlog.make_filtering_bound_logger(level)` with `info_fields(event, fields)`: what
    `info(event, **fields)` does, the fields handed over as the dict they are. Through `info` an audit
    line's fields are passed as keywords twice more (`info`, then `_proxy_to_logger`) before
    `_process_event` copies them into the event dict: 9.9 → 7.6 µs a line measured alone.
    `_process_event` is the step structlog leaves to custom wrapper classes (its docstring)."""
    base = structlog.make_filtering_bound_logger(level)
    enabled = level <= logging.INFO

    def info_fields(self: Any, event: str, fields: dict[str, Any]) -> None:
        if not enabled:
            return
        try:
            args, kw = self._process_event("info", event, fields)
        except structlog.DropEvent:
            return
        self._logger.info(*args, **kw)

    # `audit_enabled`: whether info lines pass the level filter, for `AuditLog`'s direct decision lines.
    return type(base.__name__, (base,), {"info_fields": info_fields, "audit_enabled": enabled})


class _AuditChain:
    """The processor chain `configure_logging` installs, and what a decision line needs of it: the stamper
    and the encoder its renderer serializes with. `AuditLog` writes a decision's line with them directly
    while structlog still has this chain (the same list object) and its output is a `WriteLogger`."""

    __slots__ = ("encode", "processors", "stamper")

    def __init__(self) -> None:
        self.stamper = UtcIsoStamper()
        encoder = ReusedEncoder()
        renderer = structlog.processors.JSONRenderer(encoder, ensure_ascii=False)
        # One render makes the encoder with the renderer's options (`ensure_ascii`, its `default`); a
        # decision line calls that encoder itself rather than through the renderer and the `ReusedEncoder`
        # (two calls, each with the options as keywords: ~0.4 µs a line measured alone).
        renderer(None, "info", {})
        assert encoder._encode is not None
        self.encode: Callable[[Any], str] = encoder._encode
        self.processors: list[Any] = [
            structlog.processors.add_log_level,
            self.stamper,
            structlog.processors.format_exc_info,
            renderer,
        ]


_chain: _AuditChain | None = None


class TurnWriter:
    """The file `configure_logging` hands structlog and the stdlib handler (stderr beneath): the lines written
    during one turn of the event loop go out together, in one write at the end of that turn (a callback
    `call_soon` queues behind the turn's own work), instead of one write system call a line.

    Measured alone (uvloop, a line of the benchmark's size to a file, CPU a line including the loop's turn):
    4 lines a turn 2.5 → 1.8 µs; 1 line a turn 3.8 → 4.8 µs (the turn's `call_soon` and callback cost more
    than the one write they save). `bench/stages.py` at 16 connections writes ≈ 3.9 lines a turn; at one
    connection one. (cProfile's ≈ 6 µs for `TextIOWrapper.write` a line under load was mostly its own
    overhead: the system call itself is ≈ 1.5 µs here.)

    What stays as it was:
    * the order: every line, audit line or not, goes through the one buffer, in the order written;
    * nothing is lost on a clean stop: the buffer is written out by the turn's end, by `flush_lines()` (the
      app's clean-up calls it), when `configure_logging` runs again, and at interpreter exit (`atexit`);
    * a line written where no event loop runs in the thread (start-up, the rules reload's worker thread,
      a command) goes out at once, after whatever is waiting, as before; a line written under another
      loop than the one whose turn-end is queued first writes out the waiting lines;
    * `flush()` (structlog's `WriteLogger` and `logging.StreamHandler` call it after every line) is the
      turn's end on the loop, a real flush elsewhere.
    A line is on disk (or in the pipe) at the end of the turn that wrote it rather than at once: a process
    killed outright (SIGKILL, a crash of the interpreter) loses the lines of the turn it was in (before,
    only the line it was writing; the answers of that turn may have gone out). A stream that cannot be
    written (stderr closed) loses the turn's lines as it lost each line before; the error is not raised
    from the turn's end, where it would be logged into the same stream, turn after turn."""

    # `__weakref__`: structlog keeps a lock per file, weakly.
    __slots__ = ("__weakref__", "_lock", "_loop", "_pending", "stream")

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._pending: list[str] = []
        # The loop whose turn-end is queued (None: none is).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        loop = asyncio._get_running_loop()
        with self._lock:
            if loop is not None:
                if self._loop is not loop:
                    self._write_pending()  # another loop's lines (a test's loop that ended) first
                    self._loop = loop
                    loop.call_soon(self._turn_end, loop)
                self._pending.append(text)
            else:
                self._write_pending()
                self.stream.write(text)
                self.stream.flush()
        return len(text)

    def line(self, text: str) -> None:
        """A log line: `write(text + "\\n")`, what `WriteLogger.msg` writes, without its lock and flush."""
        loop = asyncio._get_running_loop()
        if loop is None:
            self.write(text + "\n")
            return
        with self._lock:
            if self._loop is not loop:
                self._write_pending()
                self._loop = loop
                loop.call_soon(self._turn_end, loop)
            self._pending.append(text + "\n")

    def flush(self) -> None:
        if self._loop is not None and asyncio._get_running_loop() is self._loop:
            return  # the turn's end writes and flushes
        with self._lock:
            self._write_pending()
            self.stream.flush()

    def _turn_end(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            if self._loop is loop:
                self._loop = None
            pending = self._pending
            if pending:
                text = "".join(pending)
                pending.clear()
                try:
                    self.stream.write(text)
                    self.stream.flush()
                except (OSError, ValueError):  # not contextlib.suppress: ~0.4 µs more a turn
                    pass

    def _write_pending(self) -> None:
        """Under the lock: the waiting lines, in one write."""
        pending = self._pending
        if pending:
            text = "".join(pending)
            pending.clear()
            self.stream.write(text)
            self.stream.flush()

    def drain(self) -> None:
        """Write out whatever waits, now."""
        with self._lock:
            self._write_pending()


_out: TurnWriter | None = None


def flush_lines() -> None:
    """The log lines still waiting for their turn's end, written now (clean-up, exit)."""
    if _out is not None:
        _out.drain()


atexit.register(flush_lines)


def configure_logging(level: str = "info") -> None:
    """JSON lines on stderr for the guard's own logs, the audit lines and stdlib loggers alike."""
    global _chain, _out
    numeric = getattr(logging, level.upper(), logging.INFO)
    flush_lines()  # the lines of an earlier configuration first
    _out = TurnWriter(sys.stderr)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # The chain every audit line goes through (nothing else logs with structlog): the level, the time, an
    # exception if one is given, JSON. No `merge_contextvars` here: nothing binds context variables, and
    # walking the request's context for them cost ~0.4 µs a line.
    _chain = _AuditChain()
    structlog.configure(
        processors=_chain.processors,
        wrapper_class=_fields_logger(numeric),
        # WriteLogger: the same bytes as PrintLogger (the line and "\n", flushed: one write) without
        # print()'s own work, 13.9 → 5.4 µs a line measured alone on the development machine.
        logger_factory=structlog.WriteLoggerFactory(file=_out),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(_out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            # The traceback of `log.exception(...)` as text in an `exception` field; without
            # format_exc_info the exc_info tuple was rendered as three reprs and the traceback was lost.
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(ensure_ascii=False),
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def audit_fields(
    record: DecisionRecord, refusal: Verdict | None = None, warnings: Sequence[Verdict] | None = None
) -> dict[str, Any]:
    """The audit line of one decision: what was asked, what was decided, what happened — no content.
    `refusal` and `warnings`, when the caller has read them already (`read_verdicts`), are not read again;
    without `warnings` both are read from the decision."""
    decision = record.decision
    action = decision.action
    if warnings is None:
        refusal, warnings = read_verdicts(decision.verdicts)
    texts = action.texts
    fields: dict[str, Any] = {
        "kind": action.kind,
        "action": action.limit_name,
        "account": action.account,
        "profile": action.profile,
        "recipients": action.recipients,
        "texts": len(texts),
        "text_chars": sum([len(t.text) for t in texts]),
        "attachments": [att.kind for att in action.attachments],
        "decision": result_of(refusal, warnings),
        "disposition": record.disposition,
        "client": record.client,
        "staff": record.staff,
        "dry_run": record.dry_run,
    }
    if action.request_id:
        fields["request_id"] = mask(action.request_id, 2)
    if refusal is not None:
        fields["code"] = refusal.code
        fields["rule"] = refusal.rule
    if warnings:
        fields["warnings"] = [v.rule for v in warnings]
    matches = [
        {"where": m.where, "category": m.category, "term": m.term}
        for verdict in decision.verdicts
        if verdict.matches
        for m in verdict.matches
    ]
    if matches:
        fields["matches"] = matches
    if record.upstream_status is not None:
        fields["upstream_status"] = record.upstream_status
    return fields


_enc = json.encoder.encode_basestring  # the C encoder's own string encoding with ensure_ascii=False


def plain_decision_line(record: DecisionRecord, timestamp: str) -> str | None:
    """The line `configure_logging`'s chain writes for an allowed decision (no refusal, no warning) without
    hits or request id (the usual forwarded request), `timestamp` its time, written here without the fields
    dict and the JSON encoder's walk over it: the same bytes as `audit_fields` + `event`, `level`,
    `timestamp` through the chain's encoder (`json.dumps(..., ensure_ascii=False)`: `", "` and `": "`,
    strings by the encoder's own `encode_basestring`, ints by `int.__repr__`). None for any other
    decision, and for any field of another type than the one written here (a str subclass is a str to
    both): the caller takes the long way. Measured alone, the benchmark's line: `audit_fields` + encoding
    3.6 → 1.8 µs;
    tests/test_speed_forward_audit.py compares the two on many records."""
    decision = record.decision
    action = decision.action
    for verdict in decision.verdicts:
        outcome = verdict.outcome
        if verdict.matches or outcome == "refuse" or outcome == "warn":
            return None
    recipients = action.recipients
    status = record.upstream_status
    dry_run = record.dry_run
    client = record.client
    staff = record.staff
    if (
        type(recipients) is not int
        or (status is not None and type(status) is not int)
        or type(dry_run) is not bool
        or action.request_id
    ):
        return None
    texts = action.texts
    try:  # `_enc` raises TypeError for anything but a str
        return (
            f'{{"kind": {_enc(action.kind)}, "action": {_enc(action.limit_name)}, '
            f'"account": {_enc(action.account)}, "profile": {_enc(action.profile)}, '
            f'"recipients": {recipients}, "texts": {len(texts)}, '
            f'"text_chars": {sum([len(t.text) for t in texts])}, '
            f'"attachments": [{", ".join([_enc(att.kind) for att in action.attachments])}], '
            f'"decision": "allow", "disposition": {_enc(record.disposition)}, '
            f'"client": {"null" if client is None else _enc(client)}, '
            f'"staff": {"null" if staff is None else _enc(staff)}, '
            f'"dry_run": {"true" if dry_run else "false"}, '
            + ("" if status is None else f'"upstream_status": {status}, ')
            + f'"event": "decision", "level": "info", "timestamp": "{timestamp}"}}'
        )
    except TypeError:
        return None


DecisionLine = Callable[[DecisionRecord, Verdict | None, Sequence[Verdict] | None], None]


def _direct_line(bound: Any) -> DecisionLine | None:
    """A decision line's writer that does what structlog does with `configure_logging`'s chain — the
    fields, then `event`, `level`, `timestamp` added in that order, encoded by the chain's renderer's
    encoder, written by the `WriteLogger` (`msg`: the line and "\n", flushed, under its lock) — without
    structlog's per-line steps: the copy of the fields into a new event dict, the processor loop, the
    result's type checks, the keyword hand-overs to the renderer and the logger. 8.8 → 7.0 µs a line
    measured alone; bench/stages.py "audit line" 30 → 18-20 µs a request at 16 connections, 31 → 23-25 at
    one; the same bytes (tests/test_audit_line.py against structlog's stock chain). None (structlog's own
    path) unless `bound` was assembled from that chain, with no bound context, onto a `WriteLogger`: any
    other configuration (a test's, an embedder's) keeps structlog's way. structlog stays the configured
    logger, and writes every other line (`AuditLog.event`, the stdlib loggers)."""
    chain = _chain
    enabled = getattr(type(bound), "audit_enabled", None)
    if (
        chain is None
        or enabled is None
        or getattr(bound, "_processors", None) is not chain.processors
        or bound._context
        or type(bound._logger) is not structlog.WriteLogger
    ):
        return None
    if not enabled:  # the level filter: no decision lines (log level warning and above)

        def drop(record: DecisionRecord, refusal: Verdict | None, warnings: Sequence[Verdict] | None) -> None:
            return None

        return drop
    stamp, encode = chain.stamper, chain.encode
    # `WriteLogger.msg` is its file's write of the line and "\n", then a flush, under the logger's lock: on
    # a `TurnWriter` (the configured file) that is its `line`, which has a lock of its own.
    out = bound._logger._file
    write = out.line if isinstance(out, TurnWriter) else bound._logger.msg

    def line(record: DecisionRecord, refusal: Verdict | None, warnings: Sequence[Verdict] | None) -> None:
        if warnings is None:
            refusal, warnings = read_verdicts(record.decision.verdicts)
        if refusal is None and not warnings:
            text = plain_decision_line(record, stamp.now())
            if text is not None:
                write(text)
                return
        fields = audit_fields(record, refusal, warnings)
        # `_process_event` and the chain: event, level (add_log_level), timestamp; format_exc_info has
        # nothing to do (a decision's fields never hold `exc_info`); the renderer's encoding.
        fields["event"] = "decision"
        fields["level"] = "info"
        write(encode(stamp(None, "info", fields)))

    return line


class AuditLog:
    def __init__(self) -> None:
        self.log = structlog.get_logger("guard.audit")
        self._write: Callable[[str, dict[str, Any]], None] | None = None
        self._line: DecisionLine | None = None

    def _writer(self) -> Callable[[str, dict[str, Any]], None]:
        """Writes one line (event, fields) through the logger structlog assembles for `self.log`: its
        `info_fields` (`configure_logging`'s loggers), else its `info`.

        When structlog caches loggers (`configure_logging`), the lazy proxy `self.log` hands back that same
        logger on every call, after three calls of its own (attribute lookup, bind, cached bind): it is kept
        here instead, ~0.6 µs a line measured alone. Otherwise (tests, a later `structlog.configure`) it is
        assembled each time, as the proxy does."""
        write = self._write
        if write is None:
            bound = self.log.bind()
            write = getattr(bound, "info_fields", None)
            if write is None:
                info = bound.info

                def write(event: str, fields: dict[str, Any]) -> None:
                    info(event, **fields)

            if structlog.get_config()["cache_logger_on_first_use"]:
                self._write = write
        return write

    def _decision_line(self) -> DecisionLine:
        """Writes one decision line: `_direct_line` where it applies, else `_writer`'s way; kept, as
        `_writer` keeps its logger, when structlog caches loggers."""
        line = self._line
        if line is None:
            line = _direct_line(self.log.bind())
            if line is None:
                writer = self._writer()

                def line(
                    record: DecisionRecord, refusal: Verdict | None, warnings: Sequence[Verdict] | None
                ) -> None:
                    writer("decision", audit_fields(record, refusal, warnings))

            if structlog.get_config()["cache_logger_on_first_use"]:
                self._line = line
        return line

    def decision(
        self,
        record: DecisionRecord,
        refusal: Verdict | None = None,
        warnings: Sequence[Verdict] | None = None,
    ) -> None:
        """One audit line; `refusal` and `warnings` as `audit_fields` takes them."""
        self._decision_line()(record, refusal, warnings)

    def event(self, event: str, **fields: Any) -> None:
        self._writer()(event, fields)
