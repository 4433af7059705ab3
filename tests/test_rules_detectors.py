"""Contact detectors: every digit style of a mobile number, WeChat ids, QQ, URLs, e-mail — and no hit on
order numbers, prices or dates. Each positive case asserts the detector AND the original span."""

from __future__ import annotations

import pytest

from rules import RuleSet, load_rules
from rules.detectors import detect


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return load_rules()


def contacts(rules: RuleSet, text: str) -> list[tuple[str, str]]:
    return [(m.term, m.text) for m in rules.scan(text).matches if m.category == "contact"]


PHONES = [
    ("13812345678", "13812345678"),
    ("电话13812345678谢谢", "13812345678"),
    ("手机：138 1234 5678。", "138 1234 5678"),
    ("138-1234-5678", "138-1234-5678"),
    ("138.1234.5678", "138.1234.5678"),
    ("1 3 8 1 2 3 4 5 6 7 8", "1 3 8 1 2 3 4 5 6 7 8"),
    ("１３８１２３４５６７８", "１３８１２３４５６７８"),
    ("①③⑧①②③④⑤⑥⑦⑧", "①③⑧①②③④⑤⑥⑦⑧"),
    ("❶❸❽❶❷❸❹❺❻❼❽", "❶❸❽❶❷❸❹❺❻❼❽"),
    ("一三八一二三四五六七八", "一三八一二三四五六七八"),
    ("壹叁捌壹贰叁肆伍陆柒捌", "壹叁捌壹贰叁肆伍陆柒捌"),
    ("壹參捌壹貳參肆伍陸柒捌", "壹參捌壹貳參肆伍陸柒捌"),
    ("幺三八幺二三四五六七八", "幺三八幺二三四五六七八"),
    ("1三8一2③4５6七8", "1三8一2③4５6七8"),
    ("+86 138 1234 5678", "+86 138 1234 5678"),
    ("8613812345678", "8613812345678"),
    ("138\u200b1234\u200b5678", "138\u200b1234\u200b5678"),
    ("1️⃣3️⃣8️⃣1️⃣2️⃣3️⃣4️⃣5️⃣6️⃣7️⃣8️⃣", "1️⃣3️⃣8️⃣1️⃣2️⃣3️⃣4️⃣5️⃣6️⃣7️⃣8️⃣"),
    ("tel:13812345678", "13812345678"),
    ("19912345678", "19912345678"),
    ("𝟏𝟑𝟖𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖", "𝟏𝟑𝟖𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖"),
    ("¹³⁸¹²³⁴⁵⁶⁷⁸", "¹³⁸¹²³⁴⁵⁶⁷⁸"),
    ("为什么13812345678", "13812345678"),
    ("138，1234，5678", "138，1234，5678"),
    ("138、1234、5678", "138、1234、5678"),
    ("壹叁捌 壹贰叁肆 伍陆柒捌", "壹叁捌 壹贰叁肆 伍陆柒捌"),
]


@pytest.mark.parametrize(("text", "found"), PHONES)
def test_mobile_numbers_in_any_digit_style(rules: RuleSet, text: str, found: str) -> None:
    assert contacts(rules, text) == [("phone", found)]


OTHER_CONTACTS = [
    ("加我微信：abc_123", "wechat", "微信：abc_123"),
    ("微信号 zhangsan", "wechat", "微信号 zhangsan"),
    ("vx: happy2023", "wechat", "vx: happy2023"),
    ("VX:Happy2023", "wechat", "VX:Happy2023"),
    ("V信 lucky_888", "wechat", "V信 lucky_888"),
    ("薇信 abc-12345", "wechat", "薇信 abc-12345"),
    ("ｗｘｉｄ＿ａｂｃｄ１２３４", "wechat", "ｗｘｉｄ＿ａｂｃｄ１２３４"),
    ("wxid_abcd1234", "wechat", "wxid_abcd1234"),
    ("QQ：12345678", "qq", "QQ：12345678"),
    ("扣扣 987654321", "qq", "扣扣 987654321"),
    ("企鹅号 10001234", "qq", "企鹅号 10001234"),
    ("qq群 123456789", "qq", "qq群 123456789"),
    # Keywords split by separators are keywords still.
    ("Q Q 87654321", "qq", "Q Q 87654321"),
    ("q.q:87654321", "qq", "q.q:87654321"),
    ("Ｑ－Ｑ 87654321", "qq", "Ｑ－Ｑ 87654321"),
    ("扣 扣 87654321", "qq", "扣 扣 87654321"),
    ("微 信：abc_def1", "wechat", "微 信：abc_def1"),
    ("v*x: happy2023", "wechat", "v*x: happy2023"),
    ("看 https://example.com/a?b=1 吧", "url", "https://example.com/a?b=1"),
    ("访问http://t.cn/A6x", "url", "http://t.cn/A6x"),
    ("官网 www.example.cn", "url", "www.example.cn"),
    ("打开 shop.example.com/x 领取", "url", "shop.example.com/x"),
    ("example点com", "url", "example点com"),
    ("ＷＷＷ．ＥＸＡＭＰＬＥ．ＣＯＭ", "url", "ＷＷＷ．ＥＸＡＭＰＬＥ．ＣＯＭ"),
    ("邮箱 abc.de@qq.com 联系", "email", "abc.de@qq.com"),
    ("abc＠163．com", "email", "abc＠163．com"),
    ("abc(at)gmail.com", "email", "abc(at)gmail.com"),
]


@pytest.mark.parametrize(("text", "kind", "found"), OTHER_CONTACTS)
def test_other_contact_details(rules: RuleSet, text: str, kind: str, found: str) -> None:
    got = contacts(rules, text)
    assert got == [(kind, found)]


NOT_CONTACTS = [
    "订单号：202311221381234567",
    "订单号 13812345678",
    "单号13912345678已发货",
    "快递单号：SF13812345678",
    "身份证 110101199003071234",
    "价格¥1388.00，原价1999元",
    "原价 13999.00 现价 12999.00",
    "2023-11-22 13:45:00",
    "2023年11月22日 13:45",
    "活动时间 13:00-18:00，名额 200",
    "第13、15、17、19、21期",
    "13.5%、18.2%、20.1%、35.2%",
    "138 1234 5678 9",
    "编号 1381234567",
    "sku13812345678",
    "版本 v1.2.3",
    "企业微信wework很好用",
    "添加企业微信好友",
    "微信群发500人",
    "QQ音乐",
    "Node.js 和 Vue.js",
    "e.g. 例如",
    "一二三四五六七八九十",
    "满300减50，满1000减200",
    "电话:021-33550338",
    "价格：138，158，188元",
    "138，1234，56789",
    "9，138，1234，5678",
]


@pytest.mark.parametrize("text", NOT_CONTACTS)
def test_no_false_contacts(rules: RuleSet, text: str) -> None:
    assert contacts(rules, text) == []


def test_contact_action_is_warn_by_default(rules: RuleSet) -> None:
    assert rules.scan("13812345678").action == "warn"


def test_detect_spans_index_the_original() -> None:
    text = "前缀\u200b\u200b手机：①③⑧ 1234 5678"
    found = detect(text)
    assert len(found) == 1
    assert text[found[0].start : found[0].end] == "①③⑧ 1234 5678"


def test_detectors_can_be_chosen_in_policy(tmp_path: object) -> None:
    from pathlib import Path

    root = Path(str(tmp_path))
    (root / "words").mkdir()
    (root / "words" / "x.txt").write_text("投资\n", encoding="utf-8")
    (root / "policy.toml").write_text('[categories.contact]\naction = "block"\ndetectors = ["email"]\n')
    r = load_rules(root)
    assert r.scan("13812345678").matches == ()
    result = r.scan("a@b.com")
    assert result.action == "block"
    assert [m.term for m in result.matches] == ["email"]
