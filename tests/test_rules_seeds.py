"""The false-positive bar: every sentence of the seed documents that contains none of the default terms
literally (after traditional → simplified) passes the default rule set."""

from __future__ import annotations

import re
from pathlib import Path

import opencc
import pytest

from rules import DEFAULT_DIR, RuleSet, load_rules

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"
SENTENCE_END = re.compile(r"[。！？!?\n]+")
# Contact details the seed pages really carry (a site's report hotline and e-mail): found, and only warned.
REAL_CONTACTS = {"18221406898", "xshrcw@qq.com"}


def default_terms() -> list[str]:
    terms: list[str] = []
    for path in sorted((DEFAULT_DIR / "words").glob("*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            term = line.split("#", 1)[0].strip()
            if term:
                terms.append(term.lower())
    return terms


def seed_sentences() -> list[str]:
    files = sorted(SEEDS.glob("*.txt"))
    if not files:
        pytest.skip(f"no seed documents in {SEEDS}")
    return [s for f in files for s in SENTENCE_END.split(f.read_text(encoding="utf-8")) if s.strip()]


def test_seed_sentences_without_default_terms_pass() -> None:
    rules: RuleSet = load_rules()
    t2s = opencc.OpenCC("t2s")
    terms = default_terms()
    checked = 0
    failures: list[tuple[str, object]] = []
    for sentence in seed_sentences():
        simplified = t2s.convert(sentence).lower()
        if any(term in simplified for term in terms):
            continue
        checked += 1
        result = rules.scan(sentence)
        words = [m for m in result.matches if m.category != "contact"]
        contacts = {m.text for m in result.matches if m.category == "contact"}
        if result.action == "block" or words or not contacts <= REAL_CONTACTS:
            failures.append((sentence, result.to_json()))
    assert checked > 400
    assert failures == []


def test_seed_sentences_with_terms_are_found() -> None:
    rules = load_rules()
    text = "\n".join(seed_sentences())
    found = {(m.category, m.term) for m in rules.scan(text).matches}
    # the handbook's own red-line words (金融, 投资) are intercepted
    assert ("finance", "金融") in found and ("finance", "投资") in found
