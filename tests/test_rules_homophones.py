"""Homophones (谐音): same-sounding characters written for a term are found, with the exact original span and
the homophone action of the category's policy; literal hits stay as they were; ordinary words that sound like
a term (the shipped homophones_allow.txt) pass; categories without the policy key are not read as pinyin."""

from __future__ import annotations

from pathlib import Path

import pytest
from pypinyin import Style, lazy_pinyin

from rules import RuleSet, load_rules
from rules.check import check_rules_dir
from rules.errors import RulesInvalid
from rules.homophones import Homophone, Homophones, char_readings, term_syllables
from rules.policy import parse_policy


@pytest.fixture(scope="module")
def shipped() -> RuleSet:
    return load_rules()


# (text, category, term, the matched original text): found as a homophone, action "warn".
EVASIONS = [
    ("加我菠菜平台", "gambling", "博彩", "菠菜"),
    ("菠彩网站，天天返水", "gambling", "博彩网站", "菠彩网站"),  # the longest term
    ("博采", "gambling", "博彩", "博采"),
    ("涩情", "porn", "色情", "涩情"),
    ("色晴直播", "porn", "色情", "色晴"),
    ("澀情视频", "porn", "色情", "澀情"),
    ("投咨", "finance", "投资", "投咨"),
    ("欢迎头资，名额有限", "finance", "投资", "头资"),
    ("投咨项目，欢迎了解", "finance", "投资项目", "投咨项目"),
    ("代款找我", "finance", "贷款", "代款"),
    ("低息代款，当天到账", "fraud", "低息贷款", "低息代款"),
    ("专业刷蛋，日结", "fraud", "刷单", "刷蛋"),
    ("稳赚不陪？", "finance", "稳赚不赔", "稳赚不陪"),  # 稳赚 literal is part of it: see below
    ("来玩百佳乐", "gambling", "百家乐", "百佳乐"),
    ("有小解服务", "porn", "小姐服务", "小解服务"),
    ("找小解", "porn", "找小姐", "找小解"),
    ("a涩情b", "porn", "色情", "涩情"),
    ("🔥涩情🔥", "porn", "色情", "涩情"),
]


@pytest.mark.parametrize(("text", "category", "term", "matched"), EVASIONS)
def test_homophone_evasions_are_warned_with_their_span(
    shipped: RuleSet, text: str, category: str, term: str, matched: str
) -> None:
    result = shipped.scan(text)
    if term == "稳赚不赔":
        # The literal 稳赚 wins: a homophone is only looked for where the literal matcher found nothing.
        assert [(m.term, m.text, m.action) for m in result.matches] == [("稳赚", "稳赚", "block")]
        return
    hits = [m for m in result.matches if m.term == term]
    assert len(hits) == 1, result.to_json()
    hit = hits[0]
    start = text.index(matched)
    assert (hit.category, hit.start, hit.end, hit.text, hit.action) == (
        category,
        start,
        start + len(matched),
        matched,
        "warn",
    )
    assert result.action == "warn"


# Literal hits are unchanged: the term's own characters are never reported as a homophone.
LITERAL = [
    ("博彩", [("gambling", "博彩", 0, 2, "博彩", "block")]),
    ("投资", [("finance", "投资", 0, 2, "投资", "block")]),
    ("投資理財", [("finance", "投资", 0, 2, "投資", "block"), ("finance", "理财", 2, 4, "理財", "block")]),
    ("投 。资", [("finance", "投资", 0, 4, "投 。资", "block")]),
    (
        "博彩和菠菜",
        [("gambling", "博彩", 0, 2, "博彩", "block"), ("gambling", "博彩", 3, 5, "菠菜", "warn")],
    ),
    (
        "投咨投资",
        [("finance", "投资", 0, 2, "投咨", "warn"), ("finance", "投资", 2, 4, "投资", "block")],
    ),
]


@pytest.mark.parametrize(("text", "expected"), LITERAL)
def test_literal_hits_unchanged(shipped: RuleSet, text: str, expected: list[tuple[object, ...]]) -> None:
    assert [tuple(m) for m in shipped.scan(text).matches] == expected


ORDINARY = [
    "今天的文章写得很好",  # 稳涨
    "老师的引导很耐心",  # 荫道
    "吸引到特定需求的客户",
    "吃太多肚子疼",  # 赌资
    "客户分类越细，服务越到位",  # 月息
    "群内可以定期或不定期开展活动",  # 期货
    "我们的校园代理团队",  # 校园贷
    "向老板证明私域的成效",  # 办证
    "前台接待很热情，机子也很新",  # 借贷, 集资
    "他独自一人，兼顾工作和家庭",  # 赌资, 荐股
    "三黄片清热解毒",  # allow.txt: never a homophone of 黄片 either
    "投 咨",  # only runs of Chinese characters are read
    "touzi",  # pinyin spelling is the literal matcher's business (pinyin = true), not a homophone
    "",
    "hello world 123",
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_words_that_sound_like_terms_pass(shipped: RuleSet, text: str) -> None:
    result = shipped.scan(text)
    if text == "touzi":
        assert [(m.term, m.action) for m in result.matches] == [("投资", "block")]
    else:
        assert result.to_json() == {"action": "allow", "matches": []}


def test_exclusion_list_is_what_keeps_the_seed_words_out(tmp_path: Path) -> None:
    (tmp_path / "words").mkdir()
    (tmp_path / "words" / "finance.txt").write_text("稳涨\n", encoding="utf-8")
    (tmp_path / "policy.toml").write_text('[categories.finance]\nhomophones = "warn"\n', encoding="utf-8")
    # No homophones_allow.txt of its own: the shipped list applies (文章 is listed there).
    assert load_rules(tmp_path).scan("一篇文章").matches == ()
    # Its own (empty) list replaces the shipped one.
    (tmp_path / "homophones_allow.txt").write_text("# nothing\n", encoding="utf-8")
    rules = load_rules(tmp_path)
    assert [(m.term, m.text, m.action) for m in rules.scan("一篇文章").matches] == [("稳涨", "文章", "warn")]
    # allow.txt cancels homophone hits too.
    (tmp_path / "allow.txt").write_text("一篇文章\n", encoding="utf-8")
    assert load_rules(tmp_path).scan("一篇文章").matches == ()


def write_rules(root: Path, policy: str) -> Path:
    (root / "words").mkdir()
    (root / "words" / "finance.txt").write_text("投资\n", encoding="utf-8")
    (root / "words" / "medical.txt").write_text("根治\n", encoding="utf-8")
    (root / "policy.toml").write_text(policy, encoding="utf-8")
    return root


def test_category_without_the_policy_key_is_not_matched(tmp_path: Path) -> None:
    rules = load_rules(write_rules(tmp_path, '[categories.finance]\naction = "block"\npinyin = true\n'))
    assert rules.scan("投咨").matches == ()
    assert rules.scan("跟治").matches == ()
    assert rules._homophones is None  # no enabled category: no pinyin pass at all


def test_policy_key_sets_the_homophone_action(tmp_path: Path) -> None:
    policy = (
        '[categories.finance]\naction = "warn"\nhomophones = "block"\n'
        "[categories.medical]\nhomophones = false\n"
    )
    rules = load_rules(write_rules(tmp_path, policy))
    assert [(m.category, m.term, m.text, m.action) for m in rules.scan("投咨").matches] == [
        ("finance", "投资", "投咨", "block")
    ]
    assert rules.scan("投咨").action == "block"
    assert rules.scan("投资").action == "warn"
    assert rules.scan("跟治").matches == ()


def test_defaults_may_enable_it(tmp_path: Path) -> None:
    rules = load_rules(write_rules(tmp_path, '[defaults]\nhomophones = "warn"\n'))
    assert {m.term for m in rules.scan("投咨，跟治").matches} == {"投资", "根治"}


@pytest.mark.parametrize(
    ("value", "ok"),
    [('"warn"', True), ('"block"', True), ("false", True), ("true", False), ('"allow"', False), ("1", False)],
)
def test_policy_key_values(value: str, ok: bool) -> None:
    policy, errors = parse_policy(f"[categories.finance]\nhomophones = {value}\n", "policy.toml")
    assert (errors == []) is ok, errors
    if not ok:
        assert "homophones must be one of: block, warn or false" in errors[0].reason
        assert errors[0].line == 2
    elif value == "false":
        assert policy.of("finance").homophones is None


def test_shipped_policy_enables_four_categories(shipped: RuleSet) -> None:
    enabled = {c: shipped.policy.of(c).homophones for c in shipped.categories}
    assert enabled == {
        "adlaw": None,
        "contact": None,
        "diversion": None,
        "finance": "warn",
        "fraud": "warn",
        "gambling": "warn",
        "medical": None,
        "porn": "warn",
    }


def test_bad_exclusion_line_is_reported(tmp_path: Path) -> None:
    write_rules(tmp_path, '[categories.finance]\nhomophones = "warn"\n')
    (tmp_path / "homophones_allow.txt").write_text("文章\n！！\n", encoding="utf-8")
    errors = check_rules_dir(tmp_path)
    assert [(Path(e.path).name, e.line) for e in errors] == [("homophones_allow.txt", 2)]
    with pytest.raises(RulesInvalid):
        load_rules(tmp_path)


def test_version_covers_the_exclusion_list(tmp_path: Path) -> None:
    write_rules(tmp_path, '[categories.finance]\nhomophones = "warn"\n')
    (tmp_path / "homophones_allow.txt").write_text("文章\n", encoding="utf-8")
    before = load_rules(tmp_path).version
    (tmp_path / "homophones_allow.txt").write_text("文章\n肚子\n", encoding="utf-8")
    assert load_rules(tmp_path).version != before


def test_only_multi_character_chinese_terms() -> None:
    assert term_syllables("投资") == ["tou", "zi"]
    assert term_syllables("银行卡") == ["yin", "hang", "ka"]  # read in context
    assert term_syllables("赌") is None
    assert term_syllables("pk10") is None
    assert term_syllables("北京赛车pk10") is None
    sounds = Homophones(
        [Homophone("赌", "赌", "gambling", "warn"), Homophone("usdt", "usdt", "finance", "warn")]
    )
    assert sounds.size == 0
    assert sounds.find("读书 usdt") == []


def test_literal_hits_are_not_reread() -> None:
    sounds = Homophones([Homophone("投资", "投资", "finance", "warn")])
    assert [(s, e, h.term) for s, e, h in sounds.find("投咨")] == [(0, 2, "投资")]
    assert sounds.find("投咨", [(1, 3, None)]) == []  # overlaps a literal hit
    assert sounds.find("投资") == []  # the term's own characters
    assert sounds.find("投資") == []  # ... after folding


def test_exclusion_phrases_are_read_as_written() -> None:
    sounds = Homophones([Homophone("投资", "投资", "finance", "warn")], allow=["大投咨", "头子"])
    assert sounds.find("大投咨") == []
    assert sounds.find("大頭子") == []  # folded: 頭 is 头
    assert [(s, e) for s, e, _ in sounds.find("\U00030001投咨")] == [(1, 3)]  # any code point around a hit
    assert [(s, e) for s, e, _ in sounds.find("小投咨")] == [(1, 3)]


def test_char_readings_equal_pypinyin_on_single_characters() -> None:
    readings = char_readings()
    assert len(readings) > 20_000
    mismatched = [chr(cp) for cp, r in readings.items() if lazy_pinyin(chr(cp), style=Style.NORMAL) != [r]]
    assert mismatched == []
    assert readings[ord("绿")] == "lv" and readings[ord("菠")] == "bo" and readings[ord("澀")] == "se"
