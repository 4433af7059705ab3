"""Alert model, masking and the alert store (Redis Stream and in-memory ring buffer, same semantics)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from support import Clock, blocked_clients, eventually

from guard.observe.masking import mask_pii, masked_excerpt
from guard.risk.model import Alert, stream_id_key
from guard.risk.store import AlertStore, MemoryAlertStore, RedisAlertStore


def make_alert(n: int = 0, **kw: object) -> Alert:
    fields: dict[str, object] = {
        "level": "redline",
        "kind": "quota",
        "rule": "add_friend.active/day",
        "message_zh": "超限",
        "message_en": "over the limit",
        "account": f"acct-{n}",
        "window": "2026-11-22",
        "used": 5,
        "limit": 5,
    }
    fields.update(kw)
    return Alert(**fields)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> Clock:
    """The memory store's clock (Redis keeps its own time: tests wait for it instead)."""
    return Clock()


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[AlertStore]:
    if request.param == "memory":
        mem = MemoryAlertStore(maxlen=1000, clock=clock)
        yield mem
        await mem.close()
        return
    server = request.getfixturevalue("redis_server")
    client = aioredis.Redis.from_url(server.url)
    try:
        await client.flushall()
        # A reader may wait as long as it asks to (the product caps one XREAD at a few seconds).
        yield RedisAlertStore(client, maxlen=1000, block_cap=30)
    finally:
        await client.aclose()


# --- masking -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("加我微信 13812345678 领取", "12345678"),
        ("电话：+86 138-1234-5678", "1234"),
        ("电话 138 1234 5678", "1234"),
        ("电话 138.1234.5678", "1234"),
        ("电话 １３８１２３４５６７８", "１２３４"),
        ("电话 一三八一二三四五六七八", "二三四五"),
        ("qq 123456789", "23456"),
        ("mail me: alice.wang@example.com", "alice.wang"),
        ("mail me: alice ＠ qq.com", "alice"),
        ("wxid_abcdef12345 is mine", "abcdef"),
        ("加微信 shop_2024a 领券", "shop_2024a"),
        ("客户 wmAbCdEfGh1234567890abcdEFGH", "AbCdEf"),
        ("see https://evil.example.com/x?a=1", "evil.example"),
        ("去 www.evil.cn/abc 看看", "evil.cn"),
    ],
)
def test_mask_pii_hides_contact_details_and_keeps_length(text: str, secret: str) -> None:
    masked = mask_pii(text)
    assert len(masked) == len(text)
    assert secret in text and secret not in masked


def test_mask_pii_keeps_ordinary_text_and_small_numbers() -> None:
    for text in (
        "今天 3 折，满 200 减 30",
        "三个人一起去",
        "price 12.50 yuan, 2024年11月",
        "VIP 会员 welcome",
    ):
        assert mask_pii(text) == text


def test_excerpt_is_a_short_masked_window_never_the_whole_message() -> None:
    text = "亲爱的顾客您好，本周推出稳赚不赔的理财产品，投资回报高，请联系 13812345678 咨询详情，谢谢"
    start = text.index("投资")
    excerpt = masked_excerpt(text, start, start + 2)
    assert "投资" in excerpt
    assert excerpt.startswith("…") and excerpt.endswith("…")
    assert "13812345678" not in excerpt
    assert len(excerpt) < len(text) // 2
    short = "投资吗"
    assert masked_excerpt(short, 0, 2) == "投资…"


def test_excerpt_masks_a_phone_number_that_is_itself_the_hit() -> None:
    text = "联系我 13812345678"
    start = text.index("138")
    assert "1381234" not in masked_excerpt(text, start, start + 11)


def test_alert_round_trips_through_json() -> None:
    alert = make_alert(1, details={"tier": "new"}).with_id("1-2")
    assert Alert.from_json(alert.to_json()) == alert
    assert stream_id_key("1700000000000-3") == (1700000000000, 3)
    with pytest.raises(ValueError, match="stream id"):
        stream_id_key("nope")


# --- the store -------------------------------------------------------------------------------------


async def test_publish_assigns_increasing_ids_and_history_filters(store: AlertStore) -> None:
    ids = []
    for n in range(5):
        level = "warning" if n % 2 else "redline"
        stored = await store.publish(make_alert(n, level=level))
        assert stored is not None
        ids.append(stored.id)
    assert [stream_id_key(i) for i in ids] == sorted(stream_id_key(i) for i in ids)
    assert await store.last_id() == ids[-1]
    assert [a.id for a in await store.history()] == ids
    assert [a.id for a in await store.history(since=ids[1])] == ids[2:]
    assert [a.account for a in await store.history(level=["warning"])] == ["acct-1", "acct-3"]
    assert [a.id for a in await store.history(account="acct-2")] == [ids[2]]
    assert [a.id for a in await store.history(limit=2)] == ids[3:]


async def test_one_alert_per_account_rule_level_window(store: AlertStore) -> None:
    first = await store.publish(make_alert(7), dedup_ttl=60)
    assert first is not None
    results = await asyncio.gather(*(store.publish(make_alert(7), dedup_ttl=60) for _ in range(50)))
    assert results == [None] * 50
    # Another level, window or account is another alert.
    assert await store.publish(make_alert(7, level="warning"), dedup_ttl=60) is not None
    assert await store.publish(make_alert(7, window="2026-11-23"), dedup_ttl=60) is not None
    assert await store.publish(make_alert(8), dedup_ttl=60) is not None
    assert len(await store.history()) == 4


async def test_dedup_expires_with_its_window(store: AlertStore, clock: Clock) -> None:
    ttl = 1.0
    started = time.monotonic()
    assert await store.publish(make_alert(1), dedup_ttl=ttl) is not None
    assert await store.publish(make_alert(1), dedup_ttl=ttl) is None
    if isinstance(store, MemoryAlertStore):
        clock.advance(ttl / 2)
        assert await store.publish(make_alert(1), dedup_ttl=ttl) is None
        clock.advance(ttl / 2)
        assert await store.publish(make_alert(1), dedup_ttl=ttl) is not None
    else:
        # Redis expires the claim by its own clock: wait for that, and it must not come early.
        await eventually(
            lambda: store.publish(make_alert(1), dedup_ttl=ttl), what="the same alert again after its window"
        )
        assert time.monotonic() - started >= ttl * 0.99


async def test_read_waits_for_the_next_alert(store: AlertStore, request: pytest.FixtureRequest) -> None:
    start = await store.last_id()
    assert await store.read(start, wait=0.05) == []
    reader = asyncio.create_task(store.read(start, wait=30))
    # Publish only once the reader waits inside the store.
    if isinstance(store, RedisAlertStore):
        client = aioredis.Redis.from_url(request.getfixturevalue("redis_server").url)
        try:
            await eventually(lambda: blocked_clients(client), what="the reader blocked in XREAD")
        finally:
            await client.aclose()
    else:
        for _ in range(10):  # a few turns of the loop: the reader reaches its wait (no I/O involved)
            await asyncio.sleep(0)
    assert not reader.done()
    stored = await store.publish(make_alert(3))
    got = await reader
    assert stored is not None and [a.id for a in got] == [stored.id]


async def test_cursors_and_leases(store: AlertStore, clock: Clock) -> None:
    assert await store.get_cursor("hook") is None
    await store.set_cursor("hook", "5-1")
    assert await store.get_cursor("hook") == "5-1"
    assert await store.acquire_lease("hook", "a", ttl=30)
    assert await store.acquire_lease("hook", "a", ttl=30)
    assert not await store.acquire_lease("hook", "b", ttl=30)
    await store.release_lease("hook", "a")
    ttl = 1.0
    started = time.monotonic()
    assert await store.acquire_lease("hook", "b", ttl=ttl)
    if isinstance(store, MemoryAlertStore):
        clock.advance(ttl / 2)
        assert not await store.acquire_lease("hook", "a", ttl=30)
        clock.advance(ttl / 2)
        assert await store.acquire_lease("hook", "a", ttl=30)
    else:
        # Redis expires the lease by its own clock: wait for that, and it must not come early.
        await eventually(lambda: store.acquire_lease("hook", "a", ttl=30), what="the lease after b's expired")
        assert time.monotonic() - started >= ttl * 0.99


async def test_memory_ring_buffer_keeps_the_newest() -> None:
    mem = MemoryAlertStore(maxlen=3)
    for n in range(5):
        await mem.publish(make_alert(n))
    assert [a.account for a in await mem.history()] == ["acct-2", "acct-3", "acct-4"]


async def test_redis_stream_is_capped(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        capped = RedisAlertStore(client, maxlen=10)
        for n in range(500):
            await capped.publish(make_alert(n))
        assert await client.xlen(capped.stream_key) < 500
    finally:
        await client.aclose()


def test_excerpt_of_a_huge_message_masks_a_phone_number_the_window_cuts() -> None:
    from guard.observe.masking import masked_excerpt

    text = "好" * 500_000 + "13812345678投资" + "好" * 500_000
    start = text.index("投资")
    excerpt = masked_excerpt(text, start, start + 2, context=6)
    assert "投资" in excerpt
    assert not any(ch.isdigit() for ch in excerpt)
    assert excerpt.startswith("…") and excerpt.endswith("…")
