"""Routing, auth and quota through the proxy: unknown routes, pass-through, client keys, GeWe adds with the
backup-matrix suggestion, multi-sender moments (all or nothing), observers that fail."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import pytest
from support import StubUpstream, rules_copy, running_guard

from guard.config.settings import ClientKey, Settings
from guard.core.types import DecisionRecord
from guard.http.auth import hash_key
from guard.http.keys import ACCOUNTS, LIMITER, OBSERVERS, PIPELINE

GEWE_ADD = "/gewe/v2/api/contacts/addContacts"
MOMENT = "/cgi-bin/externalcontact/add_moment_task"


def add(app_id: str, option: int = 2, content: str = "你好，我是门店顾问") -> dict[str, object]:
    return {"appId": app_id, "scene": 3, "option": option, "v3": "v3_x", "v4": "v4_x", "content": content}


async def test_unknown_write_refused_when_strict_forwarded_when_not(stub: StubUpstream) -> None:
    async with running_guard(
        Settings(upstream=stub.url, upstreams={"gewe": stub.url}, reload_interval=0)
    ) as guard:
        status, _headers, data = await guard.post("/cgi-bin/externalcontact/no_such_write", {"a": 1})
        assert status == 200 and data["errcode"] == 490007 and stub.count() == 0
        # GeWe-looking paths are answered in GeWe's format.
        status, _, data = await guard.post("/gewe/v2/api/message/postNotInTheCatalogue", {"appId": "a"})
        assert status == 200 and data["ret"] == 490007
        # Read-only requests and known pass-through endpoints go through unchecked.
        async with guard.session.get(guard.url + "/cgi-bin/user/get?access_token=T&userid=u1") as resp:
            assert resp.status == 200
        status, _, data = await guard.post("/cgi-bin/media/upload?type=image", b"binary", headers={})
        assert data["errcode"] == 0
        assert [s.path_qs for s in stub.seen] == [
            "/cgi-bin/user/get?access_token=T&userid=u1",
            "/cgi-bin/media/upload?type=image",
        ]
        assert stub.seen[1].body == b"binary"
    async with running_guard(
        Settings(upstream=stub.url, upstreams={"gewe": stub.url}, reload_interval=0, strict=False)
    ) as guard:
        status, _, data = await guard.post("/cgi-bin/externalcontact/no_such_write", {"a": 1})
        assert data["errcode"] == 0 and stub.count("/cgi-bin/externalcontact/no_such_write") == 1


async def test_client_keys_accounts_and_stripping(stub: StubUpstream) -> None:
    keys = (
        ClientKey(name="scrm", hash=hash_key("s3cret-staff"), accounts=("shop-*",), role="staff"),
        ClientKey(name="boss", hash=hash_key("s3cret-admin"), accounts=("*",), role="admin"),
    )
    settings = Settings(upstream=stub.url, upstreams={"gewe": stub.url}, reload_interval=0, keys=keys)
    async with running_guard(settings) as guard:
        body = {"sender": "shop-01", "external_userid": ["wm1"], "text": {"content": "新品到店"}}
        path = "/cgi-bin/externalcontact/add_msg_template"
        status, _, data = await guard.post(path, body)
        assert status == 200 and data["errcode"] == 490008
        status, _, data = await guard.post(path, body, headers={"X-Guard-Key": "wrong"})
        assert status == 200 and data["errcode"] == 490008
        status, _, data = await guard.post(
            path, {**body, "sender": "hq-01"}, headers={"X-Guard-Key": "s3cret-staff"}
        )
        assert status == 200 and data["errcode"] == 490009
        assert stub.count() == 0
        status, _, data = await guard.post(path, body, headers={"X-Guard-Key": "s3cret-staff"})
        assert data["errcode"] == 0
        status, _, data = await guard.post(
            f"{path}?access_token=T&guard_key=s3cret-admin&x=1", {**body, "sender": "hq-01"}
        )
        assert data["errcode"] == 0
        assert stub.seen[0].path_qs == path
        assert "X-Guard-Key" not in stub.seen[0].headers
        assert stub.seen[1].path_qs == f"{path}?access_token=T&x=1"
        # Reads need a key too; a staff key may not reload rules.
        async with guard.session.get(guard.url + "/cgi-bin/user/get") as resp:
            assert resp.status == 200
        status, _, data = await guard.post("/v1/rules/reload", b"", headers={"X-Guard-Key": "s3cret-staff"})
        assert status == 403
        status, _, data = await guard.post("/v1/rules/reload", b"", headers={"X-Guard-Key": "s3cret-admin"})
        assert status == 200 and data["reloaded"] is True


async def test_gewe_active_adds_stop_at_five_and_suggest_a_backup(stub: StubUpstream, tmp_path: Path) -> None:
    accounts = '[accounts."app-a"]\nmatrix = "east"\n[accounts."app-b"]\nmatrix = "east"\n'
    settings = Settings(
        upstream=stub.url,
        upstreams={"gewe": stub.url},
        reload_interval=0,
        rules_dir=rules_copy(tmp_path, accounts),
    )
    async with running_guard(settings) as guard:
        for _ in range(5):
            assert (await guard.post(GEWE_ADD, add("app-a")))[2]["ret"] == 200
        _, headers, data = await guard.post(GEWE_ADD, add("app-a"))
        assert data["ret"] == 490003 and headers["X-Guard-Rule"] == "quota:add_friend.active/day"
        assert data["guard"]["details"]["backup_account"] == "app-b"
        assert "app-b" in data["msg"] and "上限 5" in data["msg"] and "used 5" in data["msg"]
        # Passive adds (accepting a request) are a different limit.
        assert (await guard.post(GEWE_ADD, add("app-a", option=3)))[2]["ret"] == 200
        assert stub.count() == 6
        # A sensitive greeting is refused before the quota is touched.
        _status, _, data = await guard.post(GEWE_ADD, add("app-b", content="加我了解稳赚不赔的项目"))
        assert data["ret"] == 490001
        today = guard.app[PIPELINE].today()
        rules = guard.app[ACCOUNTS].rules_for("app-b", "add_friend.active", today)
        assert (await guard.app[LIMITER].usage("app-b", rules))[0].attempts == 0


async def test_frozen_account_refused(stub: StubUpstream) -> None:
    async with running_guard(
        Settings(upstream=stub.url, upstreams={"gewe": stub.url}, reload_interval=0)
    ) as guard:
        await guard.app[ACCOUNTS].freeze("app-z", by="risk")
        _status, headers, data = await guard.post(GEWE_ADD, add("app-z"))
        assert data["ret"] == 490004 and headers["X-Guard-Rule"] == "account:frozen"
        await guard.app[ACCOUNTS].unfreeze("app-z")
        assert (await guard.post(GEWE_ADD, add("app-z")))[2]["ret"] == 200
        assert stub.count() == 1


async def test_moment_with_several_senders_is_all_or_nothing(stub: StubUpstream) -> None:
    def moment(*senders: str) -> dict[str, object]:
        return {
            "text": {"content": "秋季新品上架"},
            "attachments": [
                {"msgtype": "link", "link": {"title": "新品", "url": "https://shop.example.com"}}
            ],
            "visible_range": {"sender_list": {"user_list": list(senders)}},
        }

    async with running_guard(
        Settings(upstream=stub.url, upstreams={"gewe": stub.url}, reload_interval=0)
    ) as guard:
        for _ in range(3):  # new tier: 3 moments a day
            assert (await guard.post(MOMENT, moment("u2")))[2]["errcode"] == 0
        _, _, data = await guard.post(MOMENT, moment("u1", "u3", "u2", "u4"))
        assert data["errcode"] == 490003 and "u2" in data["errmsg"]
        assert stub.count() == 3
        today = guard.app[PIPELINE].today()
        for account in ("u1", "u3", "u4"):
            rules = guard.app[ACCOUNTS].rules_for(account, "moment", today)
            assert (await guard.app[LIMITER].usage(account, rules))[0].used == 0, account
        _, _, data = await guard.post(MOMENT, moment("u1", "u3"))
        assert data["errcode"] == 0
        _status, _, data = await guard.post(MOMENT, {"text": {"content": "hi"}, "visible_range": {}})
        assert data["errcode"] == 490014


class Recorder:
    def __init__(self) -> None:
        self.records: list[DecisionRecord] = []
        self.events: list[str] = []

    async def on_decision(self, record: DecisionRecord) -> None:
        self.records.append(record)

    async def on_system(self, event: str, message: str, details: Mapping[str, object]) -> None:
        self.events.append(event)


class Broken:
    async def on_decision(self, record: DecisionRecord) -> None:
        raise RuntimeError("observer bug")

    async def on_system(self, event: str, message: str, details: Mapping[str, object]) -> None:
        raise RuntimeError("observer bug")


class Slow:
    async def on_decision(self, record: DecisionRecord) -> None:
        await asyncio.sleep(30)

    async def on_system(self, event: str, message: str, details: Mapping[str, object]) -> None:
        await asyncio.sleep(30)


async def test_observers_see_decisions_and_failing_ones_are_skipped(stub: StubUpstream) -> None:
    settings = Settings(
        upstream=stub.url, upstreams={"gewe": stub.url}, reload_interval=0, observer_timeout=0.05
    )
    async with running_guard(settings) as guard:
        recorder = Recorder()
        guard.app[OBSERVERS][:0] = [Broken(), Slow()]
        guard.app[OBSERVERS].append(recorder)
        assert (await guard.post(GEWE_ADD, add("app-o")))[2]["ret"] == 200
        assert (await guard.post(GEWE_ADD, add("app-o", content="稳赚不赔")))[2]["ret"] == 490001
        assert [r.disposition for r in recorder.records[-2:]] == ["forwarded", "refused"]
        assert recorder.records[-1].decision.refusal is not None
        assert stub.count() == 1


async def test_redis_down_refuses_guarded_actions_fast(stub: StubUpstream) -> None:
    from servers import free_port

    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings = Settings(
        upstream=stub.url,
        upstreams={"gewe": stub.url},
        reload_interval=0,
        redis_url=dead,
        redis_cluster=False,
    )
    async with running_guard(settings) as guard:
        recorder = Recorder()
        guard.app[OBSERVERS].append(recorder)
        status, headers, data = await guard.post(GEWE_ADD, add("app-r"))
        assert status == 200 and data["ret"] == 490010
        assert stub.count() == 0
        assert "redis_down" in recorder.events
        async with guard.session.get(guard.url + "/readyz") as resp:
            assert resp.status == 503
    allow = replace(settings, redis_down_actions={"add_friend": "allow"})
    async with running_guard(allow) as guard:
        status, headers, data = await guard.post(GEWE_ADD, add("app-r"))
        assert data["ret"] == 200 and headers["X-Guard-Decision"] == "warn"


@pytest.mark.parametrize(
    "path",
    [
        "/cgi-bin//externalcontact/add_msg_template",
        "/cgi-bin/externalcontact/./add_msg_template",
        "/cgi-bin/x/../externalcontact/add_msg_template",
        "/cgi-bin/externalcontact/add_msg_template/",
        "/cgi-bin/externalcontact/add_msg_template;jsessionid=1",
        "/cgi-bin/ExternalContact/Add_Msg_Template",
        "/cgi-bin/externalcontact/add%5Fmsg%5Ftemplate",
    ],
)
async def test_odd_spellings_of_a_guarded_path_are_still_checked(stub: StubUpstream, path: str) -> None:
    body = {"sender": "s1", "external_userid": ["wm1"], "text": {"content": "稳赚不赔"}}
    async with running_guard(
        Settings(upstream=stub.url, upstreams={"gewe": stub.url}, reload_interval=0, strict=False)
    ) as guard:
        _, headers, data = await guard.post(path, body)
        assert data["errcode"] == 490001 and headers["X-Guard-Decision"] == "refuse"
        async with guard.session.get(guard.url + path, json=body) as resp:
            assert (await resp.json())["errcode"] == 490005
        assert stub.count() == 0
