"""`guard rules check`: every problem of a rules directory, as `file:line: reason`.

`VALIDATORS` is a list of functions `(directory) -> list[RuleError]`; other parts of the guard append
theirs (limits, accounts, profiles) so that one command checks the whole directory.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rules.accounts import validate_quota_files
from rules.attachments import AttachmentPolicyError, load_attachment_policy
from rules.errors import RuleError
from rules.load import DEFAULT_DIR, load_policy, parse_allow, parse_homophones_allow, parse_words
from rules.tomlfile import read_toml

Validator = Callable[[Path], list[RuleError]]


def validate_words(root: Path) -> list[RuleError]:
    return parse_words(root)[1]


def validate_allow(root: Path) -> list[RuleError]:
    return parse_allow(root)[1]


def validate_homophones_allow(root: Path) -> list[RuleError]:
    return parse_homophones_allow(root)[1]


def validate_policy(root: Path) -> list[RuleError]:
    return load_policy(root)[1]


def validate_attachments(root: Path) -> list[RuleError]:
    try:
        load_attachment_policy(root)
    except AttachmentPolicyError as exc:
        return [exc.as_rule_error()]
    return []


INTERCEPT_FILE = "intercept.toml"
INTERCEPT_VARIANTS = ("traditional", "fullwidth", "spaced")
_PREFIX = re.compile(r"^[A-Za-z0-9_-]{1,10}$")


@dataclass(frozen=True, slots=True)
class InterceptConfig:
    """`intercept.toml`: how the word lists reach WeCom's own chat intercept (`guard intercept plan`)."""

    users: tuple[str, ...] = ()
    departments: tuple[int, ...] = ()  # none and no users: the whole company (department 1)
    max_rules: int = 50
    prefix: str = "siyu-"
    variants: tuple[str, ...] = ("traditional", "fullwidth")


def parse_intercept(root: Path) -> tuple[InterceptConfig, list[RuleError]]:
    """The directory's `intercept.toml`, else the shipped one; every problem as `file:line: reason`."""
    path = root / INTERCEPT_FILE if (root / INTERCEPT_FILE).exists() else DEFAULT_DIR / INTERCEPT_FILE
    errors: list[RuleError] = []
    parsed = read_toml(path, errors) if path.exists() else ({}, None)
    if parsed is None:
        return InterceptConfig(), errors
    data, lines = parsed
    out = InterceptConfig()
    checks: dict[str, tuple[Callable[[object], bool], str]] = {
        "users": (lambda v: isinstance(v, list) and all(isinstance(u, str) and u for u in v), "user ids"),
        "departments": (
            lambda v: isinstance(v, list) and all(type(d) is int and d > 0 for d in v),
            "department ids (positive integers)",
        ),
        "max_rules": (lambda v: type(v) is int and 1 <= v <= 100, "an integer from 1 to 100"),
        "prefix": (lambda v: isinstance(v, str) and bool(_PREFIX.match(v)), "1-10 of A-Z a-z 0-9 _ -"),
        "variants": (
            lambda v: isinstance(v, list) and set(v) <= set(INTERCEPT_VARIANTS),
            f"a list of {', '.join(INTERCEPT_VARIANTS)}",
        ),
    }
    values: dict[str, object] = {}
    for key, value in data.items():
        if key not in checks:
            errors.append(RuleError.at(path, lines.line((key,)) if lines else 0, f"unknown key {key!r}"))
        elif not checks[key][0](value):
            line = lines.line((key,)) if lines else 0
            errors.append(RuleError.at(path, line, f"{key} must be {checks[key][1]}, got {value!r}"))
        else:
            values[key] = tuple(value) if isinstance(value, list) else value
    if not errors:
        out = InterceptConfig(**values)  # type: ignore[arg-type]
    return out, errors


def validate_intercept(root: Path) -> list[RuleError]:
    return parse_intercept(root)[1]


VALIDATORS: list[Validator] = [
    validate_words,
    validate_allow,
    validate_homophones_allow,
    validate_policy,
    validate_quota_files,
    validate_attachments,
    validate_intercept,
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
