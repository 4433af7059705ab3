"""The GeWe personal-WeChat API (any path prefix, matched by the path's tail): its endpoint catalogue and
the parsers it names.

The catalogue is data: `MESSAGES` lists each message endpoint's fields in reading order with what each
carries (text, the recipient, the attachment's url / appid / page, other ids) and the attachment it sends;
`WRITES` the other guarded writes with their parsers; `READS` the path prefixes forwarded unchecked. The
sending account is always `appId` (or X-Guard-Account).
"""

from __future__ import annotations

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


def _gewe_base(body: dict[str, Any], req: RequestInfo) -> str:
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
            account=_gewe_base(body, req),
            direction=direction,
            texts=tuple(texts),
            attachments=tuple(attachments),
            recipients=recipients,
            request_id=req.request_id,
            profile="gewe",
        )
    ]


# ---- messages: data ----


@dataclass(frozen=True, slots=True)
class Message:
    """A message endpoint (1:1 or group, one recipient): its body fields in reading order, and the
    attachment it sends as (kind, the field it sits at)."""

    suffix: str
    fields: Shape
    attachment: tuple[str, str] | None = None

    def parse(self, body: dict[str, Any], req: RequestInfo) -> list[Action]:
        texts, found = read_shape(body, self.fields)
        attachments = [attachment(*self.attachment, found)] if self.attachment else []
        return _gewe_action("message", body, req, texts, attachments)


MESSAGES: tuple[Message, ...] = (
    Message("message/postText", {"toWxid": "to", "ats": "id", "content": "text"}),
    # `appmsg` is the WeChat app-message XML: its title, description and url are all in it; scan it whole.
    Message("message/postAppMsg", {"toWxid": "to", "appmsg": "text"}),
    Message(
        "message/postLink",
        {"toWxid": "to", "thumbUrl": "id", "linkUrl": "url", "title": "text", "desc": "text"},
        ("link", "linkUrl"),
    ),
    Message(
        "message/postMiniApp",
        {"toWxid": "to", "miniAppId": "appid", "pagePath": "page", "title": "text", "displayName": "text"},
        ("miniprogram", "miniAppId"),
    ),
    Message(
        "message/postNameCard",
        {"toWxid": "to", "nameCardWxid": "id", "nickName": "text"},
        ("card", "nameCardWxid"),
    ),
    Message("message/postImage", {"toWxid": "to", "imgUrl": "url"}, ("image", "imgUrl")),
    Message("message/postFile", {"toWxid": "to", "fileUrl": "url", "fileName": "text"}, ("file", "fileUrl")),
    Message("message/postVideo", {"toWxid": "to", "videoUrl": "url"}, ("video", "videoUrl")),
    Message("message/postEmoji", {"toWxid": "to", "emojiMd5": "url"}, ("image", "emojiMd5")),
    Message("message/postVoice", {"toWxid": "to", "voiceUrl": "url"}, ("voice", "voiceUrl")),
)


# ---- the other guarded writes: parsers ----


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


def parse_gewe_sns(body: dict[str, Any], req: RequestInfo) -> list[Action]:
    """A moment: `content`, an optional `linkInfo` link, `imgInfos[]` images."""
    texts = a.text(body, "content")
    attachments: list[Attachment] = []
    link_info = a.opt_obj(body, "linkInfo")
    if link_info is not None:
        texts += a.text(link_info, "title", "linkInfo") + a.text(link_info, "description", "linkInfo")
        url = a.opt_str(link_info, "linkUrl", "linkInfo")
        attachments.append(Attachment(kind="link", where="linkInfo", url=url))
    for i, _ in enumerate(a.obj_list(body, "imgInfos")):
        attachments.append(Attachment(kind="image", where=f"imgInfos[{i}]"))
    return _gewe_action("moment", body, req, texts, attachments, recipients=0)


# ---- the catalogue ----

# Guarded writes (POST), by the path's tail.
WRITES: tuple[tuple[str, Parser], ...] = (
    ("contacts/addContacts", parse_gewe_add_contacts),
    *((m.suffix, m.parse) for m in MESSAGES),
    ("sns/sendTextSns", parse_gewe_sns),
    ("sns/sendImgSns", parse_gewe_sns),
    ("sns/sendUrlSns", parse_gewe_sns),
    ("sns/sendVideoSns", parse_gewe_sns),
)

# Reads: path prefixes (after any base path) forwarded unchecked whatever the method.
READS = ("login/", "contacts/fetch", "contacts/get", "contacts/search", "group/get", "personal/get")

# Path segments of GeWe's API: an unknown write under them is answered in GeWe's format.
OWNED_SEGMENTS = ("contacts", "message", "sns", "group", "login", "personal")


def _owns(path: str) -> bool:
    return any(f"/{seg}/" in path for seg in OWNED_SEGMENTS)


def _rules() -> tuple[PathRule, ...]:
    guarded = [
        PathRule(frozenset({"POST"}), suffix, "suffix", Route(f"gewe:{suffix}", parse))
        for suffix, parse in WRITES
    ]
    reads = [PathRule(frozenset(), f"*/{prefix}*", "glob", Route(f"gewe:{prefix}", None)) for prefix in READS]
    return tuple(guarded + reads)


PROFILE = Profile(name="gewe", answer=GEWE_FORMAT, rules=_rules(), owns=_owns)
