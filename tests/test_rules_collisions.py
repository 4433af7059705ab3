"""Collisions across word boundaries (rules/collisions.py): two ordinary words side by side, split by a
separator, that spell a term (黄金，融化后 → 金融) pass; the same letters standing alone (金，融产品) still
block, with the exact original span."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules import RuleSet, load_rules
from rules.collisions import (
    MAX_WORD,
    MIN_FREQ,
    Collisions,
    WordList,
    dictionary_path,
    read_words,
    shared_words,
)

RULES: RuleSet = load_rules()


def found(text: str) -> list[tuple[str, int, int, str]]:
    return [(m.term, m.start, m.end, m.text) for m in RULES.scan(text).matches if m.action == "block"]


# Each character of the hit belongs to a longer word on its side of the separator: nothing blocks.
COLLISIONS = [
    ("黄金，融化后再加工", "金融"),  # 黄金 | 融化
    ("这款有好几种颜色，情侣款也有", "色情"),  # 颜色 | 情侣
    ("门店管理、财务报销都归她", "理财"),  # 管理 | 财务
    ("买了一套，现金支付", "套现"),  # 一套 | 现金
    ("冬季外套，现货速发", "套现"),  # 外套 | 现货
    ("物理，财经，历史都有", "理财"),  # 物理 | 财经
    ("孩子的心理、财富观念", "理财"),  # 心理 | 财富
    ("今年流行金色，情调满满", "色情"),  # 金色 | 情调
    ("大红色，情人节限定", "色情"),  # 红色 | 情人节
    ("请确保，本周内完成", "保本"),  # 确保 | 本周
    ("电动牙刷，单价两百", "刷单"),  # 牙刷 | 单价
    ("大家上网，赌场那种地方别去", "网赌"),  # 上网 | 赌场
    ("黄金 。融化后", "金融"),  # any visible separators, up to the gap cap
    ("黃金，融化後再加工", "金融"),  # traditional characters fold first
]


@pytest.mark.parametrize(("text", "term"), COLLISIONS)
def test_collision_passes(text: str, term: str) -> None:
    # Without the post-filter the term matches: the example is a real collision, not a miss of the matcher.
    raw = [h[2].term for h in RULES._matcher.find(text)]
    assert term in raw
    assert found(text) == []


# The letters stand alone on at least one side (or are hidden on purpose): the hit blocks, span exact.
STANDALONE = [
    ("金，融产品", [("金融", 0, 3, "金，融")]),
    ("色，情服务", [("色情服务", 0, 5, "色，情服务")]),
    ("理，财产品", [("理财产品", 0, 5, "理，财产品")]),
    ("买黄金，融产品", [("金融", 2, 5, "金，融")]),  # 黄金 is a word, 融产 is none
    ("颜色，情服务", [("色情服务", 1, 6, "色，情服务")]),  # nothing after 情服务
    ("投，资料已发", [("投资", 0, 3, "投，资")]),  # 投 alone
    ("稳，赚，不赔", [("稳赚不赔", 0, 6, "稳，赚，不赔")]),  # a piece between two separators
    ("黄金\u200b融化", [("金融", 1, 4, "金\u200b融")]),  # invisible: hidden on purpose
    ("看 金 融", [("金融", 2, 5, "金 融")]),
    ("黄金金融", [("金融", 2, 4, "金融")]),  # written as listed: the filter never looks
    ("本次投资资金已到位", [("投资", 2, 4, "投资")]),
    ("投投资资", [("投资", 0, 4, "投投资资")]),
    ("网，赌平台", [("网赌", 0, 3, "网，赌")]),
    ("刷，单返利", [("刷单返利", 0, 5, "刷，单返利")]),
]


@pytest.mark.parametrize(("text", "expected"), STANDALONE)
def test_standalone_blocks_with_exact_span(text: str, expected: list[tuple[str, int, int, str]]) -> None:
    assert found(text) == expected


def test_dictionary_keeps_frequent_chinese_words(tmp_path: Path) -> None:
    words = tmp_path / "dict.txt"
    words.write_text(
        "黄金 3086 n\n融化 327 v\n怪融 19 n\n怪化 2 n\nusdt 500 eng\n金 900 n\n"
        "一石二鸟 40 i\n一石二鸟飞 40 i\n",
        "utf-8",
    )
    # rare (怪融), not Chinese (usdt), one character (金), longer than MAX_WORD (一石二鸟飞) are left out
    assert (MAX_WORD, MIN_FREQ) == (4, 20)
    kept = read_words(words)
    assert len(kept) == 3 and all(w in kept for w in ("黄金", "融化", "一石二鸟"))
    assert not any(w in kept for w in ("怪融", "怪化", "usdt", "金", "一石二鸟飞", "黄", "金融", "", 3))
    collisions = Collisions(read_words(words))
    assert collisions.collides("黄金，融化", 1, 4)
    assert not collisions.collides("金，融化", 0, 3)
    assert not collisions.collides("黄金，融", 1, 4)


def test_jieba_dictionary_is_read_once_without_importing_jieba() -> None:
    import sys

    path = dictionary_path()
    assert path is not None and path.name == "dict.txt" and path.parent.name == "jieba"
    assert shared_words() is shared_words()
    assert all(w in shared_words() for w in ("黄金", "融化", "颜色", "情侣", "管理", "财务", "一套", "现金"))
    assert 60_000 < len(shared_words()) < 80_000
    assert "jieba" not in sys.modules


def test_ordinary_hits_pay_one_comparison() -> None:
    collisions = Collisions(WordList(()))
    hits = RULES._matcher.find("投资理财")
    assert collisions.keep("投资理财", hits) is hits
