"""The plain audit line (guard.observe.audit.plain_decision_line, issue 13) against the long way it
shortcuts — `audit_fields` plus `event`, `level`, `timestamp` through `configure_logging`'s encoder — on many
records: odd strings (quotes, backslashes, control characters, lone surrogates, CJK, emoji), None and str
subclasses where a str goes, other types where they do not belong, every disposition; and the whole
`AuditLog.decision` against structlog's stock chain."""

from __future__ import annotations

import random
import re
from typing import Any

import structlog
from test_audit_line import STOCK_CHAIN, capture, restore_logging  # noqa: F401 - a fixture

from guard.core.types import (
    Action,
    Attachment,
    ContentMatch,
    Decision,
    DecisionRecord,
    TextField,
    Verdict,
    read_verdicts,
)
from guard.observe import audit
from guard.observe.audit import AuditLog, audit_fields, plain_decision_line

ODD = [
    "", "acct-1", 'a"b', "a\\b", "line\nbreak", "\t\r\x00\x1f\x7f", "稳赚不赔", "😀", "\ud800",
    "\u2028\u2029\x85\x1c", "</script>", "'", "x" * 300, "null", "true", "0",
]  # fmt: skip


class Name(str):
    """A str subclass: encoded as a str by both ways."""


def odd(rng: random.Random) -> str:
    text = rng.choice(ODD) + rng.choice(ODD)
    return Name(text) if rng.random() < 0.1 else text


def maybe(rng: random.Random, value: Any) -> Any:
    """Sometimes None, sometimes a value of a type the field never has (the shortcut must step aside)."""
    roll = rng.random()
    if roll < 0.2:
        return None
    if roll < 0.23:
        return rng.choice([5, 1.5, b"bytes", ["x"], True])
    return value


def record(rng: random.Random) -> DecisionRecord:
    kind = rng.choice(["broadcast", "add_friend", "message", "moment", "welcome", odd(rng)])
    action = Action(
        kind,  # type: ignore[arg-type]
        odd(rng),
        rng.choice([None, "active", "passive"]),
        texts=tuple(TextField(odd(rng), odd(rng)) for _ in range(rng.randint(0, 4))),
        attachments=tuple(
            Attachment(rng.choice(["link", "image", "miniprogram", odd(rng), 7]), "attachments[0]")  # type: ignore[arg-type]
            for _ in range(rng.randint(0, 3))
        ),
        recipients=rng.choice([0, 1, 2, 10**6, True, 2.0]) if rng.random() < 0.1 else rng.randint(0, 9),
        request_id=rng.choice([None, None, None, "", "req-13812345678-x"]),
        profile=rng.choice(["wecom", "gewe", "api", odd(rng)]),
    )
    hit = ContentMatch("text.content", "finance", "稳赚", 0, 2, "稳赚", "block")
    outcomes: list[Any] = rng.choices(["allow", "allow", "allow", "warn", "refuse"], k=rng.randint(0, 4))
    verdicts = tuple(
        Verdict("content", o, 490001 * (o == "refuse"), f"content:{o}", matches=(hit,) * (rng.random() < 0.1))
        for o in outcomes
    )
    return DecisionRecord(
        Decision(action, verdicts),
        rng.choice(["forwarded", "refused", "upstream_refused", "upstream_error", "checked", odd(rng)]),  # type: ignore[arg-type]
        1.0,
        client=maybe(rng, odd(rng)),
        staff=maybe(rng, odd(rng)),
        upstream_status=maybe(rng, rng.choice([200, 404, 502])),
        dry_run=rng.choice([False, True, False, 0]),  # type: ignore[arg-type]
    )


def long_way(rec: DecisionRecord, encode: Any, timestamp: str) -> str:
    fields = audit_fields(rec)
    fields.update(event="decision", level="info", timestamp=timestamp)
    return str(encode(fields))


def test_plain_line_is_the_long_ways_bytes() -> None:
    audit.configure_logging("info")
    try:
        assert audit._chain is not None
        encode = audit._chain.encode
        rng = random.Random(13)
        taken = 0
        for _ in range(20000):
            rec = record(rng)
            plain = plain_decision_line(rec, "2026-11-30T13:00:29.164328Z")
            if plain is None:
                continue
            taken += 1
            refusal, warnings = read_verdicts(rec.decision.verdicts)
            assert refusal is None and not warnings  # only allowed decisions
            assert plain == long_way(rec, encode, "2026-11-30T13:00:29.164328Z"), rec
        assert taken > 3000  # the shortcut was exercised, not only stepped aside
    finally:
        structlog.reset_defaults()


def test_plain_line_steps_aside_for_what_it_does_not_write() -> None:
    base = Action("broadcast", "acct", texts=(TextField("text.content", "新品"),), recipients=2)
    ok = DecisionRecord(Decision(base, (Verdict("content", "allow"),)), "forwarded", 1.0, upstream_status=200)
    assert plain_decision_line(ok, "T") is not None
    hit = ContentMatch("text.content", "contact", "phone", 0, 2, "13", "warn")
    for rec in (
        DecisionRecord(Decision(base, (Verdict("content", "allow", matches=(hit,)),)), "forwarded", 1.0),
        DecisionRecord(Decision(Action("broadcast", "acct", request_id="r1"), ()), "forwarded", 1.0),
        DecisionRecord(Decision(base, ()), "forwarded", 1.0, client=5),  # type: ignore[arg-type]
        DecisionRecord(Decision(base, ()), "forwarded", 1.0, upstream_status=True),
        DecisionRecord(Decision(base, ()), "forwarded", 1.0, dry_run=1),  # type: ignore[arg-type]
    ):
        assert plain_decision_line(rec, "T") is None


STAMP = re.compile(r'"timestamp": "[^"]*"')


def test_audit_log_writes_the_stock_chains_bytes_for_many_records(restore_logging: None) -> None:  # noqa: F811
    rng = random.Random(5)
    records = [r for r in (record(rng) for _ in range(3000)) if r.client is None or isinstance(r.client, str)]

    def lines(processors: list[Any] | None) -> list[str]:
        out = capture(processors)
        log = AuditLog()
        for rec in records:
            try:
                log.decision(rec)
            except TypeError:  # a type JSON cannot take at all (bytes): the line fails either way
                out.write("TypeError\n")
        # split("\n"), not splitlines(): U+2028 and the like stand unescaped in a line (ensure_ascii=False).
        return [STAMP.sub("T", line) for line in out.getvalue().split("\n")[:-1]]

    ours, stock = lines(None), lines(STOCK_CHAIN)
    assert len(ours) == len(records)
    assert ours == stock
    assert sum(1 for line in ours if '"decision": "allow"' in line) > 500
