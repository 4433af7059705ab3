"""Built-in profiles: every guarded endpoint turns into the right Actions; a sensitive word in any
text-bearing field is refused through the proxy; a Redis Cluster keeps multi-account requests whole."""

from __future__ import annotations

from typing import Any

import pytest
from support import RunningGuard, StubUpstream, running_guard, stub_upstream

from guard.config.settings import Settings
from guard.core.bundle import build_bundle
from guard.core.profiles import RequestInfo
from guard.core.types import Action
from guard.http.keys import ACCOUNTS, LIMITER, PIPELINE

BUNDLE = build_bundle(None)


def parse(path: str, body: dict[str, Any], account_header: str | None = None) -> list[Action]:
    matched = BUNDLE.profiles.match("POST", path)
    assert matched is not None and matched[1].parse is not None, path
    return matched[1].parse(body, RequestInfo("POST", path, {}, account_header=account_header))


GEWE = "/gewe/v2/api"
CASES: list[tuple[str, dict[str, Any], str, str | None, list[str], list[str]]] = [
    # path, body, kind, direction, text places, attachment kinds
    (
        f"{GEWE}/contacts/addContacts",
        {"appId": "a", "option": 2, "content": "你好"},
        "add_friend",
        "active",
        ["content"],
        [],
    ),
    (
        f"{GEWE}/contacts/addContacts",
        {"appId": "a", "option": "3", "content": "你好"},
        "add_friend",
        "passive",
        ["content"],
        [],
    ),
    (
        f"{GEWE}/message/postText",
        {"appId": "a", "toWxid": "wxid_c", "content": "在吗"},
        "message",
        None,
        ["content"],
        [],
    ),
    (
        f"{GEWE}/message/postAppMsg",
        {"appId": "a", "toWxid": "c", "appmsg": "<appmsg><title>t</title></appmsg>"},
        "message",
        None,
        ["appmsg"],
        [],
    ),
    (
        f"{GEWE}/message/postLink",
        {"appId": "a", "toWxid": "c", "title": "t", "desc": "d", "linkUrl": "https://x.example"},
        "message",
        None,
        ["title", "desc"],
        ["link"],
    ),
    (
        f"{GEWE}/message/postMiniApp",
        {"appId": "a", "toWxid": "c", "miniAppId": "wx1", "title": "t", "displayName": "n"},
        "message",
        None,
        ["title", "displayName"],
        ["miniprogram"],
    ),
    (
        f"{GEWE}/message/postNameCard",
        {"appId": "a", "toWxid": "c", "nickName": "n", "nameCardWxid": "w"},
        "message",
        None,
        ["nickName"],
        ["card"],
    ),
    (
        f"{GEWE}/message/postFile",
        {"appId": "a", "toWxid": "c", "fileUrl": "https://f", "fileName": "报价.pdf"},
        "message",
        None,
        ["fileName"],
        ["file"],
    ),
    (
        f"{GEWE}/message/postImage",
        {"appId": "a", "toWxid": "c", "imgUrl": "https://i"},
        "message",
        None,
        [],
        ["image"],
    ),
    (
        f"{GEWE}/sns/sendUrlSns",
        {
            "appId": "a",
            "content": "c",
            "linkInfo": {"title": "t", "description": "d", "linkUrl": "https://l"},
        },
        "moment",
        None,
        ["content", "linkInfo.title", "linkInfo.description"],
        ["link"],
    ),
    (
        "/cgi-bin/message/send",
        {
            "agentid": 1000002,
            "touser": "u1|u2",
            "msgtype": "textcard",
            "textcard": {"title": "t", "description": "d", "url": "https://u", "btntxt": "更多"},
        },
        "message",
        None,
        ["textcard.title", "textcard.description", "textcard.btntxt"],
        ["link"],
    ),
    (
        "/cgi-bin/message/send",
        {
            "agentid": "7",
            "msgtype": "news",
            "news": {
                "articles": [{"title": "t", "description": "d", "url": "https://n", "picurl": "https://p"}]
            },
        },
        "message",
        None,
        ["news.articles[0].title", "news.articles[0].description"],
        ["link"],
    ),
    (
        "/cgi-bin/message/send",
        {
            "agentid": 7,
            "msgtype": "template_card",
            "template_card": {
                "card_type": "text_notice",
                "main_title": {"title": "t", "desc": "d"},
                "sub_title_text": "s",
            },
        },
        "message",
        None,
        [
            "template_card.card_type",
            "template_card.main_title.title",
            "template_card.main_title.desc",
            "template_card.sub_title_text",
        ],
        [],
    ),
]


@pytest.mark.parametrize(("path", "body", "kind", "direction", "places", "kinds"), CASES)
def test_builtin_endpoint_to_action(
    path: str, body: dict[str, Any], kind: str, direction: str | None, places: list[str], kinds: list[str]
) -> None:
    (action,) = parse(path, body)
    assert action.kind == kind and action.direction == direction
    assert [t.where for t in action.texts] == places
    assert [a.kind for a in action.attachments] == kinds


def test_welcome_and_appchat_take_the_account_from_the_header_else_a_shared_bucket() -> None:
    body = {"welcome_code": "W", "text": {"content": "欢迎"}}
    (action,) = parse("/cgi-bin/externalcontact/send_welcome_msg", body, account_header="zhangsan")
    assert action.kind == "welcome" and action.account == "zhangsan"
    # An SDK has no header to send: counted against the documented shared bucket, never refused for it.
    (action,) = parse("/cgi-bin/externalcontact/send_welcome_msg", body)
    assert action.kind == "welcome" and action.account == "shared:wecom-welcome"
    chat = {"chatid": "c1", "msgtype": "text", "text": {"content": "开会"}}
    (action,) = parse("/cgi-bin/appchat/send", chat)
    assert action.kind == "message" and action.account == "shared:wecom-appchat"
    (action,) = parse("/cgi-bin/appchat/send", chat, account_header="lisi")
    assert action.account == "lisi"


SENSITIVE = "稳赚不赔"


def _with_sensitive(body: dict[str, Any], place: str) -> dict[str, Any]:
    """A deep copy of `body` with the sensitive word written into the field at `place`."""
    import copy
    import re

    out = copy.deepcopy(body)
    node: Any = out
    parts = [p for p in re.split(r"\.|\[(\d+)\]", place) if p]
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    last = parts[-1]
    node[int(last) if last.isdigit() else last] = f"本周{SENSITIVE}"
    return out


@pytest.mark.parametrize(
    ("path", "body", "place"),
    [(path, body, place) for path, body, _k, _d, places, _a in CASES for place in places],
)
async def test_sensitive_word_in_any_field_is_refused(
    guard: RunningGuard, stub: StubUpstream, path: str, body: dict[str, Any], place: str
) -> None:
    _status, headers, data = await guard.post(path, _with_sensitive(body, place))
    code = data.get("errcode", data.get("ret"))
    assert code == 490001, (place, data)
    assert headers["X-Guard-Decision"] == "refuse"
    assert stub.count() == 0


@pytest.mark.cluster
async def test_moment_senders_on_a_cluster_are_all_or_nothing(redis_cluster: str) -> None:
    async with stub_upstream() as stub:
        settings = Settings(
            upstream=stub.url,
            upstreams={"gewe": stub.url},
            reload_interval=0,
            redis_url=redis_cluster,
            redis_timeout=1.0,
        )
        async with running_guard(settings) as guard:
            path = "/cgi-bin/externalcontact/add_moment_task"

            def moment(*senders: str) -> dict[str, Any]:
                return {
                    "text": {"content": "新品"},
                    "visible_range": {"sender_list": {"user_list": list(senders)}},
                }

            for _ in range(3):
                assert (await guard.post(path, moment("c2")))[2]["errcode"] == 0
            _, _, data = await guard.post(path, moment("c1", "c3", "c2"))
            assert data["errcode"] == 490003
            today = guard.app[PIPELINE].today()
            for account in ("c1", "c3"):
                rules = guard.app[ACCOUNTS].rules_for(account, "moment", today)
                assert (await guard.app[LIMITER].usage(account, rules))[0].used == 0
            assert (await guard.post(path, moment("c1", "c3")))[2]["errcode"] == 0
            assert stub.count() == 4
