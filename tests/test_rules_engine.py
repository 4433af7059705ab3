"""The optional daachorse engine gives exactly pyahocorasick's results (`rules.engine`).

Both engines compile the same rules; every scan is compared whole (`ScanResult`: action, spans, terms,
categories), and so are the word matcher's raw hits in the order the rest of the scan reads them. Texts:
every 200-character piece and every line of the seed documents, adversarial strings built from the terms
(separators, invisible characters, repeats, traditional / full-width / circled forms, combining marks,
characters past the folding tables, Latin words around Latin terms), over the shipped rules and over a
slice of the 65k benchmark lexicon.
"""

from __future__ import annotations

import copy
import random
from pathlib import Path

import opencc
import pytest

from rules import DEFAULT_DIR, RuleSet, RulesInvalid, load_rules
from rules.engine import DAACHORSE, ENGINE_ENV, PYAHOCORASICK, available, choose
from rules.normalize import marked_match

pytest.importorskip("daachorse", reason="the optional engine (siyu-guard[fast]) is not installed")

SHARED = Path(__file__).resolve().parents[2] / "shared"
SEEDS = SHARED / "seeds"
LEXICON = SHARED / "bench" / "lexicon-65k.txt"
LEXICON_STEP = 7  # every 7th term of the benchmark lexicon: ~9,300 terms


def seed_texts() -> list[str]:
    files = sorted(SEEDS.glob("*.txt"))
    if not files:
        pytest.skip(f"no seed documents in {SEEDS}")
    texts: list[str] = []
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        texts.extend(text[i : i + 200] for i in range(0, len(text), 200))
        texts.extend(line for line in text.splitlines() if line.strip())
    return texts


SEPARATORS = [
    " ",
    "-",
    "*",
    "。",
    "，",
    "..",
    " - ",
    "💰",
    "\u200b",
    "\u200b\u200b",
    "\ufe0f",
    "\u0301",
    "、、、、",
]
NOISE = [
    "a",
    "x1",
    "abc",
    "123",
    "𠀀",
    "𪚥",
    "\U000e0041",
    "①",
    "Ａ",
    "㎏",
    "ß",
    "８",
    "的",
    "了",
    "\n",
    "🇨🇳",
]


def adversarial(terms: list[str], count: int, seed: int) -> list[str]:
    """Strings that exercise every path of the scan: each term written whole, split by separators and
    invisible characters, with stuttered letters, in traditional, full-width and upper-case forms, glued to
    Latin letters and digits, among characters the folding tables do not hold."""
    rng = random.Random(seed)
    s2t = opencc.OpenCC("s2t")
    out: list[str] = []
    for _ in range(count):
        parts: list[str] = []
        for _ in range(rng.randint(1, 6)):
            term = rng.choice(terms)
            how = rng.randrange(8)
            if how == 1:
                term = rng.choice(SEPARATORS).join(term)
            elif how == 2:
                term = "".join(c * rng.choice((1, 1, 2, 3)) for c in term)
            elif how == 3:
                term = s2t.convert(term)
            elif how == 4:
                term = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in term.upper())
            elif how == 5:
                term = rng.choice(NOISE) + term + rng.choice(NOISE)
            elif how == 6:
                cut = rng.randint(0, len(term))
                term = term[:cut] + rng.choice(SEPARATORS + NOISE) + term[cut:]
            parts.append(term)
            parts.append(rng.choice(["", "", *SEPARATORS, *NOISE]))
        out.append("".join(parts))
    return out


def raw_hits(rules: RuleSet, text: str) -> tuple[list[tuple[int, str]], int]:
    """The first scan's hits as (folded end, term), in the engine's order, and where the first run of a
    repeated character starts (folded index, -1 for none)."""
    m = rules._matcher
    if m._scan_first is None:
        return [], -1
    folded = marked_match(text, m._encode, m._outside).replace(m._invisible, "").replace(m._visible, "")
    hits, dup = m._scan_first(folded)
    return [(end // m.unit, entry.term) for end, entry in hits], dup // m.unit


def the_long_way(rules: RuleSet) -> RuleSet:
    """The rule set without `scan`'s quiet-text shortcut."""
    long = copy.copy(rules)
    long._shortcut = False
    return long


def compare(a: RuleSet, b: RuleSet, texts: list[str]) -> None:
    assert (a.engine, b.engine) == (PYAHOCORASICK, DAACHORSE)
    long_a, long_b = the_long_way(a), the_long_way(b)
    for text in texts:
        result = a.scan(text)
        assert result == b.scan(text), text
        assert result == long_a.scan(text) == long_b.scan(text), text
        assert a._matcher.find(text) == b._matcher.find(text), text
        assert raw_hits(a, text) == raw_hits(b, text), text


@pytest.fixture(scope="module")
def shipped() -> tuple[RuleSet, RuleSet]:
    return load_rules(engine=PYAHOCORASICK), load_rules(engine=DAACHORSE)


@pytest.fixture(scope="module")
def lexicon(tmp_path_factory: pytest.TempPathFactory) -> tuple[RuleSet, RuleSet, list[str]]:
    if not LEXICON.is_file():
        pytest.skip(f"no benchmark lexicon at {LEXICON}")
    lines = LEXICON.read_text(encoding="utf-8").splitlines()
    # Terms the checker accepts (no single Latin letter, not punctuation only).
    terms = [t.strip() for t in lines[::LEXICON_STEP] if len(t.strip()) > 1 and any(c.isalnum() for c in t)]
    root = tmp_path_factory.mktemp("lexicon")
    (root / "words").mkdir()
    (root / "words" / "lexicon.txt").write_text("\n".join(terms) + "\n", encoding="utf-8")
    (root / "allow.txt").write_text("\n".join(terms[5::50]) + "\n", encoding="utf-8")
    return load_rules(root, engine=PYAHOCORASICK), load_rules(root, engine=DAACHORSE), terms


def test_engine_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    assert available() == [PYAHOCORASICK, DAACHORSE]
    monkeypatch.delenv(ENGINE_ENV, raising=False)
    assert choose() == DAACHORSE  # installed: chosen
    monkeypatch.setenv(ENGINE_ENV, "pyahocorasick")
    assert choose() == PYAHOCORASICK
    assert load_rules().summary()["engine"] == PYAHOCORASICK
    monkeypatch.setenv(ENGINE_ENV, "hyperscan")
    with pytest.raises(ValueError, match="GUARD_SCAN_ENGINE"):
        choose()
    with pytest.raises(RulesInvalid, match="GUARD_SCAN_ENGINE='hyperscan'"):
        load_rules()  # a line like any other problem of the rules, no traceback


def test_seed_messages_shipped_rules(shipped: tuple[RuleSet, RuleSet]) -> None:
    compare(*shipped, seed_texts())


def test_seed_messages_lexicon(lexicon: tuple[RuleSet, RuleSet, list[str]]) -> None:
    a, b, _ = lexicon
    texts = seed_texts()
    assert sum(1 for t in texts if a.scan(t).matches) > len(texts) // 5  # the slice does match
    compare(a, b, texts)


def test_adversarial_shipped_rules(shipped: tuple[RuleSet, RuleSet]) -> None:
    # The word lists and the allow list (a phrase around a term cancels it).
    files = [*sorted((DEFAULT_DIR / "words").glob("*.txt")), DEFAULT_DIR / "allow.txt"]
    lines = [line.split("#", 1)[0].strip() for f in files for line in f.read_text("utf-8").splitlines()]
    compare(*shipped, adversarial([t for t in lines if t], 3000, seed=13))


def test_adversarial_lexicon(lexicon: tuple[RuleSet, RuleSet, list[str]]) -> None:
    a, b, terms = lexicon
    compare(a, b, adversarial(terms, 3000, seed=65))


def test_edge_texts(shipped: tuple[RuleSet, RuleSet]) -> None:
    texts = [
        "",
        " ",
        "\u200b",
        "投",
        "投资" * 200,
        "资" * 50,
        "投\u200b资",
        "ａｂｃ",
        "𠀀投资𠀀",
        "\x00\x01投资",
    ]
    # The pyahocorasick coding's own symbols (sentinel, placeholder, private use) as input.
    texts += ["\ufdd0\ufdd1投资", "\ue000\uf000\uefff", "赌\ufdd1博"]
    compare(*shipped, texts)


def test_homophones_without_exclusions() -> None:
    """The pinyin matcher of the shipped rules on both engines, with no exclusion phrase to hide a hit."""
    from rules.homophones import Homophone, Homophones

    terms = [
        Homophone(line, line, category, "warn")
        for category in ("finance", "gambling", "porn", "fraud")
        for line in (DEFAULT_DIR / "words" / f"{category}.txt").read_text("utf-8").split()
        if not line.startswith("#")
    ]
    pya, daa = Homophones(terms, engine=PYAHOCORASICK), Homophones(terms, engine=DAACHORSE)
    extra = ["菠菜网站", "涩情服务", "投咨理财", "代款秒批", "博采 菠菜", "头资头资", "菠菜菠菜菠菜"]
    texts = [*seed_texts(), *extra]
    hits = 0
    for text in texts:
        found = pya.find(text)
        assert found == daa.find(text), text
        hits += len(found)
    assert hits > 20
