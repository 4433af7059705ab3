"""Exact spans: a match reports the evasive occurrence and nothing of its neighbours, as original
(start, end, text), however the text was folded, split by deleted characters or stuttered."""

from __future__ import annotations

import pytest

from rules import RuleSet, load_rules

RULES: RuleSet = load_rules()


def found(text: str, category: str | None = None) -> list[tuple[str, int, int, str]]:
    result = RULES.scan(text)
    return [
        (m.term, m.start, m.end, m.text) for m in result.matches if category is None or m.category == category
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # plain, and a neighbour that repeats a letter of the term: the neighbour keeps its letter
        ("本次投资很稳", [("投资", 2, 4, "投资")]),
        ("本次投资资金已到位", [("投资", 2, 4, "投资")]),
        ("投资资资金", [("投资", 0, 2, "投资")]),
        ("黄金、金融板块", [("金融", 3, 5, "金融")]),
        ("黄金 金融板块", [("金融", 3, 5, "金融")]),
        ("黄金金融", [("金融", 2, 4, "金融")]),
        ("投投资", [("投资", 1, 3, "投资")]),
        ("投资资", [("投资", 0, 2, "投资")]),
        ("看好金融融资渠道", [("金融", 2, 4, "金融")]),
        ("稳赚赚不赔赔付", [("稳赚不赔", 0, 5, "稳赚赚不赔")]),
        ("理财财务", [("理财", 0, 2, "理财")]),
        # stuttered on purpose: the whole stutter is the occurrence
        ("投投资资", [("投资", 0, 4, "投投资资")]),
        ("投投投资资", [("投资", 0, 5, "投投投资资")]),
        ("来投投资资吧", [("投资", 1, 5, "投投资资")]),
        ("金金金融融", [("金融", 0, 5, "金金金融融")]),
        ("稳稳赚赚不不赔赔", [("稳赚不赔", 0, 8, "稳稳赚赚不不赔赔")]),
        ("稳稳赚赚不赔", [("稳赚不赔", 0, 6, "稳稳赚赚不赔")]),
        ("稳赚不不赔赔", [("稳赚不赔", 0, 6, "稳赚不不赔赔")]),
        ("稳赚赚不赔", [("稳赚不赔", 0, 5, "稳赚赚不赔")]),
        ("稳 稳 赚 赚 不 不 赔 赔！", [("稳赚不赔", 0, 15, "稳 稳 赚 赚 不 不 赔 赔")]),
        # deleted characters: inside a match they belong to it, around it they do not
        ("“投资”", [("投资", 1, 3, "投资")]),
        ("【投 资】", [("投资", 1, 4, "投 资")]),
        ("投。资，", [("投资", 0, 3, "投。资")]),
        ("，投\u200b资\u200b，", [("投资", 1, 4, "投\u200b资")]),
        ("\u200b\u200b投资", [("投资", 2, 4, "投资")]),
        ("投🔥资🔥", [("投资", 0, 3, "投🔥资")]),
        ("👍投资👍", [("投资", 1, 3, "投资")]),
        ("投资\ufe0f。", [("投资", 0, 3, "投资\ufe0f")]),  # a variation selector stays with its letter
        ("t\u0301ou zi吧", [("投资", 0, 7, "t\u0301ou zi")]),  # and an accent too
        # folded letters: the original characters, whatever their width
        ("投資理財", [("理财", 2, 4, "理財"), ("投资", 0, 2, "投資")]),
        ("ｔｏｕｚｉ吧", [("投资", 0, 5, "ｔｏｕｚｉ")]),
        ("𝐭𝐨𝐮𝐳𝐢吧", [("投资", 0, 5, "𝐭𝐨𝐮𝐳𝐢")]),
        ("touzi项目", [("投资项目", 0, 7, "touzi项目")]),
        ("来 tou zi 吧", [("投资", 2, 8, "tou zi")]),
        ("tou2zi1吧", [("投资", 0, 7, "tou2zi1")]),
        ("投zi的", [("投资", 0, 3, "投zi")]),
        ("充值USDT送好礼", [("usdt", 2, 6, "USDT")]),
        ("充值 usdt-c 吧", [("usdt", 3, 7, "usdt")]),
        ("黃 片在线", [("黄片", 0, 3, "黃 片")]),
    ],
)  # fmt: skip
def test_word_spans(text: str, expected: list[tuple[str, int, int, str]]) -> None:
    got = found(text, None)
    assert sorted(got) == sorted(expected)
    for _, start, end, slice_ in got:
        assert text[start:end] == slice_


@pytest.mark.parametrize(
    ("text", "kind", "start", "end"),
    [
        ("http://example.com/a/b.html，注意第四步", "url", 0, 27),
        ("http://example.com/a/b.html注意第四步", "url", 0, 27),
        ("详见：https://example.com/a?b=1。谢谢", "url", 3, 28),
        ("详见 https://example.com/a?b=1！", "url", 3, 28),
        ("（链接 https://example.com/x）记得看", "url", 4, 25),
        ("《https://example.com/x》", "url", 1, 22),
        ("打开“https://example.com/x”", "url", 3, 24),
        ("https://example.com/a.html. 下一句", "url", 0, 26),
        ("https://example.com/a?x=1&y=2;z", "url", 0, 31),
        ("ｈｔｔｐｓ：／／ｅｘａｍｐｌｅ．ｃｏｍ／ａ，谢谢", "url", 0, 21),
        ("官网www.example.com，欢迎", "url", 2, 17),
        ("官网 example.com/abc. 欢迎", "url", 3, 18),
        ("example点com/x，来", "url", 0, 13),
        ("电话13812345678，微信同号", "phone", 2, 13),
        ("电话：138 1234 5678。", "phone", 3, 16),
        ("邮箱abc@example.com。", "email", 2, 17),
        ("邮箱 abc@example.com，欢迎", "email", 3, 18),
    ],
)  # fmt: skip
def test_contact_spans_stop_where_the_prose_starts(text: str, kind: str, start: int, end: int) -> None:
    matches = [m for m in RULES.scan(text).matches if m.category == "contact"]
    assert [(m.term, m.start, m.end) for m in matches] == [(kind, start, end)], text
    assert matches[0].text == text[start:end]


def test_a_url_no_longer_hides_what_follows_it() -> None:
    text = "http://example.com/x，电话13812345678"
    got = [(m.term, m.text) for m in RULES.scan(text).matches]
    assert got == [("url", "http://example.com/x"), ("phone", "13812345678")]
