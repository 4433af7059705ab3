"""Text folding for matching, with a way back to the original offsets.

Two foldings are built once per process, one entry per code point, and applied with `str.translate`:

* the MATCH folding (word lists, allow list): every compatibility form to its NFKC form (full-width,
  circled ①⑴⒈, ⓕ, mathematical 𝐟 …), a few dingbat / squared forms NFKC leaves alone (❶ 🅰) by their
  Unicode name, digits of every script to ASCII, case folding, accents stripped (tóu → tou), a handful of
  Cyrillic / Greek letters that look Latin, and traditional → simplified Chinese, character by character,
  from OpenCC `t2s` (only its 1:1 results). DELETED: zero-width and format characters, combining marks,
  variation selectors, emoji modifiers and tags, control characters (all *invisible*), and whitespace,
  punctuation, symbols and emoji (all *visible*).
* the DETECT folding (contact detectors): the same letter / digit folding plus Chinese and financial
  numerals to digits (一 壹 幺 → 1); only invisible characters are deleted, punctuation stays so that
  URLs and e-mail addresses keep their shape.

Deleted characters are kept as markers in the translated text, one per original character, so that a match
can be mapped back to its span in the original text (`View`) and so that the matcher can cap how many
*visible* deleted characters may sit between two letters of a match (the policy's `max_gap`, see
`rules.matcher`). Invisible ones are never counted: a reader does not see them. Characters no rule is
written in (supplementary-plane letters, private use, unassigned) share one stand-in folding.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from itertools import accumulate
from operator import add

# Markers in the marked view: a deleted character becomes one of these (they are never a folded letter,
# because U+0000 / U+0001 are themselves control characters and therefore deleted).
INVISIBLE = "\x00"
VISIBLE = "\x01"


def strip_markers(marked: str) -> str:
    """The marked view without its deletion markers (str.replace is much faster than translate here)."""
    return marked.replace(INVISIBLE, "").replace(VISIBLE, "")


# The shared folding of characters kept as they are that no rule is written in (see `tables`).
OTHER = "\uffff"

# Code points below this are looked up in a list; the rare ones above (CJK extension B+, tags, variation
# selectors supplement) are folded one by one on a slower path.
TABLE_SIZE = 0x20000

_DIGIT_NAMES = {
    "ZERO": 0,
    "ONE": 1,
    "TWO": 2,
    "THREE": 3,
    "FOUR": 4,
    "FIVE": 5,
    "SIX": 6,
    "SEVEN": 7,
    "EIGHT": 8,
    "NINE": 9,
    "TEN": 10,
    "ELEVEN": 11,
    "TWELVE": 12,
    "THIRTEEN": 13,
    "FOURTEEN": 14,
    "FIFTEEN": 15,
    "SIXTEEN": 16,
    "SEVENTEEN": 17,
    "EIGHTEEN": 18,
    "NINETEEN": 19,
    "TWENTY": 20,
}
_NAME_DIGIT = re.compile(r"\b(?:DIGIT|NUMBER) (" + "|".join(_DIGIT_NAMES) + r")$")
_NAME_LETTER = re.compile(r"\bLATIN (?:CAPITAL |SMALL )?LETTER ([A-Z])$")

# Letters of other scripts that are drawn like Latin ones and that NFKC does not fold (after case folding).
HOMOGLYPHS = {
    "а": "a",
    "в": "b",
    "е": "e",
    "ё": "e",
    "к": "k",
    "м": "m",
    "н": "h",
    "о": "o",
    "р": "p",
    "с": "c",
    "т": "t",
    "у": "y",
    "х": "x",
    "і": "i",
    "ї": "i",
    "ј": "j",
    "ѕ": "s",
    "һ": "h",
    "ԁ": "d",
    "ԛ": "q",
    "ԝ": "w",
    "ӏ": "l",
    "ɡ": "g",
    "ɑ": "a",
    "ο": "o",
    "α": "a",
    "β": "b",
    "ε": "e",
    "ι": "i",
    "κ": "k",
    "ν": "v",
    "ρ": "p",
    "τ": "t",
    "υ": "u",
    "χ": "x",
    "ζ": "z",
    "η": "n",
    "μ": "u",
    "ɩ": "i",
    "ı": "i",
    "ȷ": "j",
}

# Characters that render as nothing although Unicode calls them letters or symbols (Hangul fillers,
# the braille blank, the Mongolian vowel separator) or that modify the emoji before them.
_INVISIBLE_EXTRA = {0x115F, 0x1160, 0x3164, 0xFFA0, 0x2800, 0x180E, 0x17B4, 0x17B5, 0x034F, 0x200B}
_SKIN_TONES = range(0x1F3FB, 0x1F400)

# Chinese and financial numerals (after t2s) read as digits by the contact detectors.
CHINESE_DIGITS = {
    "〇": "0",
    "零": "0",
    "洞": "0",
    "一": "1",
    "壹": "1",
    "幺": "1",
    "二": "2",
    "贰": "2",
    "两": "2",
    "三": "3",
    "叁": "3",
    "四": "4",
    "肆": "4",
    "五": "5",
    "伍": "5",
    "六": "6",
    "陆": "6",
    "七": "7",
    "柒": "7",
    "八": "8",
    "捌": "8",
    "九": "9",
    "玖": "9",
    "参": "3",  # 參 after t2s, written for 叁
}

_CJK_RANGES = (
    (0x3400, 0x4DC0),
    (0x4E00, 0xA000),
    (0xF900, 0xFB00),
    (0x20000, 0x2A6E0),
    (0x2A700, 0x2EBF0),
    (0x2F800, 0x2FA20),
    (0x30000, 0x323B0),
)


def is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp < hi for lo, hi in _CJK_RANGES)


def is_word_char(ch: str) -> bool:
    """ASCII letters and digits: the characters of a 'word' for whole-word matching of Latin terms."""
    return ch.isascii() and ch.isalnum()


@cache
def _t2s_map() -> dict[str, str]:
    """Traditional → simplified for every CJK code point, from OpenCC, keeping only 1:1 conversions.

    Converting each character on its own line avoids OpenCC's phrase table: this is character folding.
    """
    import opencc

    converter = opencc.OpenCC("t2s")
    found: dict[str, str] = {}
    # In chunks, so that the temporary strings never add up to much memory at once.
    for lo, hi in _CJK_RANGES:
        for start in range(lo, hi, 4096):
            chars = "".join(chr(cp) for cp in range(start, min(hi, start + 4096)))
            converted = converter.convert("\n".join(chars)).split("\n")
            if len(converted) != len(chars):  # pragma: no cover - OpenCC never merges lines
                raise RuntimeError("OpenCC t2s changed the number of lines")
            for src, dst in zip(chars, converted, strict=True):
                if src != dst and len(dst) == 1:
                    found[src] = dst
    return found


_WHITESPACE_CONTROLS = frozenset("\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85")


def _invisible(cp: int, cat: str) -> bool:
    """Deleted and not counted: format characters, combining marks, non-whitespace controls, fillers."""
    if cat in ("Cf", "Mn", "Me", "Mc"):
        return True
    if cat == "Cc":
        return chr(cp) not in _WHITESPACE_CONTROLS
    return cp in _INVISIBLE_EXTRA or cp in _SKIN_TONES


def _visible_deleted(cat: str) -> bool:
    return cat[0] in "ZPS" or cat == "Cc"


def _fold_letter(ch: str, t2s: dict[str, str]) -> str:
    """Fold one kept character that NFKC already produced: accents, homoglyphs, digits, t2s."""
    if ch.isascii():
        return ch
    if ch in t2s:
        return t2s[ch]
    cat = unicodedata.category(ch)
    if cat == "Nd":
        return str(unicodedata.decimal(ch))
    stripped = "".join(c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c))
    stripped = unicodedata.normalize("NFC", stripped) if stripped else ""
    if len(stripped) == 1:
        ch = stripped
    return HOMOGLYPHS.get(ch, ch)


def _by_name(ch: str) -> str | None:
    """Dingbat digits (❶ ➊ ⓫) and squared letters (🅰 🄰) that have no compatibility decomposition."""
    name = unicodedata.name(ch, "")
    if not name or "CJK" in name:
        return None
    m = _NAME_DIGIT.search(name)
    if m and ("CIRCLED" in name or "DINGBAT" in name or "SQUARED" in name or "KEYCAP" in name):
        return str(_DIGIT_NAMES[m.group(1)])
    m = _NAME_LETTER.search(name)
    if m and ("CIRCLED" in name or "SQUARED" in name or "PARENTHESIZED" in name):
        return m.group(1).lower()
    return None


_ENCLOSING = frozenset("().,")


def fold_code_point(cp: int, t2s: dict[str, str], *, detect: bool = False) -> str:
    """The folding of one code point.

    MATCH folding: the folded text, or INVISIBLE / VISIBLE for a deleted character.
    DETECT folding: the folded text, "" for an invisible (deleted) character, punctuation kept.
    """
    match, detected = fold_both(cp, t2s)
    return detected if detect else match


def fold_both(cp: int, t2s: dict[str, str]) -> tuple[str, str]:
    """(MATCH folding, DETECT folding) of one code point."""
    ch = chr(cp)
    if 0xD800 <= cp < 0xE000:  # lone surrogate: kept, matches nothing
        return ch, ch
    cat = unicodedata.category(ch)
    if cp in _INVISIBLE_EXTRA:
        return INVISIBLE, ""
    if cat == "Cn" or (
        cat == "Lo" and cp < 0x10000 and ch not in t2s and unicodedata.is_normalized("NFKC", ch)
    ):
        return ch, CHINESE_DIGITS.get(ch, ch)
    if _invisible(cp, cat):
        return INVISIBLE, ""
    named = _by_name(ch) if cat in ("So", "No") else None
    if named is not None:
        composed = named
    else:
        composed = unicodedata.normalize("NFKC", ch)
        composed = unicodedata.normalize("NFKC", composed.casefold())
    match: list[str] = []
    detected: list[str] = []
    saw_visible = False
    for c in composed:
        c_cat = unicodedata.category(c)
        if _invisible(ord(c), c_cat):
            continue
        if _visible_deleted(c_cat) and not c.isalnum():
            detected.append(c)
            saw_visible = True
            continue
        folded = _fold_letter(c, t2s)
        match.append(folded)
        detected.append(CHINESE_DIGITS.get(folded, folded))
    if match:
        folded = "".join(match)
        if saw_visible and folded.isdigit() and all(c.isdigit() or c in _ENCLOSING for c in composed):
            # An enclosed number (⑴ → "(1)", ⒈ → "1.", 🄂 → "1,") is a digit to the detectors too: its
            # brackets and dot are drawing, not punctuation that ends a phone number.
            return folded, folded
        return folded, "".join(detected)
    return (VISIBLE if saw_visible or _visible_deleted(cat) else INVISIBLE), "".join(detected)


@dataclass(frozen=True, slots=True)
class FoldTables:
    """Per-code-point folding lists for `str.translate` (index = code point, below TABLE_SIZE)."""

    match: list[str]
    detect: list[str]
    t2s: dict[str, str]


@cache
def tables() -> FoldTables:
    """Build both foldings once per process (about 0.15 s, ~12 MiB)."""
    t2s = _t2s_map()
    match: list[str] = []
    detect: list[str] = []
    cjk_lo, cjk_hi = 0x4E00, 0xA000
    for cp in range(TABLE_SIZE):
        if cjk_lo <= cp < cjk_hi or 0x3400 <= cp < 0x4DC0:
            # Unified ideographs: letters with no compatibility form; only t2s applies.
            ch = chr(cp)
            m = t2s.get(ch, ch)
            match.append(m)
            detect.append(CHINESE_DIGITS.get(m, m))
            continue
        m, d = fold_both(cp, t2s)
        unchanged = m == d == chr(cp) and m != TERM_SEPARATOR
        if unchanged and (cp >= 0x10000 or 0xD800 <= cp < 0xF900 or unicodedata.category(m) == "Cn"):
            # Kept as it is and in no script a rule is written in (supplementary-plane letters, private use,
            # surrogates, unassigned): one shared stand-in saves ~60k string objects and matches the same.
            m = d = OTHER
        match.append(m)
        detect.append(d)
    return FoldTables(match=match, detect=detect, t2s=t2s)


@lru_cache(maxsize=8192)  # bounded: the input decides which high code points show up
def _fold_high(cp: int, detect: bool) -> str:
    return fold_code_point(cp, tables().t2s, detect=detect)


def fold(text: str) -> str:
    """MATCH folding of a whole string with deleted characters removed: what terms are compiled from."""
    return strip_markers(marked_match(text, tables().match))


_HIGH_CHAR = re.compile("[\U00020000-\U0010ffff]")
_HIGH_SPLIT = re.compile("([\U00020000-\U0010ffff])")


# Joins terms for folding them in one call: a noncharacter that folds to itself (see `tables`).
TERM_SEPARATOR = "\ufdd2"


def fold_many(texts: list[str]) -> list[str]:
    """`fold` of each text, in one translate call for all of them (loading a 65k-term list)."""
    if not any(TERM_SEPARATOR in t for t in texts):
        folded = fold(TERM_SEPARATOR.join(texts)).split(TERM_SEPARATOR)
        if len(folded) == len(texts):
            return folded
    return [fold(t) for t in texts]  # pragma: no cover - a term holding the separator itself


def _has_high(text: str) -> bool:
    """Does `text` hold a code point past the lookup tables (CJK extension B+, tags …)? (A regex scan is
    several times faster than max().)"""
    return _HIGH_CHAR.search(text) is not None


def _same(ch: str) -> str:
    return ch


def marked_match(text: str, table: Sequence[str], outside: Callable[[str], str] = _same) -> str:
    """`text` folded with `table` (the MATCH folding or a table derived from it), deleted characters kept as
    the table's markers. `outside` gives the table's value for a folded character past the table."""
    if not _has_high(text):
        return text.translate(table)
    # Split around the high code points: the pieces between them still go through translate.
    pieces = _HIGH_SPLIT.split(text)
    for i in range(1, len(pieces), 2):
        pieces[i] = _high_through(pieces[i], table, outside)
    for i in range(0, len(pieces), 2):
        pieces[i] = pieces[i].translate(table)
    return "".join(pieces)


def _high_through(ch: str, table: Sequence[str], outside: Callable[[str], str]) -> str:
    folded = _fold_high(ord(ch), False)
    if folded == INVISIBLE:
        return table[0]  # U+0000 is invisible: the table's own marker for invisible characters
    if folded == VISIBLE:
        return table[0x20]  # the space is visible
    # A high code point's folding goes through the caller's table (which may code or replace letters).
    return "".join(table[ord(c)] if ord(c) < TABLE_SIZE else outside(c) for c in folded)


# In a CODED folding every original character becomes two symbols: a deleted one "\x00" + its marker
# (INVISIBLE or VISIBLE), a kept one the two-symbol code of each of its folded characters.
CODED_INVISIBLE = "\x00" + INVISIBLE
CODED_VISIBLE = "\x00" + VISIBLE


def strip_coded(coded: str) -> str:
    """A coded folding without its deleted characters."""
    return coded.replace(CODED_INVISIBLE, "").replace(CODED_VISIBLE, "")


@dataclass(slots=True)
class View:
    """The way back from a folded text to the original.

    `marks` has one character per ORIGINAL character: INVISIBLE / VISIBLE when it was deleted, anything
    else when kept. `orig(i)` gives the original index of folded character i.
    """

    marks: str
    # Either runs (folded start → original start) for 1:1 foldings, or an explicit per-character list.
    run_n: list[int]
    run_o: list[int]
    src: list[int] | None

    def orig(self, i: int) -> int:
        if self.src is not None:
            return self.src[i]
        k = bisect_right(self.run_n, i) - 1
        return self.run_o[k] + (i - self.run_n[k])

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original [start, end) of folded [start, end) (end > start)."""
        return self.orig(start), self.orig(end - 1) + 1

    def max_visible_gap(self, o_start: int, o_end: int) -> int:
        """The longest run of visible deleted characters inside the original span (invisible ones skipped)."""
        inner = self.marks[o_start:o_end]
        if VISIBLE not in inner:
            return 0
        inner = inner.replace(INVISIBLE, "")
        return max(len(run) for run in _VISIBLE_RUN.findall(inner))

    def separated(self, o_left: int, o_right: int) -> bool:
        """True if a visible deleted character lies strictly between two original positions."""
        return VISIBLE in self.marks[o_left + 1 : o_right]


_VISIBLE_RUN = re.compile(VISIBLE + "+")


def marked_view(
    text: str, marked: str, table: Sequence[str], outside: Callable[[str], str], unit: int = 1
) -> View:
    """The View of `text` given its folding with markers (`marked_match`), `unit` symbols per folded
    character: 1 for the MATCH folding itself (a deleted character is its marker), 2 for a CODED one (a
    deleted character is "\x00" + its marker)."""
    if len(marked) == unit * len(text):
        # One unit per original character. With unit 2 the first symbols say kept / deleted ("\x00"), the
        # second ones carry the marker of a deleted character; with unit 1 the markers are the deleted ones.
        # Split at deleted characters: segment j starts at folded index sum(len(seg[:j])) and at original
        # index that plus j (each split consumed one deleted character). All of it runs in C.
        if unit == 2:
            marks = marked[1::2]
            segments = marked[::2].split("\x00")
        else:
            marks = marked
            segments = marked.replace(VISIBLE, INVISIBLE).split(INVISIBLE)
        segments.pop()
        run_n = list(accumulate(map(len, segments), initial=0))
        run_o = list(map(add, run_n, range(len(run_n))))
        return View(marks, run_n, run_o, None)
    # Some character folds to several (㎏ → kg, ß → ss): map character by character.
    mark_list: list[str] = []
    src: list[int] = []
    for i, ch in enumerate(text):
        folded = marked_match(ch, table, outside)
        if (folded[0] == "\x00") if unit == 2 else (folded in (INVISIBLE, VISIBLE)):
            mark_list.append(folded[-1])
            continue
        mark_list.append("k")
        src.extend([i] * (len(folded) // unit))
    return View("".join(mark_list), [], [], src)


@dataclass(slots=True)
class DetectView:
    """The DETECT folding of a text and the original index of each of its characters."""

    text: str
    src: list[int]

    def span(self, start: int, end: int) -> tuple[int, int]:
        return self.src[start], self.src[end - 1] + 1


# An entry of the paired table for a character whose foldings are not one character each.
_UNPAIRED = "\x02"


@cache
def paired_table() -> list[str]:
    """Both foldings of every code point side by side: its MATCH folding (a marker when deleted) and its
    DETECT folding (INVISIBLE when deleted), two characters; `_UNPAIRED` (one character) where either
    folding is several characters. Equal pairs are one object (~5 MiB, ~30 ms once per process)."""
    t = tables()
    shared: dict[str, str] = {}
    out: list[str] = []
    for m, d in zip(t.match, t.detect, strict=True):
        if len(m) == 1 and len(d) <= 1:
            pair = m + (d or INVISIBLE)
            out.append(shared.setdefault(pair, pair))
        else:
            out.append(_UNPAIRED)
    return out


def fold_paired(text: str) -> tuple[str, str] | None:
    """`(marked_match(text, tables().match), detect_text(text))` from ONE `str.translate`, or None when a
    character folds to several or lies past the tables. (Measured on the seed messages: one translate with
    two-character entries and two slices cost ~7.3 us per 200 characters, two translates and their
    `_has_high` checks ~11.9 us.)"""
    both = text.translate(paired_table())
    # Every entry is two characters but `_UNPAIRED`; a code point past the table is left as it is (one).
    if len(both) != 2 * len(text):
        return None
    detected = both[1::2]
    if INVISIBLE in detected:
        detected = detected.replace(INVISIBLE, "")
    return both[::2], detected


@cache
def detect_column() -> list[str]:
    """The DETECT folding of every code point as one character: INVISIBLE when deleted, `_UNPAIRED` where it
    is several characters (the second half of `paired_table`'s entries)."""
    return [d if len(d) == 1 else INVISIBLE if not d else _UNPAIRED for d in tables().detect]


@cache
def _joined_base(paired: bool, fill: str) -> list[str]:
    """`paired_table()` (paired) or `detect_column()` with `fill` after every entry (`_UNPAIRED` stays)."""
    base, width = (paired_table(), 2) if paired else (detect_column(), 1)
    shared: dict[str, str] = {}
    out: list[str] = []
    for entry in base:
        if len(entry) == width and entry != _UNPAIRED:  # (no code point's DETECT folding is "\x02")
            joined = entry + fill
            out.append(shared.setdefault(joined, joined))
        else:
            out.append(_UNPAIRED)
    return out


def joined_table(paired: bool, column: Sequence[str], fill: str) -> list[str]:
    """`paired_table()` (paired) or `detect_column()` with one more character per code point: `column[cp]`,
    `fill` past its end. (A rule set's own coding, such as its homophones', then comes from the same
    `str.translate` as the foldings: `RuleSet.scan`.) Only the code points whose character is not `fill`
    are built here (~5 ms); the rest is one table per process (~40 ms, built with the first rules)."""
    base, width = (paired_table(), 2) if paired else (detect_column(), 1)
    out = list(_joined_base(paired, fill))
    for cp, ch in enumerate(column):
        if ch != fill:
            entry = base[cp]
            if len(entry) == width and entry != _UNPAIRED:
                out[cp] = entry + ch
    return out


def detect_text(text: str) -> str:
    """DETECT folding without offsets (a cheap first look)."""
    t = tables()
    if not _has_high(text):
        return text.translate(t.detect)
    return "".join(_detect_char(c, t) for c in text)


def _detect_char(ch: str, t: FoldTables) -> str:
    cp = ord(ch)
    return t.detect[cp] if cp < TABLE_SIZE else _fold_high(cp, True)


def detect_view(text: str) -> DetectView:
    t = tables()
    folded = detect_text(text)
    if len(folded) == len(text):
        return DetectView(folded, list(range(len(text))))
    pieces: list[str] = []
    src: list[int] = []
    for i, ch in enumerate(text):
        f = _detect_char(ch, t)
        pieces.append(f)
        src.extend([i] * len(f))
    return DetectView("".join(pieces), src)


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
