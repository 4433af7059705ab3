"""The compiled rule set and what a scan returns."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

from rules.collisions import Collisions
from rules.detectors import detect, may_detect
from rules.homophones import Homophones
from rules.matcher import WordMatcher
from rules.normalize import (
    INVISIBLE,
    fold_paired,
    grapheme_end,
    joined_table,
    paired_table,
)
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
        homophones: Homophones | None = None,
    ) -> None:
        self.path = path
        self.version = version
        self.policy = policy
        self.term_counts: Mapping[str, int] = dict(term_counts)
        self.allow_count = allow_count
        self.files = files
        self._matcher = matcher
        self.engine = matcher.engine  # the Aho-Corasick engine of the word lists (`rules.engine`)
        self._homophones = homophones  # pinyin hits of the categories with `homophones` (谐音) enabled
        # Hits that are two words' neighbouring ends across a separator (黄金，融化 → 金融) are dropped.
        self._collisions = Collisions.shared()
        contact = policy.of(CONTACT)
        self._detectors = contact.detectors
        # The plain matcher and the detectors read two foldings of the text: one translate gives both.
        self._paired = matcher.unit == 1 and bool(self._detectors)
        if self._paired:
            paired_table()  # built with the rules (~30 ms, ~5 MiB once per process), not by the first scan
        # With homophones and detectors, the homophones' coding of the text comes from the same translate as
        # the foldings (their own translate was ~5 us of ~36 per seed message with the shipped rules): a
        # table of this rule set with its symbol next to the paired foldings (daachorse) or next to the
        # DETECT folding (pyahocorasick, whose MATCH folding is coded); built with the rules.
        self._joined: list[str] | None = None
        if homophones is not None and homophones.active and self._detectors:
            self._joined = joined_table(self._paired, homophones.table, homophones.no_reading)
        self._width = 3 if self._paired else 2  # characters per code point of `_joined`
        # The quiet-text shortcut of `scan` (tests compare it with the long way by turning it off).
        self._shortcut = True
        self._contact_action: ScanAction = contact.action
        names = list(term_counts)
        if self._detectors and CONTACT not in names:
            names.append(CONTACT)
        self.categories: tuple[str, ...] = tuple(names)
        # Keyed like Entry.category (str | None) so that the scan can index it with an entry's category.
        self._actions: dict[str | None, ScanAction] = {c: policy.of(c).action for c in self.categories}

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
        marked = detected = sounds_coded = None
        found: Sequence[Any] | None = None  # the word automaton's raw finds in `marked`
        matcher = self._matcher
        if self._joined is not None:
            # The columns of `joined_table`, one character per original character each (None of them when
            # a character folds to several or lies past the table).
            both = text.translate(self._joined)
            if len(both) == self._width * len(text):
                if self._paired:
                    marked, detected, sounds_coded = both[0::3], both[1::3], both[2::3]
                else:
                    detected, sounds_coded = both[0::2], both[1::2]
                if INVISIBLE in detected:
                    detected = detected.replace(INVISIBLE, "")
                # Most texts have nothing for any of the three to consider: one look at each automaton and
                # at the detectors' first look settles it (shipped rules, a broadcast's three short texts:
                # daachorse 4.7 -> 3.0 us a text, pyahocorasick 5.4 -> 4.3).
                if marked is None:
                    marked = matcher.fold(text)
                found = matcher.first_pass(marked)
                if (
                    self._shortcut
                    and not found
                    and self._homophones is not None
                    and self._homophones.quiet(sounds_coded)
                    and not may_detect(detected)
                ):
                    return ALLOW_RESULT
        elif self._paired:
            paired = fold_paired(text)
            if paired is not None:
                marked, detected = paired
                homophones = self._homophones
                silent = homophones is None or not homophones.active
                found = matcher.first_pass(marked)
                if self._shortcut and silent and not found and not may_detect(detected):
                    return ALLOW_RESULT
        hits = matcher.find(text, marked, found)
        if hits:
            hits = self._collisions.keep(text, hits)
        if hits:
            # Spans already end on whole characters (the matcher extends them over trailing marks).
            try:
                matches = [
                    _new_match(Match, (e.category, e.term, s, t, text[s:t], actions[e.category]))
                    for s, t, e in hits
                ]
            except KeyError:  # a category without an action of its own: the policy's default
                matches = [
                    Match(e.category or "", e.term, s, t, text[s:t], self.action_of(e.category or ""))
                    for s, t, e in hits
                ]
            append = matches.append
            acts = {m[5] for m in matches}
            severity = 2 if "block" in acts else 1 if "warn" in acts else 0
        if self._homophones is not None:
            sounds = self._homophones.find(text, hits, sounds_coded)
            if sounds:
                for s, t, h in sounds:
                    append(_new_match(Match, (h.category, h.term, s, t, text[s:t], h.action)))
                    severity = max(severity, _SEVERITY[h.action])
                matches.sort(key=_span)
        if self._detectors:
            found = detect(text, self._detectors, detected)
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
            "engine": self.engine,
        }

    def __repr__(self) -> str:
        return f"RuleSet(path={str(self.path)!r}, version={self.version!r}, categories={self.categories!r})"
