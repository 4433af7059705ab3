"""The GeWe catalogue (guard/core/profiles/gewe.py) is complete and says what each route is.

- Every route gewechat-client posts to (found by walking its installed source with `ast`) is classified by
  the gewe profile as a guarded write, a read or a plain write: a new SDK route fails here until it is.
- Every route that carries customer-facing content is guarded, as the Action kind this table says.
- Forwarded WeChat XML is read safely: its prose scanned, its links and mini programs judged; malformed,
  oversized or DOCTYPE-bearing XML is refused as bad input.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import gewechat_client
import pytest

from guard.core import fields
from guard.core.body import BodyError
from guard.core.bundle import build_bundle
from guard.core.profiles import RequestInfo, Route
from guard.core.profiles import gewe as catalogue
from guard.core.types import Action

PROFILES = build_bundle(None).profiles
SDK_DIR = Path(gewechat_client.__file__).parent
BASES = ("/v2/api", "/gewe/v2/api", "")


def sdk_routes() -> dict[str, str]:
    """Every route string gewechat-client posts to → where (`file:line`). A call whose route is not a
    literal fails: it could not be checked."""
    routes: dict[str, str] = {}
    for path in sorted(SDK_DIR.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else ""
            )
            if name != "post_json":
                continue
            where = f"{path.relative_to(SDK_DIR)}:{node.lineno}"
            assert len(node.args) >= 2, f"{where}: post_json without a route argument"
            route = node.args[1]
            assert isinstance(route, ast.Constant) and isinstance(route.value, str), (
                f"{where}: the route is not a string literal, so it cannot be classified"
            )
            routes.setdefault(route.value, where)
    return routes


SDK_ROUTES = sdk_routes()


def classify(path: str) -> str:
    matched = PROFILES.match("POST", path)
    if matched is None:
        return "unclassified"
    profile, route = matched
    assert profile.name == "gewe", (path, profile.name)
    return "guarded" if route.guarded else "plain" if route.plain_write else "read"


def test_the_sdk_walk_finds_the_sdk() -> None:
    # gewechat-client 0.2.2 posts to 73 distinct routes; far fewer means the walk is broken.
    assert len(SDK_ROUTES) >= 70, sorted(SDK_ROUTES)
    assert "/message/postText" in SDK_ROUTES and "/contacts/addContacts" in SDK_ROUTES


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("route", sorted(SDK_ROUTES))
def test_every_sdk_route_is_classified(route: str, base: str) -> None:
    assert classify(base + route) != "unclassified", (
        f"gewechat-client posts to {route} ({SDK_ROUTES[route]}): classify it in guard/core/profiles/gewe.py "
        "as a guarded write, a read or a plain write"
    )


def test_the_catalogue_lists_each_route_once() -> None:
    tails = [s for s, _ in catalogue.GUARDED] + list(catalogue.READS) + list(catalogue.PLAIN_WRITES)
    assert len(tails) == len({t.lower() for t in tails}), sorted(t for t in tails if tails.count(t) > 1)
    for tail in tails:
        assert tail.split("/", 1)[0] in catalogue.OWNED_SEGMENTS, tail


# Every route whose body carries customer-facing content: the Action it is (kind, direction) and a body
# with one text field set to `{TEXT}`, which the parser must read.
TEXT = "本周稳赚不赔"
TITLE = f"<appmsg><title>{TEXT}</title></appmsg>"  # an app message whose title is TEXT
MSG = f"<msg>{TITLE}</msg>"  # a received message's XML, forwarded
MOMENT = f"<TimelineObject><contentDesc>{TEXT}</contentDesc></TimelineObject>"
CUSTOMER_FACING: dict[str, tuple[str, str | None, dict[str, Any]]] = {
    # messages and forwards
    "message/postText": ("message", None, {"toWxid": "c", "content": TEXT}),
    "message/postFile": ("message", None, {"toWxid": "c", "fileUrl": "https://f", "fileName": TEXT}),
    "message/postLink": ("message", None, {"toWxid": "c", "title": TEXT, "linkUrl": "https://l"}),
    "message/postNameCard": ("message", None, {"toWxid": "c", "nickName": TEXT, "nameCardWxid": "w"}),
    "message/postAppMsg": ("message", None, {"toWxid": "c", "appmsg": TITLE}),
    "message/postMiniApp": ("message", None, {"toWxid": "c", "miniAppId": "wx1", "displayName": TEXT}),
    "message/sendFinderMsg": ("message", None, {"toWxid": "c", "content": TEXT}),
    "message/forwardFile": ("message", None, {"toWxid": "c", "xml": MSG}),
    "message/forwardImage": ("message", None, {"toWxid": "c", "xml": f"<msg><img/>{TITLE}</msg>"}),
    "message/forwardVideo": ("message", None, {"toWxid": "c", "xml": f"<msg><videomsg/>{TITLE}</msg>"}),
    "message/forwardUrl": ("message", None, {"toWxid": "c", "xml": MSG}),
    "message/forwardMiniApp": ("message", None, {"toWxid": "c", "xml": MSG}),
    # friends
    "contacts/addContacts": ("add_friend", "active", {"option": 2, "content": TEXT}),
    "group/addGroupMemberAsFriend": ("add_friend", "active", {"memberWxid": "m", "content": TEXT}),
    "im/add": ("add_friend", "active", {"v3": "v3", "v4": "v4", "content": TEXT}),
    # groups
    "group/inviteMember": ("message", None, {"chatroomId": "r", "wxids": "a,b", "reason": TEXT}),
    "group/setChatroomAnnouncement": ("template", None, {"chatroomId": "r", "content": TEXT}),
    "group/modifyChatroomName": ("template", None, {"chatroomId": "r", "chatroomName": TEXT}),
    "group/modifyChatroomNickNameForSelf": ("template", None, {"chatroomId": "r", "nickName": TEXT}),
    # moments
    "sns/sendTextSns": ("moment", None, {"content": TEXT}),
    "sns/sendImgSns": ("moment", None, {"content": TEXT, "imgInfos": [{"fileUrl": "https://i"}]}),
    "sns/sendVideoSns": ("moment", None, {"content": TEXT, "videoInfo": {"fileUrl": "https://v"}}),
    "sns/sendUrlSns": ("moment", None, {"title": TEXT, "linkUrl": "https://l"}),
    "sns/sendFinderSns": ("moment", None, {"content": TEXT}),
    "sns/forwardSns": ("moment", None, {"snsXml": MOMENT}),
    "sns/commentSns": ("message", None, {"wxid": "w", "operType": 1, "content": TEXT}),
    # profile
    "personal/updateProfile": ("template", None, {"nickName": "小王", "signature": TEXT}),
    # 视频号
    "finder/comment": ("message", None, {"content": TEXT}),
    "finder/scanComment": ("message", None, {"url": "https://q", "content": TEXT}),
    "finder/postPrivateLetter": ("message", None, {"username": "u@finder", "content": TEXT}),
    "finder/publishFinder": ("moment", None, {"videoUrl": "https://v", "description": "d", "topic": [TEXT]}),
    "finder/publishFinderWeb": ("moment", None, {"videoUrl": "https://v", "description": TEXT}),
    "finder/publishFinderCdn": ("moment", None, {"finderMediaId": "m", "description": TEXT}),
    "finder/createFinder": ("template", None, {"nickname": TEXT}),
    "finder/updateProfile": ("template", None, {"intro": TEXT}),
}
# Customer-facing routes with no text of their own (media only): guarded, their attachment judged.
MEDIA_ONLY = {
    "message/postImage": "image",
    "message/postVideo": "video",
    "message/postVoice": "voice",
    "message/postEmoji": "image",
    "finder/postPrivateLetterImg": "image",
}
# Routes that must not be guarded: reads and writes without customer-facing content.
NOT_GUARDED = {
    "message/revokeMsg": "plain",
    "message/downloadImage": "read",
    "contacts/setFriendRemark": "plain",
    "contacts/deleteFriend": "plain",
    "contacts/search": "read",
    "group/getChatroomAnnouncement": "read",
    "group/removeMember": "plain",
    "sns/likeSns": "plain",
    "sns/snsList": "read",
    "sns/uploadSnsImage": "plain",
    "personal/getProfile": "read",
    "label/add": "plain",
    "login/checkLogin": "read",
    "login/logout": "plain",
    "tools/setCallback": "plain",
    "im/sync": "read",
}


def parse(tail: str, body: dict[str, Any]) -> list[Action]:
    matched = PROFILES.match("POST", "/v2/api/" + tail)
    assert matched is not None, tail
    route: Route = matched[1]
    assert route.parse is not None, f"{tail} carries customer-facing content but is not guarded"
    return route.parse({"appId": "app-1", **body}, RequestInfo("POST", "/v2/api/" + tail, {}))


@pytest.mark.parametrize("tail", sorted(CUSTOMER_FACING))
def test_customer_facing_routes_are_guarded_and_read_their_text(tail: str) -> None:
    kind, direction, body = CUSTOMER_FACING[tail]
    (action,) = parse(tail, body)
    assert (action.kind, action.direction, action.account) == (kind, direction, "app-1")
    assert any(TEXT in t.text for t in action.texts), (tail, action.texts)


@pytest.mark.parametrize("tail", sorted(MEDIA_ONLY))
def test_media_messages_are_guarded_with_their_attachment(tail: str) -> None:
    (action,) = parse(tail, {"toWxid": "c"})
    assert [a.kind for a in action.attachments] == [MEDIA_ONLY[tail]]


@pytest.mark.parametrize("tail", sorted(NOT_GUARDED))
def test_reads_and_plain_writes(tail: str) -> None:
    assert classify("/v2/api/" + tail) == NOT_GUARDED[tail]


def test_every_guarded_route_is_in_the_table() -> None:
    """A newly guarded route gets a row above (what it is, which field carries its text)."""
    guarded = {suffix for suffix, _ in catalogue.GUARDED}
    assert guarded == set(CUSTOMER_FACING) | set(MEDIA_ONLY), guarded ^ (
        set(CUSTOMER_FACING) | set(MEDIA_ONLY)
    )


def test_every_guarded_route_names_its_account() -> None:
    for suffix, parser in catalogue.GUARDED:
        with pytest.raises(BodyError) as err:
            parser({}, RequestInfo("POST", "/" + suffix, {}))
        assert err.value.code.code in (490005, 490014), suffix


def test_group_invitation_counts_its_invitees() -> None:
    (action,) = parse("group/inviteMember", {"chatroomId": "r", "wxids": "a, b,a", "reason": "来"})
    assert action.recipients == 2
    (action,) = parse("group/inviteMember", {"chatroomId": "r", "wxids": ["a", "b", "c"], "reason": "来"})
    assert action.recipients == 3


# ---- forwarded XML ----

URL_XML = (
    '<?xml version="1.0"?>\n<msg><appmsg appid="" sdkver="0"><title>新品到店</title><des>本周末活动</des>'
    "<type>5</type><url>https://taobao.com/item?id=1&amp;x=2</url><appattach><cdnthumburl>3057</cdnthumburl>"
    "<aeskey>6f30</aeskey></appattach><md5>d160</md5></appmsg><fromusername>wxid_staff01</fromusername>"
    "<scene>0</scene></msg>"
)
MINI_XML = (
    "<msg><appmsg><title>晒出新年第一杯</title><type>33</type><sourcedisplayname>霸王茶姬</sourcedisplayname>"
    "<weappinfo><username><![CDATA[gh_e9d25e745aae@app]]></username><appid><![CDATA[wxafec6f8422cb357b]]>"
    "</appid><pagepath><![CDATA[pages/index.html]]></pagepath></weappinfo></appmsg></msg>"
)
SNS_XML = (
    "<TimelineObject><id>1428</id><username>wxid_g66</username><contentDesc>年终回馈</contentDesc>"
    "<ContentObject><contentStyle>3</contentStyle><title>发布 5.1.2 版本</title><contentUrl>"
    'http://mp.weixin.qq.com/s?biz=1</contentUrl><mediaList><media><id>2</id><url type="1">'
    'http://shmmsns.qpic.cn/m/0</url><thumb type="1">http://shmmsns.qpic.cn/m/150</thumb></media>'
    '</mediaList></ContentObject><location poiName="静安寺店" city="" /></TimelineObject>'
)


def test_forwarded_link_prose_scanned_link_judged_ids_left_out() -> None:
    (action,) = parse("message/forwardUrl", {"toWxid": "c", "xml": URL_XML})
    assert [(t.where, t.text) for t in action.texts] == [
        ("xml.msg.appmsg.title", "新品到店"),
        ("xml.msg.appmsg.des", "本周末活动"),
    ]
    assert [(a.kind, a.url) for a in action.attachments] == [("link", "https://taobao.com/item?id=1&x=2")]


def test_forwarded_mini_program_names_its_appid_and_page() -> None:
    (action,) = parse("message/forwardMiniApp", {"toWxid": "c", "xml": MINI_XML, "coverImgUrl": "https://c"})
    assert [t.text for t in action.texts] == ["晒出新年第一杯", "霸王茶姬"]
    (mini,) = action.attachments
    assert (mini.kind, mini.appid, mini.page) == ("miniprogram", "wxafec6f8422cb357b", "pages/index.html")


def test_a_forward_without_a_target_is_still_judged_as_its_kind() -> None:
    (action,) = parse(
        "message/forwardMiniApp", {"toWxid": "c", "xml": "<msg><appmsg><title>t</title></appmsg></msg>"}
    )
    assert [(a.kind, a.appid) for a in action.attachments] == [("miniprogram", None)]
    (action,) = parse(
        "message/forwardImage", {"toWxid": "c", "xml": '<msg><img aeskey="k" length="3"/></msg>'}
    )
    assert action.texts == () and [a.kind for a in action.attachments] == ["image"]


def test_forwarded_moment_prose_link_and_place_media_left_out() -> None:
    (action,) = parse("sns/forwardSns", {"snsXml": SNS_XML, "allowWxIds": []})
    assert [t.text for t in action.texts] == ["年终回馈", "发布 5.1.2 版本", "静安寺店"]
    assert [(a.kind, a.url) for a in action.attachments] == [("link", "http://mp.weixin.qq.com/s?biz=1")]
    assert action.kind == "moment" and action.recipients == 0


def test_app_message_scanned_whole_and_its_link_judged() -> None:
    appmsg = "<appmsg><title>t</title><url>https://t.cn/abc</url></appmsg>"
    (action,) = parse("message/postAppMsg", {"toWxid": "c", "appmsg": appmsg})
    assert [t.where for t in action.texts] == ["appmsg"]
    assert [(a.kind, a.url) for a in action.attachments] == [("link", "https://t.cn/abc")]


def test_text_split_by_markup_is_read_as_one() -> None:
    (action,) = parse(
        "message/forwardUrl", {"toWxid": "c", "xml": "<msg><title>稳<b/>赚<i>x</i>不赔</title></msg>"}
    )
    assert action.texts[0].text == "稳赚不赔"


@pytest.mark.parametrize(
    ("xml", "says"),
    [
        ('<!DOCTYPE m [<!ENTITY a "aaaa">]><msg>&a;</msg>', "DOCTYPE"),
        ("<!doctype msg SYSTEM 'http://example.com/x.dtd'><msg/>", "DOCTYPE"),
        ("<msg><title>a</msg>", "not well-formed"),
        ("<msg><title>a & b</title></msg>", "not well-formed"),
        ("<msg/><msg/>", "not well-formed"),
        ("<msg>" + "好" * (fields.MAX_XML_CHARS + 1) + "</msg>", "characters"),
    ],
)
def test_unreadable_xml_is_refused_as_bad_input(xml: str, says: str) -> None:
    for tail, field in (
        ("message/forwardUrl", "xml"),
        ("sns/forwardSns", "snsXml"),
        ("message/postAppMsg", "appmsg"),
    ):
        with pytest.raises(BodyError) as err:
            parse(tail, {"toWxid": "c", field: xml})
        assert err.value.code.code == 490005 and says in err.value.detail and field in err.value.detail


def test_text_without_markup_is_prose() -> None:
    (action,) = parse("message/forwardUrl", {"toWxid": "c", "xml": TEXT})
    assert [(t.where, t.text) for t in action.texts] == [("xml", TEXT)]
