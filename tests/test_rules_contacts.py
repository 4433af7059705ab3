"""Contact details as spammers write them: keywords built with symbols (+V, ➕V, hearts), keywords spaced out
with 号, a few words between keyword and id, every enclosed-digit form, letters for digits in a phone-shaped
run — each with its exact original span; and no hit on order numbers, SKUs, prices or dates."""

from __future__ import annotations

import pytest

from rules import RuleSet, load_rules

RULES: RuleSet = load_rules()


def contacts(text: str) -> list[tuple[str, int, int, str]]:
    return [(m.term, m.start, m.end, m.text) for m in RULES.scan(text).matches if m.category == "contact"]


@pytest.mark.parametrize(
    ("text", "kind", "start", "end"),
    [
        # keywords built with symbols
        ("+V：abc123", "wechat", 0, 9),
        ("＋V：abc123", "wechat", 0, 9),
        ("➕V abc_123", "wechat", 0, 10),
        ("➕v：zhangsan", "wechat", 0, 11),
        ("有事➕薇：lucky_88", "wechat", 2, 13),
        ("+vx 13812345678", "wechat", 0, 15),
        ("❤V：abc123", "wechat", 0, 9),
        ("❤️V：abc123", "wechat", 0, 10),
        ("💕vx: happy2023", "wechat", 0, 14),
        ("V❤：abc123", "wechat", 0, 9),
        ("加❤V：abc123", "wechat", 0, 10),
        ("微❤️信：abc_123", "wechat", 0, 12),
        ("威♥信 abc_123", "wechat", 0, 11),
        # keywords spaced out, 号 included
        ("微 信 号：zhangsan", "wechat", 0, 14),
        ("微 信 号 : abc_123", "wechat", 0, 15),
        ("V 信 号：abc123", "wechat", 0, 12),
        ("Q Q 号 12345678", "qq", 0, 14),
        ("QQ 号：12345678", "qq", 0, 13),
        ("扣 扣 号码：87654321", "qq", 0, 15),
        # punctuation or a few words between keyword and id
        ("微信（同号）：abc123", "wechat", 0, 13),
        ("加微信哦～abc123", "wechat", 0, 11),
        ("微信同号13812345678", "wechat", 0, 15),
        ("vx 👉 abc123", "wechat", 0, 11),
        ("微信 → abc_123", "wechat", 0, 12),
        ("微信号是：zhangsan", "wechat", 0, 13),
        ("有问题加微信，abc_123", "wechat", 3, 14),
        ("vx~~~abc123", "wechat", 0, 11),
        ("QQ群 123456789", "qq", 0, 13),
        ("企鹅号码是 10001234", "qq", 0, 14),
        # every enclosed-digit form
        ("⑴⑶⑻⑴⑵⑶⑷⑸⑹⑺⑻", "phone", 0, 11),
        ("电话⒈⒊⒏⒈⒉⒊⒋⒌⒍⒎⒏", "phone", 2, 13),
        ("⓵⓷⓼⓵⓶⓷⓸⓹⓺⓻⓼", "phone", 0, 11),
        ("➀➂➇➀➁➂➃➄➅➆➇", "phone", 0, 11),
        ("⑴⑶⑻ ⑴⑵⑶⑷ ⑸⑹⑺⑻", "phone", 0, 13),
        ("🄂3800138000", "phone", 0, 11),
        ("QQ：⑴⑵⑶⑷⑸⑹⑺", "qq", 0, 10),
        ("⑴⑶⑻⓪⓪⑴⑶⑻⓪⓪⓪", "phone", 0, 11),
        ("⒈⒊⒏🄀🄀⒈⒊⒏🄀🄀🄀", "phone", 0, 11),
        ("⓵⓷⓼⓿⓿⓵⓷⓼⓿⓿⓿", "phone", 0, 11),
        # letters for digits inside a phone-shaped run
        ("电话138O0138OOO", "phone", 2, 13),
        ("电话：l3800138000", "phone", 3, 14),
        ("电话 138-OOl3-8000", "phone", 3, 16),
        ("手机 l38 OOl3 8OOO，谢谢", "phone", 3, 16),
        ("call 1380013800o now", "phone", 5, 16),
        ("ＴＥＬ：１３８Ｏ０１３８０００", "phone", 4, 15),
        ("电话：Ⅰ38OO138OOO", "phone", 3, 14),
        ("电话 I38 0013 8000", "phone", 3, 16),
    ],
)  # fmt: skip
def test_contact_details_as_spammers_write_them(text: str, kind: str, start: int, end: int) -> None:
    assert contacts(text) == [(kind, start, end, text[start:end])]


@pytest.mark.parametrize(
    "text",
    [
        # letters-for-digits that are words, models, SKUs or order numbers
        "订单号 138O0138000",
        "单号：l3800138000",
        "型号 l380013800o",
        "SKU: ABl3800138000",
        "sku l3800138000x",
        "iPhone13 Pro Max 256G",
        "lollipop illicit oil 1",
        "lol 1o1 l0l",
        "i love 13 oil 1000 lol",
        "ios 13.8 iii 1111",
        "编码 1l1l1l1l1l1",
        # symbols that make no keyword
        "ctrl+v 粘贴 abc123",
        "按 Ctrl+V 粘贴 code2023",
        "我❤vivo2023新款",
        "C+V大法 abc123",
        # words between keyword and a number that is not an id
        "微信支付单号：wx20231111123",
        "微信扫码领券code2023",
        "微信支付满100减20",
        "微信群发500人",
        "微信红包 abc2023",
        "微信小程序商品编号 sku12345",
        "QQ空间访问量 123456",
        "QQ音乐会员价 15元",
        "微信里的好友都在用 app2023",
        "vx 今天的活动很精彩。abc123",
        # prices, dates, enclosed list numbers
        "价格 1380.00 元",
        "2023-11-12 13:45",
        "⑴ 报名 ⑵ 付款 ⑶ 到店",
        "⒈ 登录 ⒉ 领券 ⒊ 下单",
        "第⑴⑵⑶期",
        "原价 ¥13800，现价 ¥12800",
    ],
)  # fmt: skip
def test_no_contact_in_ordinary_numbers_and_words(text: str) -> None:
    assert contacts(text) == []


def test_a_contact_block_of_several_details_keeps_each_apart() -> None:
    text = "➕V：abc_123，电话：l38 OOl3 8OOO，QQ 号：12345678"
    assert contacts(text) == [
        ("wechat", 0, 10, "➕V：abc_123"),
        ("phone", 14, 27, "l38 OOl3 8OOO"),
        ("qq", 28, 41, "QQ 号：12345678"),
    ]
