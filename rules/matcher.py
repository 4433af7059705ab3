"""Aho-Corasick over folded text, with our own leftmost-longest selection.

How a text is scanned (`WordMatcher.find`):

1. One `str.translate` folds the text (see `rules.normalize`) and, in the same step, replaces every character
   that occurs in no term by one SENTINEL character. The sentinel is the automaton root's first child, and the
   other root children are inserted in order of how often their character occurs in the terms: pyahocorasick
   looks children up linearly, so a root with thousands of CJK children is slow unless the common cases
   come first. Deleted characters stay in this "marked" view as markers and are then stripped.
2. The automaton runs over the folded text; then, if the text holds a run of one repeated character, over the
   text with such runs collapsed (投投资资 → 投资). The second scan keeps only hits that span a collapsed run,
   so legitimate doubled words are matched as written by the first scan.
3. Only a text with a hit pays for the offset map back to the original (`rules.normalize.View`). Hits are
   dropped when they break a word (a Latin / digit term inside a longer Latin / digit word: `sb` in `sbc`),
   when more than `max_gap` VISIBLE deleted characters (spaces, punctuation, symbols, emoji) lie between two
   adjacent letters of the match (invisible ones such as U+200B are not counted: nobody sees them), or when
   the hit lies inside an allowed phrase found in the same text (三黄片 cancels 黄片).
4. Leftmost-longest selection: earliest start first, then the longest, then the most severe; a hit that
   overlaps an already selected one is dropped.

The default `max_gap` is 3: `投 - 资`, `投*资`, `投。。。资` match; four or more visible separators between
two letters (usually separate sentences or list items) do not.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import ahocorasick

from rules.normalize import (
    MARKERS,
    STRIP_MARKERS,
    TABLE_SIZE,
    View,
    build_view,
    is_word_char,
    marked_match,
    tables,
)

SENTINEL = "\ufdd0"  # a noncharacter: stands for every character that occurs in no term
PLACEHOLDER = "\ufdd1"  # second character of root placeholder keys; never in a folded text


@dataclass(frozen=True, slots=True)
class Entry:
    """One dictionary key: a term of a category (or an allowed phrase when `category` is None)."""

    key: str
    term: str
    category: str | None
    severity: int = 0  # lower is more severe: 0 block, 1 warn

    @property
    def word_start(self) -> bool:
        return is_word_char(self.key[0])

    @property
    def word_end(self) -> bool:
        return is_word_char(self.key[-1])


@dataclass(frozen=True, slots=True)
class Hit:
    """A selected match: original [start, end) and the entry that matched."""

    start: int
    end: int
    entry: Entry


@dataclass(frozen=True, slots=True)
class _Key:
    length: int
    entry: Entry | None  # the most severe term entry for this key
    allow: bool
    word_start: bool
    word_end: bool


class _Collapsed:
    """A folded text with runs of one repeated character collapsed, and the way back to the folded text."""

    __slots__ = ("c_pos", "lens", "removed", "text")

    def __init__(self, text: str, dup: re.Pattern[str]) -> None:
        c_pos: list[int] = []
        lens: list[int] = []
        removed: list[int] = []
        gone = 0
        for m in dup.finditer(text):
            c_pos.append(m.start() - gone)
            removed.append(gone)
            run = m.end() - m.start()
            lens.append(run)
            gone += run - 1
        self.c_pos, self.lens, self.removed = c_pos, lens, removed
        self.text = dup.sub(r"\1", text)

    def n_start(self, i: int) -> int:
        k = bisect_right(self.c_pos, i) - 1
        if k < 0:
            return i
        extra = self.removed[k] + (self.lens[k] - 1 if self.c_pos[k] < i else 0)
        return i + extra

    def n_end(self, i: int) -> int:
        """Folded end (exclusive) of collapsed character i."""
        k = bisect_right(self.c_pos, i) - 1
        start = self.n_start(i)
        return start + (self.lens[k] if k >= 0 and self.c_pos[k] == i else 1)

    def spans_run(self, start: int, end: int) -> bool:
        k = bisect_right(self.c_pos, end - 1) - 1
        return k >= 0 and self.c_pos[k] >= start


class WordMatcher:
    """The compiled word lists and allow list of a RuleSet."""

    def __init__(self, entries: Iterable[Entry], *, max_gap: int = 3, collapse_repeats: bool = True) -> None:
        self.max_gap = max_gap
        self.collapse_repeats = collapse_repeats
        by_key: dict[str, list[Entry]] = {}
        for entry in entries:
            if entry.key:
                by_key.setdefault(entry.key, []).append(entry)
        freq: Counter[str] = Counter()
        for key in by_key:
            freq.update(key)
        term_chars = set(freq) | set("abcdefghijklmnopqrstuvwxyz0123456789")
        term_chars.discard(SENTINEL)
        term_chars.discard(PLACEHOLDER)
        self.term_chars = frozenset(term_chars)
        self._table = self._build_table(tables().match, self.term_chars)
        # The collapse pass only cares about repeated term characters, never about sentinel runs.
        self._dup = re.compile(f"([^{SENTINEL}])\\1+")
        self.size = len(by_key)
        self._automaton: Any = None
        if not by_key:
            return
        automaton = ahocorasick.Automaton()
        automaton.add_word(SENTINEL + PLACEHOLDER, None)
        for ch, _ in sorted(freq.items(), key=lambda kv: (-kv[1], kv[0])):
            automaton.add_word(ch + PLACEHOLDER, None)

        def order(key: str) -> tuple[int, ...]:
            return tuple(-freq[c] for c in key[:3])

        for key in sorted(by_key, key=order):
            group = by_key[key]
            terms = sorted((e for e in group if e.category is not None), key=lambda e: e.severity)
            allow = any(e.category is None for e in group)
            entry = terms[0] if terms else group[0]
            automaton.add_word(
                key, _Key(len(key), terms[0] if terms else None, allow, entry.word_start, entry.word_end)
            )
        automaton.make_automaton()
        self._automaton = automaton

    @staticmethod
    def _build_table(base: Sequence[str], term_chars: frozenset[str]) -> list[str]:
        def through(value: str) -> str:
            if value in MARKERS or value in term_chars:
                return value
            if len(value) == 1:
                return SENTINEL
            return "".join(c if c in term_chars else SENTINEL for c in value)

        table = [through(v) for v in base]
        assert len(table) == TABLE_SIZE
        return table

    def find(self, text: str) -> list[Hit]:
        """Selected hits in `text` (original offsets), in order of start."""
        if self._automaton is None or not text:
            return []
        marked = marked_match(text, self._table)
        folded = marked.translate(STRIP_MARKERS)
        if not folded:
            return []
        first = list(self._automaton.iter(folded))
        collapsed: _Collapsed | None = None
        second: list[tuple[int, _Key | None]] = []
        if self.collapse_repeats and self._dup.search(folded):
            collapsed = _Collapsed(folded, self._dup)
            second = list(self._automaton.iter(collapsed.text))
        if not any(v is not None for _, v in first) and not any(v is not None for _, v in second):
            return []
        view = build_view(text, marked, self._table)
        terms: list[Hit] = []
        allowed: list[tuple[int, int]] = []
        for end, value in first:
            if value is not None:
                self._consider(view, end + 1 - value.length, end + 1, value, terms, allowed)
        if collapsed is not None:
            for end, value in second:
                if value is None:
                    continue
                start = end + 1 - value.length
                if not collapsed.spans_run(start, end + 1):
                    continue
                n_start, n_end = collapsed.n_start(start), collapsed.n_end(end)
                self._consider(view, n_start, n_end, value, terms, allowed)
        if allowed:
            terms = [h for h in terms if not any(a <= h.start and h.end <= b for a, b in allowed)]
        return select_leftmost_longest(terms)

    def _consider(
        self, view: View, start: int, end: int, value: _Key, terms: list[Hit], allowed: list[tuple[int, int]]
    ) -> None:
        text = view.text
        # A Latin / digit end of a term must not continue a Latin / digit word (sb in sbc), unless a visible
        # separator stands between them in the original (sb-c is two words).
        glued_before = value.word_start and start > 0 and is_word_char(text[start - 1])
        if glued_before and not view.separated(view.orig(start - 1), view.orig(start)):
            return
        glued_after = value.word_end and end < len(text) and is_word_char(text[end])
        if glued_after and not view.separated(view.orig(end - 1), view.orig(end)):
            return
        o_start, o_end = view.span(start, end)
        if view.max_visible_gap(o_start, o_end) > self.max_gap:
            return
        if value.allow:
            allowed.append((o_start, o_end))
        elif value.entry is not None:
            terms.append(Hit(o_start, o_end, value.entry))


def select_leftmost_longest(hits: Iterable[Hit]) -> list[Hit]:
    """Earliest start first, then longest, then most severe; drop what overlaps a selected hit."""
    chosen: list[Hit] = []
    last_end = -1
    for hit in sorted(hits, key=lambda h: (h.start, h.start - h.end, h.entry.severity, h.entry.term)):
        if hit.start >= last_end:
            chosen.append(hit)
            last_end = hit.end
    return chosen
