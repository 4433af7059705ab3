"""Bad input: each case gets a clear error in the profile's format; nothing is forwarded, nothing charged."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import AsyncIterator

import pytest
from support import RunningGuard, StubUpstream, running_guard, stub_upstream

from guard.config.settings import Settings
from guard.http.keys import ACCOUNTS, LIMITER, PIPELINE

WECOM = "/cgi-bin/externalcontact/add_msg_template"
GEWE = "/gewe/v2/api/contacts/addContacts"


@pytest.fixture
async def guard(stub: StubUpstream) -> AsyncIterator[RunningGuard]:
    async with running_guard(
        Settings(upstream=stub.url, upstreams={"gewe": stub.url}, reload_interval=0, body_limit=64 * 1024)
    ) as g:
        yield g


async def nothing_charged(guard: RunningGuard, account: str, action: str) -> bool:
    today = guard.app[PIPELINE].today()
    rules = guard.app[ACCOUNTS].rules_for(account, action, today)
    outcomes = await guard.app[LIMITER].usage(account, rules)
    return all(o.used == 0 and o.attempts == 0 for o in outcomes)


GOOD = {"sender": "acc1", "external_userid": ["wm1"], "text": {"content": "新品到店"}}

WECOM_BAD_BODIES: dict[str, bytes] = {
    "malformed json": b'{"sender": "acc1", "text": {"content": "hi"}',
    "trailing garbage": json.dumps(GOOD).encode() + b" x",
    "not utf-8": '{"sender": "acc1", "text": {"content": "稳赚不赔"}}'.encode("gbk"),
    "duplicate top-level key": b'{"sender": "acc1", "text": {"content": "hi"}, "sender": "acc2"}',
    "duplicate key spelled with an escape": (
        b'{"sender": "acc1", "sen\\u0064er": "acc2", "text": {"content": "hi"}}'
    ),
    "utf-16 body": '{"sender": "acc1", "text": {"content": "hi"}}'.encode("utf-16"),
    "duplicate nested key": (
        b'{"sender": "acc1", "text": {"content": "hi", "content": "\\u7a33\\u8d5a\\u4e0d\\u8d54"}}'
    ),
    "duplicate key in an attachment": (
        b'{"sender":"acc1","attachments":[{"msgtype":"link","link":{"title":"a","title":"b"}}]}'
    ),
    "content not a string": b'{"sender": "acc1", "text": {"content": ["hi"]}}',
    "text not an object": b'{"sender": "acc1", "text": "hi"}',
    "sender not a string": b'{"sender": ["acc1"], "text": {"content": "hi"}}',
    "sender a number": b'{"sender": 42, "text": {"content": "hi"}}',
    "sender a boolean": b'{"sender": true, "text": {"content": "hi"}}',
    "external_userid not a list": b'{"sender": "acc1", "external_userid": "wm1", "text": {"content": "hi"}}',
    "attachments not a list": b'{"sender": "acc1", "attachments": {"msgtype": "link"}}',
    "attachment without its payload": b'{"sender": "acc1", "attachments": [{"msgtype": "link"}]}',
    "unknown attachment type": b'{"sender": "acc1", "attachments": [{"msgtype": "voice", "voice": {}}]}',
    "link title not a string": b'{"sender": "acc1", "link": {"title": 5, "url": "https://a.example"}}',
    "ten attachments": json.dumps(
        {"sender": "acc1", "attachments": [{"msgtype": "image", "image": {"media_id": "m"}}] * 10}
    ).encode(),
    "bad chat_type": b'{"sender": "acc1", "chat_type": "all", "text": {"content": "hi"}}',
    "NaN": b'{"sender": "acc1", "text": {"content": "hi"}, "x": NaN}',
    "array body": b'[{"sender": "acc1"}]',
    "empty body": b"",
    "missing account": b'{"external_userid": ["wm1"], "text": {"content": "hi"}}',
    "empty account": b'{"sender": "", "text": {"content": "hi"}}',
}


@pytest.mark.parametrize("case", sorted(WECOM_BAD_BODIES))
async def test_wecom_bad_body_refused_in_wecom_format(
    guard: RunningGuard, stub: StubUpstream, case: str
) -> None:
    status, headers, data = await guard.post(WECOM, WECOM_BAD_BODIES[case])
    assert status == 200
    expected = 490014 if "account" in case else 490005
    assert data["errcode"] == expected, data
    assert data["errmsg"]  # bilingual text + the technical detail
    assert headers["X-Guard-Decision"] == "refuse"
    assert stub.count() == 0
    assert await nothing_charged(guard, "acc1", "broadcast")


GEWE_BAD_BODIES: dict[str, bytes] = {
    "option missing": b'{"appId": "app1", "v3": "v3", "v4": "v4", "content": "hi"}',
    "option out of range": b'{"appId": "app1", "option": 7, "content": "hi"}',
    "option a boolean": b'{"appId": "app1", "option": true, "content": "hi"}',
    "content a number": b'{"appId": "app1", "option": 2, "content": 12}',
    "duplicate option": b'{"appId": "app1", "option": 3, "content": "hi", "option": 2}',
    "missing appId": b'{"option": 2, "content": "hi"}',
    "appId an object": b'{"appId": {"id": "app1"}, "option": 2}',
    "appId a number": b'{"appId": 7, "option": 2, "content": "hi"}',
}


@pytest.mark.parametrize("case", sorted(GEWE_BAD_BODIES))
async def test_gewe_bad_body_refused_in_gewe_format(
    guard: RunningGuard, stub: StubUpstream, case: str
) -> None:
    status, _headers, data = await guard.post(GEWE, GEWE_BAD_BODIES[case])
    assert status == 200
    assert data["ret"] in (490005, 490014) and data["msg"], data
    assert "errcode" not in data
    assert stub.count() == 0
    assert await nothing_charged(guard, "app1", "add_friend.active")
    assert await nothing_charged(guard, "app1", "add_friend.passive")


async def test_body_over_the_limit_is_413(guard: RunningGuard, stub: StubUpstream) -> None:
    body = json.dumps({**GOOD, "text": {"content": "好" * 40_000}}).encode()
    assert len(body) > 64 * 1024
    status, _, data = await guard.post(WECOM, body)
    assert status == 200 and data["errcode"] == 490006
    assert stub.count() == 0


async def test_chunked_body_over_the_limit_is_413(guard: RunningGuard, stub: StubUpstream) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"sender": "acc1", "text": {"content": "'
        for _ in range(20):
            yield ("好" * 2000).encode()
        yield b'"}}'

    status, _, data = await guard.post(WECOM, chunks())  # type: ignore[arg-type]
    assert status == 200 and data["errcode"] == 490006
    assert stub.count() == 0


async def test_chunked_body_is_scanned_and_forwarded_whole(guard: RunningGuard, stub: StubUpstream) -> None:
    async def chunks(text: str) -> AsyncIterator[bytes]:
        raw = json.dumps({**GOOD, "text": {"content": text}}, ensure_ascii=False).encode()
        for i in range(0, len(raw), 7):
            yield raw[i : i + 7]

    _, _, data = await guard.post(WECOM, chunks("本周稳赚不赔"))  # type: ignore[arg-type]
    assert data["errcode"] == 490001 and stub.count() == 0
    _status, _, data = await guard.post(WECOM, chunks("新品到店"))  # type: ignore[arg-type]
    assert data["errcode"] == 0 and stub.count() == 1
    assert json.loads(stub.seen[0].body)["text"]["content"] == "新品到店"
    assert "Transfer-Encoding" not in stub.seen[0].headers


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/octet-stream"],
)
async def test_non_json_content_type_refused(
    guard: RunningGuard, stub: StubUpstream, content_type: str
) -> None:
    status, _, data = await guard.post(WECOM, json.dumps(GOOD), headers={"Content-Type": content_type})
    assert status == 200 and data["errcode"] == 490013
    assert stub.count() == 0


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_compressed_body_is_decoded_scanned_and_forwarded_compressed(
    guard: RunningGuard, stub: StubUpstream, encoding: str
) -> None:
    def pack(obj: object) -> bytes:
        raw = json.dumps(obj, ensure_ascii=False).encode()
        return gzip.compress(raw) if encoding == "gzip" else zlib.compress(raw)

    bad = pack({**GOOD, "text": {"content": "稳赚不赔的项目"}})
    _, _, data = await guard.post(WECOM, bad, headers={"Content-Encoding": encoding})
    assert data["errcode"] == 490001 and stub.count() == 0

    good = pack(GOOD)
    _status, _, data = await guard.post(WECOM, good, headers={"Content-Encoding": encoding})
    assert data["errcode"] == 0 and stub.count() == 1
    assert stub.seen[0].body == good  # forwarded as received: still compressed
    assert stub.seen[0].headers["Content-Encoding"] == encoding


async def test_compression_bomb_refused(guard: RunningGuard, stub: StubUpstream) -> None:
    bomb = gzip.compress(b'{"sender":"acc1","text":{"content":"' + b"a" * 10_000_000 + b'"}}')
    assert len(bomb) < 64 * 1024
    status, _, data = await guard.post(WECOM, bomb, headers={"Content-Encoding": "gzip"})
    assert status == 200 and data["errcode"] == 490006
    assert stub.count() == 0


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress"])
async def test_unknown_content_encoding_refused(
    guard: RunningGuard, stub: StubUpstream, encoding: str
) -> None:
    status, _, data = await guard.post(WECOM, json.dumps(GOOD), headers={"Content-Encoding": encoding})
    assert status == 200 and data["errcode"] == 490013
    assert stub.count() == 0


async def test_corrupt_gzip_refused(guard: RunningGuard, stub: StubUpstream) -> None:
    status, _, data = await guard.post(
        WECOM, b"\x1f\x8b\x08\x00garbage", headers={"Content-Encoding": "gzip"}
    )
    assert status == 200 and data["errcode"] == 490005
    assert stub.count() == 0


async def test_upstream_hang_is_504_in_profile_format() -> None:
    async with stub_upstream() as stub:
        stub.answers[WECOM] = ("hang", 5.0)
        stub.answers["/api/message/postText"] = ("hang", 5.0)
        async with running_guard(
            Settings(upstream=stub.url, upstreams={"gewe": stub.url}, reload_interval=0, read_timeout=0.3)
        ) as guard:
            status, _, data = await guard.post(WECOM, GOOD)
            assert status == 200 and data["errcode"] == 490011
            status, _headers, data = await guard.post(
                "/api/message/postText", {"appId": "g1", "content": "hi"}
            )
            assert status == 200 and data["ret"] == 490011
            # The action may have happened upstream: the charge is kept.
            today = guard.app[PIPELINE].today()
            rules = guard.app[ACCOUNTS].rules_for("acc1", "broadcast", today)
            outcomes = await guard.app[LIMITER].usage("acc1", rules)
            assert outcomes[0].used == 1


async def test_upstream_down_is_502_and_refunded() -> None:
    from servers import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    async with running_guard(Settings(upstream=dead, reload_interval=0, connect_timeout=1.0)) as guard:
        status, _headers, data = await guard.post(WECOM, GOOD)
        assert status == 200 and data["errcode"] == 490012
        assert "重试" in data["errmsg"] and "Retry" in data["errmsg"]
        assert await nothing_charged(guard, "acc1", "broadcast") is False  # the attempt was counted …
        today = guard.app[PIPELINE].today()
        outcomes = await guard.app[LIMITER].usage(
            "acc1", guard.app[ACCOUNTS].rules_for("acc1", "broadcast", today)
        )
        assert outcomes[0].used == 0  # … but the charge was given back


async def test_lone_surrogate_escapes_do_not_break_the_guard(guard: RunningGuard, stub: StubUpstream) -> None:
    status, _, data = await guard.post(
        WECOM,
        b'{"sender":"acc1","external_userid":["wm1"],'
        b'"text":{"content":"\\ud800\\u7a33\\u8d5a\\u4e0d\\u8d54\\udfff"}}',
    )
    assert status == 200 and data["errcode"] == 490001
    status, _, data = await guard.post(
        WECOM, b'{"sender":"acc1","external_userid":["wm1"],"text":{"content":"\\ud800 hello"}}'
    )
    assert status == 200 and data["errcode"] == 0
    assert stub.count() == 1


async def test_percent_encoded_key_parameter_is_stripped(stub: StubUpstream) -> None:
    from guard.config.settings import ClientKey
    from guard.http.auth import hash_key

    keys = (ClientKey(name="k", hash=hash_key("sekret"), accounts=("*",)),)
    async with running_guard(
        Settings(upstream=stub.url, upstreams={"gewe": stub.url}, reload_interval=0, keys=keys)
    ) as guard:
        status, _, data = await guard.post(WECOM + "?access_token=T&guard%5Fkey=sekret", GOOD)
        assert status == 200 and data["errcode"] == 0
        assert stub.seen[0].path_qs == WECOM + "?access_token=T"


@pytest.mark.parametrize(
    "body",
    [
        {"sender": "acc9", "text": {"content": "周末新品到店"}},
        {"sender": "acc9", "chat_type": "single", "external_userid": [], "tag_filter": {"group_list": []},
         "text": {"content": "周末新品到店"}},
        {"sender": "acc9", "chat_type": "group", "text": {"content": "周末新品到店"}},
    ],
)  # fmt: skip
async def test_a_broadcast_to_uncounted_recipients_is_refused(
    guard: RunningGuard, stub: StubUpstream, body: dict[str, object]
) -> None:
    # An empty recipient list means "every customer / group of the sender": the recipient limit could not
    # be checked, so the guard refuses instead of forwarding.
    status, headers, data = await guard.post(WECOM, body)
    assert status == 200 and data["errcode"] == 490016
    assert "external_userid" in data["errmsg"] and "请" in data["errmsg"]
    assert headers["X-Guard-Decision"] == "refuse"
    assert stub.count() == 0
    assert await nothing_charged(guard, "acc9", "broadcast")
