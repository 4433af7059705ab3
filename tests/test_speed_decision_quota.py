"""The hit's answer read by index (RedisStorage.hit, issue 13) gives the rules the stored-numbers format's own
reader gives (`decode_numbers`, the long way a retry takes), and the limiter's outcomes written out equal
`_outcome`'s, on many answers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratelimit import Charge, Limiter, RedisStorage, Rule
from ratelimit.connection import ConnectionSpec, PipelinedNode
from ratelimit.limiter import _outcome
from ratelimit.storage import STATUS_DONE, HitPlan, PlanItem, decode_numbers


class Answering(PipelinedNode):
    """A node whose every command is answered at once with `reply`."""

    def __init__(self) -> None:
        super().__init__(ConnectionSpec("127.0.0.1", 1), connect_timeout=1.0, timeout=1.0)
        self.reply: list[Any] = []

    def call(
        self, key: str | None, *args: Any, reply_timeout: float | None = None, deadline: bool = False
    ) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(list(self.reply))
        return future


def storage_answering() -> tuple[RedisStorage, Answering]:
    storage = RedisStorage.from_url("redis://127.0.0.1:1/0", cluster=False)
    node = Answering()
    storage._client = node
    return storage, node


def plan_of(rules: int) -> HitPlan:
    items = tuple(PlanItem(10, -1, -1, True, 1, 60) for _ in range(rules))
    keys = tuple(f"{{acct:a}}:q:r{i}:day:1" for i in range(rules))
    return HitPlan("a", keys, items, False, None, 1, 60, "", 0.0)


NUMBER = st.integers(min_value=0, max_value=2**53 - 1)
RULE = st.tuples(NUMBER, NUMBER, st.integers(min_value=0, max_value=7), st.integers(min_value=0, max_value=1))


@settings(max_examples=300, deadline=None)
@given(allowed=st.integers(min_value=0, max_value=1), rules=st.lists(RULE, max_size=6))
def test_the_answer_read_by_index_equals_decode_numbers(allowed: int, rules: list[tuple[int, ...]]) -> None:
    numbers = [allowed, *(n for rule in rules for n in rule)]

    async def run() -> None:
        storage, node = storage_answering()
        node.reply = [STATUS_DONE, *numbers]
        raw = await storage.hit(plan_of(len(rules)))
        assert (raw.status, raw.allowed, raw.rules) == (
            STATUS_DONE,
            *decode_numbers(",".join(map(str, numbers))),
        )

    asyncio.run(run())


async def test_an_answer_of_the_wrong_length_is_refused() -> None:
    storage, node = storage_answering()
    for reply in ([STATUS_DONE, 1, 1, 1, 0], [STATUS_DONE, 1, 1, 1, 0, 1, 2]):
        node.reply = reply
        with pytest.raises(ValueError):
            await storage.hit(plan_of(1))


@settings(max_examples=200, deadline=None)
@given(rules=st.lists(RULE, min_size=1, max_size=4))
def test_the_limiters_outcomes_equal_outcome(rules: list[tuple[int, ...]]) -> None:
    limits = [Rule(f"r{i}", "day", limit=5 + i, warn_at=3) for i in range(len(rules))]
    charges = tuple(Charge(rule, 1 + i) for i, rule in enumerate(limits))

    async def run() -> None:
        storage, node = storage_answering()
        node.reply = [STATUS_DONE, 1, *(n for rule in rules for n in rule)]
        limiter = Limiter(storage, tz="Asia/Shanghai", clock=lambda: 1_764_518_400.5)
        result = await limiter.hit("a", charges)
        planned = limiter._known_charges("a", charges).planned
        assert planned is not None
        raw = decode_numbers(",".join(map(str, [1, *(n for rule in rules for n in rule)])))[1]
        expected = tuple(_outcome(f, r) for f, r in zip(planned.outcome_fields, raw, strict=True))
        assert result.outcomes == expected
        assert [o.crossed for o in result.outcomes] == [o.crossed for o in expected]

    asyncio.run(run())
