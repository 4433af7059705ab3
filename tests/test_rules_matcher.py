"""Matching: leftmost-longest, allow list, whole words, pinyin switch, repeat collapse, bad input."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from rules import RuleSet, load_rules


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return load_rules()


def make_rules(tmp_path: Path, words: dict[str, str], allow: str = "", policy: str | None = None) -> RuleSet:
    (tmp_path / "words").mkdir(exist_ok=True)
    for category, body in words.items():
        (tmp_path / "words" / f"{category}.txt").write_text(body, encoding="utf-8")
    (tmp_path / "allow.txt").write_text(allow, encoding="utf-8")
    if policy is not None:
        (tmp_path / "policy.toml").write_text(policy, encoding="utf-8")
    return load_rules(tmp_path)


def spans(rules: RuleSet, text: str) -> list[tuple[str, str, int, int]]:
    return [(m.category, m.term, m.start, m.end) for m in rules.scan(text).matches]


def test_leftmost_longest_prefers_the_longer_term(rules: RuleSet) -> None:
    assert spans(rules, "这是投资机会") == [("finance", "投资机会", 2, 6)]
    assert spans(rules, "稳赚不赔") == [("finance", "稳赚不赔", 0, 4)]


def test_leftmost_longest_own_selection(tmp_path: Path) -> None:
    r = make_rules(tmp_path, {"a": "abcd\nbcdef\nxy\n", "b": "cd\n"})
    # abcd starts first and wins over bcdef and cd; after it, nothing overlapping is kept.
    assert spans(r, "abcdef") == []  # Latin terms are whole words: abcd inside abcdef is not a word
    r = make_rules(tmp_path, {"a": "甲乙丙丁\n乙丙丁戊己\n", "b": "丙丁\n"})
    assert spans(r, "甲乙丙丁戊己") == [("a", "甲乙丙丁", 0, 4)]
    assert spans(r, "乙丙丁戊己") == [("a", "乙丙丁戊己", 0, 5)]
    assert spans(r, "丙丁戊") == [("b", "丙丁", 0, 2)]


def test_every_occurrence_is_reported(rules: RuleSet) -> None:
    got = spans(rules, "赌博，还是赌博")
    assert got == [("gambling", "赌博", 0, 2), ("gambling", "赌博", 5, 7)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("三黄片", []),
        ("他在吃三黄片", []),
        ("大黄片和牛黄片", []),
        ("路口交通", []),
        ("个性交流很重要", []),
        ("做爱心公益", []),
        ("从根治理", []),
        ("三黄片不是黄片", [("porn", "黄片", 5, 7)]),
        ("看黄片", [("porn", "黄片", 1, 3)]),
        ("三 黄 片", []),  # the allowed phrase is folded like the text
    ],
)
def test_allow_list_cancels_hits_inside_allowed_phrases(
    rules: RuleSet, text: str, expected: list[tuple[str, str, int, int]]
) -> None:
    assert spans(rules, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("usdt", [(0, 4)]),
        ("买usdt吗", [(1, 5)]),
        ("buy usdt now", [(4, 8)]),
        ("usdt-c", [(0, 4)]),
        ("usdtx", []),
        ("xusdt", []),
        ("pk100", []),
        ("pk10.", [(0, 4)]),
        ("apk10", []),
        ("a片", [(0, 2)]),
        ("data片", []),
    ],
)
def test_latin_and_digit_terms_match_whole_words(
    rules: RuleSet, text: str, expected: list[tuple[int, int]]
) -> None:
    assert [(m.start, m.end) for m in rules.scan(text).matches] == expected


def test_whole_word_custom_term(tmp_path: Path) -> None:
    r = make_rules(tmp_path, {"rude": "sb\n"})
    assert spans(r, "sb") == [("rude", "sb", 0, 2)]
    assert spans(r, "你是sb吧") == [("rude", "sb", 2, 4)]
    assert spans(r, "sbc") == []
    assert spans(r, "usb") == []
    assert spans(r, "s b") == [("rude", "sb", 0, 3)]
    assert spans(r, "s\u200bbc") == []  # an invisible character does not split a word


def test_pinyin_follows_the_policy_switch(tmp_path: Path) -> None:
    policy = "[categories.on]\npinyin = true\n[categories.off]\npinyin = false\n"
    r = make_rules(tmp_path, {"on": "投资\n", "off": "金融\n"}, policy=policy)
    assert spans(r, "touzi") == [("on", "投资", 0, 5)]
    assert spans(r, "投zi") == [("on", "投资", 0, 3)]
    assert spans(r, "jinrong") == []
    assert spans(r, "金rong") == []
    assert spans(r, "金融") == [("off", "金融", 0, 2)]


def test_repeat_collapse_never_breaks_doubled_words(tmp_path: Path) -> None:
    r = make_rules(tmp_path, {"x": "哈哈镜\n投资\n"})
    assert spans(r, "哈哈镜") == [("x", "哈哈镜", 0, 3)]  # first scan, as written
    assert spans(r, "哈哈哈镜") == [("x", "哈哈镜", 1, 4)]
    assert spans(r, "投投投资资") == [("x", "投资", 0, 5)]
    assert spans(r, "投资投资") == [("x", "投资", 0, 2), ("x", "投资", 2, 4)]


def test_repeat_collapse_can_be_switched_off(tmp_path: Path) -> None:
    r = make_rules(tmp_path, {"x": "稳赚不赔\n"}, policy="[scan]\ncollapse_repeats = false\n")
    assert spans(r, "稳稳赚赚不不赔赔") == []
    assert spans(r, "稳赚不赔") == [("x", "稳赚不赔", 0, 4)]
    r = make_rules(tmp_path, {"x": "稳赚不赔\n"}, policy="[scan]\ncollapse_repeats = true\n")
    assert spans(r, "稳稳赚赚不不赔赔") == [("x", "稳赚不赔", 0, 8)]


def test_max_gap_is_policy(tmp_path: Path) -> None:
    r = make_rules(tmp_path, {"x": "投资\n"}, policy="[scan]\nmax_gap = 0\n")
    assert spans(r, "投 资") == []
    assert spans(r, "投\u200b资") == [("x", "投资", 0, 3)]


def test_actions_follow_policy(rules: RuleSet) -> None:
    assert rules.scan("").action == "allow"
    assert rules.scan("你好，欢迎光临").action == "allow"
    assert rules.scan("国家级品质").action == "warn"
    result = rules.scan("国家级品质，稳赚不赔")
    assert result.action == "block"
    assert [m.action for m in result.matches] == ["warn", "block"]


def test_json_shape(rules: RuleSet) -> None:
    assert rules.scan("加我微信，稳赚不赔").to_json() == {
        "action": "block",
        "matches": [
            {"category": "diversion", "term": "加我微信", "start": 0, "end": 4, "text": "加我微信"},
            {"category": "finance", "term": "稳赚不赔", "start": 5, "end": 9, "text": "稳赚不赔"},
        ],
    }


def test_one_megabyte_text(rules: RuleSet) -> None:
    filler = "今天的天气很好，我们一起去公园散步吧。"
    text = filler * (1_000_000 // len(filler)) + "稳 赚 不 赔" + filler
    assert len(text) > 1_000_000
    result = rules.scan(text)
    assert result.action == "block"
    assert len(result.matches) == 1
    m = result.matches[0]
    assert (m.term, m.text) == ("稳赚不赔", "稳 赚 不 赔")
    assert text[m.start : m.end] == "稳 赚 不 赔"


def test_hits_far_apart_in_a_long_text_keep_exact_offsets(rules: RuleSet) -> None:
    chunk = "正常的文字，" * 5000
    text = "赌博" + chunk + "投\u200b资" + chunk + "黄片"
    got = spans(rules, text)
    assert [t for _, t, _, _ in got] == ["赌博", "投资", "黄片"]
    assert [text[s:e] for _, _, s, e in got] == ["赌博", "投\u200b资", "黄片"]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\ud800",
        "投\udfff资",
        "\x00\x01\x02投资\x7f",
        "\ufdd0\ufdd1\ue000\uf000\uefff",  # our own internal symbols in the input
        "\U0010ffff\U000e0001",
        "\u0301\u0301\u0301",
        "🏳️‍🌈" * 50,
        "\r\n" * 100,
        "a" * 10_000,
    ],
)
def test_scan_never_raises_on_odd_input(rules: RuleSet, text: str) -> None:
    result = rules.scan(text)
    assert result.action in ("allow", "warn", "block")
    for m in result.matches:
        assert 0 <= m.start < m.end <= len(text)
        assert m.text == text[m.start : m.end]


def test_scan_never_raises_on_random_input(rules: RuleSet) -> None:
    rng = random.Random(20261122)
    pools = [
        (0x0, 0x80),
        (0x80, 0x800),
        (0x2000, 0x2100),
        (0x3000, 0x3100),
        (0x4E00, 0x9FFF),
        (0xD800, 0xE000),
        (0xE000, 0xF900),
        (0xFE00, 0xFF70),
        (0x1F300, 0x1FAFF),
        (0x1D400, 0x1D800),
        (0x20000, 0x20100),
        (0xE0000, 0xE0200),
    ]
    words = ["投资", "赌博", "usdt", "13812345678", "wxid_", "@", "http://", "三黄片"]
    for _ in range(300):
        parts: list[str] = []
        for _ in range(rng.randint(0, 40)):
            if rng.random() < 0.2:
                parts.append(rng.choice(words))
            else:
                lo, hi = rng.choice(pools)
                parts.append(chr(rng.randrange(lo, hi)))
        text = "".join(parts)
        result = rules.scan(text)
        for m in result.matches:
            assert 0 <= m.start < m.end <= len(text)
            assert m.text == text[m.start : m.end]


def test_scan_many(rules: RuleSet) -> None:
    results = rules.scan_many(["你好", "赌博"])
    assert [r.action for r in results] == ["allow", "block"]


def test_a_longer_warn_term_never_hides_a_block_term(tmp_path: Path) -> None:
    policy = '[categories.soft]\naction = "warn"\n[categories.hard]\naction = "block"\n'
    r = make_rules(tmp_path, {"soft": "超级投资机会\n", "hard": "投资\n"}, policy=policy)
    result = r.scan("超级投资机会")
    assert result.action == "block"
    assert [(m.category, m.start, m.end) for m in result.matches] == [("hard", 2, 4)]
    # with one action level it is plain leftmost-longest
    words = {"soft": "超级投资机会\n", "hard": "投资\n"}
    r = make_rules(tmp_path, words, policy='[defaults]\naction = "block"\n')
    assert [(m.category, m.start, m.end) for m in r.scan("超级投资机会").matches] == [("soft", 0, 6)]
