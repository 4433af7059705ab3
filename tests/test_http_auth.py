"""One auth layer and one error shape for every endpoint of the guard: the key in the header, the query
parameter or `Authorization: Bearer`, ranked roles, and the key never forwarded from wherever it came."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from support import RunningGuard, StubUpstream, running_guard

from guard.config.settings import ClientKey, Settings
from guard.core import codes
from guard.http.auth import hash_key

KEYS = (
    ClientKey("tool", hash_key("staff-key"), ("acct-*",), "staff"),
    ClientKey("desk", hash_key("risk-key"), ("*",), "risk"),
    ClientKey("boss", hash_key("admin-key"), ("*",), "admin"),
)
BROADCAST = {
    "chat_type": "single",
    "external_userid": ["wmCustomer01"],
    "sender": "acct-1",
    "text": {"content": "双十一新品到店，欢迎来门店试穿"},
}
SEND = "/cgi-bin/externalcontact/add_msg_template"


@pytest.fixture
async def keyed(stub: StubUpstream) -> AsyncIterator[RunningGuard]:
    async with running_guard(
        Settings(upstream=stub.url, upstreams={"gewe": stub.url}, reload_interval=0, keys=KEYS)
    ) as g:
        yield g


async def get(guard: RunningGuard, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with guard.session.get(guard.url + path, headers=headers or {}) as resp:
        return resp.status, json.loads(await resp.read())


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/v1/rules", {"X-Guard-Key": "staff-key"}),
        ("/v1/rules?guard_key=staff-key", {}),
        ("/v1/rules", {"Authorization": "Bearer staff-key"}),
        ("/v1/alerts", {"Authorization": "bearer risk-key"}),
        ("/v1/alerts?guard_key=admin-key", {}),
    ],
)
async def test_every_endpoint_takes_the_key_in_any_of_the_three_places(
    keyed: RunningGuard, path: str, headers: dict[str, str]
) -> None:
    status, _ = await get(keyed, path, headers)
    assert status == 200


@pytest.mark.parametrize(
    ("path", "headers", "status", "code"),
    [
        ("/v1/rules", {}, 401, codes.UNAUTHORIZED),
        ("/v1/alerts", {"Authorization": "Bearer wrong"}, 401, codes.UNAUTHORIZED),
        ("/v1/alerts", {"X-Guard-Key": "staff-key"}, 403, codes.FORBIDDEN_ROLE),
        ("/v1/reports/daily", {"X-Guard-Key": "staff-key"}, 403, codes.FORBIDDEN_ROLE),
        ("/v1/alerts?level=nope", {"X-Guard-Key": "risk-key"}, 400, codes.BAD_REQUEST),
        ("/v1/matrix/nobody/pick", {"X-Guard-Key": "risk-key"}, 404, codes.NOT_FOUND),
    ],
)
async def test_one_error_shape_on_the_guards_own_endpoints(
    keyed: RunningGuard, path: str, headers: dict[str, str], status: int, code: codes.GuardCode
) -> None:
    got, body = await get(keyed, path, headers)
    assert got == status
    assert body["error"] == code.name and body["code"] == code.code
    zh, _, en = body["message"].partition(" / ")
    assert zh and en, body["message"]


async def test_a_role_below_the_one_needed_is_named(keyed: RunningGuard) -> None:
    async with keyed.session.post(keyed.url + "/v1/rules/reload", headers={"X-Guard-Key": "risk-key"}) as r:
        body = json.loads(await r.read())
    assert r.status == 403 and "admin" in body["message"] and "risk" in body["message"]


async def test_a_bearer_key_is_not_forwarded(keyed: RunningGuard, stub: StubUpstream) -> None:
    status, _, data = await keyed.post(SEND, BROADCAST, headers={"Authorization": "Bearer staff-key"})
    assert status == 200 and data["errcode"] == 0
    assert "Authorization" not in stub.seen[-1].headers


async def test_an_authorization_header_that_is_not_the_key_reaches_the_upstream(
    keyed: RunningGuard, stub: StubUpstream
) -> None:
    headers = {"X-Guard-Key": "staff-key", "Authorization": "Bearer upstream-token"}
    status, _, data = await keyed.post(SEND, BROADCAST, headers=headers)
    assert status == 200 and data["errcode"] == 0
    seen = stub.seen[-1].headers
    assert seen["Authorization"] == "Bearer upstream-token" and "X-Guard-Key" not in seen


async def test_a_bearer_key_on_the_proxy_is_checked_like_any_other(keyed: RunningGuard) -> None:
    status, _, data = await keyed.post(SEND, BROADCAST, headers={"Authorization": "Bearer wrong"})
    assert status == 200 and data["errcode"] == codes.UNAUTHORIZED.code
    body = dict(BROADCAST, sender="other-1")
    status, _, data = await keyed.post(SEND, body, headers={"Authorization": "Bearer staff-key"})
    assert data["errcode"] == codes.ACCOUNT_NOT_PERMITTED.code
