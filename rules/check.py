"""`guard rules check`: every problem of a rules directory, as `file:line: reason`.

`VALIDATORS` is a list of functions `(directory) -> list[RuleError]`; other parts of the guard append
theirs (limits, accounts, profiles) so that one command checks the whole directory.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from rules.accounts import validate_quota_files
from rules.attachments import AttachmentPolicyError, load_attachment_policy
from rules.errors import RuleError
from rules.load import load_policy, parse_allow, parse_words

Validator = Callable[[Path], list[RuleError]]


def validate_words(root: Path) -> list[RuleError]:
    return parse_words(root)[1]


def validate_allow(root: Path) -> list[RuleError]:
    return parse_allow(root)[1]


def validate_policy(root: Path) -> list[RuleError]:
    return load_policy(root)[1]


def validate_attachments(root: Path) -> list[RuleError]:
    try:
        load_attachment_policy(root)
    except AttachmentPolicyError as exc:
        return [exc.as_rule_error()]
    return []


VALIDATORS: list[Validator] = [
    validate_words,
    validate_allow,
    validate_policy,
    validate_quota_files,
    validate_attachments,
]


def check_rules_dir(path: str | Path, extra: Sequence[Validator] = ()) -> list[RuleError]:
    """Run every validator (and `extra` ones, e.g. the guard's route profiles); none found means usable."""
    root = Path(path)
    if not root.is_dir():
        return [RuleError.at(root, 0, "not a directory")]
    errors: list[RuleError] = []
    for validator in (*VALIDATORS, *extra):
        try:
            errors.extend(validator(root))
        except Exception as exc:  # a validator bug must not hide the other validators' findings
            errors.append(
                RuleError.at(root, 0, f"{getattr(validator, '__name__', validator)} failed: {exc!r}")
            )
    return errors
