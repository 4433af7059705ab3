"""Semantics of the quota engine, run against every backend: in-process memory, a real single Redis
node and a real 3-master Redis Cluster. The clock is injected so tests can cross midnights and hours."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as ClusterClient
from servers import RedisServer
from support import Clock

from ratelimit import (
    Charge,
    HitResult,
    Limiter,
    LimitRule,
    MemoryStorage,
    RedisStorage,
    Rule,
    Storage,
)
from ratelimit.storage import account_tag, recent_key
from ratelimit.windows import EXPIRY_GRACE_SECONDS


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# 2026-11-22 10:30 Asia/Shanghai
NOON_ISH = utc(2026, 11, 22, 2, 30)

BACKENDS = ["memory", "redis", pytest.param("cluster", marks=pytest.mark.cluster)]


@pytest.fixture(params=BACKENDS)
async def backend(
    request: pytest.FixtureRequest, redis_server: RedisServer
) -> AsyncIterator[tuple[str, str | None]]:
    """(kind, url) of a clean backend."""
    kind: str = request.param
    if kind == "memory":
        yield kind, None
        return
    if kind == "redis":
        client = aioredis.Redis.from_url(redis_server.url)
        try:
            await client.flushall()
        finally:
            await client.aclose()
        yield kind, redis_server.url
        return
    yield kind, request.getfixturevalue("redis_cluster")


@pytest.fixture
async def storage(backend: tuple[str, str | None]) -> AsyncIterator[Storage]:
    kind, url = backend
    made: Storage
    if url is None:
        made = MemoryStorage()
    else:
        # A generous timeout: these tests are about semantics, not speed.
        made = RedisStorage.from_url(url, cluster=kind == "cluster", timeout=5.0)
    try:
        yield made
    finally:
        await made.aclose()


@pytest.fixture
def clock() -> Clock:
    return Clock(NOON_ISH)


@pytest.fixture
def limiter(storage: Storage, clock: Clock) -> Limiter:
    return Limiter(storage, tz="Asia/Shanghai", clock=clock)


ACTIVE_DAY = Rule("add_friend.active", "day", 5, warn_at=4, alert_over=10)


async def hits(limiter: Limiter, account: str, charges: list[Charge], n: int) -> list[HitResult]:
    return [await limiter.hit(account, charges) for _ in range(n)]


async def test_admits_exactly_the_limit_then_refuses(limiter: Limiter) -> None:
    results = await hits(limiter, "acct-1", [Charge(ACTIVE_DAY)], 7)
    assert [r.allowed for r in results] == [True] * 5 + [False] * 2
    assert [r.outcomes[0].used for r in results] == [1, 2, 3, 4, 5, 5, 5]
    assert [r.outcomes[0].remaining for r in results] == [4, 3, 2, 1, 0, 0, 0]
    assert [r.outcomes[0].attempts for r in results] == [1, 2, 3, 4, 5, 6, 7]
    assert results[-1].refused_by[0].rule == "add_friend.active"
    assert results[0].refused_by == ()


async def test_concurrent_hits_in_one_process_admit_exactly_the_limit(limiter: Limiter) -> None:
    results = await asyncio.gather(*(limiter.hit("acct-1", [Charge(ACTIVE_DAY)]) for _ in range(60)))
    assert sum(r.allowed for r in results) == 5
    (usage,) = await limiter.usage("acct-1", [ACTIVE_DAY])
    assert (usage.used, usage.attempts) == (5, 60)


async def test_accounts_are_counted_apart(limiter: Limiter) -> None:
    await hits(limiter, "acct-1", [Charge(ACTIVE_DAY)], 5)
    other = await limiter.hit("acct-{2}", [Charge(ACTIVE_DAY)])
    assert other.allowed and other.outcomes[0].used == 1
    assert not (await limiter.hit("acct-1", [Charge(ACTIVE_DAY)])).allowed


async def test_cost_counts_units(limiter: Limiter) -> None:
    recipients = Rule("broadcast.recipients", "day", 100)
    assert (await limiter.hit("a", [Charge(recipients, 60)])).allowed
    refused = await limiter.hit("a", [Charge(recipients, 50)])
    assert not refused.allowed and refused.outcomes[0].used == 60
    assert (await limiter.hit("a", [Charge(recipients, 40)])).outcomes[0].used == 100


async def test_zero_limit_refuses_everything(limiter: Limiter) -> None:
    result = await limiter.hit("a", [Charge(Rule("broadcast", "day", 0))])
    assert not result.allowed and result.outcomes[0].used == 0


async def test_midnight_in_shanghai_is_16_utc_exactly(limiter: Limiter, clock: Clock) -> None:
    clock.set(utc(2026, 11, 22, 15, 59, 59))  # 23:59:59 in Shanghai
    results = await hits(limiter, "a", [Charge(ACTIVE_DAY)], 6)
    assert [r.allowed for r in results] == [True] * 5 + [False]
    midnight = utc(2026, 11, 22, 16, 0, 0).timestamp()
    assert results[0].outcomes[0].resets_at == midnight
    clock.now = midnight - 0.001
    assert not (await limiter.hit("a", [Charge(ACTIVE_DAY)])).allowed
    clock.now = midnight
    fresh = await limiter.hit("a", [Charge(ACTIVE_DAY)])
    assert fresh.allowed
    assert (fresh.outcomes[0].used, fresh.outcomes[0].attempts) == (1, 1)
    assert fresh.outcomes[0].resets_at == midnight + 86400


async def test_utc_midnight_is_not_a_new_day(limiter: Limiter, clock: Clock) -> None:
    clock.set(utc(2026, 11, 22, 23, 59, 0))  # 07:59 in Shanghai on the 23rd
    await hits(limiter, "a", [Charge(ACTIVE_DAY)], 5)
    clock.set(utc(2026, 11, 23, 0, 0, 1))  # a new UTC day, same Shanghai day
    assert not (await limiter.hit("a", [Charge(ACTIVE_DAY)])).allowed


async def test_hour_rollover(limiter: Limiter, clock: Clock) -> None:
    hourly = Rule("add_friend.passive", "hour", 2)
    clock.set(utc(2026, 11, 22, 3, 59, 58))
    assert [r.allowed for r in await hits(limiter, "a", [Charge(hourly)], 3)] == [True, True, False]
    clock.set(utc(2026, 11, 22, 4, 0, 0))
    result = await limiter.hit("a", [Charge(hourly)])
    assert result.allowed and result.outcomes[0].used == 1
    assert result.outcomes[0].resets_at == utc(2026, 11, 22, 5, 0, 0).timestamp()


async def test_minute_rollover(limiter: Limiter, clock: Clock) -> None:
    burst = Rule("message", "minute", 1)
    clock.set(utc(2026, 11, 22, 3, 7, 30))
    assert [r.allowed for r in await hits(limiter, "a", [Charge(burst)], 2)] == [True, False]
    clock.set(utc(2026, 11, 22, 3, 8, 0))
    assert (await limiter.hit("a", [Charge(burst)])).allowed


async def test_refused_by_one_rule_charges_none_of_the_others(limiter: Limiter) -> None:
    day = Rule("add_friend.active", "day", 10)
    hour = Rule("add_friend.active", "hour", 1)
    minute = Rule("message", "minute", 50)
    charges = [Charge(day), Charge(hour), Charge(minute, 3)]
    first, second = await hits(limiter, "a", charges, 2)
    assert first.allowed and not second.allowed
    by_rule = {(o.rule, o.window): o for o in second.outcomes}
    assert by_rule["add_friend.active", "day"].used == 1
    assert by_rule["add_friend.active", "day"].allowed  # this rule alone would pass…
    assert not by_rule["add_friend.active", "hour"].allowed  # …this one refused
    assert by_rule["message", "minute"].used == 3
    assert [o.rule for o in second.refused_by] == ["add_friend.active"]
    usage = await limiter.usage("a", [day, hour, minute])
    assert [(u.used, u.attempts) for u in usage] == [(1, 2), (1, 2), (3, 6)]


async def test_refund_gives_back_and_never_below_zero(limiter: Limiter) -> None:
    rules = [Charge(ACTIVE_DAY), Charge(Rule("broadcast.recipients", "day", 100), 30)]
    result = await limiter.hit("a", rules)
    await limiter.hit("a", rules)
    assert await limiter.refund("a", result)
    usage = await limiter.usage("a", [c.rule for c in rules])
    assert [u.used for u in usage] == [1, 30]
    assert [u.attempts for u in usage] == [2, 60]  # attempts stay: they were made
    # Without a request id each refund gives back; the floor is zero.
    for _ in range(3):
        await limiter.refund("a", rules)
    assert [u.used for u in await limiter.usage("a", [c.rule for c in rules])] == [0, 0]


async def test_refund_of_a_refused_hit_gives_nothing_back(limiter: Limiter) -> None:
    rule = Rule("broadcast", "day", 1)
    await limiter.hit("a", [Charge(rule)])
    refused = await limiter.hit("a", [Charge(rule)])
    await limiter.refund("a", refused)
    assert (await limiter.usage("a", [rule]))[0].used == 1


async def test_refund_goes_to_the_window_of_the_hit(limiter: Limiter, clock: Clock) -> None:
    clock.set(utc(2026, 11, 22, 15, 59, 0))
    result = await limiter.hit("a", [Charge(ACTIVE_DAY)])
    await limiter.hit("a", [Charge(ACTIVE_DAY)])
    clock.set(utc(2026, 11, 22, 16, 0, 30))  # next day in Shanghai
    await limiter.hit("a", [Charge(ACTIVE_DAY)])
    await limiter.refund("a", result)
    assert (await limiter.usage("a", [ACTIVE_DAY]))[0].used == 1  # today's charge untouched
    clock.set(utc(2026, 11, 22, 15, 59, 30))
    assert (await limiter.usage("a", [ACTIVE_DAY]))[0].used == 1  # yesterday's went 2 → 1


async def test_retry_with_the_same_request_id_costs_nothing(limiter: Limiter) -> None:
    rule = Rule("broadcast", "day", 2)
    first = await limiter.hit("a", [Charge(rule)], request_id="req-1")
    retry = await limiter.hit("a", [Charge(rule)], request_id="req-1")
    assert first.allowed and not first.duplicate
    assert retry.duplicate and retry.allowed
    assert retry.outcomes == first.outcomes
    assert retry.request_id == "req-1"
    assert (await limiter.usage("a", [rule]))[0].used == 1
    other = await limiter.hit("a", [Charge(rule)], request_id="req-2")
    assert other.allowed and not other.duplicate and other.outcomes[0].used == 2


async def test_a_refused_request_retried_gets_the_same_refusal(limiter: Limiter) -> None:
    rule = Rule("broadcast", "day", 1, alert_over=2)
    await limiter.hit("a", [Charge(rule)])
    refused = await limiter.hit("a", [Charge(rule)], request_id="r")
    for _ in range(3):
        again = await limiter.hit("a", [Charge(rule)], request_id="r")
        assert again.duplicate and not again.allowed and again.outcomes == refused.outcomes
    assert (await limiter.usage("a", [rule]))[0].attempts == 2  # retries are not new attempts


async def test_refund_releases_the_request_id_once(limiter: Limiter) -> None:
    rule = Rule("broadcast", "day", 5)
    first = await limiter.hit("a", [Charge(rule)], request_id="r")
    duplicate = await limiter.hit("a", [Charge(rule)], request_id="r")
    assert duplicate.duplicate
    assert await limiter.refund("a", duplicate)  # gives back the one real charge
    assert not await limiter.refund("a", first)  # already given back
    assert (await limiter.usage("a", [rule]))[0].used == 0
    again = await limiter.hit("a", [Charge(rule)], request_id="r")  # the client may retry now
    assert again.allowed and not again.duplicate and again.outcomes[0].used == 1


async def test_request_ids_are_unique_within_a_day_only(limiter: Limiter, clock: Clock) -> None:
    rule = Rule("broadcast", "day", 5)
    clock.set(utc(2026, 11, 22, 15, 0, 0))
    await limiter.hit("a", [Charge(rule)], request_id="daily-job")
    clock.set(utc(2026, 11, 22, 16, 0, 0))
    tomorrow = await limiter.hit("a", [Charge(rule)], request_id="daily-job")
    assert not tomorrow.duplicate and tomorrow.allowed and tomorrow.outcomes[0].used == 1


async def test_request_ids_are_per_account(limiter: Limiter) -> None:
    rule = Rule("broadcast", "day", 5)
    await limiter.hit("a", [Charge(rule)], request_id="same")
    assert not (await limiter.hit("b", [Charge(rule)], request_id="same")).duplicate


async def test_shadow_rule_counts_and_reports_but_never_refuses(limiter: Limiter) -> None:
    shadow = Rule("moment", "day", 2, warn_at=2, alert_over=3, mode="shadow")
    results = await hits(limiter, "a", [Charge(shadow)], 5)
    assert all(r.allowed for r in results)
    assert [r.outcomes[0].used for r in results] == [1, 2, 3, 4, 5]
    assert [r.outcomes[0].allowed for r in results] == [True, True, False, False, False]
    assert [r.outcomes[0].crossed for r in results] == [(), ("warn",), ("limit",), ("alert_over",), ()]
    assert all(r.refused_by == () for r in results)


async def test_shadow_rule_is_not_charged_when_an_enforced_one_refuses(limiter: Limiter) -> None:
    shadow = Rule("moment", "day", 100, mode="shadow")
    strict = Rule("moment", "hour", 1)
    await hits(limiter, "a", [Charge(shadow), Charge(strict)], 3)
    assert [u.used for u in await limiter.usage("a", [shadow, strict])] == [1, 1]


async def test_each_threshold_is_crossed_exactly_once_per_window(limiter: Limiter, clock: Clock) -> None:
    rule = Rule("add_friend.active", "day", 5, warn_at=4, alert_over=7)
    results = await hits(limiter, "a", [Charge(rule)], 12)
    crossed = [r.outcomes[0].crossed for r in results]
    assert crossed[3] == ("warn",)  # the 4th hit reaches warn_at
    assert crossed[5] == ("limit",)  # the 6th is the first refused
    assert crossed[7] == ("alert_over",)  # the 8th attempt passes alert_over = 7
    assert sum(len(c) for c in crossed) == 3
    # A refund and a new climb to warn_at does not warn again in the same window.
    await limiter.refund("a", [Charge(rule, 2)])
    again = await hits(limiter, "a", [Charge(rule)], 3)
    assert [r.outcomes[0].crossed for r in again] == [(), (), ()]
    # A new day starts over.
    clock.advance(86400)
    fresh = await hits(limiter, "a", [Charge(rule)], 8)
    assert [i for i, r in enumerate(fresh) if r.outcomes[0].crossed] == [3, 5, 7]


async def test_several_thresholds_in_one_hit(limiter: Limiter) -> None:
    rule = Rule("broadcast.recipients", "day", 10, warn_at=5, alert_over=11)
    result = await limiter.hit("a", [Charge(rule, 12)])
    assert not result.allowed
    assert result.outcomes[0].crossed == ("limit", "alert_over")
    assert (await limiter.hit("a", [Charge(rule, 6)])).outcomes[0].crossed == ("warn",)


async def test_dry_run_answers_without_charging(limiter: Limiter) -> None:
    rule = Rule("add_friend.active", "day", 2, warn_at=1)
    dry = await limiter.hit("a", [Charge(rule)], dry_run=True, request_id="x")
    assert dry.allowed and dry.outcomes[0].used == 1 and dry.outcomes[0].crossed == ("warn",)
    usage = (await limiter.usage("a", [rule]))[0]
    assert (usage.used, usage.attempts) == (0, 0)
    real = await limiter.hit("a", [Charge(rule)], request_id="x")
    assert not real.duplicate and real.outcomes[0].crossed == ("warn",)  # dry run marked nothing


async def test_frozen_account_is_refused_and_charged_nothing(
    limiter: Limiter, storage: Storage, clock: Clock
) -> None:
    assert not await limiter.is_frozen("a")
    await limiter.freeze("a")
    # Another limiter on the same storage (another guard process) sees the switch at once.
    other = Limiter(storage, clock=clock)
    assert await other.is_frozen("a")
    result = await other.hit("a", [Charge(ACTIVE_DAY)], request_id="r")
    assert result == HitResult(False, (), frozen=True, request_id="r", day_resets_at=result.day_resets_at)
    usage = (await limiter.usage("a", [ACTIVE_DAY]))[0]
    assert (usage.used, usage.attempts) == (0, 0)
    assert (await limiter.hit("b", [Charge(ACTIVE_DAY)])).allowed  # only that account
    await limiter.unfreeze("a")
    after = await other.hit("a", [Charge(ACTIVE_DAY)], request_id="r")
    assert after.allowed and not after.duplicate  # the frozen refusal was not recorded


async def test_freeze_also_refuses_the_retry_of_an_earlier_request(limiter: Limiter) -> None:
    first = await limiter.hit("a", [Charge(ACTIVE_DAY)], request_id="r")
    await limiter.freeze("a")
    retry = await limiter.hit("a", [Charge(ACTIVE_DAY)], request_id="r")
    assert first.allowed and retry.frozen and not retry.allowed and not retry.duplicate
    await limiter.unfreeze("a")
    assert (await limiter.hit("a", [Charge(ACTIVE_DAY)], request_id="r")).duplicate


async def test_account_ids_with_braces_do_not_collide(limiter: Limiter) -> None:
    rule = Rule("broadcast", "day", 1)
    ids = ["ab", "a{b}", "a%7Bb%7D", "{ab}", "a}b{"]
    results = [await limiter.hit(account, [Charge(rule)]) for account in ids]
    assert all(r.allowed for r in results)
    assert [not (await limiter.hit(account, [Charge(rule)])).allowed for account in ids] == [True] * len(ids)


async def test_long_request_ids(limiter: Limiter) -> None:
    rule = Rule("broadcast", "day", 5)
    long_a, long_b = "k" * 5000 + "a", "k" * 5000 + "b"
    assert not (await limiter.hit("a", [Charge(rule)], request_id=long_a)).duplicate
    assert (await limiter.hit("a", [Charge(rule)], request_id=long_a)).duplicate
    assert not (await limiter.hit("a", [Charge(rule)], request_id=long_b)).duplicate


async def test_usage_reads_without_writing(limiter: Limiter) -> None:
    hourly = Rule("add_friend.active", "hour", 3)
    await limiter.hit("a", [Charge(ACTIVE_DAY), Charge(hourly)])
    for _ in range(3):
        usage = await limiter.usage("a", [ACTIVE_DAY, hourly])
    assert [(u.used, u.remaining, u.attempts, u.allowed, u.crossed) for u in usage] == [
        (1, 4, 1, True, ()),
        (1, 2, 1, True, ()),
    ]
    assert (await limiter.usage("nobody", [ACTIVE_DAY]))[0].used == 0


async def test_pick_prefers_the_most_remaining_quota(limiter: Limiter) -> None:
    day = Rule("add_friend.active", "day", 5)
    hour = Rule("add_friend.active", "hour", 4)
    await hits(limiter, "main", [Charge(day), Charge(hour)], 3)  # day 2 left, hour 1 left → 1
    await hits(limiter, "backup-1", [Charge(day), Charge(hour)], 1)  # day 4, hour 3 → 3
    await limiter.freeze("backup-2")  # untouched, but frozen
    matrix = [("main", [day, hour]), ("backup-1", [day, hour]), ("backup-2", [day, hour])]
    assert await limiter.pick(matrix) == "backup-1"
    await limiter.unfreeze("backup-2")
    assert await limiter.pick(matrix) == "backup-2"
    await hits(limiter, "backup-2", [Charge(day)], 2)  # day 3, hour 4 → 3: tie goes to the earlier
    assert await limiter.pick(matrix) == "backup-1"


async def test_pick_returns_none_when_nobody_has_quota(limiter: Limiter) -> None:
    rule = Rule("broadcast", "day", 1)
    await limiter.hit("a", [Charge(rule)])
    await limiter.freeze("b")
    assert await limiter.pick([("a", [rule]), ("b", [rule])]) is None
    assert await limiter.pick([]) is None


async def test_rules_of_another_module_count_structurally(limiter: Limiter) -> None:
    from rules.limits import load_limits

    table = load_limits(None)
    rules = table.rules_for("add_friend.active", "new")
    assert all(isinstance(r, LimitRule) for r in rules)
    results = await hits(limiter, "a", [Charge(r) for r in rules], 11)
    assert [r.allowed for r in results] == [True] * 5 + [False] * 6
    assert [i for i, r in enumerate(results) if "alert_over" in r.outcomes[0].crossed] == [10]


async def test_bad_input_is_refused_before_counting(limiter: Limiter) -> None:
    with pytest.raises(ValueError, match="cost"):
        await limiter.hit("a", [Charge(ACTIVE_DAY, -1)])
    with pytest.raises(ValueError, match="twice"):
        await limiter.hit("a", [Charge(ACTIVE_DAY), Charge(ACTIVE_DAY)])
    with pytest.raises(ValueError, match="account"):
        await limiter.hit("", [Charge(ACTIVE_DAY)])
    with pytest.raises(ValueError, match="window"):
        Rule("x", "week", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="limit"):
        Rule("x", "day", -1)
    with pytest.raises(ValueError, match="limit"):
        Rule("x", "day", 2**53)  # beyond what the scripts count exactly
    with pytest.raises(ValueError, match="cost"):
        await limiter.hit("a", [Charge(ACTIVE_DAY, 2**60)])


# --- Redis specifics ---------------------------------------------------------------------------------

REDIS_BACKENDS = ["redis", pytest.param("cluster", marks=pytest.mark.cluster)]


def raw_client(kind: str, url: str) -> aioredis.Redis | ClusterClient:
    return ClusterClient.from_url(url) if kind == "cluster" else aioredis.Redis.from_url(url)


@pytest.mark.parametrize("backend", REDIS_BACKENDS, indirect=True)
async def test_every_key_carries_an_expiry(
    backend: tuple[str, str | None], limiter: Limiter, clock: Clock
) -> None:
    kind, url = backend
    assert url is not None
    clock.set(utc(2026, 11, 22, 15, 0, 0))  # one hour before midnight in Shanghai
    rules = [Charge(ACTIVE_DAY), Charge(Rule("message", "hour", 9)), Charge(Rule("message", "minute", 9))]
    await limiter.hit("a", rules, request_id="r")
    await limiter.hit("a", rules)
    client = raw_client(kind, url)
    try:
        if isinstance(client, ClusterClient):
            found = await client.keys("*", target_nodes=ClusterClient.PRIMARIES)
        else:
            found = await client.keys("*")
        keys = [k.decode() for k in found]
        ttls = {k: await client.ttl(k) for k in keys}
    finally:
        await client.aclose()
    # Three counters, one request record, and the account's recent hit tokens of this process (kept 10
    # minutes after its last hit, so that a hit whose answer was lost can be settled).
    assert len(keys) == 5
    assert all(k.startswith(account_tag("a")) for k in keys)
    [recent] = [k for k in keys if k.startswith(recent_key("a", ""))]
    assert 590 <= ttls.pop(recent) <= 600
    for key, ttl in ttls.items():
        window = "day" if ":day:" in key or ":req:" in key else "hour" if ":hour:" in key else "minute"
        expected = {"day": 3600, "hour": 3600, "minute": 60}[window] + EXPIRY_GRACE_SECONDS
        assert 0 < ttl <= expected, (key, ttl)
        assert ttl >= expected - 5, (key, ttl)


@pytest.mark.parametrize("backend", REDIS_BACKENDS, indirect=True)
async def test_scripts_reload_after_a_script_flush(backend: tuple[str, str | None], limiter: Limiter) -> None:
    kind, url = backend
    assert url is not None
    assert (await limiter.hit("a", [Charge(ACTIVE_DAY)])).allowed
    client = raw_client(kind, url)
    try:
        await client.script_flush()
    finally:
        await client.aclose()
    result = await limiter.hit("a", [Charge(ACTIVE_DAY)])  # NOSCRIPT → load once → EVALSHA
    assert result.allowed and result.outcomes[0].used == 2


@pytest.mark.parametrize("backend", REDIS_BACKENDS, indirect=True)
async def test_ping_and_cluster_detection(backend: tuple[str, str | None]) -> None:
    kind, url = backend
    assert url is not None
    storage = RedisStorage.from_url(url, timeout=5.0)  # cluster=None: asks the server
    try:
        assert await storage.ping()
        assert storage.cluster is (kind == "cluster")
    finally:
        await storage.aclose()


async def test_memory_storage_forgets_ended_windows(clock: Clock) -> None:
    storage = MemoryStorage()
    limiter = Limiter(storage, clock=clock)
    for i in range(20):
        await limiter.hit(
            f"acct-{i}", [Charge(ACTIVE_DAY), Charge(Rule("message", "minute", 5))], request_id="r"
        )
    assert len(storage) == 60
    key = next(iter(storage._counters))
    assert storage.expires_at(key) is not None
    clock.advance(2 * 86400)
    await limiter.hit("other", [Charge(ACTIVE_DAY)])
    assert len(storage) == 1


async def test_pick_with_charges_needs_room_for_the_whole_cost(limiter: Limiter) -> None:
    broadcasts = Rule("broadcast", "day", 5)
    recipients = Rule("broadcast.recipients", "day", 500)
    await limiter.hit(
        "big", [Charge(broadcasts), Charge(recipients, 400)]
    )  # 4 broadcasts, 100 recipients left
    await limiter.hit("small", [Charge(broadcasts, 4), Charge(recipients, 10)])  # 1 broadcast, 490 left
    need_150 = [Charge(broadcasts), Charge(recipients, 150)]
    assert await limiter.pick([("big", need_150), ("small", need_150)]) == "small"
    need_600 = [Charge(broadcasts), Charge(recipients, 600)]
    assert await limiter.pick([("big", need_600), ("small", need_600)]) is None
    # Bare rules count as a charge of 1: "big" has the most left under both (min 4 vs min 1).
    assert (
        await limiter.pick([("big", [broadcasts, recipients]), ("small", [broadcasts, recipients])]) == "big"
    )


async def test_charges_may_be_pairs_or_bare_rules(limiter: Limiter) -> None:
    recipients = Rule("broadcast.recipients", "day", 10)
    result = await limiter.hit("a", [(recipients, 4), ACTIVE_DAY])  # type: ignore[list-item]
    assert [(o.rule, o.cost, o.used) for o in result.outcomes] == [
        ("broadcast.recipients", 4, 4),
        ("add_friend.active", 1, 1),
    ]


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
async def test_one_round_trip_per_hit(backend: tuple[str, str | None], limiter: Limiter) -> None:
    _, url = backend
    assert url is not None
    rules = [
        Charge(ACTIVE_DAY),
        Charge(Rule("add_friend.active", "hour", 3)),
        Charge(Rule("message", "minute", 9)),
    ]
    await limiter.hit("warm", rules)  # loads the scripts (NOSCRIPT → SCRIPT LOAD) once
    await limiter.usage("warm", [c.rule for c in rules])
    client = aioredis.Redis.from_url(url)
    try:
        await client.config_resetstat()
        for i in range(10):
            await limiter.hit("a", rules, request_id=f"r{i % 4}")
        await limiter.usage("a", [c.rule for c in rules])
        info = await client.info("commandstats")
    finally:
        await client.aclose()
    calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in info.items()}
    assert calls.pop("evalsha") == 11
    # TIME: a hit reads Redis's clock to do nothing when it runs after the guard gave up on it; LPUSH (and
    # LTRIM past 1024): the account's recent hit tokens.
    inside_scripts = {"time", "exists", "get", "set", "hmget", "hincrby", "hset", "expire", "lpush", "ltrim"}
    assert set(calls) - {"config|resetstat", "info"} <= inside_scripts, calls


async def test_an_empty_request_id_is_no_request_id(limiter: Limiter) -> None:
    rule = Rule("broadcast", "day", 5)
    first = await limiter.hit("a", [Charge(rule)], request_id="")
    second = await limiter.hit("a", [Charge(rule)], request_id="")
    assert not second.duplicate and second.outcomes[0].used == 2
    assert first.request_id is None
    assert await limiter.refund("a", [Charge(rule)], request_id="")
    assert (await limiter.usage("a", [rule]))[0].used == 1
