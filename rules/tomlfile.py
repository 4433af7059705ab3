"""TOML files of a rules directory: parse with `file:line` errors, and find the line of a key.

tomllib reports positions only for syntax errors; semantic errors (a wrong value, an unknown key) are
pointed at their line by `KeyLines`, so every configuration file reports problems the same way.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rules.errors import RuleError

_KEY = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_DOTTED = rf"{_KEY}(?:\s*\.\s*{_KEY})*"
_HEADER = re.compile(rf"^\s*\[\[?\s*({_DOTTED})\s*\]\]?\s*(?:#.*)?$")
_ASSIGN = re.compile(rf"^\s*({_DOTTED})\s*=")
_KEY_PART = re.compile(_KEY)


def _split_key(dotted: str) -> tuple[str, ...]:
    parts = []
    for raw in _KEY_PART.findall(dotted):
        if raw.startswith('"'):
            parts.append(str(tomllib.loads(f"k = {raw}")["k"]) if "\\" in raw else raw[1:-1])
        elif raw.startswith("'"):
            parts.append(raw[1:-1])
        else:
            parts.append(raw)
    return tuple(parts)


class KeyLines:
    """Line numbers of the keys of a TOML text, to point semantic errors at `file:line`.

    `line(("limits", "new", "broadcast", "day"))` gives the line of the longest prefix that is written
    as a key or table header (keys inside an inline table share the line of the table's key); 0 when
    none is (the whole file).
    """

    def __init__(self, text: str) -> None:
        self._lines: dict[tuple[str, ...], int] = {}
        table: tuple[str, ...] = ()
        in_multiline = False
        for number, line in enumerate(text.splitlines(), start=1):
            if line.count('"""') % 2 == 1 or line.count("'''") % 2 == 1:
                in_multiline = not in_multiline
                continue
            if in_multiline:
                continue
            header = _HEADER.match(line)
            if header:
                table = _split_key(header.group(1))
                self._lines.setdefault(table, number)
                continue
            assign = _ASSIGN.match(line)
            if assign:
                self._lines.setdefault((*table, *_split_key(assign.group(1))), number)

    def line(self, path: Iterable[str]) -> int:
        key = tuple(path)
        while key:
            if key in self._lines:
                return self._lines[key]
            key = key[:-1]
        return 0


def read_toml(path: Path, errors: list[RuleError]) -> tuple[dict[str, Any], KeyLines] | None:
    """Parse a TOML file; a syntax error becomes `file:line: reason` (tomllib gives the position)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        errors.append(RuleError.at(path, 0, f"not UTF-8 text: {exc.reason} at byte {exc.start}"))
        return None
    except OSError as exc:
        errors.append(RuleError.at(path, 0, f"cannot read: {exc.strerror or exc}"))
        return None
    return parse_toml(text, path, errors)


_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)")
# A value shaped like a TOML date (`registered = 2026-13-01`) that tomllib refused as a syntax error.
_DATE_VALUE = re.compile(r"=\s*(\d{4}-\d{2}-\d{2})(?=[\sT#,\]}]|$)")


def _bad_date(text: str, line: int) -> str | None:
    """The reason when the syntax error on `line` is an impossible date (month 13, 30 February)."""
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return None
    for found in _DATE_VALUE.finditer(lines[line - 1]):
        try:
            dt.date.fromisoformat(found.group(1))
        except ValueError as exc:
            # Still under "TOML syntax:" (an impossible date is invalid TOML), but said as a date.
            return f"TOML syntax: {found.group(1)} is not a valid date ({exc})"
    return None


def parse_toml(
    text: str, path: str | Path, errors: list[RuleError]
) -> tuple[dict[str, Any], KeyLines] | None:
    """Parse TOML text; a syntax error becomes `file:line: TOML syntax: reason (column N)` in `errors`."""
    text = text.removeprefix("\ufeff")  # a byte-order mark some editors add is not content
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _POSITION.search(str(exc))
        line = int(match.group(1)) if match else 0
        bad_date = _bad_date(text, line)
        if bad_date is not None:
            errors.append(RuleError.at(path, line, bad_date))
            return None
        reason = _POSITION.sub("", str(exc)) or "invalid TOML"
        if match:
            reason += f" (column {match.group(2)})"
        errors.append(RuleError.at(path, line, f"TOML syntax: {reason}"))
        return None
    return data, KeyLines(text)
