"""What the guard answers on a platform's path, and where it forwards: HTTP 200 in the platform's own error
format (or HTTP statuses when the operator opts in), keys carried as the base URL's first path segment,
no request with a body forwarded unchecked by another method, each profile only to its own upstream, and
"retry with a fresh token" answers that cost neither quota nor an attempt."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from support import RunningGuard, StubUpstream, running_guard

from guard.config.settings import ClientKey, Settings
from guard.core import codes
from guard.core.codes import GuardCode
from guard.http.auth import hash_key
from guard.http.keys import ACCOUNTS, LIMITER, PIPELINE, SETTINGS

SEND = "/cgi-bin/externalcontact/add_msg_template"
GEWE_TEXT = "/v2/api/message/postText"
KEYS = (
    ClientKey("scrm", hash_key("k-123/?&"), ("*",), "staff"),
    ClientKey("narrow", hash_key("narrow"), ("acct-a",), "staff"),
)


def broadcast(sender: str = "acct-1", content: str = "双十一新品到店，欢迎来门店试穿") -> dict[str, Any]:
    return {
        "chat_type": "single",
        "external_userid": ["wmCust01"],
        "sender": sender,
        "text": {"content": content},
    }


def gewe_text(app_id: str = "wx-app-1", content: str = "您好，新品到店") -> dict[str, Any]:
    return {"appId": app_id, "toWxid": "wxid_customer", "content": content}


def settings_for(stub: StubUpstream, **extra: Any) -> Settings:
    return Settings(upstream=stub.url, upstreams={"gewe": stub.url}, reload_interval=0, **extra)


@pytest.fixture(params=[False, True], ids=["platform-200", "http-statuses"])
async def guard_any(request: pytest.FixtureRequest, stub: StubUpstream) -> AsyncIterator[RunningGuard]:
    settings = settings_for(stub, keys=KEYS, http_error_status=request.param, body_limit=64 * 1024)
    async with running_guard(settings) as g:
        yield g


KEY = {"X-Guard-Key": "k-123/?&"}
# (path, body bytes, headers) → the guard code it is answered with.
CASES: dict[str, tuple[str, bytes, dict[str, str], GuardCode]] = {
    "no key": (SEND, json.dumps(broadcast()).encode(), {}, codes.UNAUTHORIZED),
    "unknown route": ("/cgi-bin/no/such/write", b"{}", KEY, codes.UNKNOWN_ROUTE),
    "malformed": (SEND, b'{"sender": ', KEY, codes.BAD_REQUEST),
    "form body": (
        SEND,
        b"a=1",
        {**KEY, "Content-Type": "application/x-www-form-urlencoded"},
        codes.UNSUPPORTED_BODY,
    ),
    "too large": (SEND, b'{"pad": "' + b"x" * (100 * 1024) + b'"}', KEY, codes.BODY_TOO_LARGE),
    "not permitted": (
        SEND,
        json.dumps(broadcast("other")).encode(),
        {"X-Guard-Key": "narrow"},
        codes.ACCOUNT_NOT_PERMITTED,
    ),
    "wrong key": (SEND, json.dumps(broadcast()).encode(), {"X-Guard-Key": "nope"}, codes.UNAUTHORIZED),
    "gewe no key": (GEWE_TEXT, json.dumps(gewe_text()).encode(), {}, codes.UNAUTHORIZED),
    "gewe malformed": (GEWE_TEXT, b"[1, 2", KEY, codes.BAD_REQUEST),
    "content": (
        SEND,
        json.dumps(broadcast(content="稳赚不赔的投资机会")).encode(),
        KEY,
        codes.CONTENT_BLOCKED,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_every_guard_answer_is_200_in_the_platforms_format_unless_statuses_are_asked_for(
    guard_any: RunningGuard, stub: StubUpstream, case: str
) -> None:
    path, body, headers, code = CASES[case]
    headers = {"Content-Type": "application/json", **headers}
    opted_in = guard_any.app[SETTINGS].http_error_status
    async with guard_any.session.post(guard_any.url + path, data=body, headers=headers) as resp:
        data = json.loads(await resp.read())
        code_field, message_field = ("ret", "msg") if path.startswith("/v2/api") else ("errcode", "errmsg")
        assert data[code_field] == code.code
        assert " / " in data[message_field] and resp.headers["X-Guard-Decision"] == "refuse"
        assert resp.status == (code.status if opted_in else 200)
    assert stub.count() == 0


async def test_statuses_follow_the_setting(stub: StubUpstream) -> None:
    body = json.dumps(broadcast()).encode()
    for opted_in, status in ((False, 200), (True, 401)):
        async with running_guard(settings_for(stub, keys=KEYS, http_error_status=opted_in)) as guard:
            async with guard.session.post(guard.url + SEND, data=body) as resp:
                assert resp.status == status
                assert (await resp.json(content_type=None))["errcode"] == codes.UNAUTHORIZED.code
            # A policy refusal is 200 either way.
            bad = json.dumps(broadcast(content="稳赚不赔的投资机会")).encode()
            headers = {**KEY, "Content-Type": "application/json"}
            async with guard.session.post(guard.url + SEND, data=bad, headers=headers) as resp:
                assert resp.status == 200
                assert (await resp.json(content_type=None))["errcode"] == codes.CONTENT_BLOCKED.code


async def test_a_key_in_the_base_url_is_taken_stripped_and_never_forwarded(stub: StubUpstream) -> None:
    async with running_guard(settings_for(stub, keys=KEYS)) as guard:
        prefix = "/k/k-123%2F%3F%26"
        status, _, data = await guard.post(prefix + SEND + "?access_token=T", broadcast())
        assert status == 200 and data["errcode"] == 0
        status, _, data = await guard.post(prefix + GEWE_TEXT, gewe_text())
        assert status == 200 and data["ret"] == 200
        async with guard.session.get(guard.url + prefix + "/cgi-bin/user/get?userid=u1") as resp:
            assert resp.status == 200 and (await resp.json())["errcode"] == 0
        assert [s.path_qs for s in stub.seen] == [
            SEND + "?access_token=T",
            GEWE_TEXT,
            "/cgi-bin/user/get?userid=u1",
        ]
        assert all("k-123" not in s.path_qs and "k-123" not in json.dumps(s.headers) for s in stub.seen)
        # A wrong key in the path is refused like any other; the prefix is checked, not skipped.
        status, _, data = await guard.post("/k/wrong" + SEND, broadcast())
        assert data["errcode"] == codes.UNAUTHORIZED.code and stub.count() == 3
        # And a guarded call through the prefix is still checked.
        status, _, data = await guard.post(prefix + SEND, broadcast(content="稳赚不赔的投资机会"))
        assert data["errcode"] == codes.CONTENT_BLOCKED.code and stub.count() == 3


@pytest.mark.parametrize("strict", [True, False])
async def test_a_body_is_never_forwarded_unchecked_by_another_method(
    stub: StubUpstream, strict: bool
) -> None:
    async with running_guard(settings_for(stub, strict=strict)) as guard:
        body = json.dumps(broadcast(content="稳赚不赔的投资机会")).encode()
        for method in ("GET", "PUT", "PATCH", "DELETE", "OPTIONS"):
            async with guard.session.request(method, guard.url + SEND, data=body) as resp:
                answer = json.loads(await resp.read())
                assert answer["errcode"] == codes.BAD_REQUEST.code, method
        # A GET with a JSON body to a path no profile knows is an unknown write.
        async with guard.session.get(
            guard.url + "/cgi-bin/externalcontact/brand_new_send", data=body
        ) as resp:
            answer = json.loads(await resp.read())
        if strict:
            assert answer["errcode"] == codes.UNKNOWN_ROUTE.code
            assert stub.count() == 0
        else:
            assert answer["errcode"] == 0 and stub.count() == 1
        # A plain GET (no body) is a read.
        async with guard.session.get(guard.url + "/cgi-bin/externalcontact/brand_new_read") as resp:
            assert (await resp.json())["errcode"] == 0


@pytest.mark.parametrize("strict", [True, False])
async def test_each_profile_forwards_only_to_its_own_upstream(stub: StubUpstream, strict: bool) -> None:
    async with running_guard(Settings(upstream=stub.url, reload_interval=0, strict=strict)) as guard:
        status, _, data = await guard.post(GEWE_TEXT, gewe_text(), headers={"X-GEWE-TOKEN": "gewe-secret"})
        assert status == 200 and data["ret"] == codes.UPSTREAM_NOT_CONFIGURED.code
        assert "upstreams.gewe" in data["msg"]
        # Routes of GeWe the catalogue may not know, and paths no profile owns, reach no upstream either.
        for path in ("/v2/api/tools/getTokenId", "/v2/api/label/list", "/somewhere/else"):
            status, _, data = await guard.post(path, gewe_text(), headers={"X-GEWE-TOKEN": "gewe-secret"})
            assert status == 200 and (data.get("ret") or data.get("errcode")) in (
                codes.UPSTREAM_NOT_CONFIGURED.code,
                codes.UNKNOWN_ROUTE.code,
            ), path
        async with guard.session.get(guard.url + "/somewhere/else") as resp:
            assert (await resp.json())["errcode"] == codes.UNKNOWN_ROUTE.code
        assert stub.count() == 0
        status, _, data = await guard.post(SEND, broadcast())
        assert data["errcode"] == 0 and stub.count() == 1


async def attempts(guard: RunningGuard, account: str) -> tuple[int, int]:
    today = guard.app[PIPELINE].today()
    rules = [r for r in guard.app[ACCOUNTS].rules_for(account, "broadcast", today) if r.window == "day"]
    (outcome,) = await guard.app[LIMITER].usage(account, rules)
    return outcome.used, outcome.attempts


@pytest.mark.parametrize("errcode", [40001, 40014, 42001])
async def test_a_retry_with_a_fresh_token_costs_neither_quota_nor_an_attempt(
    stub: StubUpstream, errcode: int
) -> None:
    async with running_guard(settings_for(stub)) as guard:
        answer = json.dumps({"errcode": errcode, "errmsg": "invalid access_token"}).encode()
        stub.answers[SEND] = ("json", 200, answer)
        _, _, data = await guard.post(SEND, broadcast())
        assert data["errcode"] == errcode  # relayed: the SDK fetches a token and sends again
        assert await attempts(guard, "acct-1") == (0, 0)
        # The same answer gzip-encoded is read the same way.
        stub.answers[SEND] = ("raw", 200, gzip.compress(answer), {"Content-Encoding": "gzip"})
        await guard.post(SEND, broadcast())
        assert await attempts(guard, "acct-1") == (0, 0)
        del stub.answers[SEND]
        _, _, data = await guard.post(SEND, broadcast())
        assert data["errcode"] == 0 and await attempts(guard, "acct-1") == (1, 1)
        # Any other refusal by the platform gives the quota back but stays an attempt.
        stub.answers[SEND] = ("json", 200, b'{"errcode": 41048, "errmsg": "no permission"}')
        await guard.post(SEND, broadcast())
        assert await attempts(guard, "acct-1") == (1, 2)


async def test_a_quota_refusal_names_the_window_of_the_limit(stub: StubUpstream) -> None:
    async with running_guard(settings_for(stub)) as guard:
        body = {"touser": "u1", "msgtype": "text", "agentid": 1000002, "text": {"content": "您好"}}
        refusal: dict[str, Any] = {}
        for _ in range(25):  # the shipped `new` tier allows 20 app messages a minute
            _, _, refusal = await guard.post("/cgi-bin/message/send", body)
            if refusal["errcode"] != 0:
                break
        assert refusal["errcode"] == codes.QUOTA_EXCEEDED.code
        message = refusal["errmsg"]
        assert "本分钟" in message and "this minute" in message and "今日" not in message
        assert refusal["guard"]["details"]["window"] == "minute"


def test_the_quota_code_text_names_no_window() -> None:
    assert "今日" not in codes.QUOTA_EXCEEDED.zh and "today" not in codes.QUOTA_EXCEEDED.en


async def test_no_key_text_points_at_the_path_prefix(stub: StubUpstream) -> None:
    async with running_guard(replace(settings_for(stub), keys=KEYS)) as guard:
        _, _, data = await guard.post(GEWE_TEXT, gewe_text())
        assert "/k/<key>" in data["msg"]
