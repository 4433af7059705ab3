"""The relay's shortcuts (issue 13) say what the long way says: an upstream answer read as plainly ok
without parsing is one the full check would not call a refusal, so every upstream refusal is still
refunded; the hop-by-hop filter without a Connection header drops what it dropped, and a Connection-listed
answer header is still dropped; the forward's header pairs are the forwarded headers."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from support import RunningGuard, StubUpstream, running_guard

from guard.config.settings import Settings
from guard.core.profiles.model import GEWE_FORMAT, WECOM_FORMAT, AnswerFormat
from guard.http.auth import PresentedKey
from guard.http.keys import ACCOUNTS, LIMITER, PIPELINE
from guard.http.proxy import end_to_end_headers, forward_headers, forward_pairs, plainly_ok

SEND = "/cgi-bin/externalcontact/add_msg_template"

CUSTOM = AnswerFormat("custom", "result.code", "msg", (0,))
ODD_OK = AnswerFormat("odd", "code", "msg", (True, "0", 0.0))
# Answers that open like an ok one but are not plainly ok, and some that are.
ANSWERS = [
    b'{"errcode":0,"errmsg":"ok","fail_list":[],"msgid":"m1"}',
    b'{"errcode":0}',
    b'{"errcode":0,"errcode":41048}',  # a duplicate key: the last one counts
    b'{"errcode":0,"errcod\\u0065":41048}',  # an escaped duplicate
    b'{"errcode":0,"errmsg":"\\"errcode\\":1"}',
    b'{"errcode":0,"nested":{"errcode":1}}',
    b'{"errcode":0,"errmsg":"errcode"}',
    b'{"errcode":0.0,"errmsg":"ok"}',
    b'{"errcode":00}',
    b'{"errcode":0,',  # truncated
    b'{"errcode":0} trailing',
    b'{"errcode":01}',
    b'{"errcode":0,"errmsg":"\xff"}',  # not UTF-8
    b'{"errcode":40001,"errmsg":"invalid credential"}',
    b'{"errcode": 0, "errmsg": "ok"}',
    b'{"ret":200,"msg":"ok"}',
    b'{"ret":200,"ret":500}',
    b'{"ret":200}',
    b'{"ret":2000}',
    b'{"result.code":0}',
    b'{"code":true}',
    b'{"code":0}',
    b"",
    b"[]",
]


@pytest.mark.parametrize("fmt", [WECOM_FORMAT, GEWE_FORMAT, CUSTOM, ODD_OK], ids=lambda f: f.name)
@pytest.mark.parametrize("status", [200, 204, 399, 400, 502])
@pytest.mark.parametrize("answer", ANSWERS)
def test_a_plainly_ok_answer_is_never_an_upstream_refusal(
    fmt: AnswerFormat, status: int, answer: bytes
) -> None:
    if plainly_ok(fmt, status, answer):
        assert not fmt.upstream_refused(status, answer)


@pytest.mark.parametrize(
    ("fmt", "answer"),
    [
        (WECOM_FORMAT, b'{"errcode":0,"errmsg":"ok","fail_list":[],"msgid":"m1"}'),
        (WECOM_FORMAT, b'{"errcode":0}'),
        (GEWE_FORMAT, b'{"ret":200,"msg":"ok","data":{}}'),
    ],
)
def test_the_platforms_compact_ok_answers_take_the_shortcut(fmt: AnswerFormat, answer: bytes) -> None:
    assert plainly_ok(fmt, 200, answer)
    assert not plainly_ok(fmt, 400, answer)


@pytest.mark.parametrize(
    "answer",
    [
        b'{"errcode":0,"errcode":1}',
        b'{"errcode":0,"errcod\\u0065":1}',
        b'{"errcode":0.0}',
        b'{"errcode":0,"x":"errcode"}',
        b'{"errcode": 0}',
    ],
)
def test_anything_less_plain_takes_the_full_check(answer: bytes) -> None:
    assert not plainly_ok(WECOM_FORMAT, 200, answer)


def test_odd_fields_and_ok_values_never_take_the_shortcut() -> None:
    assert not plainly_ok(CUSTOM, 200, b'{"result.code":0}')
    assert not plainly_ok(ODD_OK, 200, b'{"code":true}')
    assert not plainly_ok(AnswerFormat("list", "code", "msg", ([0],)), 200, b'{"code":[0]}')  # unhashable


# ---- through the guard: refusals refunded, ok answers charged ----


async def attempts(guard: RunningGuard, account: str) -> tuple[int, int]:
    today = guard.app[PIPELINE].today()
    rules = [r for r in guard.app[ACCOUNTS].rules_for(account, "broadcast", today) if r.window == "day"]
    (outcome,) = await guard.app[LIMITER].usage(account, rules)
    return outcome.used, outcome.attempts


def broadcast(sender: str) -> dict[str, Any]:
    return {
        "chat_type": "single",
        "external_userid": ["wmCust01"],
        "sender": sender,
        "text": {"content": "您好"},
    }


@pytest.mark.parametrize(
    ("answer", "headers", "refused"),
    [
        (b'{"errcode":0,"errmsg":"ok","msgid":"m1"}', {}, False),
        (b'{"errcode":0}', {}, False),
        (b'{"errcode":0,"errcode":41048}', {}, True),
        (b'{"errcode":0,"errcod\\u0065":41048}', {}, True),
        (b'{"errcode":0.0,"errmsg":"ok"}', {}, True),
        (b'{"errcode":41048,"errmsg":"no permission"}', {}, True),
        (gzip.compress(b'{"errcode":0,"errcode":41048}'), {"Content-Encoding": "gzip"}, True),
        (gzip.compress(b'{"errcode":0,"errmsg":"ok"}'), {"Content-Encoding": "gzip"}, False),
    ],
)
async def test_every_upstream_refusal_is_still_refunded(
    stub: StubUpstream, answer: bytes, headers: dict[str, str], refused: bool
) -> None:
    async with running_guard(Settings(upstream=stub.url, reload_interval=0)) as guard:
        stub.answers[SEND] = ("raw", 200, answer, {"Content-Type": "application/json", **headers})
        status, got, raw = await post_raw(guard, broadcast("acct-relay"))
        assert status == 200 and raw == answer  # relayed unchanged
        assert got["X-Guard-Decision"] == "allow"
        assert got.get("Content-Encoding") == headers.get("Content-Encoding")
        # A refusal gives the quota back and stays an attempt; an ok answer keeps the charge.
        assert await attempts(guard, "acct-relay") == ((0, 1) if refused else (1, 1))


async def post_raw(guard: RunningGuard, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    """The answer's status, headers and bytes exactly as relayed."""
    data = json.dumps(body, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json"}
    async with guard.session.post(guard.url + SEND, data=data, headers=headers) as resp:
        return resp.status, dict(resp.headers), await resp.read()


# ---- headers ----


def proxy_of(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


def test_without_a_connection_header_only_hop_by_hop_headers_are_dropped() -> None:
    headers = proxy_of(
        ("Content-Type", "application/json"),
        ("Content-Length", "2"),
        ("Keep-Alive", "timeout=5"),
        ("Transfer-Encoding", "chunked"),
        ("X-A", "1"),
        ("x-a", "2"),
        ("Date", "today"),
    )
    assert list(end_to_end_headers(headers).items()) == [
        ("Content-Type", "application/json"),
        ("X-A", "1"),
        ("x-a", "2"),
        ("Date", "today"),
    ]


def test_a_connection_listed_answer_header_is_still_dropped() -> None:
    headers = proxy_of(
        ("Connection", "keep-alive, X-Secret"),
        ("X-Secret", "s"),
        ("connection", " x-other "),
        ("X-Other", "o"),
        ("X-Kept", "k"),
    )
    assert list(end_to_end_headers(headers).items()) == [("X-Kept", "k")]


async def test_a_connection_listed_answer_header_is_not_relayed(stub: StubUpstream) -> None:
    async with running_guard(Settings(upstream=stub.url, reload_interval=0)) as guard:
        answer = b'{"errcode":0,"errmsg":"ok"}'
        stub.answers[SEND] = (
            "raw",
            200,
            answer,
            {"Content-Type": "application/json", "Connection": "X-Secret", "X-Secret": "s", "X-Kept": "k"},
        )
        status, got, raw = await post_raw(guard, broadcast("acct-conn"))
        assert status == 200 and raw == answer
        assert got["X-Kept"] == "k" and "X-Secret" not in got


@pytest.mark.parametrize("source", ["header", "bearer", "query", "path"])
def test_the_forwarded_pairs_are_the_forwarded_headers(source: Any) -> None:
    settings = Settings(reload_interval=0)
    headers = proxy_of(
        ("Host", "guard"),
        (settings.key_header, "k"),
        ("Authorization", "Bearer k"),
        ("Connection", "X-Hop"),
        ("X-Hop", "h"),
        ("Content-Type", "application/json"),
        ("X-Trace", "1"),
        ("X-Trace", "2"),
    )
    key = PresentedKey("k", source)
    pairs = forward_pairs(headers, settings, key)
    assert pairs == list(forward_headers(headers, settings, key).items())
    expected = [("Content-Type", "application/json"), ("X-Trace", "1"), ("X-Trace", "2")]
    if source != "bearer":
        expected.insert(0, ("Authorization", "Bearer k"))
    assert pairs == expected
