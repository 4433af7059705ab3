"""The compiled rule set and what a scan returns."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

from rules.detectors import detect
from rules.matcher import WordMatcher
from rules.normalize import INVISIBLE, TABLE_SIZE, tables
from rules.policy import CONTACT, Policy

ScanAction = Literal["allow", "warn", "block"]
_SEVERITY: dict[str, int] = {"allow": 0, "warn": 1, "block": 2}
_ACTION_OF: dict[int, ScanAction] = {0: "allow", 1: "warn", 2: "block"}


class Match(NamedTuple):
    """One finding. `start`/`end` index the ORIGINAL text (Python str offsets); `text` is that slice.

    `term` is the term as written in the word list (for a detector: its name, e.g. `phone`).
    """

    category: str
    term: str
    start: int
    end: int
    text: str
    action: ScanAction

    def to_json(self) -> dict[str, object]:
        return {
            "category": self.category,
            "term": self.term,
            "start": self.start,
            "end": self.end,
            "text": self.text,
        }


@dataclass(frozen=True, slots=True)
class ScanResult:
    """The verdict of the content rules on one text: the most severe action of its matches."""

    action: ScanAction
    matches: tuple[Match, ...] = ()

    @property
    def blocked(self) -> bool:
        return self.action == "block"

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m.category for m in self.matches))

    def to_json(self) -> dict[str, object]:
        """The object `guard scan` prints."""
        return {"action": self.action, "matches": [m.to_json() for m in self.matches]}


ALLOW_RESULT = ScanResult("allow", ())
# Match(...) without the Python-level __new__ of a NamedTuple (one per match on the hot path).
_new_match = tuple.__new__


def _span(m: Match) -> tuple[int, int]:
    return m.start, m.end


def grapheme_end(text: str, end: int) -> int:
    """Extend a span end over the combining marks and variation selectors that belong to its last
    character (the keycap of 8️⃣, an accent), so a match never cuts a character in two."""
    n = len(text)
    if end >= n:
        return end
    # Every combining mark and variation selector below TABLE_SIZE folds to the invisible marker, so one
    # list look-up settles the common case (the next character is a letter or punctuation).
    match = tables().match
    while end < n:
        ch = text[end]
        cp = ord(ch)
        if cp < TABLE_SIZE and match[cp] != INVISIBLE:
            break
        if not (unicodedata.category(ch) in ("Mn", "Me") or "\ufe00" <= ch <= "\ufe0f"):
            break
        end += 1
    return end


class RuleSet:
    """Word lists + allow list + policy of one rules directory, compiled. Immutable once built."""

    def __init__(
        self,
        *,
        path: Path,
        version: str,
        policy: Policy,
        matcher: WordMatcher,
        term_counts: Mapping[str, int],
        allow_count: int,
        files: tuple[Path, ...],
    ) -> None:
        self.path = path
        self.version = version
        self.policy = policy
        self.term_counts: Mapping[str, int] = dict(term_counts)
        self.allow_count = allow_count
        self.files = files
        self._matcher = matcher
        contact = policy.of(CONTACT)
        self._detectors = contact.detectors
        self._contact_action: ScanAction = contact.action
        names = list(term_counts)
        if self._detectors and CONTACT not in names:
            names.append(CONTACT)
        self.categories: tuple[str, ...] = tuple(names)
        self._actions: dict[str, ScanAction] = {c: policy.of(c).action for c in self.categories}

    def action_of(self, category: str) -> ScanAction:
        return self._actions.get(category) or self.policy.of(category).action

    def scan(self, text: str) -> ScanResult:
        """Scan one outbound text. Never raises for any `str`; empty text is allowed."""
        if not text:
            return ALLOW_RESULT
        matches: list[Match] = []
        append = matches.append
        actions = self._actions
        severity = 0
        hits = self._matcher.find(text)
        if hits:
            n = len(text)
            fold = tables().match
            for start, end, entry in hits:
                category = entry.category or ""
                # grapheme_end inlined for the common case: the character after the hit is no mark.
                if end < n:
                    cp = ord(text[end])
                    if cp >= TABLE_SIZE or fold[cp] == INVISIBLE:
                        end = grapheme_end(text, end)
                action = actions.get(category) or self.action_of(category)
                if _SEVERITY[action] > severity:
                    severity = _SEVERITY[action]
                append(_new_match(Match, (category, entry.term, start, end, text[start:end], action)))
        if self._detectors:
            found = detect(text, self._detectors)
            if found:
                contact = self._contact_action
                for d in found:
                    s, e = d.start, grapheme_end(text, d.end)
                    append(Match(CONTACT, d.kind, s, e, text[s:e], contact))
                severity = max(severity, _SEVERITY[contact])
                # Word hits come sorted by start (they never overlap); contact details may fall anywhere.
                matches.sort(key=_span)
        if not matches:
            return ALLOW_RESULT
        return ScanResult(_ACTION_OF[severity], tuple(matches))

    def scan_many(self, texts: Iterable[str]) -> list[ScanResult]:
        return [self.scan(t) for t in texts]

    def summary(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "version": self.version,
            "categories": {
                c: {"action": self.action_of(c), "terms": self.term_counts.get(c, 0)} for c in self.categories
            },
            "allow": self.allow_count,
            "keys": self._matcher.size,
        }

    def __repr__(self) -> str:
        return f"RuleSet(path={str(self.path)!r}, version={self.version!r}, categories={self.categories!r})"
