"""Collisions across word boundaries: two ordinary words side by side that spell a term.

The matcher sees through punctuation (`投，资` is 投资), so `黄金，融化后` holds 金融, `颜色，情侣款` 色情,
`管理、财务` 理财 and `一套，现在` 套现 — yet nobody reads those terms there: 金 ends the word 黄金 and 融
starts 融化. A hit is such a COLLISION when visible separators (punctuation, spaces, symbols) split it into
exactly two pieces, the first piece ends a dictionary word that starts before the hit and the last piece
starts a dictionary word that ends after it: every character of the hit belongs to a longer word of the
surrounding text. Where a piece stands alone (`金，融产品`: no word 融产 / 融产品; `色，情服务`), lies between
two separators (`稳，赚，不赔`), or the hit holds an invisible character (`金\\u200b融`), a Latin letter or a
digit, the hit stays.

Only hits whose original span is longer than their key are looked at (something was deleted inside the
span): a hit written as it is listed costs one comparison. Hits without a separator (`感情色彩` → 情色) are
left to the allow list: a dictionary split of a plainly written term is too easy to get wrong.

The dictionary is the frequent words of jieba's word list (`jieba/dict.txt`, read as a file: jieba itself
is never imported): all-Chinese words of two to four characters counted at least 20 times, about 71,000 of
its 349,000 (rare words and names never turn a hit into a collision). It is read once per process, when the
first rule set is built (~0.1 s, under 1 MiB: `WordList`), and shared by every rule set after it, reloads
included.
"""

from __future__ import annotations

import importlib.util
import re
import threading
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rules.normalize import INVISIBLE, VISIBLE, tables

# The longest dictionary word considered (so at most MAX_WORD - 1 characters of context are read on each
# side of a hit), and the least count in jieba's dictionary a word needs.
MAX_WORD = 4
MIN_FREQ = 20
# A line of a word of 2..MAX_WORD Chinese characters; the count is checked by the regex too, so that only the
# kept words are ever built as Python objects (a list of all 349,000 lines would grow the heap for good).
_WORD_LINE = re.compile(
    r"^([\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]{2,4}) (?:[2-9]\d|\d{3,}) ", re.M
)  # {2,4}: MAX_WORD; [2-9]\d|\d{3,}: MIN_FREQ


class WordList:
    """A set of words kept as the sorted array of their hashes (8 bytes a word: ~0.6 MiB for jieba's 71,000
    frequent words, where a set of strings costs ~10 MiB that the process would keep). Membership is a
    binary search; two words sharing a 64-bit hash are as good as impossible among so few."""

    __slots__ = ("_hashes",)

    def __init__(self, words: Iterable[str]) -> None:
        self._hashes = array("q", sorted(set(map(hash, words))))

    def __contains__(self, word: object) -> bool:
        if not isinstance(word, str):
            return False
        h = hash(word)
        hashes = self._hashes
        i = bisect_left(hashes, h)
        return i < len(hashes) and hashes[i] == h

    def __len__(self) -> int:
        return len(self._hashes)


_shared: WordList | None = None
_shared_lock = threading.Lock()


def _is_han(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" or "\uf900" <= ch <= "\ufaff"


def dictionary_path() -> Path | None:
    """jieba's dict.txt, found without importing jieba (None when jieba is not installed)."""
    spec = importlib.util.find_spec("jieba")
    if spec is None or spec.origin is None:  # pragma: no cover - jieba is a dependency
        return None
    path = Path(spec.origin).parent / "dict.txt"
    return path if path.is_file() else None


def read_words(path: Path) -> WordList:
    """The all-Chinese words of 2..MAX_WORD characters of a jieba-format dictionary (`word freq [tag]` a
    line) counted at least MIN_FREQ times."""
    return WordList(_frequent_words(path))


def _frequent_words(path: Path) -> Iterator[str]:
    # Read in small pieces: a 10 MB string of the whole file would stay in the process's heap for good.
    with path.open(encoding="utf-8") as f:
        rest = ""
        while chunk := f.read(1 << 14):
            chunk = rest + chunk
            cut = chunk.rfind("\n") + 1
            yield from _WORD_LINE.findall(chunk[:cut])
            rest = chunk[cut:]
        yield from _WORD_LINE.findall(rest)


def shared_words() -> WordList:
    """jieba's frequent words, read once per process (empty when jieba is not installed)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            path = dictionary_path()
            _shared = read_words(path) if path is not None else WordList(())
        return _shared


class Collisions:
    """The post-filter of one rule set: `keep(text, hits)` drops the hits that are collisions."""

    __slots__ = ("_fold", "words")

    def __init__(self, words: WordList) -> None:
        self.words = words
        self._fold = tables().match

    @classmethod
    def shared(cls) -> Collisions:
        """The post-filter over jieba's frequent words (read at the first call in a process)."""
        return cls(shared_words())

    def _folded(self, ch: str) -> str:
        o = ord(ch)
        return self._fold[o] if o < len(self._fold) else ch

    def collides(self, text: str, start: int, end: int) -> bool:
        """Is the hit at text[start:end] two words' neighbouring ends (see the module doc)?"""
        words = self.words
        if not words:
            return False
        fold = self._folded
        pieces: list[str] = [""]
        for ch in text[start:end]:
            f = fold(ch)
            if f == VISIBLE:
                if pieces[-1]:
                    pieces.append("")
            elif f == INVISIBLE or not _is_han(ch) or len(f) != 1:
                return False  # deliberately hidden, or not plain Chinese: never a collision
            else:
                pieces[-1] += f
        if len(pieces) != 2 or not pieces[1]:
            return False
        first, last = pieces
        left: list[str] = []
        i = start - 1
        while i >= 0 and len(left) < MAX_WORD - 1 and _is_han(text[i]):
            left.append(fold(text[i]))
            i -= 1
        before = "".join(reversed(left))
        if not any(before[-k:] + first in words for k in range(1, len(before) + 1)):
            return False
        after: list[str] = []
        j = end
        while j < len(text) and len(after) < MAX_WORD - 1 and _is_han(text[j]):
            after.append(fold(text[j]))
            j += 1
        behind = "".join(after)
        return any(last + behind[:k] in words for k in range(1, len(behind) + 1))

    def keep(self, text: str, hits: list[Any]) -> list[Any]:
        """`hits` (start, end, entry with `.length`) without the collisions; the same list when a hit spans
        just its key's characters (the cheap test that every hit pays)."""
        for s, t, e in hits:
            if t - s != e.length:
                break
        else:
            return hits
        return [h for h in hits if h[1] - h[0] == h[2].length or not self.collides(text, h[0], h[1])]
