"""Contract tests with the real SDK: an unmodified gewechat-client (`GewechatClient(base_url, token)`, which
posts with `requests`) pointed at a served guard in front of a stand-in GeWe upstream.

- A sensitive text on any guarded route the SDK can call is refused, and the SDK shows the refusal its
  ordinary way: gewechat-client raises `RuntimeError(response.text)` for any answer whose `ret` is not 200
  (util/http_util.py), so the guard's GeWe-format body — `ret` 490001, a bilingual `msg` — is the error's
  text; nothing reaches the upstream. That needs HTTP 200: for a 4xx the SDK's `raise_for_status()` keeps
  only the status line and the guard's message is lost.
- The same call with clean text reaches the upstream once, byte for byte as the SDK sends it directly.
- Every other SDK call (reads, writes without customer-facing content) passes, byte for byte.
- With client keys configured, the key rides as the base URL's first path segment (`/k/<key>/v2/api`):
  gewechat-client cannot send a header of its own. The key never reaches the upstream.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from gewechat_client import GewechatClient
from support import Seen, StubUpstream, running_guard, stub_upstream

from guard.config.settings import ClientKey, Settings
from guard.core import codes
from guard.core.bundle import build_bundle
from guard.http.auth import hash_key

# One guard per variant for the whole module, on the module's event loop (starting one per test would
# triple the module's time); each test sends as an account of its own.
pytestmark = pytest.mark.asyncio(loop_scope="module")

PROFILES = build_bundle(None).profiles
TOKEN = "gewe-token-123"
KEY = "rpa-key-7f3a"
TO = "wxid_customer01"
ROOM = "34757816141@chatroom"
SENSITIVE = "稳赚不赔的投资机会"
CLEAN = "周末门店上新，欢迎到店试穿"

SdkCall = Callable[[GewechatClient, str, str], Any]  # (client, appId, text)


def _appmsg(text: str) -> str:
    return (
        f'<appmsg appid="" sdkver="0"><title>{text}</title><des>新品</des><type>5</type>'
        "<url>https://shop.example.com/new?id=1&amp;from=wx</url></appmsg>"
    )


def _received(body: str) -> str:
    return (
        f'<?xml version="1.0"?>\n<msg>{body}<fromusername>wxid_staff01</fromusername><scene>0</scene></msg>'
    )


def _mini(text: str) -> str:
    return _received(
        f"<appmsg><title>{text}</title><type>33</type><sourcedisplayname>品牌小店</sourcedisplayname>"
        "<weappinfo><username>gh_e9d25e745aae@app</username><appid>wxafec6f8422cb357b</appid>"
        "<pagepath>pages/index.html</pagepath></weappinfo></appmsg>"
    )


# Every guarded route the SDK can call with text: the call, with the text in a customer-facing field.
TEXT_CALLS: dict[str, SdkCall] = {
    "/message/postText": lambda c, a, t: c.post_text(a, TO, t),
    "/message/postFile": lambda c, a, t: c.post_file(a, TO, "https://files.example.com/a.pdf", f"{t}.pdf"),
    "/message/postLink": lambda c, a, t: c.post_link(
        a, TO, t, "本周活动", "https://shop.example.com/a", "https://img.example.com/t.jpg"
    ),
    "/message/postNameCard": lambda c, a, t: c.post_name_card(a, TO, t, "wxid_colleague"),
    "/message/postAppMsg": lambda c, a, t: c.post_app_msg(a, TO, _appmsg(t)),
    "/message/postMiniApp": lambda c, a, t: c.post_mini_app(
        a, TO, "wx1234567890abcdef", t, "pages/index", "https://img.example.com/c.jpg", "新品", "gh_abc@app"
    ),
    "/message/forwardFile": lambda c, a, t: c.forward_file(
        a, TO, _received(f"<appmsg><title>{t}.pdf</title><type>6</type><md5>d160</md5></appmsg>")
    ),
    "/message/forwardImage": lambda c, a, t: c.forward_image(
        a, TO, _received(f'<img aeskey="7678" cdnmidimgurl="3052" length="1096"/><title>{t}</title>')
    ),
    "/message/forwardVideo": lambda c, a, t: c.forward_video(
        a, TO, _received(f'<videomsg aeskey="a1" cdnvideourl="3057" length="4096"/><des>{t}</des>')
    ),
    "/message/forwardUrl": lambda c, a, t: c.forward_url(a, TO, _received(_appmsg(t))),
    "/message/forwardMiniApp": lambda c, a, t: c.forward_mini_app(
        a, TO, _mini(t), "https://img.example.com/c.jpg"
    ),
    "/contacts/addContacts": lambda c, a, t: c.add_contacts(a, 3, 2, "v3_abc", "v4_abc", t),
    "/group/inviteMember": lambda c, a, t: c.invite_member(a, "wxid_a,wxid_b", ROOM, t),
    "/group/addGroupMemberAsFriend": lambda c, a, t: c.add_group_member_as_friend(a, "wxid_m", ROOM, t),
    "/group/setChatroomAnnouncement": lambda c, a, t: c.set_chatroom_announcement(a, ROOM, t),
    "/group/modifyChatroomName": lambda c, a, t: c.modify_chatroom_name(a, t, ROOM),
    "/group/modifyChatroomNickNameForSelf": lambda c, a, t: c.modify_chatroom_nickname_for_self(a, t, ROOM),
    "/personal/updateProfile": lambda c, a, t: c.update_profile(
        a, "上海", "CN", "门店顾问小王", "上海", 1, t
    ),
}
# Guarded routes the SDK can call that carry media only: the clean call passes (their kind is judged).
MEDIA_CALLS: dict[str, Callable[[GewechatClient, str], Any]] = {
    "/message/postImage": lambda c, a: c.post_image(a, TO, "https://img.example.com/a.jpg"),
    "/message/postVideo": lambda c, a: c.post_video(
        a, TO, "https://v.example.com/a.mp4", "https://img.example.com/a.jpg", 10
    ),
    "/message/postVoice": lambda c, a: c.post_voice(a, TO, "https://v.example.com/a.silk", 2000),
    "/message/postEmoji": lambda c, a: c.post_emoji(a, TO, "4cc7540a85b5b6cf4ba14e9f4ae08b7c", 102357),
}
# What the shipped rules answer to a clean call on these (the rest pass): a name card moves customers off
# the company's accounts.
CLEAN_REFUSED = {"/message/postNameCard": (490002, "attachment:card")}


@dataclass
class Gateway:
    """A served guard (one per module and variant) and the base URL an SDK is configured with to go
    through it."""

    guard_url: str
    base_url: str
    stub: StubUpstream
    keyed: bool


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def upstream() -> AsyncIterator[StubUpstream]:
    async with stub_upstream() as stub:
        yield stub


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["open", "keyed"])
async def served(request: pytest.FixtureRequest, upstream: StubUpstream) -> AsyncIterator[Gateway]:
    keyed = request.param == "keyed"
    keys = (ClientKey("rpa", hash_key(KEY), ("*",), "staff"),) if keyed else ()
    settings = Settings(upstream=upstream.url, upstreams={"gewe": upstream.url}, reload_interval=0, keys=keys)
    async with running_guard(settings) as guard:
        prefix = f"/k/{KEY}" if keyed else ""
        yield Gateway(guard.url, f"{guard.url}{prefix}/v2/api", upstream, keyed)


@pytest.fixture
def gateway(served: Gateway) -> Gateway:
    """The module's guard, with the upstream's record of requests emptied for this test."""
    served.stub.seen.clear()
    return served


_accounts = itertools.count(1)


@pytest.fixture
def app_id() -> str:
    """A sending account of this test's own: the module's guard keeps counting across tests."""
    return f"wx_app_{next(_accounts):04d}"


async def run(base_url: str, call: Callable[[GewechatClient], Any]) -> Any:
    """The SDK call, in a thread (gewechat-client blocks on `requests`)."""
    return await asyncio.to_thread(call, GewechatClient(base_url, TOKEN))


async def direct(stub: StubUpstream, call: Callable[[GewechatClient], Any]) -> Seen:
    """What the SDK sends when it talks to the upstream itself (then forgotten by the stub)."""
    await run(stub.url + "/v2/api", call)
    (seen,) = stub.seen
    stub.seen.clear()
    return seen


async def refused(base_url: str, call: Callable[[GewechatClient], Any]) -> dict[str, Any]:
    """The guard's answer as the SDK surfaces it: the text of the RuntimeError it raises."""
    with pytest.raises(RuntimeError) as err:
        await run(base_url, call)
    try:
        answer: dict[str, Any] = json.loads(str(err.value))
    except ValueError:
        pytest.fail(f"the SDK lost the guard's answer (not HTTP 200?): {err.value}")
    return answer


def assert_bilingual(message: str) -> None:
    zh, sep, en = message.partition(" / ")
    assert sep, message
    assert any("\u4e00" <= ch <= "\u9fff" for ch in zh), message
    assert any(ch.isascii() and ch.isalpha() for ch in en), message


async def assert_forwarded_as_sent(gateway: Gateway, call: Callable[[GewechatClient], Any]) -> Any:
    expected = await direct(gateway.stub, call)
    result = await run(gateway.base_url, call)
    assert result == {"ret": 200, "msg": "操作成功", "data": {}}
    (seen,) = gateway.stub.seen
    assert (seen.method, seen.path_qs, seen.body) == (expected.method, expected.path_qs, expected.body)
    assert seen.headers.get("X-GEWE-TOKEN") == TOKEN
    assert KEY not in seen.path_qs and all(KEY not in v for v in seen.headers.values())
    return result


# ---- guarded routes ----


@pytest.mark.parametrize("route", sorted(TEXT_CALLS))
async def test_sensitive_text_is_refused_in_the_sdks_own_error(
    gateway: Gateway, app_id: str, route: str
) -> None:
    answer = await refused(gateway.base_url, lambda c: TEXT_CALLS[route](c, app_id, SENSITIVE))
    assert answer["ret"] == codes.CONTENT_BLOCKED.code, answer
    assert answer["data"] is None and answer["guard"]["rule"].startswith("content:")
    assert "稳赚不赔" in answer["msg"]
    assert_bilingual(answer["msg"])
    assert gateway.stub.count() == 0


@pytest.mark.parametrize("route", sorted(TEXT_CALLS))
async def test_clean_text_reaches_the_upstream_byte_for_byte(
    gateway: Gateway, app_id: str, route: str
) -> None:
    def call(c: GewechatClient) -> Any:
        return TEXT_CALLS[route](c, app_id, CLEAN)

    if route in CLEAN_REFUSED:
        code, rule = CLEAN_REFUSED[route]
        answer = await refused(gateway.base_url, call)
        assert (answer["ret"], answer["guard"]["rule"]) == (code, rule)
        assert_bilingual(answer["msg"])
        assert gateway.stub.count() == 0
        return
    await assert_forwarded_as_sent(gateway, call)
    assert gateway.stub.seen[0].path_qs == "/v2/api" + route


@pytest.mark.parametrize("route", sorted(MEDIA_CALLS))
async def test_media_messages_pass(gateway: Gateway, app_id: str, route: str) -> None:
    await assert_forwarded_as_sent(gateway, lambda c: MEDIA_CALLS[route](c, app_id))


async def test_a_forwarded_link_to_a_refused_domain_is_refused(gateway: Gateway, app_id: str) -> None:
    xml = _received(
        f"<appmsg><title>{CLEAN}</title><type>5</type><url>https://item.taobao.com/1</url></appmsg>"
    )
    answer = await refused(gateway.base_url, lambda c: c.forward_url(app_id, TO, xml))
    assert (answer["ret"], answer["guard"]["rule"]) == (
        codes.ATTACHMENT_REFUSED.code,
        "attachment:link_domain",
    )
    assert gateway.stub.count() == 0


async def test_malformed_forwarded_xml_is_refused_as_bad_input(gateway: Gateway, app_id: str) -> None:
    for xml in ("<msg><appmsg><title>a</appmsg></msg>", '<!DOCTYPE m [<!ENTITY e "x">]><msg>&e;</msg>'):
        answer = await refused(gateway.base_url, lambda c, xml=xml: c.forward_url(app_id, TO, xml))
        assert answer["ret"] == codes.BAD_REQUEST.code and "xml" in answer["msg"], answer
    assert gateway.stub.count() == 0


# ---- every SDK method ----

CLIENT_METHODS = sorted(
    name
    for name, member in inspect.getmembers(GewechatClient, inspect.isfunction)
    # `login` is the interactive QR flow (it polls); its calls are the methods listed here.
    if not name.startswith("_") and name != "login"
)


def placeholder_call(name: str) -> Callable[[GewechatClient], Any]:
    """The SDK method called with a placeholder for every argument it has no default for."""
    params = list(inspect.signature(getattr(GewechatClient, name)).parameters.values())[1:]
    args = [f"{p.name}-1" for p in params if p.default is inspect.Parameter.empty]
    return lambda c: getattr(c, name)(*args)


async def test_the_sdk_has_the_methods_we_know() -> None:
    assert len(CLIENT_METHODS) >= 70, CLIENT_METHODS


@pytest.mark.parametrize("name", CLIENT_METHODS)
async def test_every_sdk_call_is_guarded_or_passes(gateway: Gateway, name: str) -> None:
    """A guarded route has a contract case above; any other (reads, plain writes) passes byte for byte."""
    call = placeholder_call(name)
    seen = await direct(gateway.stub, call)
    route = seen.path_qs.removeprefix("/v2/api")
    matched = PROFILES.match("POST", seen.path_qs)
    assert matched is not None and matched[0].name == "gewe", f"{name} posts to {route}: not in the catalogue"
    if matched[1].guarded:
        assert route in TEXT_CALLS or route in MEDIA_CALLS, f"{name} posts to guarded {route}: add a case"
        return
    await assert_forwarded_as_sent(gateway, call)


# ---- keys ----


@pytest.mark.parametrize("served", ["keyed"], indirect=True)
@pytest.mark.parametrize("prefix", ["", "/k/wrong-key"])
async def test_keyed_guard_refuses_an_sdk_without_its_key(gateway: Gateway, app_id: str, prefix: str) -> None:
    base = f"{gateway.guard_url}{prefix}/v2/api"
    for call in (lambda c: c.post_text(app_id, TO, CLEAN), lambda c: c.fetch_contacts_list(app_id)):
        answer = await refused(base, call)
        assert answer["ret"] == codes.UNAUTHORIZED.code, answer
        assert_bilingual(answer["msg"])
    assert gateway.stub.count() == 0
