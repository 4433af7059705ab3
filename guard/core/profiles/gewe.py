"""The GeWe personal-WeChat API (any path prefix, e.g. `http://host:2531/v2/api/<route>`, matched by the
path's tail): its endpoint catalogue and the parsers it names.

The catalogue is data. Every GeWe route is one of three things:
- a guarded write (`MESSAGES`, `FORWARDS`, `WRITES`; POST only): an `Endpoint` lists its body fields in
  reading order with what each carries (customer-facing text, the recipient, an attachment's url / appid /
  page, other ids), the attachment it sends, the WeChat XML it forwards, and the Action it is; the few
  endpoints whose reading is more than that name a parser (`PARSED`);
- a read (`READS`): forwarded unchecked;
- a plain write (`PLAIN_WRITES`): a write without customer-facing content, forwarded with an audit line.
Any other write under GeWe's path segments is unknown (refused under `strict`). The sending account is
always `appId` (or X-Guard-Account).

Sources (each group below names the ones it is taken from):
- [sdk]  gewechat-client 0.2.2 (PyPI), gewechat_client/api/*.py: every `post_json(self.base_url, "/…")`
         route and its body fields. tests/test_catalogue_gewe.py walks that source: a new SDK route fails
         the suite until it is classified here.
- [java] github.com/Devo919/Gewechat, src/main/java/api/base/*Api.java: Gewechat's own SDK (the same routes).
- [doc]  the GeWe API documentation, doc.geweapi.com (apifox project 3475559; shared copy
         apifox.com/apidoc/shared-69ba62ca-cb7d-437e-85e4-6f3d3df271b1): 朋友圈模块 (sendImgSns `imgInfos[]`,
         sendVideoSns `videoInfo`, sendUrlSns flat `linkUrl` / `title` / `description`, forwardSns `snsXml`,
         commentSns), the forward* `xml`, postLink, 企微联系人 (`/im/search|sync|add|detail`).
- [open] github.com/Wangnov/OpenGewe, src/opengewe/modules/*.py: the paid modules (朋友圈 sns, 视频号 finder)
         and newer routes (fetchContactsListCache, checkRelation, reconnection, deviceList, downloadFile,
         sendFinderMsg, sendFinderSns).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from guard.core import codes
from guard.core import fields as a
from guard.core.body import BodyError
from guard.core.profiles.model import (
    GEWE_FORMAT,
    Parser,
    PathRule,
    Profile,
    RequestInfo,
    Route,
    Shape,
    attachment,
    read_shape,
)
from guard.core.types import Action, ActionKind, Attachment, Direction, TextField


def _account(body: dict[str, Any], req: RequestInfo) -> str:
    return a.require_account(a.account_value(body.get("appId"), "appId"), "appId", req.account_header)


def _gewe_action(
    kind: ActionKind,
    body: dict[str, Any],
    req: RequestInfo,
    texts: list[TextField],
    attachments: Sequence[Attachment] = (),
    direction: Direction | None = None,
    recipients: int = 1,
) -> list[Action]:
    return [
        Action(
            kind=kind,
            account=_account(body, req),
            direction=direction,
            texts=tuple(texts),
            attachments=tuple(attachments),
            recipients=recipients,
            request_id=req.request_id,
            profile="gewe",
        )
    ]


# ---- WeChat XML (forwarded messages, app messages, moments) ----

# Elements whose text is a link target (judged by the attachment policy, not scanned as prose), except inside
# a moment's <media>, where <url> is the picture or video itself.
_XML_LINKS = frozenset({"url", "lowurl", "dataurl", "lowdataurl", "contenturl", "shareurl"})
# Elements whose text is technical (ids, keys, sizes, flags, media addresses), by the end of the tag name.
_XML_TECHNICAL = (
    "username", "md5", "key", "id", "url", "len", "length", "width", "height", "size", "token", "type", "ver",
    "version", "time", "duration", "count", "flag", "scene", "attr", "style", "path", "extstr", "private",
    "folded", "hidden", "mode", "game", "thumb",
)  # fmt: skip
# Attributes that carry prose (a shared location's label and place name, …).
_XML_TEXT_ATTRIBUTES = frozenset(
    {"title", "des", "desc", "description", "content", "label", "poiname", "poiaddress", "nickname"}
)


def wechat_xml(value: str, where: str, *, texts: bool = True) -> tuple[list[TextField], list[Attachment]]:
    """The prose of a WeChat XML payload (every element's text but ids, keys, sizes and media addresses; the
    prose attributes) and its link and mini-program targets. A value with no markup is prose as a whole.
    `texts=False`: only the targets (the caller scans the value whole). Markup that is not well-formed,
    over the size bound or with a DOCTYPE is refused (`fields.xml_root`): what cannot be read is not sent."""
    if "<" not in value:
        return ([TextField(where, value)] if texts and value.strip() else []), []
    found: list[TextField] = []
    targets: list[Attachment] = []

    def visit(node: ET.Element, path: str, in_media: bool) -> None:
        name = node.tag.rsplit("}", 1)[-1]
        tag = name.lower()
        here = f"{path}.{name}"
        in_media = in_media or tag == "media"
        own = "".join([node.text or "", *(child.tail or "" for child in node)]).strip()
        if tag == "weappinfo":
            children = {c.tag.lower(): (c.text or "").strip() for c in node}
            appid = children.get("appid") or children.get("username") or children.get("appusername")
            if appid:
                targets.append(
                    Attachment(kind="miniprogram", where=here, appid=appid, page=children.get("pagepath"))
                )
        if own:
            if tag in _XML_LINKS and not in_media:
                targets.append(Attachment(kind="link", where=here, url=own))
            elif not tag.endswith(_XML_TECHNICAL):
                found.append(TextField(here, own))
        for key, attr in node.attrib.items():
            if key.lower() in _XML_TEXT_ATTRIBUTES and attr.strip():
                found.append(TextField(f"{here}@{key}", attr))
        for child in node:
            visit(child, here, in_media)

    visit(a.xml_root(value, where), where, False)
    return (found if texts else []), targets


# ---- the guarded writes: data ----


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A guarded write: its body fields in reading order (what each carries), the Action it is, and what it
    sends besides text.

    `attachment`: (kind, field) of the one attachment it always sends; `links`: fields that, when present,
    are link targets; `xml`: the field holding forwarded WeChat XML (its prose scanned, its targets judged;
    `xml_text=False`: targets only, the field being scanned whole as text); `xml_kind`: what the forwarded XML
    must be (an attachment of that kind is judged even when the XML names no target); `recipients`: the field
    listing them (array or comma-separated), else one (a moment or a template: none); `rest`: every other
    string of the body is scanned too (endpoints whose text fields the sources do not name one by one)."""

    suffix: str
    fields: Shape
    kind: ActionKind = "message"
    attachment: tuple[str, str] | None = None
    links: tuple[str, ...] = ()
    xml: str | None = None
    xml_text: bool = True
    xml_kind: str | None = None
    direction: Direction | None = None
    recipients: str | None = None
    rest: bool = False

    def parse(self, body: dict[str, Any], req: RequestInfo) -> list[Action]:
        texts, found = read_shape(body, self.fields)
        attachments = [attachment(*self.attachment, found)] if self.attachment else []
        for key in self.links:
            url = a.opt_str(body, key)
            if url:
                attachments.append(a.link(key, url))
        if self.xml is not None:
            value = a.opt_str(body, self.xml)
            if value:
                more, targets = wechat_xml(value, self.xml, texts=self.xml_text)
                texts += more
                attachments += targets
            if self.xml_kind is not None and not any(t.kind == self.xml_kind for t in attachments):
                attachments.append(Attachment(kind=self.xml_kind, where=self.xml))
        if self.rest:
            skip = _NOT_PROSE | set(self.fields) | ({self.xml} if self.xml else set())
            texts += a.strings_in(body, "", frozenset(skip))
        if self.recipients is not None:
            recipients = len(set(a.id_list(body, self.recipients)))
        else:
            recipients = 0 if self.kind in ("moment", "template") else 1
        return _gewe_action(self.kind, body, req, texts, attachments, self.direction, recipients)


# Keys that are never prose, for `Endpoint.rest`: the account, recipients, visibility lists, ids.
_NOT_PROSE = frozenset(
    {
        "appId", "toWxid", "wxid", "wxids", "chatroomId", "ats", "allowWxIds", "atWxIds", "disableWxIds",
        "allowTagIds", "disableTagIds", "finderUsername", "username", "id", "objectId", "objectNonceId",
        "sessionId", "sessionBuffer", "lastBuffer", "myUserName", "toUserName", "proxyIp", "v3", "v4",
        "thumbUrl", "coverUrl", "coverImgUrl", "headUrl", "headImgUrl", "url", "videoUrl", "imgUrl",
    }
)  # fmt: skip


# 1:1 or group messages (one recipient, `toWxid`). [sdk][java][doc] message/post*; [open] sendFinderMsg (its
# fields are not documented one by one: every string but the ids is scanned).
MESSAGES: tuple[Endpoint, ...] = (
    Endpoint("message/postText", {"toWxid": "to", "ats": "id", "content": "text"}),
    # `appmsg` is the WeChat app-message XML: scanned whole as text, its links and mini program judged.
    Endpoint("message/postAppMsg", {"toWxid": "to", "appmsg": "text"}, xml="appmsg", xml_text=False),
    Endpoint(
        "message/postLink",
        {"toWxid": "to", "thumbUrl": "id", "linkUrl": "url", "title": "text", "desc": "text"},
        attachment=("link", "linkUrl"),
    ),
    Endpoint(
        "message/postMiniApp",
        {
            "toWxid": "to",
            "miniAppId": "appid",
            "pagePath": "page",
            "coverImgUrl": "id",
            "userName": "id",
            "title": "text",
            "displayName": "text",
        },
        attachment=("miniprogram", "miniAppId"),
    ),
    Endpoint(
        "message/postNameCard",
        {"toWxid": "to", "nameCardWxid": "id", "nickName": "text"},
        attachment=("card", "nameCardWxid"),
    ),
    Endpoint("message/postImage", {"toWxid": "to", "imgUrl": "url"}, attachment=("image", "imgUrl")),
    Endpoint(
        "message/postFile",
        {"toWxid": "to", "fileUrl": "url", "fileName": "text"},
        attachment=("file", "fileUrl"),
    ),
    Endpoint(
        "message/postVideo",
        {"toWxid": "to", "videoUrl": "url", "thumbUrl": "id"},
        attachment=("video", "videoUrl"),
    ),
    Endpoint("message/postEmoji", {"toWxid": "to", "emojiMd5": "url"}, attachment=("image", "emojiMd5")),
    Endpoint("message/postVoice", {"toWxid": "to", "voiceUrl": "url"}, attachment=("voice", "voiceUrl")),
    Endpoint("message/sendFinderMsg", {"toWxid": "to"}, rest=True),
)

# Forwarded messages: the received message's XML in `xml`. [sdk][java][doc] message/forward*
FORWARDS: tuple[Endpoint, ...] = (
    Endpoint("message/forwardFile", {"toWxid": "to"}, xml="xml", xml_kind="file"),
    Endpoint("message/forwardImage", {"toWxid": "to"}, xml="xml", xml_kind="image"),
    Endpoint("message/forwardVideo", {"toWxid": "to"}, xml="xml", xml_kind="video"),
    Endpoint("message/forwardUrl", {"toWxid": "to"}, xml="xml", xml_kind="link"),
    Endpoint(
        "message/forwardMiniApp", {"toWxid": "to", "coverImgUrl": "id"}, xml="xml", xml_kind="miniprogram"
    ),
)

# Other guarded writes whose reading is data.
WRITES: tuple[Endpoint, ...] = (
    # 企微联系人 [doc]: adding a WeCom contact is a friend request we make.
    Endpoint("im/add", {"v3": "id", "v4": "id", "content": "text"}, kind="add_friend", direction="active"),
    # Groups [sdk][java][doc]: the invitation's reason goes to every invitee; adding a member as a friend
    # sends a greeting; a group's name, announcement and my nickname in it are shown to every member.
    Endpoint("group/inviteMember", {"chatroomId": "to", "reason": "text"}, recipients="wxids"),
    Endpoint(
        "group/addGroupMemberAsFriend",
        {"chatroomId": "id", "memberWxid": "to", "content": "text"},
        kind="add_friend",
        direction="active",
    ),
    Endpoint("group/setChatroomAnnouncement", {"chatroomId": "to", "content": "text"}, kind="template"),
    Endpoint("group/modifyChatroomName", {"chatroomId": "to", "chatroomName": "text"}, kind="template"),
    Endpoint(
        "group/modifyChatroomNickNameForSelf", {"chatroomId": "to", "nickName": "text"}, kind="template"
    ),
    # Moments [doc][open]: a comment is text to the moment's author (operType 1 comment, 2 delete);
    # forwarding a moment posts its XML as my own; a 视频号 moment's fields are not listed one by one.
    Endpoint("sns/commentSns", {"wxid": "to", "content": "text"}),
    Endpoint("sns/forwardSns", {}, kind="moment", xml="snsXml"),
    Endpoint("sns/sendFinderSns", {"content": "text"}, kind="moment", rest=True),
    # Profile [sdk][java][doc]: the nickname and signature every contact sees.
    Endpoint(
        "personal/updateProfile",
        {"nickName": "text", "signature": "text", "country": "id", "province": "id", "city": "id"},
        kind="template",
    ),
    # 视频号 [open][doc]: comments and private letters are text to a viewer; a post is seen by every follower;
    # the channel's name and introduction by everyone.
    Endpoint("finder/comment", {"content": "text"}),
    Endpoint("finder/scanComment", {"url": "id", "content": "text"}),
    Endpoint("finder/postPrivateLetter", {"username": "to", "content": "text"}),
    Endpoint(
        "finder/postPrivateLetterImg", {"username": "to", "imgUrl": "url"}, attachment=("image", "imgUrl")
    ),
    Endpoint(
        "finder/publishFinderWeb",
        {"title": "text", "videoUrl": "url", "thumbUrl": "id", "description": "text", "webviewUrl": "id"},
        kind="moment",
        attachment=("video", "videoUrl"),
        links=("webviewUrl",),
    ),
    Endpoint(
        "finder/publishFinderCdn",
        {"finderMediaId": "id", "description": "text", "webviewUrl": "id"},
        kind="moment",
        attachment=("video", "finderMediaId"),
        links=("webviewUrl",),
    ),
    # [doc] publishFinder: `topic[]` (hashtags) are prose too.
    Endpoint(
        "finder/publishFinder",
        {"videoUrl": "url", "thumbUrl": "id", "description": "text", "myUserName": "id"},
        kind="moment",
        attachment=("video", "videoUrl"),
        rest=True,
    ),
    Endpoint("finder/createFinder", {"nickname": "text", "intro": "text"}, kind="template"),
    Endpoint(
        "finder/updateProfile", {"nickname": "text", "intro": "text", "headImgUrl": "id"}, kind="template"
    ),
)


# ---- the guarded writes: parsers ----


def parse_gewe_add_contacts(body: dict[str, Any], req: RequestInfo) -> list[Action]:
    """`option` 2 adds (active), 3 accepts (passive); `content` is the greeting."""
    option = a.opt_int(body, "option")
    if option not in (2, 3):
        raise BodyError(
            codes.BAD_REQUEST,
            f"option must be 2 (add) or 3 (accept), got {body.get('option')!r}",
            where="option",
        )
    a.opt_int(body, "scene")
    a.opt_str(body, "v3")
    a.opt_str(body, "v4")
    direction: Direction = "active" if option == 2 else "passive"
    return _gewe_action("add_friend", body, req, a.text(body, "content"), direction=direction)


_SNS_MEDIA: Shape = {"fileUrl": "url", "thumbUrl": "id", "fileMd5": "id"}


def parse_gewe_sns(body: dict[str, Any], req: RequestInfo) -> list[Action]:
    """A moment: `content`; a link (the documented flat `title` / `description` / `linkUrl`, or a `linkInfo`
    object, or OpenGewe's `url`); images (`imgInfos[]` from uploadSnsImage, or `imgUrls[]`); a video
    (`videoInfo` from uploadSnsVideo, or `videoUrl`). Visibility lists are type-checked."""
    texts = a.text(body, "content") + a.text(body, "title") + a.text(body, "description")
    attachments: list[Attachment] = []
    for key in ("linkUrl", "url"):
        url = a.opt_str(body, key)
        if url:
            attachments.append(a.link(key, url))
    a.opt_str(body, "thumbUrl")
    link_info = a.opt_obj(body, "linkInfo")
    if link_info is not None:
        texts += a.text(link_info, "title", "linkInfo") + a.text(link_info, "description", "linkInfo")
        url = a.opt_str(link_info, "linkUrl", "linkInfo")
        attachments.append(Attachment(kind="link", where="linkInfo", url=url))
    for i, item in enumerate(a.obj_list(body, "imgInfos")):
        _, found = read_shape(item, _SNS_MEDIA, f"imgInfos[{i}]")
        attachments.append(attachment("image", f"imgInfos[{i}]", found))
    for i, url in enumerate(a.str_list(body, "imgUrls")):
        attachments.append(Attachment(kind="image", where=f"imgUrls[{i}]", url=url))
    video = a.opt_obj(body, "videoInfo")
    if video is not None:
        _, found = read_shape(video, _SNS_MEDIA, "videoInfo")
        attachments.append(attachment("video", "videoInfo", found))
    video_url = a.opt_str(body, "videoUrl")
    if video_url:
        attachments.append(Attachment(kind="video", where="videoUrl", url=video_url))
    for key in ("allowWxIds", "atWxIds", "disableWxIds", "allowTagIds", "disableTagIds"):
        a.str_list(body, key)
    return _gewe_action("moment", body, req, texts, attachments, recipients=0)


# Guarded writes with a parser of their own. [sdk][java][doc] addContacts; [doc][open] sns/send*Sns
PARSED: tuple[tuple[str, Parser], ...] = (
    ("contacts/addContacts", parse_gewe_add_contacts),
    ("sns/sendTextSns", parse_gewe_sns),
    ("sns/sendImgSns", parse_gewe_sns),
    ("sns/sendUrlSns", parse_gewe_sns),
    ("sns/sendVideoSns", parse_gewe_sns),
)


# ---- reads and plain writes ----

# Reads (POST in GeWe), forwarded unchecked whatever the method.
READS = (
    # [sdk][java][doc] contacts; [open] fetchContactsListCache, checkRelation; [doc] 企微联系人
    "contacts/fetchContactsList", "contacts/fetchContactsListCache", "contacts/getBriefInfo",
    "contacts/getDetailInfo", "contacts/search", "contacts/getPhoneAddressList", "contacts/checkRelation",
    "im/search", "im/sync", "im/detail",
    # [sdk][java][doc] groups
    "group/getChatroomInfo", "group/getChatroomMemberList", "group/getChatroomMemberDetail",
    "group/getChatroomAnnouncement", "group/getChatroomQrCode",
    # [sdk][java] downloads (under message/); [open] downloadFile
    "message/downloadImage", "message/downloadVoice", "message/downloadVideo", "message/downloadEmojiMd5",
    "message/downloadCdn", "message/downloadFile",
    # [doc][open] moments
    "sns/snsList", "sns/contactsSnsList", "sns/snsDetails", "sns/downloadSnsVideo",
    # [sdk][java] profile, labels, favourites, token, login state; [open] deviceList
    "personal/getProfile", "personal/getQrCode", "personal/getSafetyInfo", "label/list", "favor/sync",
    "favor/getContent", "tools/getTokenId", "login/checkLogin", "login/checkOnline", "login/deviceList",
    # [open] 视频号
    "finder/userPage", "finder/followList", "finder/mentionList", "finder/commentList", "finder/likeFavList",
    "finder/search", "finder/getProfile", "finder/getQrCode", "finder/contactList",
    "finder/syncPrivateLetterMsg",
)  # fmt: skip

# Writes without customer-facing content (remarks and labels only I see, deletions, settings, uploads,
# session control), forwarded unchecked with an audit line.
PLAIN_WRITES = (
    # [sdk][java][doc] contacts: a remark is mine; uploading a phone book sends nothing to anyone
    "contacts/deleteFriend", "contacts/setFriendPermissions", "contacts/setFriendRemark",
    "contacts/uploadPhoneAddressList",
    # [sdk][java][doc] groups: membership, settings, my own remark
    "group/createChatroom", "group/modifyChatroomRemark", "group/removeMember", "group/quitChatroom",
    "group/disbandChatroom", "group/agreeJoinRoom", "group/saveContractList", "group/adminOperate",
    "group/pinChat", "group/setMsgSilence", "group/joinRoomUsingQRCode", "group/roomAccessApplyCheckApprove",
    # [sdk][java][doc]
    "message/revokeMsg",
    # [doc][open] moments: likes, deletion, visibility, media uploads (the post that uses them is guarded)
    "sns/likeSns", "sns/delSns", "sns/snsVisibleScope", "sns/strangerVisibilityEnabled", "sns/snsSetPrivacy",
    "sns/uploadSnsImage", "sns/uploadSnsVideo",
    # [sdk][java] profile settings, head image; labels; favourites
    "personal/privacySettings", "personal/updateHeadImg", "label/add", "label/delete",
    "label/modifyMemberList", "favor/delete",
    # [sdk][java] callback and login session; [open] reconnection
    "tools/setCallback", "login/getLoginQrCode", "login/dialogLogin", "login/reconnection", "login/logout",
    # [open] 视频号: follows, likes, favourites, scans, uploads (the post that uses them is guarded)
    "finder/follow", "finder/searchFollow", "finder/idFav", "finder/idLike", "finder/browse",
    "finder/finderOpt", "finder/scanBrowse", "finder/scanFav", "finder/scanFollow", "finder/scanLike",
    "finder/scanLoginChannels", "finder/scanQrCode", "finder/uploadFinderVideo",
)  # fmt: skip

# Guarded writes (POST), by the path's tail.
GUARDED: tuple[tuple[str, Parser], ...] = (
    *PARSED,
    *((e.suffix, e.parse) for e in (*MESSAGES, *FORWARDS, *WRITES)),
)

# Path segments of GeWe's API: an unknown write under them is answered in GeWe's format.
OWNED_SEGMENTS = ("contacts", "message", "sns", "group", "login", "personal", "label", "favor", "tools", "im",
                  "finder")  # fmt: skip


def _owns(path: str) -> bool:
    return any(f"/{seg}/" in path for seg in OWNED_SEGMENTS)


def _rules() -> tuple[PathRule, ...]:
    guarded = [
        PathRule(frozenset({"POST"}), suffix, "suffix", Route(f"gewe:{suffix}", parse))
        for suffix, parse in GUARDED
    ]
    reads = [PathRule(frozenset(), suffix, "suffix", Route(f"gewe:{suffix}", None)) for suffix in READS]
    plain = [
        PathRule(frozenset(), suffix, "suffix", Route(f"gewe:{suffix}", None, plain_write=True))
        for suffix in PLAIN_WRITES
    ]
    return tuple(guarded + reads + plain)


PROFILE = Profile(name="gewe", answer=GEWE_FORMAT, rules=_rules(), owns=_owns)
