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


ORDINARY_PROSE = [
    "亲爱的会员，双十一大促今晚8点开始，全场满300减50，记得提前加购哦！",
    "新品上市：春季限定樱花系列，到店即可免费试用，数量有限先到先得。",
    "感谢您的支持，您的订单已发货，快递单号SF1234567890123，请注意查收。",
    "本周六下午2点在门店举办烘焙体验课，名额20人，回复“报名”即可预约。",
    "您的积分即将到期，可在会员中心兑换精美礼品，详情请咨询店员。",
    "宝妈们看过来，儿童秋冬外套今天第二件半价，尺码齐全。",
    "老客户专享：推荐好友下单，双方各得20元无门槛券。",
    "提醒：活动时间为11月20日至11月25日，价格以页面显示为准。",
    "我们做AI产品已经五年了，欢迎来公司参观交流。",
    "今天的直播间有惊喜福利，晚上7点不见不散，记得点击预约。",
    "这款面霜主打保湿补水，适合干性和混合性肌肤使用。",
    "课程介绍：私域运营实战训练营，共8节课，带你搭建用户增长体系。",
    "群公告：请大家文明发言，禁止发广告和无关链接，违者移出群聊。",
    "早上好！今日天气晴，气温12到20度，出门记得带外套。",
    "门店地址：上海市浦东新区世纪大道100号，营业时间10:00-22:00。",
    "您好，您咨询的商品目前有货，支持七天无理由退换。",
    "本店所有商品均为正品，支持专柜验货。",
    "感谢参与问卷调查，抽奖结果将在3个工作日内公布。",
    "周年庆活动：全场商品8.8折，会员再享9.5折。",
    "这个周末带孩子去动物园吧，我们为会员准备了门票优惠。",
    "新人入群福利：领取新人礼包，首单立减10元。",
    "我们的客服工作时间是周一至周五9:00-18:00，节假日除外。",
    "提醒您及时更新收货地址，以免影响配送。",
    "学员反馈：学完课程后，社群转化率明显提升。",
    "欢迎加入我们的读书会，每周分享一本好书。",
    "个性交流、路口交通、三黄片这些词都不应该被拦截。",
    "提升复购率的关键在于精细化运营和用户分层。",
    "今天和团队复盘了上个月的活动数据，拉新效果不错。",
    "本次团购截止时间为今晚12点，错过再等一年。",
    "产品使用说明：每日早晚各一次，取适量均匀涂抹于面部。",
]


@pytest.fixture(scope="module")
def shipped() -> RuleSet:
    return load_rules()


@pytest.mark.parametrize("text", ORDINARY_PROSE)
def test_ordinary_marketing_prose_passes(shipped: RuleSet, text: str) -> None:
    assert shipped.scan(text).to_json() == {"action": "allow", "matches": []}
