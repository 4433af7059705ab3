"""The request path's caches (issue 13) give what the uncached computation gives, and a rules reload is
never answered from the old bundle: the quota check's charge lists, the attachment check's passes, the
account directory's reads of the registry."""

from __future__ import annotations

import itertools
from datetime import date, datetime
from pathlib import Path
from typing import cast
from zoneinfo import ZoneInfo

from guard.core.accounts import AccountDirectory
from guard.core.bundle import Bundle, BundleStore
from guard.core.checks import AttachmentCheck, CheckContext, QuotaCheck, attachment_refused
from guard.core.types import ACTION_KINDS, ALLOW, Action, ActionKind, Attachment, Direction, Verdict
from ratelimit import Charge, Limiter, MemoryStorage
from tests.support import Clock, rules_copy

ACCOUNTS = """\
[accounts."wxid_young"]
registered = 2026-11-20
staff = "zhang.san"
matrix = "east"

[accounts."wxid_growing"]
registered = 2026-10-01
matrix = "east"

[accounts."wxid_fixed"]
tier = "mature"
staff = "li.si"
frozen = true

[accounts."wxid_back"]
registered = 2025-06-01
recovering_since = 2026-11-10
"""
ACCOUNT_NAMES = ("wxid_young", "wxid_growing", "wxid_fixed", "wxid_back", "wxid_unlisted", "shared:wecom-kf")
SHANGHAI = ZoneInfo("Asia/Shanghai")


def uncached_charges(directory: AccountDirectory, action: Action, ctx: CheckContext) -> list[Charge]:
    """`QuotaCheck.charges` as it was before its cache, written out."""
    since = directory.recovering_since(action.account)
    out = [
        Charge(rule, 1)
        for rule in ctx.bundle.limit_rules(action.account, action.limit_name, ctx.today, since)
    ]
    if action.kind == "broadcast" and action.recipients > 0:
        rules = ctx.bundle.limit_rules(action.account, "broadcast.recipients", ctx.today, since)
        out += [Charge(rule, action.recipients) for rule in rules]
    return out


def actions(account: str) -> list[Action]:
    found: list[Action] = []
    for kind in ACTION_KINDS:
        directions: tuple[Direction | None, ...] = ("active", "passive") if kind == "add_friend" else (None,)
        for direction in directions:
            for recipients in (0, 1, 2, 500):
                found.append(
                    Action(cast(ActionKind, kind), account, direction=direction, recipients=recipients)
                )
    return found


def setup(rules: Path | None) -> tuple[BundleStore, AccountDirectory, QuotaCheck, Clock, Limiter]:
    store = BundleStore(rules)
    store.load_now()
    clock = Clock(datetime(2026, 11, 30, 10, 0, tzinfo=SHANGHAI))
    limiter = Limiter(MemoryStorage(), tz="Asia/Shanghai", clock=clock)
    directory = AccountDirectory(bundle=lambda: store.current, limiter=limiter)
    return store, directory, QuotaCheck(limiter, directory, lambda _: "refuse"), clock, limiter


async def test_charges_equal_the_uncached_ones_for_every_tier_action_and_day(tmp_path: Path) -> None:
    store, directory, quota, _, _ = setup(rules_copy(tmp_path, ACCOUNTS))
    await directory.recover("wxid_growing", date(2026, 11, 25))  # an override wins over the registry
    checked = 0
    # Days that move the accounts through tiers and recovery stages (wxid_back: days 20, 27, 30, 40).
    for today in (date(2026, 11, 30), date(2026, 12, 7), date(2026, 12, 10), date(2026, 12, 20)):
        ctx = CheckContext(bundle=store.current, today=today)
        for account in ACCOUNT_NAMES:
            for action in actions(account):
                first = quota.charges(action, ctx)
                again = quota.charges(action, ctx)
                assert list(first) == uncached_charges(directory, action, ctx), (today, action)
                assert again == first
                if action.kind != "broadcast" or action.recipients == 0:
                    assert again is first  # served from the cache as it is
                checked += 1
    assert checked > 500
    # A backup's charges (another account than the action's own) are its own tier's.
    ctx = CheckContext(bundle=store.current, today=date(2026, 11, 30))
    broadcast = Action(kind="broadcast", account="wxid_young", recipients=3)
    as_backup = quota.charges(broadcast, ctx, "wxid_fixed")
    assert list(as_backup) == uncached_charges(
        directory, Action(kind="broadcast", account="wxid_fixed", recipients=3), ctx
    )


async def test_a_reload_is_not_answered_from_the_old_bundle(tmp_path: Path) -> None:
    rules = rules_copy(tmp_path, ACCOUNTS)
    store, directory, quota, _, _ = setup(rules)
    broadcast = Action(kind="broadcast", account="wxid_unlisted", recipients=2)
    old_bundle = store.current
    old_ctx = CheckContext(bundle=old_bundle, today=date(2026, 11, 30))
    before = quota.charges(broadcast, old_ctx)
    assert {(c.rule.name, c.rule.limit, c.cost) for c in before} == {
        ("broadcast", 1, 1),
        ("broadcast.recipients", 200, 2),
    }

    limits = (rules / "limits.toml").read_text(encoding="utf-8")
    limits = limits.replace(
        '"broadcast.recipients" = { day = 200 }', '"broadcast.recipients" = { day = 150 }', 1
    )
    (rules / "limits.toml").write_text(limits, encoding="utf-8")
    accounts = ACCOUNTS + '\n[accounts."wxid_unlisted"]\ntier = "mature"\nstaff = "wang.wu"\n'
    (rules / "accounts.toml").write_text(accounts, encoding="utf-8")
    assert await store.reload()
    new_bundle: Bundle = store.current
    assert new_bundle is not old_bundle

    young = Action(kind="broadcast", account="wxid_young", recipients=2)
    new_ctx = CheckContext(bundle=new_bundle, today=date(2026, 11, 30))
    after_young = quota.charges(young, new_ctx)
    assert {(c.rule.name, c.rule.limit, c.cost) for c in after_young} == {
        ("broadcast", 1, 1),
        ("broadcast.recipients", 150, 2),
    }
    assert list(after_young) == uncached_charges(directory, young, new_ctx)
    # The account the new registry lists now has the mature tier's limits and its staff.
    after = quota.charges(broadcast, new_ctx)
    assert {(c.rule.name, c.rule.limit) for c in after} == {("broadcast", 2), ("broadcast.recipients", 5000)}
    assert directory.staff_of("wxid_unlisted") == "wang.wu"
    # A request still holding the old bundle gets the old bundle's charges, not the new ones.
    assert list(quota.charges(broadcast, old_ctx)) == list(before)
    assert list(quota.charges(broadcast, new_ctx)) == list(after)


def test_directory_reads_equal_the_registry_entries(tmp_path: Path) -> None:
    store, directory, _, _, _ = setup(rules_copy(tmp_path, ACCOUNTS))
    registry = store.current.registry
    for account in ACCOUNT_NAMES:
        entry = registry.get(account)
        assert directory.staff_of(account) == entry.staff
        assert directory.matrix_of(account) == entry.matrix
        assert directory.static_frozen(account) is entry.frozen
        assert directory.is_frozen_local(account) is entry.frozen
        assert directory.recovering_since(account) == entry.recovering_since


ATTACHMENTS = (
    Attachment("link", "attachments[0].link", url="https://shop.example.com/new"),
    Attachment("link", "attachments[1].link", url="https://t.cn/abc"),
    Attachment("link", "link", url="http://shop.example.com/new"),
    Attachment("link", "attachments[2].link", url=None),
    Attachment("link", "attachments[3].link", url="::not a url::"),
    Attachment("miniprogram", "attachments[0].miniprogram", appid="wx123", page="pages/a"),
    Attachment("miniprogram", "miniprogram", appid=None),
    Attachment("miniprogram", "attachments[1].miniprogram", appid="wxbad", page="pages/a"),
    Attachment("image", "attachments[0].image"),
    Attachment("card", "card"),
    Attachment("sticker", "sticker"),
)


def uncached_attachment_verdict(action: Action, ctx: CheckContext) -> Verdict:
    """`AttachmentCheck` as it was before it kept what passed: every attachment asked of the policy."""
    for att in action.attachments:
        refusal = ctx.bundle.attachments.check(att.kind, att.where, url=att.url, appid=att.appid)
        if refusal is not None:
            return attachment_refused(refusal)
    return ALLOW


async def test_attachment_passes_equal_the_policy_and_follow_a_reload(tmp_path: Path) -> None:
    rules = rules_copy(tmp_path)
    store, _, _, _, _ = setup(rules)
    check = AttachmentCheck()
    ctx = CheckContext(bundle=store.current, today=date(2026, 11, 30))
    # Every attachment alone, in pairs and in both orders, twice: passes are kept, refusals always named.
    lists = [(a,) for a in ATTACHMENTS] + [pair for pair in itertools.permutations(ATTACHMENTS, 2)]
    for _ in range(2):
        for atts in lists:
            action = Action("broadcast", "wxid_a", attachments=atts, recipients=1)
            assert check(action, ctx) == uncached_attachment_verdict(action, ctx), atts
    link = Action("broadcast", "wxid_a", attachments=ATTACHMENTS[:1], recipients=1)
    assert check(link, ctx) is ALLOW

    policy = (rules / "attachments.toml").read_text(encoding="utf-8")
    policy = policy.replace('"t.cn", "dwz.cn"', '"t.cn", "shop.example.com", "dwz.cn"', 1)
    policy = policy.replace("card = false", "card = true", 1)
    policy = policy.replace(
        '[miniprogram]\nallow = ["*"]\ndeny = []', '[miniprogram]\nallow = ["*"]\ndeny = ["wxbad"]'
    )
    assert 'deny = ["wxbad"]' in policy
    (rules / "attachments.toml").write_text(policy, encoding="utf-8")
    assert await store.reload()
    new_ctx = CheckContext(bundle=store.current, today=date(2026, 11, 30))
    refused = check(link, new_ctx)
    assert refused.outcome == "refuse" and refused.rule == "attachment:link_domain"
    for atts in lists:
        action = Action("broadcast", "wxid_a", attachments=atts, recipients=1)
        assert check(action, new_ctx) == uncached_attachment_verdict(action, new_ctx), atts
    # A request still holding the old bundle is judged by the old policy.
    assert check(link, ctx) is ALLOW
    assert check(link, new_ctx) == refused
