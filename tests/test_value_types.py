"""The shared value types (`guard.core.types.value_type`): values with equality and a hash of their
fields, no per-instance dict, and frozen where it is checked — by mypy strict, which the test command runs:
an assignment to a field of one is a type error."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest
from mypy import api as mypy_api

from guard.core.types import (
    Action,
    Attachment,
    ContentMatch,
    Decision,
    DecisionRecord,
    TextField,
    Verdict,
)

ROOT = Path(__file__).resolve().parents[1]


def test_equal_fields_make_equal_values_with_one_hash() -> None:
    def action() -> Action:
        return Action(
            "broadcast",
            "acc",
            texts=(TextField("text.content", "hi"),),
            attachments=(Attachment("link", "x"),),
        )

    a, b = action(), action()
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != dataclasses.replace(a, account="other")
    match = ContentMatch("text.content", "finance", "投资", 0, 2, "投资", "block")
    assert {match, dataclasses.replace(match)} == {match}
    decision = Decision(a, (Verdict("content", "allow"),))
    assert DecisionRecord(decision, "forwarded", 1.0) == DecisionRecord(decision, "forwarded", 1.0)


VALUE_TYPES = [TextField, Attachment, Action, ContentMatch, Verdict, Decision, DecisionRecord]


@pytest.mark.parametrize("cls", VALUE_TYPES)
def test_no_instance_dict(cls: type) -> None:
    assert "__slots__" in vars(cls) and "__dict__" not in vars(cls)


def test_an_assignment_to_a_field_is_a_type_error(tmp_path: Path) -> None:
    source = tmp_path / "assign.py"
    source.write_text(
        textwrap.dedent(
            """
            from guard.core.types import Action, TextField

            field = TextField("text.content", "hi")
            field.text = "changed"
            action = Action("broadcast", "acc")
            action.recipients = 3
            """
        ),
        encoding="utf-8",
    )
    out, _, status = mypy_api.run(
        ["--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache"), str(source)]
    )
    assert status == 1, out
    assert out.count("is read-only") == 2, out
