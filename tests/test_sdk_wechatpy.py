"""Contract with an unmodified WeCom SDK: wechatpy's `WeChatClient`, pointed at a real guard by its base URL
only, in front of a stand-in upstream. A sensitive text in any guarded endpoint makes the SDK raise its own
`WeChatClientException` with the guard's errcode and a bilingual errmsg, and nothing reaches the upstream; the
clean call arrives once, byte for byte; reads and plain writes pass.

How wechatpy is pointed at the guard (what we found in wechatpy 1.8.18, `wechatpy.enterprise`):
- every API call is `API_BASE_URL + path`, so setting `client.API_BASE_URL = guard + "/cgi-bin/"` (or
  `guard + "/k/<key>/cgi-bin/"` to carry a client key) is enough;
- except the token fetch: `WeChatClient.fetch_access_token` hard-codes `https://qyapi.weixin.qq.com/cgi-bin/
  gettoken` and ignores the base URL. Pass `access_token=` (fetched by the caller, through the guard's
  `gettoken` read if it likes) — a client given a token never fetches one, as long as no answer carries
  errcode 40001 / 40014 / 42001 (then, with `auto_retry`, it fetches from qyapi.weixin.qq.com directly);
- the SDK raises `WeChatClientException(errcode=None)` on any HTTP status >= 400, so the guard must answer
  200 in WeCom's format for the SDK to see its errcode.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import requests
from support import RunningGuard, StubUpstream, running_guard
from wechatpy.enterprise import WeChatClient
from wechatpy.exceptions import WeChatClientException

from guard.config.settings import ClientKey, Settings
from guard.core.profiles import wecom
from guard.http.auth import hash_key

TOKEN = "TOKEN-abc"
SENSITIVE = "稳赚不赔的投资机会"
CLEAN = "双十一新品到店，欢迎来门店试穿"
KEY = "sdk-staff-key-1"
Call = Callable[[WeChatClient, str], Any]


class Sdk:
    """A wechatpy client and every request it sent (as prepared, i.e. the bytes on the wire)."""

    def __init__(self, base: str) -> None:
        self.client = WeChatClient("ww-corp", "secret", access_token=TOKEN, timeout=10)
        self.client.API_BASE_URL = base
        self.sent: list[requests.PreparedRequest] = []
        self.client._http.hooks["response"].append(self._record)

    def _record(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.sent.append(response.request)

    async def call(self, call: Call, text: str) -> Any:
        return await asyncio.to_thread(call, self.client, text)

    async def refused(self, call: Call, text: str) -> WeChatClientException:
        with pytest.raises(WeChatClientException) as err:
            await self.call(call, text)
        return err.value

    def close(self) -> None:
        self.client._http.close()


@pytest.fixture
def sdk(guard: RunningGuard) -> Iterator[Sdk]:
    client = Sdk(guard.url + "/cgi-bin/")
    yield client
    client.close()


def assert_content_refusal(exc: WeChatClientException) -> None:
    assert exc.errcode == 490001, (exc.errcode, exc.errmsg)
    assert "违规词" in exc.errmsg and "prohibited term" in exc.errmsg, exc.errmsg  # bilingual, readable
    assert exc.response is not None and exc.response.status_code == 200
    assert exc.response.headers["X-Guard-Decision"] == "refuse"


def assert_arrived_once(stub: StubUpstream, sdk: Sdk, path: str) -> None:
    """The SDK's last request reached the upstream once, on `/cgi-bin/<path>`, with the very same body."""
    assert stub.count() == 1, [s.path_qs for s in stub.seen]
    seen, sent = stub.seen[0], sdk.sent[-1]
    assert seen.path_qs == f"/cgi-bin/{path}?access_token={TOKEN}", seen.path_qs
    body = sent.body.encode() if isinstance(sent.body, str) else sent.body
    assert seen.body == (body or b"")


# ---- the SDK's own methods for the guarded endpoints ----

ARTICLE = {"thumb_media_id": "MEDIA1", "title": "本周上新", "author": "门店", "digest": "上新"}

SDK_METHODS: dict[str, tuple[str, Call]] = {
    "message.send_text": ("message/send", lambda c, t: c.message.send_text(1000002, ["zhangsan"], t)),
    "message.send_text_card": (
        "message/send",
        lambda c, t: c.message.send_text_card(1000002, ["zhangsan"], "通知", t, "https://shop.example.com/a"),
    ),
    "message.send_markdown": ("message/send", lambda c, t: c.message.send_markdown(1000002, "zhangsan", t)),
    "message.send_articles": (
        "message/send",
        lambda c, t: c.message.send_articles(
            1000002,
            ["zhangsan"],
            [{"title": t, "description": "门店", "url": "https://shop.example.com", "image": ""}],
        ),
    ),
    "appchat.send_text": ("appchat/send", lambda c, t: c.appchat.send_text("chat01", t)),
    "external_contact.add_msg_template": (
        "externalcontact/add_msg_template",
        lambda c, t: c.external_contact.add_msg_template(
            {"external_userid": ["wmCustomer01"], "sender": "zhangsan", "text": {"content": t}}
        ),
    ),
    "external_contact.add_msg_template old shape": (
        "externalcontact/add_msg_template",
        lambda c, t: c.external_contact.add_msg_template(
            {
                "external_userid": ["wmCustomer01"],
                "sender": "zhangsan",
                "link": {"title": t, "url": "https://a.cn"},
            }
        ),
    ),
    "external_contact.send_welcome_msg": (
        "externalcontact/send_welcome_msg",
        lambda c, t: c.external_contact.send_welcome_msg(
            {"welcome_code": "WELCOME1", "text": {"content": t}}
        ),
    ),
    "external_contact.send_welcome_msg link": (
        "externalcontact/send_welcome_msg",
        lambda c, t: c.external_contact.send_welcome_msg(
            {"welcome_code": "WELCOME1", "link": {"title": t, "url": "https://shop.example.com"}}
        ),
    ),
    "chat.send_single_text": ("chat/send", lambda c, t: c.chat.send_single_text("zhangsan", "lisi", t)),
    "material.add_articles": (
        "material/add_mpnews",
        lambda c, t: c.material.add_articles([{**ARTICLE, "content": t}]),
    ),
    "material.update_articles": (
        "material/update_news",
        lambda c, t: c.material.update_articles(1000002, "MEDIA2", [{**ARTICLE, "content": t}]),
    ),
    "user.create external_position": (
        "user/create",
        lambda c, t: c.user.create("zhangsan", "张三", department=[1], external_position=t),
    ),
    "user.update external_profile": (
        "user/update",
        lambda c, t: c.user.update(
            "zhangsan",
            external_profile={"external_attr": [{"type": 0, "name": "简介", "text": {"value": t}}]},
        ),
    ),
}


@pytest.mark.parametrize("case", sorted(SDK_METHODS))
async def test_sdk_method_sensitive_refused_clean_forwarded(stub: StubUpstream, sdk: Sdk, case: str) -> None:
    path, call = SDK_METHODS[case]
    assert_content_refusal(await sdk.refused(call, SENSITIVE))
    assert stub.count() == 0
    result = await sdk.call(call, CLEAN)
    assert result["errcode"] == 0
    assert_arrived_once(stub, sdk, path)


# ---- every guarded write of the catalogue, through the SDK's generic `client.post(path, data=…)` ----


def guarded_body(path: str, text: str) -> dict[str, Any]:
    """A realistic body of each guarded write with `text` in one of its customer-facing fields."""
    t = {"content": text}
    broadcast = {"chat_type": "single", "external_userid": ["wmCustomer01"], "sender": "zhangsan", "text": t}
    article = {**ARTICLE, "content": text}
    bodies: dict[str, dict[str, Any]] = {
        "externalcontact/add_msg_template": broadcast,
        "crm/add_msg_template": broadcast,
        "externalcontact/send_welcome_msg": {"welcome_code": "WELCOME1", "text": t},
        "externalcontact/add_moment_task": {
            "text": t,
            "visible_range": {"sender_list": {"user_list": ["zhangsan"]}},
        },
        "externalcontact/group_welcome_template/add": {
            "text": t,
            "link": {"title": "新品", "url": "https://shop.example.com"},
        },
        "externalcontact/group_welcome_template/edit": {
            "template_id": "tpl1",
            "text": {"content": "欢迎"},
            "miniprogram": {
                "title": text,
                "appid": "wx8bd80126147df384",
                "page": "/index",
                "pic_media_id": "M",
            },
        },
        "externalcontact/add_contact_way": {
            "type": 1,
            "scene": 2,
            "user": ["zhangsan"],
            "is_temp": True,
            "conclusions": {"text": t},
        },
        "externalcontact/update_contact_way": {
            "config_id": "cfg1",
            "conclusions": {"link": {"title": text, "url": "https://shop.example.com"}},
        },
        "externalcontact/transfer_customer": {
            "handover_userid": "zhangsan",
            "takeover_userid": "lisi",
            "external_userid": ["wmCustomer01", "wmCustomer02"],
            "transfer_success_msg": text,
        },
        "externalcontact/groupchat/add_join_way": {
            "scene": 2,
            "chat_id_list": ["wrChat01"],
            "auto_create_room": 1,
            "room_base_name": text,
            "room_base_id": 1,
        },
        "externalcontact/groupchat/update_join_way": {
            "config_id": "join1",
            "scene": 2,
            "chat_id_list": ["wrChat01"],
            "room_base_name": text,
        },
        "externalcontact/add_product_album": {
            "description": text,
            "price": 5000,
            "attachments": [{"type": "image", "image": {"media_id": "MEDIA1"}}],
        },
        "externalcontact/update_product_album": {"product_id": "p1", "description": text},
        "externalcontact/message/send": {
            "to_parent_userid": ["parent01"],
            "msgtype": "text",
            "agentid": 1000005,
            "text": t,
        },
        "kf/send_msg": {"touser": "wmCustomer01", "open_kfid": "wkKF01", "msgtype": "text", "text": t},
        "kf/send_msg_on_event": {
            "code": "EVENT1",
            "msgtype": "msgmenu",
            "msgmenu": {
                "head_content": text,
                "list": [{"type": "click", "click": {"id": "101", "content": "是"}}],
            },
        },
        "kf/knowledge/add_intent": {
            "group_id": "g1",
            "question": {"text": {"content": "怎么退货"}},
            "answers": [{"text": t}],
        },
        "kf/knowledge/mod_intent": {
            "intent_id": "i1",
            "answers": [
                {"attachments": [{"msgtype": "link", "link": {"title": text, "url": "https://a.cn"}}]}
            ],
        },
        "kf/account/add": {"name": text, "media_id": "MEDIA1"},
        "kf/account/update": {"open_kfid": "wkKF01", "name": text},
        "kf/customer/upgrade_service": {
            "open_kfid": "wkKF01",
            "external_userid": "wmCustomer01",
            "type": 1,
            "member": {"userid": "zhangsan", "wording": text},
        },
        "message/send": {"touser": "zhangsan", "msgtype": "text", "agentid": 1000002, "text": t},
        "message/update_template_card": {
            "userids": ["zhangsan"],
            "agentid": 1000002,
            "response_code": "RC1",
            "template_card": {"card_type": "text_notice", "main_title": {"title": text}},
        },
        "linkedcorp/message/send": {
            "touser": ["corp1/zhangsan"],
            "msgtype": "text",
            "agentid": 1000002,
            "text": t,
        },
        "appchat/send": {"chatid": "chat01", "msgtype": "text", "text": t},
        "user/create": {"userid": "zhangsan", "name": "张三", "department": [1], "external_position": text},
        "user/update": {"userid": "zhangsan", "external_profile": {"external_corp_name": text}},
        "chat/send": {
            "receiver": {"type": "single", "id": "lisi"},
            "sender": "zhangsan",
            "msgtype": "text",
            "text": t,
        },
        "material/add_mpnews": {"mpnews": {"articles": [article]}},
        "material/update_news": {"agentid": 1000002, "media_id": "MEDIA2", "articles": [article]},
    }
    return bodies[path]


GUARDED_PATHS = sorted(w.path for w in wecom.WRITES)


@pytest.mark.parametrize("path", GUARDED_PATHS)
async def test_every_guarded_write_through_the_sdk(stub: StubUpstream, sdk: Sdk, path: str) -> None:
    def call(client: WeChatClient, text: str) -> Any:
        return client.post(path, data=guarded_body(path, text))

    assert_content_refusal(await sdk.refused(call, SENSITIVE))
    assert stub.count() == 0
    assert (await sdk.call(call, CLEAN))["errcode"] == 0
    assert_arrived_once(stub, sdk, path)
    # What arrived is what the SDK encoded (UTF-8 JSON, not ASCII escapes).
    assert json.loads(stub.seen[0].body) == guarded_body(path, CLEAN)


# ---- reads and writes without customer-facing content ----

PASSING: dict[str, tuple[str, str, Call]] = {
    "user.get": ("GET", "user/get", lambda c, _: c.user.get("zhangsan")),
    "external_contact.list": (
        "GET",
        "externalcontact/list",
        lambda c, _: c.external_contact.list("zhangsan"),
    ),
    "external_contact.get_contact_way": (
        "POST",
        "externalcontact/get_contact_way",
        lambda c, _: c.external_contact.get_contact_way("cfg1"),
    ),
    "external_contact_group_chat.list": (
        "POST",
        "externalcontact/groupchat/list",
        lambda c, _: c.external_contact_group_chat.list(),
    ),
    "external_contact.get_group_msg_result": (
        "POST",
        "externalcontact/get_group_msg_result",
        lambda c, _: c.external_contact.get_group_msg_result("msg1"),
    ),
    # A contact way without 结束语 (wechatpy 1.8 cannot send them): a guarded route with nothing to check.
    "external_contact.add_contact_way": (
        "POST",
        "externalcontact/add_contact_way",
        lambda c, _: c.external_contact.add_contact_way(1, 2, remark="门店", user=["zhangsan"]),
    ),
    "external_contact.mark_tag": (
        "POST",
        "externalcontact/mark_tag",
        lambda c, _: c.external_contact.mark_tag("zhangsan", "wmCustomer01", add_tag=["et1"]),
    ),
    "tag.create": ("POST", "tag/create", lambda c, _: c.tag.create("门店员工")),
    "user.delete (a GET)": ("GET", "user/delete", lambda c, _: c.user.delete("leaver")),
    "user.update without external fields": (
        "POST",
        "user/update",
        lambda c, _: c.user.update("zhangsan", position=SENSITIVE),  # internal: only staff see it
    ),
    "gettoken through the guard": (
        "GET",
        "gettoken",
        lambda c, _: c.get(
            "gettoken", params={"corpid": "ww-corp", "corpsecret": "s", "access_token": TOKEN}
        ),
    ),
}


@pytest.mark.parametrize("case", sorted(PASSING))
async def test_reads_and_plain_writes_pass(stub: StubUpstream, sdk: Sdk, case: str) -> None:
    method, path, call = PASSING[case]
    assert (await sdk.call(call, ""))["errcode"] == 0
    assert stub.count() == 1 and stub.seen[0].method == method
    assert stub.seen[0].path_qs.startswith(f"/cgi-bin/{path}?")
    body = sdk.sent[-1].body
    assert stub.seen[0].body == ((body.encode() if isinstance(body, str) else body) or b"")


# ---- a client key as the base URL's first path segment ----


@pytest.fixture
async def keyed(stub: StubUpstream) -> AsyncIterator[RunningGuard]:
    keys = (ClientKey("sdk", hash_key(KEY), ("*",), "staff"),)
    async with running_guard(Settings(upstream=stub.url, reload_interval=0, keys=keys)) as g:
        yield g


async def test_key_in_the_base_url(stub: StubUpstream, keyed: RunningGuard) -> None:
    path, call = SDK_METHODS["message.send_text"]
    sdk = Sdk(f"{keyed.url}/k/{KEY}/cgi-bin/")
    anonymous = Sdk(f"{keyed.url}/cgi-bin/")
    try:
        assert_content_refusal(await sdk.refused(call, SENSITIVE))
        exc = await anonymous.refused(call, CLEAN)
        assert exc.errcode == 490008 and exc.errmsg, (exc.errcode, exc.errmsg)
        assert stub.count() == 0
        assert (await sdk.call(call, CLEAN))["errcode"] == 0
        assert_arrived_once(stub, sdk, path)  # the key is stripped: the upstream sees /cgi-bin/…
        assert KEY not in json.dumps(stub.seen[0].headers)
        assert (await sdk.call(PASSING["user.get"][2], ""))["errcode"] == 0
        assert stub.seen[1].path_qs.startswith("/cgi-bin/user/get?")
    finally:
        sdk.close()
        anonymous.close()


def test_every_guarded_write_has_a_body_here() -> None:
    for path in GUARDED_PATHS:
        assert guarded_body(path, CLEAN), path
