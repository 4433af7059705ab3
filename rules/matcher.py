"""Aho-Corasick over folded text, with our own leftmost-longest selection.

How a text is scanned (`WordMatcher.find`):

1. One `str.translate` folds the text (see `rules.normalize`) and, in the same step, CODES it: every term
   character becomes two symbols (its group among ~sqrt(n) groups, then its place in the group), and every
   character that occurs in no term becomes one SENTINEL pair. pyahocorasick looks a node's children up
   linearly, so a root with thousands of CJK children is slow; with the coding no node has more than
   about sqrt(#characters) children, the sentinel is the root's first child, and the groups and their
   members are inserted in order of how common their characters are in ordinary text (`rules.charfreq`),
   so the common cases are found first. Deleted characters are coded as a marker pair and then stripped.
2. The automaton runs over the coded text; then, if the text holds a run of one repeated character, over the
   text with such runs collapsed (投投资资 → 投资). The automaton holds every doubled repeatable character
   (资资) as a key of its own, so the first scan also says where the runs are. The second scan keeps only
   hits the text does not hold as written (`_Collapsed.span`), so legitimate doubled words are matched as
   written by the first scan, and a repeat that belongs to a neighbour stays out of the span (本次投资资金 →
   投资); ASCII letters and digits are never collapsed (pk100 is not pk10).
3. Only a text with a hit pays for the offset map back to the original (`rules.normalize.View`). Hits are
   dropped when they break a word (a Latin / digit term inside a longer Latin / digit word: `sb` in `sbc`),
   when more than `max_gap` VISIBLE deleted characters (spaces, punctuation, symbols, emoji) lie between two
   adjacent letters of the match (invisible ones such as U+200B are not counted: nobody sees them), or when
   the hit lies inside an allowed phrase found in the same text (三黄片 cancels 黄片).
4. Leftmost-longest selection: earliest start first, then the longest; a hit that overlaps an already
   selected one is dropped. It runs per action, block terms first, so a longer warn term never hides a
   block term inside it.

The default `max_gap` is 3: `投 - 资`, `投*资`, `投。。。资` match; four or more visible separators between
two letters (usually separate sentences or list items) do not.

The engine (`rules.engine`): the coding of step 1 is for pyahocorasick, the default. With daachorse (the
optional `fast` extra, chosen when installed), a double array without linear child search, the automaton
runs over the MATCH folding itself, one symbol per character; everything else is the same code
(`WordMatcher.unit`: symbols per character), and `tests/test_rules_engine.py` checks that both give the
same results.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from itertools import accumulate
from operator import itemgetter
from typing import Any, NamedTuple

import ahocorasick

from rules.charfreq import COMMON_CHARS, RANK
from rules.engine import DAACHORSE, daachorse_module
from rules.engine import choose as choose_engine
from rules.normalize import (
    CODED_INVISIBLE,
    CODED_VISIBLE,
    INVISIBLE,
    VISIBLE,
    View,
    grapheme_end,
    is_word_char,
    marked_match,
    marked_view,
    tables,
)

SENTINEL = "\ufdd0"  # a noncharacter: stands for every character that occurs in no term
PLACEHOLDER = "\ufdd1"  # second character of root placeholder keys; never in a folded text


class Entry(NamedTuple):
    """What one dictionary key stands for: a term of a category, or an allowed phrase (`category` None).

    It is also the automaton's value for its key (one object per key keeps 65k-term lexicons small), so it
    carries what the scan needs: the key's length and whether its ends are Latin / digit characters.
    """

    term: str
    category: str | None
    severity: int  # lower is more severe: 0 block, 1 warn
    length: int
    word_start: bool
    word_end: bool
    allow: bool = False

    @classmethod
    def of(cls, key: str, term: str, category: str | None, severity: int = 0) -> Entry:
        first, last = key[0], key[-1]
        return cls(
            term,
            category,
            severity,
            len(key),
            first.isascii() and first.isalnum(),
            last.isascii() and last.isalnum(),
            category is None,
        )


# A selected match: original [start, end) and the entry that matched. A plain tuple, not a NamedTuple:
# building one per raw hit is on the hot path.
Hit = tuple[int, int, Entry]


class _Collapsed:
    """A text with runs of one repeated unit collapsed to one unit, and the way back to the text.

    A unit is `unit` symbols long (2 for the coded text of the matcher)."""

    __slots__ = ("c_pos", "lens", "removed", "text", "unit")

    def __init__(self, text: str, doubled: list[int], unit: int = 2) -> None:
        """`doubled`: where each doubled repeatable unit of `text` starts, in order (the first scan's
        `_runs_of`); a run of n copies is n - 1 doubled units, one unit apart."""
        runs: list[tuple[int, int]] = []
        first = last = doubled[0]
        for at in doubled[1:]:
            if at != last + unit:
                runs.append((first, last + 2 * unit))
                first = at
            last = at
        runs.append((first, last + 2 * unit))
        c_pos: list[int] = []
        lens: list[int] = []
        removed: list[int] = []
        pieces: list[str] = []
        gone = 0
        kept = 0  # text[:kept] is in pieces already
        for m_start, m_end in runs:
            c_pos.append(m_start - gone)
            removed.append(gone)
            run = m_end - m_start
            lens.append(run)
            gone += run - unit
            # The text up to the run and the run's first unit.
            pieces.append(text[kept : m_start + unit])
            kept = m_end
        pieces.append(text[kept:])
        self.c_pos, self.lens, self.removed, self.unit = c_pos, lens, removed, unit
        self.text = "".join(pieces)

    def n_start(self, i: int) -> int:
        """Index in the text of collapsed symbol i (the first symbol of a run for a collapsed run)."""
        k = bisect_right(self.c_pos, i) - 1
        if k < 0:
            return i
        if i < self.c_pos[k] + self.unit:
            return i + self.removed[k]
        return i + self.removed[k] + self.lens[k] - self.unit

    def n_end(self, i: int) -> int:
        """Exclusive end in the text of collapsed symbol i (the end of the whole run for a collapsed run)."""
        k = bisect_right(self.c_pos, i) - 1
        if k >= 0 and i < self.c_pos[k] + self.unit:
            return self.c_pos[k] + self.removed[k] + self.lens[k]
        return self.n_start(i) + 1

    def n_last(self, i: int) -> int:
        """Index in the text of collapsed symbol i, the LAST copy for a collapsed run (`n_start` gives the
        first)."""
        k = bisect_right(self.c_pos, i) - 1
        if k >= 0 and i < self.c_pos[k] + self.unit:
            return i + self.removed[k] + self.lens[k] - self.unit
        return self.n_start(i)

    def span(self, start: int, end: int) -> tuple[int, int] | None:
        """Where the word at collapsed [start, end) stands in the text, or None when that is the word as
        written, which the first scan has found already.

        Every repeat between its first and its last letter is part of it (稳赚赚不赔). A repeat of its first
        letter is part of it only when the stutter goes on into its second letter (投投资资, 稳稳赚赚不赔),
        likewise at the end: otherwise the repeat is a neighbour's (本次投资资金: 资金 keeps its 资;
        黄金、金融: 黄金 keeps its 金)."""
        unit = self.unit
        lo = bisect_left(self.c_pos, start)
        hi = bisect_left(self.c_pos, end)
        if lo == hi:
            return None
        runs = set(self.c_pos[lo:hi])
        last = end - unit
        lead = start in runs and start + unit in runs
        trail = last in runs and last - unit in runs
        inner = len(runs) - (start in runs) - (last in runs) > 0
        if not (inner or lead or trail):
            return None
        return (
            self.n_start(start) if lead else self.n_last(start),
            self.n_end(last) if trail else self.n_start(last) + unit,
        )


# Each term character is coded as two symbols (a "high" one for its group, a "low" one within the group),
# so that no automaton node has more than about sqrt(#characters) children. Both symbol sets are private-use
# code points that never reach the automaton unencoded: input characters there fold to the sentinel.
_HIGH = 0xE000
_LOW = 0xF000
_LOW_END = 0xF900
SENTINEL_CODE = SENTINEL + SENTINEL
_WORD_HIGH = "\uefff"  # the group of ASCII letters and digits
# A doubled repeatable character at a given place (a match must start at a high symbol, so it is aligned).
_DUP_PAIR = re.compile("([\ue000-\ueffe][\uf000-\uf8ff])\\1")
# The value of a doubled character's key in the coded automaton (not a term: never a hit).
_DOUBLED = object()


def _encode_table(base: Sequence[str], code: dict[str, str]) -> list[str]:
    """The folding table with each folded character replaced by its two-symbol code."""

    def one(value: str) -> str:
        if value == INVISIBLE:
            return CODED_INVISIBLE
        if value == VISIBLE:
            return CODED_VISIBLE
        got = code.get(value)
        if got is not None:
            return got
        return "".join(code.get(c, SENTINEL_CODE) for c in value)

    return [one(v) for v in base]


class WordMatcher:
    """The compiled word lists and allow list of a RuleSet.

    `engine` (see `rules.engine`): pyahocorasick runs over the CODED folding (two symbols per character, see
    the module doc); daachorse, a double-array automaton with no linear child search, over the plain MATCH
    folding (one symbol per character). `unit` is that number of symbols per folded character: the rest of
    the scan is the same code for both.
    """

    def __init__(
        self,
        entries: Iterable[tuple[str, Entry]],
        *,
        max_gap: int = 3,
        collapse_repeats: bool = True,
        engine: str | None = None,
    ) -> None:
        self.max_gap = max_gap
        self.collapse_repeats = collapse_repeats
        self.engine = choose_engine(engine)
        by_key: dict[str, Entry] = {}
        for key, entry in entries:
            if key:
                seen = by_key.get(key)
                by_key[key] = entry if seen is None else _merge(seen, entry)
        self.size = len(by_key)
        # Filled in by _build_plain / _build_coded:
        self.unit = 1
        self._encode: Sequence[str] = ()
        self._code: dict[str, str] = {}
        self._automaton: Any = None
        self._scan: Callable[[str], list[tuple[int, Entry]]] | None = None
        # The first scan in two steps, so that a caller can look at the automaton's raw finds first
        # (`first_pass`): the finds of a folded text (markers stripped), then its hits and where each doubled
        # repeatable term character starts (资资: runs of it are collapsed for the second scan), in order.
        self._raw: Callable[[str], Sequence[Any]] = lambda encoded: ()
        self._runs_of: Callable[[Any, str], tuple[list[tuple[int, Entry]], list[int]]] = lambda f, e: ([], [])
        if self.engine == DAACHORSE:
            self._build_plain(by_key)
        else:
            self._build_coded(by_key)

    def _build_plain(self, by_key: dict[str, Entry]) -> None:
        """daachorse over the MATCH folding as it is (its double array has no per-node child search)."""
        self.unit = 1
        self._encode = tables().match
        self._invisible, self._visible = INVISIBLE, VISIBLE
        self._word_codes = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
        term_chars = set("".join(by_key))
        self.term_chars = frozenset(term_chars | self._word_codes)
        # Runs of one repeated term character that is no ASCII letter or digit are collapsed.
        repeatable = sorted(c for c in term_chars if not is_word_char(c))
        if not by_key:
            return
        module = daachorse_module()
        assert module is not None  # choose_engine picked it because it imports
        keys = list(by_key)
        values = list(by_key.values())
        n = len(keys)
        # The automaton also holds every doubled repeatable character (资资) that is no key itself, so the
        # first scan says where the runs are and no regex pass looks for them (a regex search like
        # `_DUP_PAIR` over every text: `find` 21.2-21.4 -> 19.1-20.8 us per seed message, 65k lexicon; then
        # the runs from the doubled characters instead of a regex over the texts that hold one: a run is
        # n - 1 doubled characters one apart).
        doubled = [c + c for c in repeatable]
        keys += [d for d in doubled if d not in by_key]
        index = {k: i for i, k in enumerate(keys)}
        doubled_ids = frozenset(index[d] for d in doubled)
        automaton = module.CharwiseDoubleArrayAhoCorasick(keys)
        find_overlapping = automaton.find_overlapping

        def scan(encoded: str) -> list[tuple[int, Entry]]:
            # pyahocorasick's form: (index of the last character, value), by end, longest first at one end.
            return [(end - 1, values[i]) for _, end, i in find_overlapping(encoded) if i < n]

        def runs_of(found: Any, encoded: str) -> tuple[list[tuple[int, Entry]], list[int]]:
            hits = [(end - 1, values[i]) for _, end, i in found if i < n]
            # Found by end; every doubled character is two long, so also by start.
            return hits, [start for start, _, i in found if i in doubled_ids]

        self._automaton = automaton
        self._scan, self._raw, self._runs_of = scan, find_overlapping, runs_of

    def fold(self, text: str) -> str:
        """The folding `find` scans: the marked MATCH folding (`unit` 1) or its coding (`unit` 2)."""
        return marked_match(text, self._encode, self._outside)

    def first_pass(self, marked: str) -> Sequence[Any]:
        """The automaton's raw finds in `marked`, the text's `fold` (its markers stripped): empty when no
        key, allowed phrase or doubled character occurs in it, and then `find` returns nothing for the text.
        Hand them to `find` so that it does not run the automaton again."""
        if self._scan is None:
            return ()
        if self._invisible in marked:
            marked = marked.replace(self._invisible, "")
        return self._raw(marked.replace(self._visible, ""))

    def _build_coded(self, by_key: dict[str, Entry]) -> None:
        """pyahocorasick over the coded folding (see the module doc)."""
        self.unit = 2
        self._invisible, self._visible = CODED_INVISIBLE, CODED_VISIBLE
        freq: Counter[str] = Counter("".join(by_key))
        term_chars = set(freq) | set("abcdefghijklmnopqrstuvwxyz0123456789")
        self.term_chars = frozenset(term_chars)
        rank = _text_rank(freq)
        order = sorted(term_chars, key=rank.__getitem__)
        width = max(16, math.isqrt(len(order)) + 1)
        if len(order) > width * (ord(_WORD_HIGH) - _HIGH) or width > _LOW_END - _LOW:  # pragma: no cover
            raise ValueError("too many distinct characters in the terms (millions)")
        code: dict[str, str] = {}
        others = [ch for ch in order if not is_word_char(ch)]
        for i, ch in enumerate(others):
            code[ch] = chr(_HIGH + i // width) + chr(_LOW + i % width)
        # ASCII letters and digits share one group of their own, left out of the repeat collapse: doubled
        # letters and digits are spelling (pk100 is not pk10).
        for i, ch in enumerate(sorted(c for c in order if is_word_char(c))):
            code[ch] = _WORD_HIGH + chr(_LOW + i)
        self._encode = _encode_table(tables().match, code)
        self._code = code
        # Codes of ASCII letters and digits, for the whole-word test of Latin / digit terms.
        self._word_codes = frozenset(code[c] for c in code if is_word_char(c))
        if not by_key:
            return
        automaton = ahocorasick.Automaton()
        # Root children in order: the sentinel, then every term character's code by how common the
        # character is in text; the same order holds among the second symbols.
        automaton.add_word(SENTINEL_CODE + PLACEHOLDER, None)
        for ch in order:
            automaton.add_word(code[ch] + PLACEHOLDER, None)

        to_code = {ord(c): v for c, v in code.items()}

        def order_key(key: str) -> str:
            # Codes sort like the ranks of their characters: inserting in this order puts the common
            # characters first among the children of every node, not only the root's.
            return key[:4].translate(to_code)

        collapse = self.collapse_repeats
        # As with daachorse, the automaton also holds every doubled repeatable character (资资) that is no
        # key itself, valued `_DOUBLED`, so the first scan says where the runs are and no regex pass
        # (`_DUP_PAIR`, ~2.3 us per seed message) looks for one. A doubled character that is a key (妹妹)
        # keeps its entry; its hits are recognised by the entry and checked on the text (rare: one object may
        # be the entry of several keys).
        keys: dict[str, Entry | object] = dict(by_key)
        doubled_entries: set[int] = set()
        if collapse:
            for ch in others:
                entry = by_key.get(ch + ch)
                if entry is None:
                    keys[ch + ch] = _DOUBLED
                else:
                    doubled_entries.add(id(entry))
        for key in sorted(keys, key=order_key):
            automaton.add_word(key.translate(to_code), keys[key])
        automaton.make_automaton()
        self._automaton = automaton
        iterate = automaton.iter

        def scan(encoded: str) -> list[tuple[int, Entry]]:
            # Every hit is a real key's or a doubled character's: the root placeholder keys end in
            # PLACEHOLDER, which no coded text holds. (A collapsed text holds no doubled character.)
            return [h for h in iterate(encoded) if h[1] is not _DOUBLED]

        def raw(encoded: str) -> list[tuple[int, Any]]:
            return list(iterate(encoded))

        def runs_of(found: Any, encoded: str) -> tuple[list[tuple[int, Entry]], list[int]]:
            # By end, and every doubled character is 4 symbols long: also by start.
            doubled = [
                end - 3
                for end, value in found
                if value is _DOUBLED
                or (id(value) in doubled_entries and value.length == 2 and _DUP_PAIR.match(encoded, end - 3))
            ]
            if doubled:
                found = [h for h in found if h[1] is not _DOUBLED]
            return found, doubled

        self._scan, self._raw, self._runs_of = scan, raw, runs_of

    def _scan_first(self, encoded: str) -> tuple[list[tuple[int, Entry]], int]:
        """The first scan's hits and where the first doubled repeatable character starts (-1: none)."""
        hits, doubled = self._runs_of(self._raw(encoded), encoded)
        return hits, doubled[0] if doubled else -1

    def _outside(self, ch: str) -> str:
        """Code of a folded character past the translate table (CJK extension B and beyond)."""
        if self.unit == 1:
            return ch
        return self._code.get(ch, SENTINEL_CODE)

    def find(self, text: str, marked: str | None = None, found: Sequence[Any] | None = None) -> list[Hit]:
        """Selected hits in `text` (original offsets), in order of start. `marked`: the caller's `fold(text)`
        when it has it already; `found`: its `first_pass(marked)`, likewise."""
        if self._scan is None or not text:
            return []
        unit = self.unit
        coded = marked if marked is not None else marked_match(text, self._encode, self._outside)
        # The common case: `unit` symbols per original character and no invisible deleted character. Then
        # folded character i of segment k (the text split at the deleted characters) is original character
        # i + k: each split consumed one deleted character (`_place_plain`).
        plain = self._invisible not in coded and len(coded) == unit * len(text)
        if plain:
            encoded = coded.replace(self._visible, "")
        else:
            encoded = coded.replace(self._invisible, "").replace(self._visible, "")
        if not encoded:
            return []
        if found is None:
            found = self._raw(encoded)
        first, doubled = self._runs_of(found, encoded)
        collapsed: _Collapsed | None = None
        second: list[tuple[int, Entry]] = []
        if doubled and self.collapse_repeats:
            collapsed = _Collapsed(encoded, doubled, unit)
            second = self._scan(collapsed.text)
        if not first and not second:
            return []
        terms: list[Hit] = []
        allowed: list[tuple[int, int]] = []
        view: View | None = None
        if plain and first:
            first, view = self._place_plain(text, coded, first, terms, allowed)
        if first:
            if view is None:
                view = marked_view(text, coded, self._encode, self._outside, unit)
            for end, value in first:
                # Every folded character is `unit` symbols: symbol index unit*(k+1)-1 ends folded character k.
                stop = end // unit + 1
                self._consider(view, encoded, stop - value.length, stop, value, terms, allowed)
        if collapsed is not None:
            for end, value in second:
                start = end + 1 - unit * value.length
                where = collapsed.span(start, end + 1)
                if where is not None:
                    # Built only now: most texts with a doubled character (41 of the 167 seed messages on
                    # the 65k lexicon: 了了, 谢谢 …) have no hit across it, and the View was about a fifth
                    # of their `find` (~5 of ~27 us).
                    if view is None:
                        view = marked_view(text, coded, self._encode, self._outside, unit)
                    start, stop = where[0] // unit, where[1] // unit
                    self._consider(view, encoded, start, stop, value, terms, allowed)
        if allowed:
            terms = [h for h in terms if not any(a <= h[0] and h[1] <= b for a, b in allowed)]
        if len(terms) > 1:
            terms = select_leftmost_longest(terms)
        if not plain:
            # Only a text with an invisible character can hold a combining mark or a variation selector:
            # a span must not cut one off the character it belongs to (the keycap of 8️⃣, an accent).
            terms = [(s, grapheme_end(text, e), v) for s, e, v in terms]
        return terms

    def _place_plain(
        self,
        text: str,
        coded: str,
        hits: list[tuple[int, Entry]],
        terms: list[Hit],
        allowed: list[tuple[int, int]],
    ) -> tuple[list[tuple[int, Entry]], View | None]:
        """The common case of `find` (no invisible character deleted, `unit` symbols per character): map
        the hits of the first scan to the original without a View where they need no word test. Returns the
        hits left for the View (those of Latin / digit terms) and the View if one had to be built."""
        max_gap, unit = self.max_gap, self.unit
        view: View | None = None
        # Symbol offsets where each segment of the text split at its deleted characters starts (and the
        # end): symbol i of segment k is original character i // unit + k.
        bounds = list(accumulate(map(len, coded.split(self._visible)), initial=0))
        rest: list[tuple[int, Entry]] = []
        for end, value in hits:
            if value.word_start or value.word_end:
                rest.append((end, value))
                continue
            # Symbol index unit*(i+1)-1 ends folded character i; a key of n characters is unit*n symbols.
            start = end + 1 - unit * value.length
            k_start = bisect_right(bounds, start) - 1
            o_start = start // unit + k_start
            if end < bounds[k_start + 1]:
                # No deleted character inside the span (most hits): one look-up, no gap to measure.
                o_end = end // unit + k_start + 1
            else:
                k_end = bisect_right(bounds, end, k_start) - 1
                o_end = end // unit + k_end + 1
                # k_end - k_start deleted characters lie inside the span; only more than max_gap of them
                # can make a run of more than max_gap.
                if k_end - k_start > max_gap:
                    if view is None:
                        view = marked_view(text, coded, self._encode, self._outside, unit)
                    if view.max_visible_gap(o_start, o_end) > max_gap:
                        continue
            if value.allow:
                allowed.append((o_start, o_end))
            else:
                terms.append((o_start, o_end, value))
        return rest, view

    def _consider(
        self,
        view: View,
        encoded: str,
        start: int,
        end: int,
        value: Entry,
        terms: list[Hit],
        allowed: list[tuple[int, int]],
    ) -> None:
        # A Latin / digit end of a term must not continue a Latin / digit word (sb in sbc), unless a visible
        # separator stands between them in the original (sb-c is two words).
        words, unit = self._word_codes, self.unit
        glued_before = value.word_start and start > 0 and encoded[unit * (start - 1) : unit * start] in words
        if glued_before and not view.separated(view.orig(start - 1), view.orig(start)):
            return
        glued_after = value.word_end and encoded[unit * end : unit * (end + 1)] in words
        if glued_after and not view.separated(view.orig(end - 1), view.orig(end)):
            return
        o_start, o_end = view.span(start, end)
        if view.max_visible_gap(o_start, o_end) > self.max_gap:
            return
        if value.allow:
            allowed.append((o_start, o_end))
        else:
            terms.append((o_start, o_end, value))


def _merge(a: Entry, b: Entry) -> Entry:
    """One key listed twice (two categories, a term and an allowed phrase, a pinyin variant of two terms):
    an allowed phrase wins; otherwise the more severe term, then the first."""
    if a.allow or b.allow:
        return a if a.allow else b
    return b if b.severity < a.severity else a


def _text_rank(term_freq: Counter[str]) -> dict[str, int]:
    """Order of term characters by expected frequency in TEXT: common Chinese characters by their rank in
    `rules.charfreq`, ASCII letters and digits after the first few hundred, the rest by how many terms use
    them."""
    ranked: dict[str, int] = {}
    rest = len(COMMON_CHARS) + 100
    for i, (ch, _) in enumerate(sorted(term_freq.items(), key=lambda kv: (-kv[1], kv[0]))):
        if ch in RANK:
            ranked[ch] = RANK[ch]
        elif is_word_char(ch):
            ranked[ch] = 200 + ord(ch) % 64
        else:
            ranked[ch] = rest + i
    for ch in "0123456789abcdefghijklmnopqrstuvwxyz":
        ranked.setdefault(ch, 200 + ord(ch) % 64)
    return ranked


def _rank(hit: Hit) -> tuple[int, int, str]:
    """Earliest start, then longest, then the term (a fixed order for equal spans)."""
    return hit[0], hit[0] - hit[1], hit[2].term


def select_leftmost_longest(hits: Iterable[Hit]) -> list[Hit]:
    """Earliest start first, then longest, then most severe; drop what overlaps a selected hit.

    Selection runs per severity, most severe first, and a less severe hit is dropped where it overlaps a
    selected more severe one: a longer `warn` term must never hide the `block` term inside it.
    """
    pending = hits if isinstance(hits, list) else list(hits)
    if not pending:
        return []
    # Most texts' hits are already in order of start and overlap nowhere (the 65k lexicon over the seed
    # messages: 128 of the 146 texts with two or more hits): then every one of them is selected, and one
    # pass saying so is cheaper than the sort by `_rank`, a Python key call per hit (selection 1.2 -> 0.5
    # us per message).
    last = -1
    for hit in pending:
        if hit[0] < last:
            break
        last = hit[1]
    else:
        return pending
    level = pending[0][2].severity
    for hit in pending:
        if hit[2].severity != level:
            break
    else:  # the common case, one severity: plain leftmost-longest
        single: list[Hit] = []
        last = -1
        pending = sorted(pending, key=_rank)
        for hit in pending:
            if hit[0] >= last:
                single.append(hit)
                last = hit[1]
        return single
    levels = sorted({h[2].severity for h in pending})
    chosen: list[Hit] = []
    for level in levels:
        taken = [(h[0], h[1]) for h in chosen]
        last_end = -1
        ranked = sorted((h for h in pending if h[2].severity == level), key=_rank)
        for hit in ranked:
            if hit[0] >= last_end and not any(s < hit[1] and hit[0] < e for s, e in taken):
                chosen.append(hit)
                last_end = hit[1]
    chosen.sort(key=itemgetter(0))
    return chosen
