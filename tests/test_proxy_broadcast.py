"""End to end: WeCom broadcasts through a real guard to a stub upstream that counts what arrives."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support import RunningGuard, StubUpstream

from guard.http.keys import ACCOUNTS, LIMITER, PIPELINE

PATH = "/cgi-bin/externalcontact/add_msg_template"


async def used(guard: RunningGuard, account: str, action: str = "broadcast") -> tuple[int, int]:
    """(units used, attempts) of the account's day rule for `action`."""
    today = guard.app[PIPELINE].today()
    rules = [r for r in guard.app[ACCOUNTS].rules_for(account, action, today) if r.window == "day"]
    (outcome,) = await guard.app[LIMITER].usage(account, rules)
    return outcome.used, outcome.attempts


def broadcast(sender: str = "zhangsan", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "chat_type": "single",
        "external_userid": ["wmAAAA0001", "wmAAAA0002"],
        "sender": sender,
        "text": {"content": "双十一新品到店，欢迎来门店试穿"},
    }
    body.update(extra)
    return body


BLOCKED_SHAPES = {
    "text.content": broadcast(text={"content": "稳赚不赔的理财产品，保本高收益"}),
    "attachments[].link.title": broadcast(
        attachments=[
            {"msgtype": "image", "image": {"media_id": "MEDIA1"}},
            {"msgtype": "link", "link": {"title": "内部投资渠道", "url": "https://shop.example.com/a"}},
        ]
    ),
    "attachments[].link.desc": broadcast(
        attachments=[
            {"msgtype": "link", "link": {"title": "新品", "desc": "稳赚不赔", "url": "https://x.example"}}
        ]
    ),
    "attachments[].miniprogram.title": broadcast(
        attachments=[
            {"msgtype": "miniprogram", "miniprogram": {"title": "稳赚不赔", "appid": "wx1", "page": "p"}}
        ]
    ),
    "top-level link.desc": broadcast(
        link={"title": "新品", "desc": "保本理财稳赚不赔", "url": "https://x.example"}
    ),
    "top-level link.title": broadcast(link={"title": "投资理财", "url": "https://x.example"}),
    "top-level miniprogram.title": broadcast(
        miniprogram={"title": "稳赚不赔", "appid": "wx1", "page": "index"}
    ),
}


@pytest.mark.parametrize("shape", sorted(BLOCKED_SHAPES))
async def test_blocked_broadcast_never_arrives(guard: RunningGuard, stub: StubUpstream, shape: str) -> None:
    status, headers, data = await guard.post(PATH + "?access_token=TOKEN", BLOCKED_SHAPES[shape])
    assert status == 200  # WeCom answers its errors with 200 and an errcode; so does the guard
    assert data["errcode"] == 490001
    assert "违规" in data["errmsg"] and "prohibited" in data["errmsg"]
    assert headers["X-Guard-Decision"] == "refuse"
    assert headers["X-Guard-Rule"].startswith("content:")
    assert stub.count() == 0
    assert await used(guard, "zhangsan") == (0, 0)


async def test_blocked_when_written_with_unicode_escapes(guard: RunningGuard, stub: StubUpstream) -> None:
    # every non-ASCII character as \uXXXX, as json.dumps(ensure_ascii=True) writes it
    body = json.dumps(broadcast(text={"content": "本周稳赚不赔"}), ensure_ascii=True)
    assert "稳" not in body and "\\u7a33" in body
    _status, _headers, data = await guard.post(PATH, body)
    assert data["errcode"] == 490001
    assert stub.count() == 0


async def test_allowed_broadcast_arrives_once_byte_for_byte(guard: RunningGuard, stub: StubUpstream) -> None:
    # Odd spacing, key order and escapes that a re-serialization would change.
    raw = (
        '{ "sender" : "lisi",\n  "external_userid": ["wmX1","wmX2","wmX3"],'
        '"text":{"content":"\\u65b0\\u54c1\\u5230\\u5e97"} ,"attachments":[{"msgtype":"link","link":'
        '{"title":"秋季新品","url":"https://shop.example.com/new?a=1&b=2"}}]}'
    ).encode()
    status, headers, data = await guard.post(
        PATH + "?access_token=T%2Bk&debug=1",
        raw,
        headers={"X-Trace": "abc", "Content-Type": "application/json; charset=utf-8"},
    )
    assert status == 200 and data == {"errcode": 0, "errmsg": "ok", "msgid": "m1"}
    assert headers["X-Guard-Decision"] == "allow"
    assert headers["X-Upstream"] == "wecom"  # upstream headers relayed
    assert stub.count() == 1
    seen = stub.seen[0]
    assert seen.body == raw
    assert seen.path_qs == PATH + "?access_token=T%2Bk&debug=1"
    assert seen.headers["X-Trace"] == "abc"
    assert seen.headers["Content-Type"] == "application/json; charset=utf-8"
    assert await used(guard, "lisi") == (1, 1)
    assert (await used(guard, "lisi", "broadcast.recipients"))[0] == 3


async def test_second_broadcast_refused_with_limit_count_and_reset(
    guard: RunningGuard, stub: StubUpstream
) -> None:
    first = await guard.post(PATH, broadcast("wangwu"))
    assert first[2]["errcode"] == 0
    _status, headers, data = await guard.post(PATH, broadcast("wangwu"))
    assert data["errcode"] == 490003
    assert headers["X-Guard-Rule"] == "quota:broadcast/day"
    details = data["guard"]["details"]
    assert details["limit"] == 1 and details["used"] == 1
    assert details["resets_at_local"].endswith("00:00 CST")
    assert "上限 1" in data["errmsg"] and "limit 1" in data["errmsg"] and "resets at" in data["errmsg"]
    assert stub.count() == 1


async def test_upstream_refusal_refunds_the_charge(guard: RunningGuard, stub: StubUpstream) -> None:
    stub.answers[PATH] = ("json", 200, b'{"errcode":41048,"errmsg":"invalid external_userid"}')
    _status, _headers, data = await guard.post(PATH, broadcast("zhaoliu"))
    assert data["errcode"] == 41048  # the upstream's answer, relayed unchanged
    assert stub.count() == 1
    assert (await used(guard, "zhaoliu"))[0] == 0
    stub.answers.pop(PATH)
    assert (await guard.post(PATH, broadcast("zhaoliu")))[2]["errcode"] == 0  # quota still there


async def test_http_error_from_upstream_refunds(guard: RunningGuard, stub: StubUpstream) -> None:
    stub.answers[PATH] = ("json", 503, b'{"error":"busy"}')
    status, _, _ = await guard.post(PATH, broadcast("qianqi"))
    assert status == 503
    assert (await used(guard, "qianqi"))[0] == 0


async def test_recipient_cap_charges_the_recipient_count(guard: RunningGuard, stub: StubUpstream) -> None:
    many = [f"wm{i:06d}" for i in range(201)]  # new tier: broadcast.recipients day = 200
    _status, headers, data = await guard.post(PATH, broadcast("sunba", external_userid=many))
    assert data["errcode"] == 490003
    assert headers["X-Guard-Rule"] == "quota:broadcast.recipients/day"
    assert stub.count() == 0
    assert (await used(guard, "sunba"))[0] == 0  # nothing charged (the attempt is counted)


async def test_dry_run_check_charges_nothing(guard: RunningGuard) -> None:
    body = {"kind": "broadcast", "account": "zhou", "text": "新品上市", "recipients": 2, "dry_run": True}
    for _ in range(3):
        status, _, data = await guard.post("/v1/check", body)
        assert status == 200 and data["decision"] == "allow" and data["dry_run"] is True
    assert await used(guard, "zhou") == (0, 0)
    status, _, data = await guard.post("/v1/check", {**body, "dry_run": False})
    assert data["allowed"] is True
    assert (await used(guard, "zhou"))[0] == 1
    status, _, data = await guard.post("/v1/check", {**body, "dry_run": False})
    assert data["allowed"] is False and data["code"] == 490003


async def test_check_api_refuses_a_broadcast_to_zero_recipients(guard: RunningGuard) -> None:
    body = {"kind": "broadcast", "account": "qian", "text": "新品上市", "recipients": 0}
    status, _, data = await guard.post("/v1/check", body)
    assert status == 400 and data["code"] == 490016
    assert await used(guard, "qian") == (0, 0)


async def test_check_api_refuses_content_like_the_proxy(guard: RunningGuard) -> None:
    body = {"kind": "message", "account": "wu", "texts": [{"where": "greeting", "text": "稳赚不赔"}]}
    _status, _, data = await guard.post("/v1/check", body)
    assert data["decision"] == "refuse" and data["code"] == 490001 and data["rule"] == "content:finance"
    assert data["verdicts"][0]["details"]["matches"][0]["where"] == "greeting"


async def test_old_shape_image_and_all_attachment_kinds_pass(guard: RunningGuard, stub: StubUpstream) -> None:
    body = broadcast(
        "zheng",
        image={"media_id": "M1", "pic_url": "https://img.example.com/1.png"},
        attachments=[
            {"msgtype": "image", "image": {"pic_url": "https://img.example.com/2.png"}},
            {"msgtype": "video", "video": {"media_id": "V1"}},
            {"msgtype": "file", "file": {"media_id": "F1"}},
            {"msgtype": "miniprogram", "miniprogram": {"title": "会员中心", "appid": "wx8", "page": "p/i"}},
        ],
    )
    _status, _, data = await guard.post(PATH, body)
    assert data["errcode"] == 0 and stub.count() == 1


async def test_link_to_a_denied_domain_is_refused(guard: RunningGuard, stub: StubUpstream) -> None:
    body = broadcast(attachments=[{"msgtype": "link", "link": {"title": "新品", "url": "https://t.cn/abc"}}])
    _status, headers, data = await guard.post(PATH, body)
    assert data["errcode"] == 490002 and headers["X-Guard-Rule"] == "attachment:link_domain"
    assert stub.count() == 0


async def test_compressed_upstream_refusal_is_relayed_unchanged_and_refunded(
    guard: RunningGuard, stub: StubUpstream
) -> None:
    import gzip

    answer = gzip.compress(b'{"errcode":45009,"errmsg":"api freq out of limit"}')
    stub.answers[PATH] = (
        "raw",
        200,
        answer,
        {"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    status, headers, data = await guard.post(PATH, broadcast("gz"), headers={"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert data == answer  # the session does not decompress: these are the upstream's bytes
    assert stub.seen[0].headers["Accept-Encoding"] == "gzip"
    assert (await used(guard, "gz"))[0] == 0
