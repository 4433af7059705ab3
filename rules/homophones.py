"""Homophones (谐音): terms written with other characters of the same sound — 菠菜 for 博彩, 涩情 for 色情,
投咨 for 投资.

Only for the categories whose policy sets `homophones = "block" | "warn"` (the action of such a hit, which
may be milder than the category's own). The text is read as toneless pinyin (tones do not help: 菠菜 is
bō cài, 博彩 bó cǎi) and searched for the syllables of the terms, with these limits, each measured on the
seed articles (`bench/homophones.py`):

* only terms of two or more Chinese characters and nothing else (no Latin letters, digits or marks), read
  in context when the rules load (`pypinyin.lazy_pinyin` of the whole term, so a polyphone takes its
  reading in the word);
* only runs of Chinese characters in the text (anything else breaks a run: `菠 菜` is not read as one
  word), each character read alone (its most common reading; pypinyin's own single-character reading);
* only where the literal matcher found nothing overlapping, and only when the characters differ from the
  term's after folding (the allow list's 三黄片 never comes back as a homophone of 黄片);
* a hit lying inside a phrase of `homophones_allow.txt` (ordinary words that sound like a term: 文章 for
  稳涨, 引导 for 荫道, 肚子 for 赌资) or of `allow.txt` is cancelled.

Cost: one `str.translate` of the text (a table built when the rules load, from pypinyin's per-character
dictionary: every character whose reading is a syllable of some term gets that syllable's symbol, every
other one a sentinel) and one Aho-Corasick pass over it; only texts holding a Chinese character pay it,
and only rule sets with an enabled category have a `Homophones` at all. Spans map one to one: the coded
text has one symbol per character of the original.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from typing import Any, NamedTuple

import ahocorasick

from rules.charfreq import RANK
from rules.engine import DAACHORSE, daachorse_module
from rules.engine import choose as choose_engine
from rules.normalize import is_cjk, tables
from rules.policy import CategoryAction

SENTINEL = "\ufdd0"  # a noncharacter: a character whose reading is no syllable of any term (or no reading)
PLACEHOLDER = "\ufdd1"  # ends the placeholder keys that order the automaton's children; never in a coded text
SYMBOL_BASE = 0xE000  # syllable i is chr(SYMBOL_BASE + i), in the Private Use Area; characters above the
# Basic Multilingual Plane are left as they are by the translate table (one character each: spans still map)
BMP = 0x10000
_HAS_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_SEVERITY = {"block": 0, "warn": 1}


class Homophone(NamedTuple):
    """A term of an enabled category as its syllables: what a pinyin hit reports."""

    term: str  # as written in the word list
    key: str  # folded
    category: str
    action: CategoryAction


@cache
def char_readings() -> dict[int, str]:
    """Code point → toneless pinyin of its most common reading (`lv` for 绿), for every Chinese character
    of the Basic Multilingual Plane that pypinyin knows. The same as `lazy_pinyin(ch)` on the character
    alone (checked by the tests), without calling it 27,000 times: ~60 ms once per process."""
    from pypinyin.contrib.tone_convert import to_normal
    from pypinyin.pinyin_dict import pinyin_dict

    toneless: dict[str, str] = {}
    out: dict[int, str] = {}
    for cp, readings in pinyin_dict.items():
        if cp >= BMP or not is_cjk(chr(cp)):
            continue
        first = readings.split(",", 1)[0]
        plain = toneless.get(first)
        if plain is None:
            plain = toneless[first] = to_normal(first)
        if plain.isascii() and plain.isalpha():
            out[cp] = plain
    return out


def term_syllables(key: str) -> list[str] | None:
    """Toneless syllables of a folded term read in context, or None when it is no homophone candidate (fewer
    than two characters, anything but Chinese characters, a character pypinyin cannot read)."""
    from pypinyin import Style, lazy_pinyin

    if len(key) < 2 or not all(ord(c) < BMP and is_cjk(c) for c in key):
        return None
    syllables = lazy_pinyin(key, style=Style.NORMAL, errors="ignore")
    if len(syllables) != len(key) or not all(s.isascii() and s.isalpha() for s in syllables):
        return None
    return syllables


class Homophones:
    """The pinyin matcher of one rule set. `find(text, literal)` → [(start, end, Homophone)]."""

    __slots__ = ("_allow", "_automaton", "_fold", "_hits", "_table", "engine", "size", "syllables")

    def __init__(
        self, terms: Iterable[Homophone], allow: Iterable[str] = (), engine: str | None = None
    ) -> None:
        """`terms`: the terms of the enabled categories (folded keys); `allow`: folded phrases that cancel a
        hit lying inside them (the shipped `homophones_allow.txt` and the directory's `allow.txt`); `engine`:
        the Aho-Corasick engine (`rules.engine.choose`)."""
        readable: list[tuple[list[str], Homophone]] = []
        for h in terms:
            syllables = term_syllables(h.key)
            if syllables is not None:
                readable.append((syllables, h))
        # pyahocorasick looks a node's children up linearly, in the order they were added, and nearly every
        # character of a text leaves the root: the sentinel is the root's first child, then the syllables by
        # how common their most common character is (`rules.charfreq`), so the usual lookups end early. (A
        # two-symbol coding as in `rules.matcher` measured no faster here: ~200 syllables, not 4,000 letters.)
        rank: dict[str, int] = {s: len(RANK) for syllables, _ in readable for s in syllables}
        for cp, syllable in char_readings().items():
            r = rank.get(syllable)
            if r is not None:
                rank[syllable] = min(r, RANK.get(chr(cp), len(RANK)))
        ordered = sorted(rank, key=lambda s: (rank[s], s))
        symbols = {s: chr(SYMBOL_BASE + i) for i, s in enumerate(ordered)}
        by_key: dict[str, list[Homophone]] = {}
        for syllables, h in readable:
            by_key.setdefault("".join(symbols[s] for s in syllables), []).append(h)
        self.syllables = len(symbols)
        self.size = len(by_key)
        self.engine = choose_engine(engine)
        self._automaton: Any = None
        self._hits: Callable[[str], list[tuple[int, int, tuple[Homophone, ...]]]] | None = None
        # Most severe first, then the order of the word lists: one report per span.
        ranked = {
            coded: tuple(sorted(found, key=lambda h: _SEVERITY[h.action])) for coded, found in by_key.items()
        }
        if ranked and self.engine == DAACHORSE:
            module = daachorse_module()
            assert module is not None  # choose_engine picked it because it imports
            automaton = module.CharwiseDoubleArrayAhoCorasick(list(ranked))
            values = list(ranked.values())
            find_overlapping = automaton.find_overlapping

            def hits(coded: str) -> list[tuple[int, int, tuple[Homophone, ...]]]:
                return [(start, end, values[i]) for start, end, i in find_overlapping(coded)]

            self._automaton, self._hits = automaton, hits
        elif ranked:
            automaton = ahocorasick.Automaton(ahocorasick.STORE_ANY, ahocorasick.KEY_STRING)
            automaton.add_word(SENTINEL + PLACEHOLDER, None)
            for symbol in symbols.values():
                automaton.add_word(symbol + PLACEHOLDER, None)
            for coded, found in ranked.items():
                automaton.add_word(coded, (len(coded), found))
            automaton.make_automaton()
            iterate = automaton.iter

            def hits(coded: str) -> list[tuple[int, int, tuple[Homophone, ...]]]:
                # Every hit is a real key's: no coded text holds PLACEHOLDER.
                return [(last + 1 - n, last + 1, found) for last, (n, found) in iterate(coded)]

            self._automaton, self._hits = automaton, hits
        table = [SENTINEL] * BMP
        for cp, syllable in char_readings().items():
            code = symbols.get(syllable)
            if code is not None:
                table[cp] = code
        self._table = table
        self._fold = tables().match
        index: dict[str, list[tuple[str, int]]] = {}
        for phrase in dict.fromkeys(allow):
            for i, ch in enumerate(phrase):
                index.setdefault(ch, []).append((phrase, i))
        self._allow = index

    def _folded(self, text: str, start: int, end: int) -> str:
        fold = self._fold
        size = len(fold)
        return "".join(fold[o] if (o := ord(ch)) < size else ch for ch in text[start:end])

    def _allowed(self, text: str, start: int, end: int) -> bool:
        """Does an exclusion phrase, written in the text, cover text[start:end]?"""
        candidates = self._allow.get(self._folded(text, start, start + 1))
        if not candidates:
            return False
        for phrase, i in candidates:
            left = start - i
            right = left + len(phrase)
            if left >= 0 and end <= right <= len(text) and self._folded(text, left, right) == phrase:
                return True
        return False

    @property
    def table(self) -> list[str]:
        """The coding of the text: per code point of the Basic Multilingual Plane, its syllable's symbol or
        the sentinel (a code point past it is left as it is)."""
        return self._table

    @property
    def no_reading(self) -> str:
        """The symbol of a character whose reading is no syllable of a term (or that has none), which is
        also what a code point past `table` may be coded as: no key holds either."""
        return SENTINEL

    @property
    def active(self) -> bool:
        """Has it any term to find (else `find` returns nothing for every text)?"""
        return self._hits is not None

    def quiet(self, coded: str) -> bool:
        """True when no key occurs in `coded` (`text.translate(self.table)`): `find` returns nothing for the
        text. A sufficient test, not an equivalent one."""
        hits = self._hits
        return hits is None or not hits(coded)

    def find(
        self, text: str, literal: Sequence[tuple[Any, ...]] = (), coded: str | None = None
    ) -> list[tuple[int, int, Homophone]]:
        """Homophone hits of `text`, leftmost-longest, none overlapping a `literal` hit ((start, end, …)
        tuples: the word matcher's selected hits). `coded`: `text.translate(self.table)` when the caller has
        it already (`rules.normalize.joined_table`)."""
        hits = self._hits
        if hits is None or not _HAS_CJK.search(text):
            return []
        if coded is None:
            coded = text.translate(self._table)
        raw: list[tuple[int, int, Homophone]] = []
        for start, end, found in hits(coded):
            if any(s < end and start < t for s, t, *_ in literal):
                continue
            folded = self._folded(text, start, end)
            for h in found:
                if folded != h.key:
                    raw.append((start, end, h))
                    break
        if not raw:
            return []
        raw.sort(key=lambda r: (r[0], r[0] - r[1], _SEVERITY[r[2].action]))
        chosen: list[tuple[int, int, Homophone]] = []
        taken = -1
        for hit in raw:
            if hit[0] >= taken and not self._allowed(text, hit[0], hit[1]):
                chosen.append(hit)
                taken = hit[1]
        return chosen
