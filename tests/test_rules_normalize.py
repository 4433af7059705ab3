"""Every normalization class, table-driven: each case asserts the category, the term AND the span in the
ORIGINAL text (Python str offsets) of the one match it must produce with the shipped rules."""

from __future__ import annotations

import pytest

from rules import RuleSet, load_rules
from rules.normalize import fold


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return load_rules()


def only_match(rules: RuleSet, text: str) -> tuple[str, str, int, int, str]:
    result = rules.scan(text)
    assert len(result.matches) == 1, (text, result.to_json())
    m = result.matches[0]
    assert m.text == text[m.start : m.end]
    return m.category, m.term, m.start, m.end, m.text


# (text, category, term, start, end)
CASES = [
    # plain, and inside other text
    ("稳赚不赔", "finance", "稳赚不赔", 0, 4),
    ("这个项目稳赚不赔哦", "finance", "稳赚不赔", 4, 8),
    # full-width / half-width
    ("ＵＳＤＴ", "finance", "usdt", 0, 4),
    ("买ｕｓｄｔ", "finance", "usdt", 1, 5),
    ("ｐｋ１０", "gambling", "pk10", 0, 4),
    # other NFKC compatibility forms: circled, parenthesized, mathematical, squared letters
    ("ⓤⓢⓓⓣ", "finance", "usdt", 0, 4),
    ("⒰⒮⒟⒯", "finance", "usdt", 0, 4),
    ("𝐮𝐬𝐝𝐭", "finance", "usdt", 0, 4),
    ("𝓾𝓼𝓭𝓽", "finance", "usdt", 0, 4),
    ("pk⑩", "gambling", "pk10", 0, 3),
    ("pk➀0", "gambling", "pk10", 0, 4),
    ("pk❶0", "gambling", "pk10", 0, 4),
    ("pk١٠", "gambling", "pk10", 0, 4),  # Arabic-Indic digits
    ("🅤🅢🅓🅣", "finance", "usdt", 0, 4),
    # case folding
    ("UsDt", "finance", "usdt", 0, 4),
    ("PK10", "gambling", "pk10", 0, 4),
    # letters of other scripts drawn like Latin (Cyrillic а/с/е/о/р/х, Greek ο)
    ("usdт", "finance", "usdt", 0, 4),
    # traditional → simplified, and mixed
    ("穩賺不賠", "finance", "稳赚不赔", 0, 4),
    ("穩赚不賠", "finance", "稳赚不赔", 0, 4),
    ("投資", "finance", "投资", 0, 2),
    ("賭博", "gambling", "赌博", 0, 2),
    ("網賭", "gambling", "网赌", 0, 2),
    ("百家樂", "gambling", "百家乐", 0, 3),
    # zero-width and format characters (invisible: never counted against the gap cap)
    ("投\u200b资", "finance", "投资", 0, 3),
    ("投\u200c资", "finance", "投资", 0, 3),
    ("投\u200d资", "finance", "投资", 0, 3),
    ("投\u200e资", "finance", "投资", 0, 3),
    ("投\u200f资", "finance", "投资", 0, 3),
    ("投\u2060资", "finance", "投资", 0, 3),
    ("投\u2061\u2062\u2063\u2064资", "finance", "投资", 0, 6),
    ("投\ufeff资", "finance", "投资", 0, 3),
    ("投\u00ad资", "finance", "投资", 0, 3),
    ("投\u034f资", "finance", "投资", 0, 3),
    ("投" + "\u200b" * 20 + "资", "finance", "投资", 0, 22),
    ("投\u3164资", "finance", "投资", 0, 3),  # Hangul fillers
    ("投\u115f资", "finance", "投资", 0, 3),
    ("投\u1160资", "finance", "投资", 0, 3),
    ("投\uffa0资", "finance", "投资", 0, 3),
    ("投\u180e资", "finance", "投资", 0, 3),
    # combining marks
    ("投\u0301资", "finance", "投资", 0, 3),
    ("赌\u0332博\u0332", "gambling", "赌博", 0, 4),
    ("tóu zī", "finance", "投资", 0, 6),
    # whitespace of every kind
    ("投 资", "finance", "投资", 0, 3),
    ("投\t资", "finance", "投资", 0, 3),
    ("投\n资", "finance", "投资", 0, 3),
    ("投\u3000资", "finance", "投资", 0, 3),
    ("投\u00a0资", "finance", "投资", 0, 3),
    ("投\u2003资", "finance", "投资", 0, 3),
    ("投\u2028资", "finance", "投资", 0, 3),
    # ASCII and CJK punctuation and symbols
    ("投.资", "finance", "投资", 0, 3),
    ("投-资", "finance", "投资", 0, 3),
    ("投，资", "finance", "投资", 0, 3),
    ("投、资", "finance", "投资", 0, 3),
    ("投·资", "finance", "投资", 0, 3),
    ("投…资", "finance", "投资", 0, 3),
    ("【投】【资】", "finance", "投资", 1, 5),
    ("投￥资", "finance", "投资", 0, 3),
    ("投$资", "finance", "投资", 0, 3),
    ("投★资", "finance", "投资", 0, 3),
    ("稳*赚*不*赔", "finance", "稳赚不赔", 0, 7),
    ("投_资", "finance", "投资", 0, 3),
    # emoji, skin-tone modifiers, flags, ZWJ sequences, variation selectors, keycaps
    ("投😀资", "finance", "投资", 0, 3),
    ("投👍🏽资", "finance", "投资", 0, 4),
    ("投🇨🇳资", "finance", "投资", 0, 4),
    ("投👨\u200d👩\u200d👧资", "finance", "投资", 0, 7),
    ("投❤\ufe0f资", "finance", "投资", 0, 4),
    ("投🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f资", "finance", "投资", 0, 9),
    # the gap cap: up to three visible deleted characters between two letters
    ("投   资", "finance", "投资", 0, 5),
    ("投!?!资", "finance", "投资", 0, 5),
    # repeated characters collapsed on a second scan
    ("投投资资", "finance", "投资", 0, 4),
    ("金金金融融", "finance", "金融", 0, 5),
    ("想要投 投 资 资吗", "finance", "投资", 2, 9),
    # pinyin: full, spaced, capitalised, mixed hanzi / pinyin, with tone marks
    ("touzi", "finance", "投资", 0, 5),
    ("tou zi", "finance", "投资", 0, 6),
    ("Tou-Zi", "finance", "投资", 0, 6),
    ("投zi", "finance", "投资", 0, 3),
    ("tou资", "finance", "投资", 0, 4),
    ("百jia乐", "gambling", "百家乐", 0, 5),
    ("bai jia le", "gambling", "百家乐", 0, 10),
    ("bai家le", "gambling", "百家乐", 0, 6),
    ("wen zhuan bu pei", "finance", "稳赚不赔", 0, 16),
    ("jīn róng", "finance", "金融", 0, 8),
    ("tou2 zi1", "finance", "投资", 0, 8),
    ("TOU2ZI1", "finance", "投资", 0, 7),
    ("穩zhuan不賠", "finance", "稳赚不赔", 0, 8),
    ("来玩du博", "gambling", "赌博", 2, 5),
    # mixed evasions
    ("穩 賺 不 賠", "finance", "稳赚不赔", 0, 7),
    ("Ｔｏｕ　ｚｉ", "finance", "投资", 0, 6),
    ("投\u200b.\u200b资", "finance", "投资", 0, 5),
]


@pytest.mark.parametrize(("text", "category", "term", "start", "end"), CASES)
def test_evasion_is_caught_with_original_span(
    rules: RuleSet, text: str, category: str, term: str, start: int, end: int
) -> None:
    assert only_match(rules, text) == (category, term, start, end, text[start:end])


@pytest.mark.parametrize(
    "text",
    [
        "投    资",  # four visible separators: separate words, not an evasion
        "投。。。。资",
        "投😀😀😀😀资",
        "投，今天天气很好，资",
    ],
)
def test_gap_cap_stops_matches_across_long_gaps(rules: RuleSet, text: str) -> None:
    assert rules.scan(text).matches == ()


@pytest.mark.parametrize(
    ("raw", "folded"),
    [
        ("①⑴⒈❶", "1111"),
        ("ⓕｆＦ𝐟", "ffff"),
        ("發財", "发财"),
        ("a\u200bb\u00adc", "abc"),
        ("x😀👍🏽🇨🇳y", "xy"),
        ("￥【】·、…", ""),
        ("tóu", "tou"),
        ("㎏", "kg"),
    ],
)
def test_fold(raw: str, folded: str) -> None:
    assert fold(raw) == folded


def test_traditional_folding_comes_from_opencc_for_every_code_point() -> None:
    from rules.normalize import tables

    t2s = tables().t2s
    assert len(t2s) > 2500  # OpenCC t2s, not a hand-typed list
    assert all(len(k) == 1 and len(v) == 1 for k, v in t2s.items())
    assert fold("龍門國際") == "龙门国际"


@pytest.mark.parametrize(
    ("text", "term"),
    [("wzbp", "稳赚不赔"), ("WZBP", "稳赚不赔"), ("dxds", "大小单双"), ("bjl", "bjl")],
)
def test_initials_of_long_terms_and_listed_slang(rules: RuleSet, text: str, term: str) -> None:
    assert [(m.term, m.start, m.end) for m in rules.scan(text).matches] == [(term, 0, len(text))]


@pytest.mark.parametrize(
    ("text", "term", "start", "end"),
    [
        # several short runs whose total passes the cap: every run is within it, so the match stands
        ("稳  赚  不  赔", "稳赚不赔", 0, 10),
        ("稳 。赚 ，不 、赔", "稳赚不赔", 0, 10),
        ("稳\u200b\u200b赚 。、不赔", "稳赚不赔", 0, 9),
        # one run of four visible separators breaks the long term; the part before it still matches
        ("稳赚    不赔", "稳赚", 0, 2),
        ("稳赚😀😀😀😀不赔", "稳赚", 0, 2),
        # invisible characters inside a run are not counted, visible ones are
        ("稳 \u200b 。赚不赔", "稳赚不赔", 0, 8),
    ],
)
def test_gap_cap_counts_each_run_of_separators(
    rules: RuleSet, text: str, term: str, start: int, end: int
) -> None:
    assert only_match(rules, text) == ("finance", term, start, end, text[start:end])


def test_gap_cap_drops_a_run_of_four_mixed_with_invisible_characters(rules: RuleSet) -> None:
    assert rules.scan("稳 \u200b 。 赚不赔").matches == ()
