"""A rules directory's own regression tests: `tests.txt`.

One test a line, `<action>[ <category>]: <text>`; blank lines and lines starting with `#` are ignored:

```text
block finance: 稳 赚 不 赔的投资机会      # the text must be blocked, and by a finance match
warn contact: 加我V信：abc_123            # warned, with a contact match
warn: 全网最低价                          # warned (any category)
allow: 黄金周门店活动                     # nothing matches at all
allow finance: 三黄片                     # no finance match (other categories may match)
```

The text is everything after the first `: ` (leading and trailing spaces dropped; there are no end-of-line
comments, `#` is part of the text). Escapes write what a file cannot show: `\\u200b` (any `\\uXXXX` or
`\\UXXXXXXXX`), `\\n`, `\\t`, `\\\\`. `block` / `warn` mean that action exactly (the most severe match's);
with a category, a match of that category must be among the matches.

`parse_tests` reads the file (every malformed line is a `RuleError`), `run_tests` scans each text with a
compiled `RuleSet` and returns a `RuleError` per failing line: `tests.txt:<line>: expected …, got …`.
`rules.load_rules` runs them after compiling, so a rule set whose own tests fail never loads (a hot reload
keeps the old one), and `guard rules check` prints every failure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rules.errors import RuleError
from rules.policy import CATEGORY_NAME
from rules.textfile import read_lines

if TYPE_CHECKING:
    from rules.ruleset import RuleSet, ScanResult

TESTS_FILE = "tests.txt"
TEST_ACTIONS = ("block", "warn", "allow")
_LINE = re.compile(r"^(?P<action>[a-z]+)(?:[ \t]+(?P<category>\S+?))?[ \t]*:(?:[ \t]|$)(?P<text>.*)$")
_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|(.))")
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\"}
_SHOWN = 60  # characters of a text quoted in a failure
_BAD_LINE = "expected '<action>[ <category>]: <text>' (action block, warn or allow)"


@dataclass(frozen=True, slots=True)
class RuleTest:
    """One line of tests.txt: scanning `text` must give `action` (and a match of `category`, if given)."""

    line: int
    action: str
    category: str | None
    text: str

    @property
    def expected(self) -> str:
        return self.action if self.category is None else f"{self.action} {self.category}"

    def failure(self, result: ScanResult) -> str | None:
        """Why `result` does not satisfy this test, or None."""
        categories = {m.category for m in result.matches}
        if self.action == "allow":
            ok = result.action == "allow" if self.category is None else self.category not in categories
        else:
            ok = result.action == self.action and (self.category is None or self.category in categories)
        if ok:
            return None
        return f"expected {self.expected}, got {describe(result)} for {_quote(self.text)}"


def describe(result: ScanResult) -> str:
    """`allow`, or the action and every match: `warn [diversion 加我微信 "加 我 微 信" 3-10]`."""
    if not result.matches:
        return result.action
    shown = ", ".join(f"{m.category} {m.term} {_quote(m.text)} {m.start}-{m.end}" for m in result.matches)
    return f"{result.action} [{shown}]"


def _quote(text: str) -> str:
    """A text as a failure shows it: shortened, invisible characters written as escapes."""
    short = text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"
    return '"' + "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in short) + '"'


def _unescape(text: str) -> str | None:
    """`\\uXXXX`, `\\UXXXXXXXX`, `\\n`, `\\t`, `\\\\` decoded; None for an unknown escape."""
    bad = False

    def one(m: re.Match[str]) -> str:
        nonlocal bad
        code = m.group(1) or m.group(2)
        if code is not None:
            cp = int(code, 16)
            if cp > 0x10FFFF:
                bad = True
                return ""
            return chr(cp)
        simple = _SIMPLE_ESCAPES.get(m.group(3))
        if simple is None:
            bad = True
            return ""
        return simple

    decoded = _ESCAPE.sub(one, text)
    return None if bad else decoded


def parse_tests(root: Path) -> tuple[list[RuleTest], list[RuleError]]:
    """The tests of `root/tests.txt` (none when the file is missing) and every malformed line."""
    path = root / TESTS_FILE
    if not path.exists():
        return [], []
    lines, errors = read_lines(path)
    tests: list[RuleTest] = []
    for number, raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if m is None:
            errors.append(RuleError.at(path, number, _BAD_LINE))
            continue
        action, category = m.group("action"), m.group("category")
        if action not in TEST_ACTIONS:
            reason = f"unknown action {action!r} (expected one of: {', '.join(TEST_ACTIONS)})"
            errors.append(RuleError.at(path, number, reason))
            continue
        if category is not None and not CATEGORY_NAME.match(category):
            errors.append(RuleError.at(path, number, f"bad category name {category!r}"))
            continue
        text = _unescape(m.group("text").strip())
        if text is None:
            errors.append(
                RuleError.at(path, number, r"unknown escape (use \uXXXX, \UXXXXXXXX, \n, \t or \\)")
            )
            continue
        if not text:
            errors.append(RuleError.at(path, number, "empty text"))
            continue
        tests.append(RuleTest(number, action, category, text))
    errors.sort(key=lambda e: e.line)
    return tests, errors


def run_tests(rules: RuleSet, tests: list[RuleTest], path: Path) -> list[RuleError]:
    """A `RuleError` for every test `rules` fails (and for a category the rule set does not have)."""
    errors: list[RuleError] = []
    known = set(rules.categories)
    for test in tests:
        if test.category is not None and test.category not in known:
            reason = f"unknown category {test.category!r} (this rule set has: {', '.join(rules.categories)})"
            errors.append(RuleError.at(path, test.line, reason))
            continue
        why = test.failure(rules.scan(test.text))
        if why is not None:
            errors.append(RuleError.at(path, test.line, why))
    return errors
