"""Errors of a rules directory: a value per problem, and one exception that carries them all.

Every configuration file of the guard (word lists, allow list, policy, limits, accounts, profiles) reports
its problems as `RuleError(path, line, reason)`, printed as `file:line: reason` like a compiler would, so a
rule maintainer can jump to the line. `line` is 1-based; 0 means the problem concerns the whole file
(`display()` then prints `file: reason`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class RuleError:
    """One problem in one file: `str()` gives `file:line: reason`."""

    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"

    def display(self) -> str:
        """What a person reads: `file:line: reason`, or `file: reason` for the whole file (no `:0`)."""
        return f"{self.path}: {self.reason}" if self.line <= 0 else str(self)

    @classmethod
    def at(cls, path: str | Path, line: int, reason: str) -> RuleError:
        return cls(str(path), line, reason)


class RulesInvalid(Exception):
    """A rules directory (or another configuration file) cannot be used; `.errors` lists every problem."""

    def __init__(self, errors: Iterable[RuleError]) -> None:
        self.errors: list[RuleError] = list(errors)
        super().__init__(self._summary())

    def _summary(self) -> str:
        if not self.errors:
            return "invalid rules"
        first = self.errors[0].display()
        more = len(self.errors) - 1
        return first if more == 0 else f"{first} (and {more} more problem{'s' if more > 1 else ''})"
