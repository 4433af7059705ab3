"""The limiter remembers a list of charges' plan for the rest of the second it was made in (speed only):
every plan it hands the storage must be the one it would compute from scratch, whatever the clock does."""

from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from support import Clock, MutableRule

from ratelimit import Charge, Limiter, MemoryStorage, Rule
from ratelimit.limiter import _as_charge
from ratelimit.storage import HitPlan, RawHit, frozen_key, hit_keys, recent_key, request_key
from ratelimit.windows import span

RULES = (
    Rule("message", "minute", 20, warn_at=16),
    Rule("message", "hour", 100, alert_over=150),
    Rule("message", "day", 500, warn_at=400, alert_over=600, mode="shadow"),
)


class Recording(MemoryStorage):
    def __init__(self) -> None:
        super().__init__()
        self.plans: list[HitPlan] = []

    async def hit(self, plan: HitPlan) -> RawHit:
        self.plans.append(plan)
        return await super().hit(plan)


def fresh_plan(
    limiter: Limiter, account: str, charges: list[Charge], request_id: str | None, now: float
) -> HitPlan:
    """The plan as computed with nothing remembered."""
    spans = [span(c.rule.window, now, limiter.tz) for c in charges]
    return limiter._plan(account, charges, spans, request_id, False, now)


@pytest.mark.parametrize("tz", ["Asia/Shanghai", "Europe/Berlin", "America/St_Johns"])
@pytest.mark.parametrize("request_id", [None, "req-1"])
async def test_remembered_plans_equal_fresh_ones(tz: str, request_id: str | None) -> None:
    clock = Clock()
    storage = Recording()
    limiter = Limiter(storage, tz=tz, clock=clock)
    charges = [Charge(RULES[0], 1), Charge(RULES[1], 2), Charge(RULES[2], 3)]
    base_moments = [
        1_764_000_000.0,  # a minute's and an hour's end (UTC and these zones' whole-hour offsets)
        1_763_827_200.0 - 8 * 3600,  # midnight in Shanghai
        1_774_746_000.0,  # 2026-03-29 01:00 UTC: Berlin goes to summer time
        1_761_440_400.0,  # 2025-10-26 01:00 UTC: and back
    ]
    n = 0
    for base in base_moments:
        for offset in (-61.0, -1.5, -1.0, -0.999, -0.5, -1e-6, 0.0, 1e-6, 0.25, 0.999, 1.0, 59.5, 3601.0):
            clock.set(base + offset)
            n += 1
            account = f"acct-{n % 3}"
            rid = None if request_id is None else f"{request_id}-{n}"
            await limiter.hit(account, [Charge(c.rule, c.cost) for c in charges], request_id=rid)
            assert storage.plans[-1] == fresh_plan(limiter, account, charges, rid, clock.now), (base, offset)


async def test_the_same_rules_share_one_tuple_of_items_within_a_second() -> None:
    clock = Clock(1_764_000_000.2)
    storage = Recording()
    limiter = Limiter(storage, clock=clock)
    await limiter.hit("a", [Charge(RULES[0])])
    clock.advance(0.7)
    await limiter.hit("b", [Charge(RULES[0])])
    clock.advance(0.2)  # the next second: the expiry is a second shorter
    await limiter.hit("c", [Charge(RULES[0])])
    first, second, third = storage.plans
    assert first.items is second.items
    assert third.items[0].ttl == first.items[0].ttl - 1
    assert [p.keys[0].split(":q:")[0] for p in storage.plans] == ["{acct:a}", "{acct:b}", "{acct:c}"]


async def test_a_cost_that_only_equals_a_whole_number_is_still_refused() -> None:
    limiter = Limiter(MemoryStorage())
    await limiter.hit("a", [Charge(RULES[0], 1)])
    for cost in (True, 1.0):
        with pytest.raises(ValueError, match="cost must be a whole number"):
            await limiter.hit("a", [Charge(RULES[0], cost)])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="account must be a non-empty string"):
        await limiter.hit("", [Charge(RULES[0], 1)])
    with pytest.raises(ValueError, match="charged twice"):
        await limiter.hit("a", [Charge(RULES[0], 1), Charge(RULES[0], 1)])


async def test_a_mutable_rule_is_read_on_every_hit() -> None:
    storage = Recording()
    limiter = Limiter(storage)
    rule = MutableRule("add", "day", 1)
    assert (await limiter.hit("a", [rule])).allowed  # type: ignore[list-item]
    assert not (await limiter.hit("a", [rule])).allowed  # type: ignore[list-item]
    rule.limit = 5
    result = await limiter.hit("a", [rule])  # type: ignore[list-item]
    assert result.allowed and result.outcomes[0].limit == 5
    rule.name = "bad name"
    with pytest.raises(ValueError, match="non-empty, without spaces"):
        await limiter.hit("a", [rule])  # type: ignore[list-item]


def test_hit_keys_are_the_three_keys_of_the_layout() -> None:
    for account in ("a", "wx{1}%", "店铺"):
        for rid in (None, "r", "x" * 100):
            assert hit_keys(account, rid, 123, "own") == (
                frozen_key(account),
                request_key(account, rid, 123),
                recent_key(account, "own"),
            )


def test_as_charge_is_unchanged() -> None:
    assert _as_charge(RULES[0]) == Charge(RULES[0], 1)
    assert _as_charge((RULES[0], 3)) == Charge(RULES[0], 3)


async def test_a_hit_keeps_its_own_windows_while_a_later_one_plans_the_next_day() -> None:
    """A hit answers with the windows it was planned in, even when, while it waited for the storage,
    another hit of the same rules planned the next second across a midnight."""
    release = asyncio.Event()

    class Slow(MemoryStorage):
        async def hit(self, plan: HitPlan) -> RawHit:
            if plan.account == "slow":
                await release.wait()
            return await super().hit(plan)

    clock = Clock(datetime(2026, 11, 22, 23, 59, 59, 500_000, tzinfo=ZoneInfo("Asia/Shanghai")))
    limiter = Limiter(Slow(), clock=clock)
    rule = Rule("message", "day", 500)
    slow = asyncio.create_task(limiter.hit("slow", [Charge(rule)]))
    await asyncio.sleep(0)
    clock.advance(1.0)  # the next day
    fast = await limiter.hit("fast", [Charge(rule)])
    release.set()
    first = await slow
    assert fast.day_resets_at == first.day_resets_at + 86_400
    assert first.outcomes[0].resets_at == first.day_resets_at
    assert fast.outcomes[0].resets_at == fast.day_resets_at
