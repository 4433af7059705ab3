"""The decision path's shortcuts (issue 13) answer what the long way answers: the content check's cache of
scanned texts, the pipeline's day and context, the quota check's charges per recipient count, the limiter's
shortcut for a tuple of charges it knows, the tier of an unlisted account, and the quota steps the pipeline
runs itself (equal to `QuotaCheck.hit`)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from guard.core import checks
from guard.core.accounts import AccountDirectory
from guard.core.bundle import BundleStore
from guard.core.checks import CheckContext, ContentCheck, QuotaCheck
from guard.core.pipeline import Pipeline
from guard.core.types import Action, TextField
from ratelimit import Charge, Limiter, MemoryStorage, Rule
from rules.accounts import AccountInfo
from tests.support import Clock, MutableRule, rules_copy

SHANGHAI = ZoneInfo("Asia/Shanghai")
TEXTS = (
    "双十一新品到店，欢迎来门店试穿，会员享受积分兑换礼品",
    "稳赚不赔的投资机会",  # block
    "加我微信 13812345678 详聊",  # contact details
    "",
    "hello",
    "秋冬新品",
)


def setup(rules: Path | None = None) -> tuple[BundleStore, Pipeline, Clock]:
    store = BundleStore(rules)
    store.load_now()
    clock = Clock(datetime(2026, 11, 30, 23, 59, 58, tzinfo=SHANGHAI))
    limiter = Limiter(MemoryStorage(), tz="Asia/Shanghai", clock=clock)
    directory = AccountDirectory(bundle=lambda: store.current, limiter=limiter)
    return store, Pipeline(store, limiter, directory, lambda _: "refuse"), clock


def action_with(*texts: str, account: str = "wxid_a", recipients: int = 2) -> Action:
    fields = tuple(TextField(f"texts[{i}]", t) for i, t in enumerate(texts))
    return Action("broadcast", account, texts=fields, recipients=recipients)


async def test_content_verdicts_equal_a_fresh_scan_and_follow_a_reload(tmp_path: Path) -> None:
    rules = rules_copy(tmp_path)
    store, _, _ = setup(rules)
    cached, fresh = ContentCheck(), ContentCheck
    ctx = CheckContext(store.current, date(2026, 11, 30))
    for _ in range(2):  # the second time from the cache
        for text in TEXTS:
            for action in (action_with(text), action_with(text, TEXTS[0], text)):
                assert cached(action, ctx) == fresh()(action, ctx), text
    for text in TEXTS:
        assert cached.matches(store.current.ruleset, text) == store.current.ruleset.scan(text).matches

    # A reload that makes a clean text a blocked one: the new rule set is asked, never the old one's cache.
    words = rules / "words"
    target = next(iter(sorted(words.glob("*.txt"))))
    target.write_text(target.read_text(encoding="utf-8") + "\n秋冬新品\n", encoding="utf-8")
    assert await store.reload()
    new_ctx = CheckContext(store.current, date(2026, 11, 30))
    clean = action_with("秋冬新品")
    assert cached(clean, ctx).outcome == "allow"  # a request holding the old bundle: the old rules
    assert cached(clean, new_ctx).outcome != "allow"
    assert cached(clean, new_ctx) == fresh()(clean, new_ctx)


def test_the_scan_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    store, _, _ = setup()
    ruleset = store.current.ruleset
    check = ContentCheck()
    monkeypatch.setattr(checks, "MAX_SCAN_CACHE_TEXTS", 3)
    long_text = "新" * (checks.MAX_SCAN_CACHE_CHARS + 1)
    assert check.matches(ruleset, long_text) == ruleset.scan(long_text).matches
    assert long_text not in check._scanned[1]  # too long to keep
    for i in range(10):
        check.matches(ruleset, f"text {i}")
        assert len(check._scanned[1]) <= 3


def test_today_and_the_context_follow_the_clock_across_midnight() -> None:
    store, pipeline, clock = setup()
    bundle = store.current
    for _ in range(6):  # 23:59:58 … 00:00:03 local, a second at a time
        now = clock()
        expected = datetime.fromtimestamp(now, SHANGHAI).date()
        assert pipeline.today() == expected
        ctx = pipeline.context(bundle)
        assert (ctx.bundle, ctx.today, ctx.dry_run) == (bundle, expected, False)
        assert pipeline.context(bundle) is ctx  # the same request conditions: the same context
        dry = pipeline.context(bundle, True)
        assert (dry.today, dry.dry_run) == (expected, True)
        clock.advance(1.0)
    assert pipeline.today() == date(2026, 12, 1)
    clock.set(datetime(2026, 11, 30, 12, 0, tzinfo=SHANGHAI))  # a clock set back: the day is worked out again
    assert pipeline.today() == date(2026, 11, 30)
    clock.set(datetime(2027, 3, 1, 0, 0, tzinfo=SHANGHAI))
    assert pipeline.today() == date(2027, 3, 1)
    # Another bundle (a reload) gets a context of its own.
    other = BundleStore(None)
    other.load_now()
    assert pipeline.context(other.current).bundle is other.current


def test_broadcast_charges_are_one_tuple_per_recipient_count() -> None:
    store, pipeline, _ = setup()
    quota = pipeline.quota
    ctx = CheckContext(store.current, date(2026, 11, 30))
    for count in (1, 2, 3, 2, 500, 1):
        action = Action("broadcast", f"wxid_{count}", recipients=count)
        charges = quota.charges(action, ctx)
        assert {(c.rule.name, c.cost) for c in charges} == {("broadcast", 1), ("broadcast.recipients", count)}
        assert quota.charges(Action("broadcast", "wxid_other", recipients=count), ctx) is charges


def test_unlisted_accounts_are_placed_as_the_registry_places_them(tmp_path: Path) -> None:
    rules = rules_copy(tmp_path, '[accounts."wxid_old"]\nregistered = 2025-01-01\n')
    store, _, _ = setup(rules)
    bundle = store.current
    for today in (date(2026, 11, 30), date(2027, 6, 1)):
        for since in (None, today - timedelta(days=3), today - timedelta(days=100)):
            for account in ("wxid_unlisted", "shared:wecom-kf", "wxid_old"):
                entry = bundle.registry.get(account)
                long_way = bundle.limits.tier_for(
                    entry.registered, today, since or entry.recovering_since, tier=entry.tier
                )
                assert bundle.placement(account, today, since) == long_way
    assert bundle.registry.get("wxid_unlisted") == AccountInfo("wxid_unlisted")


async def test_the_limiter_knows_a_tuple_of_charges_again_only_when_it_cannot_have_changed() -> None:
    clock = Clock(datetime(2026, 11, 30, 10, 0, tzinfo=SHANGHAI))
    limiter = Limiter(MemoryStorage(), tz="Asia/Shanghai", clock=clock)
    charges = (Charge(Rule("broadcast", "day", 2), 1), Charge(Rule("broadcast.recipients", "day", 10), 4))
    results = [await limiter.hit(f"acct-{i % 2}", charges) for i in range(6)]
    assert [r.allowed for r in results] == [True, True, True, True, False, False]
    assert [r.outcomes[1].used for r in results] == [4, 4, 8, 8, 8, 8]
    with pytest.raises(ValueError, match="account"):
        await limiter.hit("", charges)  # the shortcut still checks the account

    # A list may change between hits, and so may a rule that is no value: each is read every time.
    listed = [Charge(Rule("moment", "day", 5), 1)]
    assert (await limiter.hit("acct-l", listed)).outcomes[0].cost == 1
    listed[0] = Charge(Rule("moment", "day", 5), 2)
    assert (await limiter.hit("acct-l", listed)).outcomes[0].cost == 2
    rule = MutableRule("template", "day", 1)
    mutable = (Charge(rule, 1),)
    assert (await limiter.hit("acct-m", mutable)).allowed
    rule.limit = 5
    again = await limiter.hit("acct-m", mutable)
    assert again.allowed and again.outcomes[0].limit == 5
    rule.name = "bad name"
    with pytest.raises(ValueError, match="name"):
        await limiter.hit("acct-m", mutable)


async def test_the_pipeline_quota_steps_equal_quota_check_hit(tmp_path: Path) -> None:
    """`Pipeline.decide` runs `QuotaCheck.hit`'s steps itself: the same verdicts and results, for an
    allowed hit, a limit's refusal and a frozen account, on twin limiters."""
    rules = rules_copy(tmp_path)
    store, pipeline, clock = setup(rules)
    twin = Limiter(MemoryStorage(), tz="Asia/Shanghai", clock=clock)
    twin_dir = AccountDirectory(bundle=lambda: store.current, limiter=twin)
    quota = QuotaCheck(twin, twin_dir, lambda _: "refuse")
    clock.set(datetime(2026, 11, 30, 10, 0, tzinfo=SHANGHAI))
    await pipeline.limiter.freeze("wxid_frozen")
    await twin.freeze("wxid_frozen")
    ctx = CheckContext(store.current, date(2026, 11, 30))
    for account, recipients in (("wxid_a", 2), ("wxid_a", 2), ("wxid_b", 300), ("wxid_frozen", 1)):
        action = Action("broadcast", account, recipients=recipients)
        [decision] = await pipeline.decide([action])
        verdict, result = await quota.hit(action, ctx)
        expected = () if verdict.outcome == "allow" else (verdict,)
        assert decision.verdicts == expected, account
        assert decision.quota == result
    assert [d.allowed for d in await pipeline.decide([Action("message", "wxid_c")])] == [True]
