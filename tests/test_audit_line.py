"""The audit line's bytes: the cheaper processor chain of `configure_logging` (issue 13) writes what
structlog's stock chain (`merge_contextvars`, `add_log_level`, `TimeStamper(fmt="iso", utc=True)`,
`format_exc_info`, `JSONRenderer(ensure_ascii=False)`) wrote, field for field and byte for byte."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog

from guard.core.types import Action, ContentMatch, Decision, DecisionRecord, TextField, Verdict, read_verdicts
from guard.observe import audit
from guard.observe.audit import AuditLog, ReusedEncoder, UtcIsoStamper, audit_fields

STOCK_CHAIN: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.format_exc_info,
    structlog.processors.JSONRenderer(ensure_ascii=False),
]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    access = logging.getLogger("aiohttp.access").level
    try:
        yield
    finally:
        structlog.reset_defaults()
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.getLogger("aiohttp.access").setLevel(access)


def records() -> list[DecisionRecord]:
    hit = ContentMatch("text.content", "finance", "稳赚不赔", 0, 4, "稳赚不赔", "block")
    phone = ContentMatch("text.content", "contact", "phone", 6, 17, "13812345678", "warn")
    refuse = Verdict("content", "refuse", 490001, "content:finance", matches=(hit, phone))
    warn = Verdict("content", "warn", 0, "content:contact", matches=(phone,))
    action = Action(
        "broadcast", "acct-1", texts=(TextField("text.content", "稳赚不赔，电话 13812345678"),), recipients=2
    )
    with_id = Action("add_friend", "acct-2", "passive", request_id="req-13812345678-x", profile="gewe")
    return [
        DecisionRecord(Decision(action, (refuse,)), "refused", 1.0, client="local"),
        DecisionRecord(Decision(action, (warn,)), "forwarded", 1.0, staff='张三"\n', upstream_status=200),
        DecisionRecord(Decision(with_id, ()), "upstream_error", 1.0, client=None, dry_run=True),
    ]


def capture(processors: list[Any] | None) -> io.StringIO:
    """structlog configured to write into the returned buffer through `processors` (None:
    `configure_logging`'s chain)."""
    out = io.StringIO()
    structlog.reset_defaults()
    if processors is None:
        audit.configure_logging("info")
    structlog.configure(
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=False,
        **({"processors": processors} if processors is not None else {}),
    )
    return out


def lines_of(processors: list[Any] | None) -> list[str]:
    """The audit lines of `records()` through `processors` (None: `configure_logging`'s chain)."""
    out = capture(processors)
    log = AuditLog()
    for record in records():
        log.decision(record)
        refusal, warnings = read_verdicts(record.decision.verdicts)
        log.decision(record, refusal, warnings)
    log.event("refused", reason="unauthorized", path="/x", method="POST")
    return out.getvalue().splitlines()


def test_audit_lines_are_the_stock_chains_bytes(restore_logging: None) -> None:
    stock, ours = lines_of(STOCK_CHAIN), lines_of(None)
    assert len(ours) == 7
    stamp = re.compile(r'"timestamp": "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z"')
    assert [stamp.sub("T", line) for line in ours] == [stamp.sub("T", line) for line in stock]
    assert all(stamp.search(line) for line in ours)
    first = json.loads(ours[0])
    assert first["rule"] == "content:finance" and "13812345678" not in ours[0] + ours[4]
    assert json.loads(ours[4])["request_id"] == "************"  # an id with a phone number in it


@pytest.mark.parametrize(
    "ns",
    [
        1_764_481_517_582_489_123,  # a fraction
        1_764_481_517_000_000_999,  # microseconds 0: isoformat writes no fraction
        1_764_481_517_000_001_000,
        1_764_547_199_999_999_999,  # the last microsecond of a day
        0,
    ],
)
def test_stamper_writes_what_timestamper_writes(ns: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit.time, "time_ns", lambda: ns)
    # TimeStamper's value: datetime.now(UTC).isoformat() with "+00:00" as "Z"; now() floors to µs.
    expected = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)).isoformat()
    stamper = UtcIsoStamper()
    for _ in range(2):  # formatted, then from the cached second
        assert stamper(None, "info", {})["timestamp"] == expected.replace("+00:00", "Z")


@pytest.mark.parametrize("c_encoder", [True, False])
def test_reused_encoder_is_json_dumps(c_encoder: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not c_encoder:  # another Python: JSONEncoder.encode
        monkeypatch.setattr(json.encoder, "c_make_encoder", None)

    class Odd:
        def __repr__(self) -> str:
            return "<odd>"

    stock = structlog.processors.JSONRenderer(ensure_ascii=False)
    ours = structlog.processors.JSONRenderer(ReusedEncoder(), ensure_ascii=False)
    for event in (
        {"a": '稳赚\n"x"\ud800', "b": None, "c": True, "d": 1.5, "e": [1, "x", {"f": float("nan")}]},
        {"odd": Odd(), "n": 10**20, "t": ("x", 2)},
    ):
        for _ in range(2):  # the encoder made on the first call, then reused
            assert ours(None, "info", dict(event)) == stock(None, "info", dict(event))


def test_fields_with_and_without_verdicts_read_by_the_caller() -> None:
    for record in records():
        refusal, warnings = read_verdicts(record.decision.verdicts)
        assert refusal is record.decision.refusal and tuple(warnings) == record.decision.warnings
        assert audit_fields(record, refusal, warnings) == audit_fields(record)


def test_level_and_dropped_events_as_structlog_filters_them(restore_logging: None) -> None:
    out = io.StringIO()
    structlog.reset_defaults()
    audit.configure_logging("warning")  # `guard serve` at log level warning: no audit lines
    structlog.configure(logger_factory=structlog.WriteLoggerFactory(file=out))
    AuditLog().decision(records()[0])
    assert out.getvalue() == ""

    def drop(logger: Any, name: str, event_dict: Any) -> Any:
        raise structlog.DropEvent

    audit.configure_logging("info")
    structlog.configure(logger_factory=structlog.WriteLoggerFactory(file=out), processors=[drop])
    log = AuditLog()
    log.decision(records()[0])
    log.event("refused", reason="x")
    assert out.getvalue() == ""


def test_stdlib_log_lines_carry_the_traceback(restore_logging: None) -> None:
    """aiohttp's and the guard's own `log.exception(...)`: one JSON line with the traceback as text."""
    audit.configure_logging("info")
    out = io.StringIO()
    root = logging.getLogger()
    root.handlers[0].setStream(out)
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError:
        logging.getLogger("aiohttp.server").exception("Error handling request")
    logging.getLogger("guard.test").warning("plain %s", "line")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["event"] == "Error handling request" and first["level"] == "error"
    assert first["logger"] == "aiohttp.server" and "exc_info" not in first
    assert first["exception"].startswith("Traceback (most recent call last):")
    assert first["exception"].endswith("ZeroDivisionError: division by zero")
    assert second == {
        "event": "plain line",
        "level": "warning",
        "timestamp": second["timestamp"],
        "logger": "guard.test",
    }


def test_decision_lines_skip_structlogs_steps_only_on_the_configured_chain(
    restore_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`configure_logging`'s chain: decision lines are written without `_process_event` (the bytes are
    the stock chain's: the test above runs this path); any other chain, or a bound context, keeps
    structlog's way, and other events always take it."""
    processed: list[str] = []
    original = structlog._base.BoundLoggerBase._process_event

    def counting(self: Any, method_name: str, event: str | None, event_kw: dict[str, Any]) -> Any:
        processed.append(str(event))
        return original(self, method_name, event, event_kw)

    monkeypatch.setattr(structlog._base.BoundLoggerBase, "_process_event", counting)
    for cache in (True, False):
        processed.clear()
        assert len(lines_of(None)) == 7
        assert processed == ["refused"]  # the six decision lines went the direct way
        out = io.StringIO()
        structlog.configure(
            logger_factory=structlog.WriteLoggerFactory(file=out), cache_logger_on_first_use=cache
        )
        log = AuditLog()
        for _ in range(2):
            log.decision(records()[0])
        assert len(out.getvalue().splitlines()) == 2 and processed == ["refused"]

    processed.clear()
    assert len(lines_of(STOCK_CHAIN)) == 7 and processed.count("decision") == 6

    # A context bound on the audit logger: structlog's way, and the context is in the line.
    audit.configure_logging("info")
    out = io.StringIO()
    structlog.configure(logger_factory=structlog.WriteLoggerFactory(file=out))
    processed.clear()
    log = AuditLog()
    log.log = log.log.bind(worker=1)
    log.decision(records()[0])
    assert processed == ["decision"] and json.loads(out.getvalue())["worker"] == 1

    # Another logger than WriteLogger (an embedder's): structlog's way.
    out = io.StringIO()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=out))
    processed.clear()
    AuditLog().decision(records()[0])
    assert processed == ["decision"] and json.loads(out.getvalue())["event"] == "decision"
