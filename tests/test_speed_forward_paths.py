"""The proxy's shortcuts after the decision (issue 13) against the long ways they replace: the query string
forwarded without a split when it cannot hold the key parameter, and each decision's verdicts read once
for the refusal, the relay's X-Guard-Decision / X-Guard-Rule and the record."""

from __future__ import annotations

import itertools
import random
from typing import Any

from support import RunningGuard, StubUpstream

from guard.core.types import Action, Decision, Verdict, read_verdicts
from guard.http.proxy import _forward_query_parts, forward_query

PIECES = [
    "access_token=BENCH", "guard_key=secret", "guard%5Fkey=x", "guard+key=y", "guard_key", "a=1", "", "=",
    "b=%20+", "guard_keyx=1", "xguard_key=2", "debug=1&x", "k=guard_key", "GUARD_KEY=3", "g%75ard_key=4",
    "%zz=1", "a+b=c", "中文=值", "guard_key=", "guard_key=a=b",
]  # fmt: skip


def test_query_fast_path_is_the_long_way() -> None:
    rng = random.Random(13)
    queries = {"&".join(combo) for n in range(1, 4) for combo in itertools.product(PIECES, repeat=n)}
    queries |= {"&".join(rng.choices(PIECES, k=rng.randint(1, 8))) for _ in range(3000)}
    for key_param in ("guard_key", "k", "access_token", "a", "guard key", "中文"):
        for query in queries:
            assert forward_query(query, key_param) == _forward_query_parts(query, key_param), (
                query,
                key_param,
            )
    assert forward_query("", "guard_key") == ""


def verdict(outcome: Any, rule: str) -> Verdict:
    return Verdict("content", outcome, 490001 if outcome == "refuse" else 0, rule)


def test_verdicts_read_once_are_what_the_decisions_say() -> None:
    """What guarded and forward_allowed take from the reads: the first decision's refusal with one (as
    `Decision.refusal` of each in turn), the first warning of the first decision with one (as the scan
    over every decision's verdicts did)."""
    rng = random.Random(7)
    action = Action("broadcast", "acct")
    for _ in range(3000):
        decisions = [
            Decision(
                action,
                tuple(
                    verdict(rng.choice(("allow", "warn", "refuse")), f"r{d}.{v}")
                    for v in range(rng.randint(0, 4))
                ),
            )
            for d in range(rng.randint(1, 3))
        ]
        reads = [read_verdicts(d.verdicts) for d in decisions]
        refusal = next((r for r, _ in reads if r is not None), None)
        assert refusal is next((d.refusal for d in decisions if d.refusal is not None), None)
        warning = next((w[0] for _, w in reads if w), None)
        assert warning is next((v for d in decisions for v in d.verdicts if v.outcome == "warn"), None)


WECOM = "/cgi-bin/externalcontact/add_msg_template"


async def test_allowed_warned_and_refused_requests_relay_as_before(
    guard: RunningGuard, stub: StubUpstream
) -> None:
    body = {"sender": "acct-1", "external_userid": ["wm1"], "text": {"content": "新品到店"}}
    queries = ("?access_token=T&x=1", "?access_token=T&guard_key=k&b=1", "?guard%5Fkey=k&z=1")
    for i, query in enumerate(queries):
        sent = {**body, "sender": f"acct-q{i}"}
        async with guard.session.post(guard.url + WECOM + query, json=sent) as resp:
            assert resp.status == 200 and resp.headers["X-Guard-Decision"] == "allow"
            assert "X-Guard-Rule" not in resp.headers
    assert [s.path_qs for s in stub.seen[-3:]] == [  # the stub's view (decoded): the key parameter gone
        WECOM + "?access_token=T&x=1",
        WECOM + "?access_token=T&b=1",
        WECOM + "?z=1",
    ]
    warned = {**body, "sender": "acct-2", "text": {"content": "新品到店，电话 13812345678"}}
    async with guard.session.post(guard.url + WECOM + "?access_token=T", json=warned) as resp:
        assert resp.status == 200 and resp.headers["X-Guard-Decision"] == "warn"
        assert resp.headers["X-Guard-Rule"].startswith("content:")
    refused = {**body, "sender": "acct-3", "text": {"content": "稳赚不赔"}}
    async with guard.session.post(guard.url + WECOM + "?access_token=T", json=refused) as resp:
        data = await resp.json()
        assert resp.headers["X-Guard-Decision"] == "refuse" and data["errcode"] == 490001
