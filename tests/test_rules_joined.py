"""With homophones and contact detectors, `RuleSet.scan` takes the homophones' coding of the text from the
same `str.translate` as the foldings (`rules.normalize.joined_table`). It gives exactly the results of
separate translates: both ways compared on every seed message, known homophone evasions, contact details and
characters that fold to several or lie past the tables (those take the separate way)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from rules import RuleSet, load_rules
from rules.engine import available

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"

TEXTS = [
    "加我菠菜平台",
    "涩情视频，澀情直播",
    "欢迎头资，名额有限，投咨项目",
    "专业刷蛋，日结 vx：abc_12345",
    "稳赚不陪？加微信 138 0013 8000",
    "来玩百佳乐 ㎏ ß 𠀀 投资",  # ㎏ and ß fold to two letters: the separate way
    "头\u200b资，引导文章，肚子",
    "投投资资 菠菜 😀 \U0001f600\ufe0f 8\ufe0f\u20e3",
    "",
    "a",
]


def seed_texts() -> list[str]:
    texts: list[str] = []
    for path in sorted(SEEDS.glob("*.txt")):
        text = path.read_text(encoding="utf-8", errors="replace")
        texts.extend(text[i : i + 200] for i in range(0, len(text), 200))
    return texts


@pytest.mark.parametrize("engine", available())
def test_joined_translate_gives_the_same_scans(engine: str) -> None:
    joined = load_rules(engine=engine)
    assert joined._homophones is not None and joined._joined is not None  # the shipped rules use it
    separate: RuleSet = copy.copy(joined)
    separate._joined = None
    for text in TEXTS + seed_texts():
        assert joined.scan(text) == separate.scan(text), text
    assert any(m.term == "博彩" for m in joined.scan("加我菠菜平台").matches)


# Texts that pass a first look but hold nothing (digits that are no phone, a dot that is no domain, a
# keyword without an id), one thing each, and nothing at all.
NEAR_MISSES = [
    "订单号 13800138000 已发货",
    "价格 1380013800 元",
    "官网 example.c 见",
    "加微信哦，谢谢",
    "QQ 群满了",
    "邮箱 @ 我",
    "https:// 空",
    "投资",
    "头资",
    "tou zi",
    "138 0013 8000",
    "谢谢谢谢",
    "投投资资",
    "三黄片",
    "新品到店（甲乙号丙号丁），欢迎来门店试穿",
]


@pytest.mark.parametrize("engine", available())
def test_quiet_shortcut_gives_the_same_scans(engine: str) -> None:
    """`RuleSet.scan` answers a text in which neither automaton nor any detector's first look finds
    anything without the rest of the scan: the same results as the long way, on every kind of text."""
    rules = load_rules(engine=engine)
    long: RuleSet = copy.copy(rules)
    long._shortcut = False
    texts = TEXTS + NEAR_MISSES + seed_texts()
    flagged = 0
    for text in texts:
        result = rules.scan(text)
        assert result == long.scan(text), text
        flagged += bool(result.matches)
    assert flagged >= 10  # the corpus has texts with findings, so a shortcut that drops them fails here
