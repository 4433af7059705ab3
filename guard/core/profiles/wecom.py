"""The WeCom server API (paths under /cgi-bin/): its endpoint catalogue and the parsers it names.

The catalogue is data: `WRITES` (guarded writes, each with the parser that reads where its customer-facing
text, attachments, recipients and account sit), `READS`, and `PLAIN_WRITES` (writes without
customer-facing content, forwarded with an audit line); reads are forwarded unchecked. Attachment objects
are described by `ATTACHMENTS` (their fields and what each carries), not by branches.

It covers every endpoint of the namespaces a staff tool uses to reach customers or manage contacts
(`externalcontact/`, `kf/`, `message/`, `appchat/`, `linkedcorp/`, 家校 `school/`, `user/`, `department/`,
`tag/`, `media/`, `agent/`, `batch/`, `menu/`, `corp/`, `oa/`, `gettoken` …) and every path the wechatpy
WeCom client can call (tests/test_catalogue_wecom.py walks its source). Sources, named per group below:

- [docs]    the WeCom developer documentation, 服务端API (https://developer.work.weixin.qq.com/document/),
            e.g. path/92572 「联系我」与结束语, 92599 入群欢迎语素材, 94677 kf/send_msg, 95122
            kf/send_msg_on_event, 95972 知识库问答, 92125 在职继承 transfer_customer, 90236 message/send,
            94888 update_template_card, 93338 linkedcorp/message/send, 92321 家校消息, 92228 成员对外信息;
- [wechatpy] wechatpy 1.8.18, `wechatpy/enterprise/client/api/*.py` (the paths its WeChatClient calls,
            incl. the old 企业号 `chat/…` and `material/…`);
- [wxjava]  binarywang/WxJava, weixin-java-cp `WxCpApiPathConsts.java` (commit 3e48dc7, 2025-01-24).

A request whose body names no staff account is counted against what the body implies or a shared bucket
`shared:<bucket>` (`fields.account_or_shared` / `fields.implied_or_shared`); the buckets are `SHARED_BUCKETS`.
A `template` parser (customer-facing text the platform keeps: 结束语, group welcome templates, transfer
messages, a profile's external fields …) returns no Action when the body carries none of it (a contact way
without 结束语 is configuration): it is forwarded without a charge.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from guard.core import codes
from guard.core import fields as a
from guard.core.body import BodyError
from guard.core.profiles.model import (
    WECOM_FORMAT,
    Parser,
    PathRule,
    Profile,
    RequestInfo,
    Route,
    Shape,
    attachment,
    read_shape,
)
from guard.core.types import Action, ActionKind, Attachment, TextField

# ---- attachments ----

# msgtype → the attachment object's fields (`attachments[i].<msgtype>`, or the older top-level shape).
# 微信客服 spells a mini program's page `pagepath` and its cover `thumb_media_id`: both spellings are read.
ATTACHMENTS: dict[str, Shape] = {
    "image": {"media_id": "id", "pic_url": "url"},
    "link": {"title": "text", "desc": "text", "url": "url", "picurl": "id", "thumb_media_id": "id"},
    "miniprogram": {
        "title": "text", "appid": "appid", "page": "page", "pagepath": "page", "pic_media_id": "id",
        "thumb_media_id": "id",
    },
    "video": {"media_id": "id"},
    "file": {"media_id": "id"},
}  # fmt: skip
# The older shape of add_msg_template / send_welcome_msg: these objects at the top level of the body.
OLD_SHAPE_ATTACHMENTS = ("link", "miniprogram", "image")
# Group welcome templates (入群欢迎语素材) put one of these beside `text` at the top level.
TEMPLATE_ATTACHMENTS = ("image", "link", "miniprogram", "file", "video")
MAX_ATTACHMENTS = 9

# Shared accounts (`shared:<bucket>`) of the requests whose body names no staff account (docs/profiles.md).
SHARED_BUCKETS: dict[str, str] = {
    "wecom-welcome": "externalcontact/send_welcome_msg (the staff member is the one who gained the contact)",
    "wecom-appchat": "appchat/send (an app group chat names no sender)",
    "wecom-kf": "微信客服: kf/send_msg_on_event, knowledge base, kf/account/add (no open_kfid in the body)",
    "wecom-group-welcome": "externalcontact/group_welcome_template/add|edit (corp-wide templates)",
    "wecom-contact-way": "add_contact_way / update_contact_way 结束语 without a `user` list",
    "wecom-transfer": "transfer_customer without handover_userid",
    "wecom-app": "app messages / template cards / material without agentid",
    "wecom-school": "家校 externalcontact/message/send without agentid",
    "wecom-chat": "the old 企业号 chat/send without sender",
    "wecom-profile": "user/create|update external profile without userid",
    "wecom-product-album": "externalcontact/add_product_album|update_product_album",
    "wecom-join-way": "externalcontact/groupchat/add_join_way|update_join_way (auto-created group names)",
}


def _attachment(kind: str, body: dict[str, Any], where: str) -> tuple[list[TextField], Attachment]:
    """One attachment object (`link` / `miniprogram` / `image` / `video` / `file`) at `where`."""
    texts, found = read_shape(body, ATTACHMENTS[kind], where)
    return texts, attachment(kind, where, found)


def attachment_list(
    body: dict[str, Any], key: str, where: str = "", limit: int = MAX_ATTACHMENTS, type_key: str = "msgtype"
) -> tuple[list[TextField], list[Attachment]]:
    """`<key>[]`: objects `{<type_key>: kind, kind: {...}}` (kind one of `ATTACHMENTS`), at most `limit`."""
    texts: list[TextField] = []
    attachments: list[Attachment] = []
    base = f"{where}.{key}" if where else key
    items = a.obj_list(body, key, where)
    if len(items) > limit:
        raise BodyError(codes.BAD_REQUEST, f"{base}: at most {limit} allowed, got {len(items)}")
    for i, item in enumerate(items):
        at = f"{base}[{i}]"
        kind = a.opt_str(item, type_key, at)
        if kind is None:
            raise BodyError(codes.BAD_REQUEST, f"{at}.{type_key} is missing", where=at)
        if kind not in ATTACHMENTS:
            raise BodyError(codes.BAD_REQUEST, f"{at}.{type_key} {kind!r} is not a known attachment type")
        payload = a.opt_obj(item, kind, at)
        if payload is None:
            raise BodyError(codes.BAD_REQUEST, f"{at}.{kind} is missing", where=at)
        t, att = _attachment(kind, payload, f"{at}.{kind}")
        texts += t
        attachments.append(att)
    return texts, attachments


def top_level_content(
    body: dict[str, Any], kinds: Iterable[str], where: str = ""
) -> tuple[list[TextField], list[Attachment]]:
    """`text.content` and the attachment objects of `kinds` that sit beside it (`image`, `link` …)."""
    texts: list[TextField] = []
    attachments: list[Attachment] = []
    text_obj = a.opt_obj(body, "text", where)
    if text_obj is not None:
        texts += a.text(text_obj, "content", f"{where}.text" if where else "text")
    for kind in kinds:
        payload = a.opt_obj(body, kind, where)
        if payload is not None:
            t, att = _attachment(kind, payload, f"{where}.{kind}" if where else kind)
            texts += t
            attachments.append(att)
    return texts, attachments


def plain_content(body: dict[str, Any]) -> tuple[list[TextField], list[Attachment]] | None:
    """`wecom_content` of a body in the usual shape, read in one pass: `text.content` and `attachments[]`
    whose every field is of its type, none of the older top-level objects. None for anything else (a
    wrong type, a missing or unknown kind, too many attachments, the old shape): the long way then reads
    it and names the problem. The same texts and attachments as the long way, without its ~20 reader calls
    (tests/test_speed_request_parse.py compares the two on many bodies, malformed ones too)."""
    texts: list[TextField] = []
    attachments: list[Attachment] = []
    text_obj = body.get("text")
    if text_obj is not None:
        if type(text_obj) is not dict:
            return None
        content = text_obj.get("content")
        if content is not None:
            if type(content) is not str:
                return None
            if content:
                texts.append(TextField("text.content", content))
    items = body.get("attachments")
    if items is not None:
        if type(items) is not list or len(items) > MAX_ATTACHMENTS:
            return None
        for i, item in enumerate(items):
            if type(item) is not dict:
                return None
            kind = item.get("msgtype")
            if type(kind) is not str:
                return None
            shape = ATTACHMENTS.get(kind)
            if shape is None:
                return None
            payload = item.get(kind)
            if type(payload) is not dict:
                return None
            at = f"attachments[{i}].{kind}"
            found: dict[str, str] = {}
            for key, role in shape.items():  # read_shape written out
                value = payload.get(key)
                if value is None:
                    continue
                if type(value) is not str:
                    return None
                if role != "text":
                    found[role] = value
                elif value:
                    texts.append(TextField(f"{at}.{key}", value))
            attachments.append(Attachment(kind, at, found.get("url"), found.get("appid"), found.get("page")))
    if not body.keys().isdisjoint(OLD_SHAPE_ATTACHMENTS):
        return None
    return texts, attachments


def wecom_content(body: dict[str, Any], *, allow_old_shape: bool) -> tuple[list[TextField], list[Attachment]]:
    """`text.content` + `attachments[]` (+ the older top-level `link` / `miniprogram` / `image`)."""
    plain = plain_content(body)
    if plain is not None:
        return plain
    return content_long_way(body, allow_old_shape=allow_old_shape)


def content_long_way(
    body: dict[str, Any], *, allow_old_shape: bool
) -> tuple[list[TextField], list[Attachment]]:
    """`wecom_content` field by field through the typed readers: every wrong field named."""
    texts: list[TextField] = []
    text_obj = a.opt_obj(body, "text")
    if text_obj is not None:  # `top_level_content(body, ())` written out: ~0.3 µs a request
        texts += a.text(text_obj, "content", "text")
    t, attachments = attachment_list(body, "attachments")
    texts += t
    # One C call, not a comprehension: most bodies have none of the old shape's keys (~0.4 µs a request).
    if allow_old_shape and not body.keys().isdisjoint(OLD_SHAPE_ATTACHMENTS):
        old_shape = {k: body[k] for k in OLD_SHAPE_ATTACHMENTS if k in body}
        t, atts = top_level_content(old_shape, OLD_SHAPE_ATTACHMENTS)
        texts += t
        attachments += atts
    return texts, attachments


# ---- app messages (message/send, appchat/send, linkedcorp, 家校, 微信客服 …) ----

_MESSAGE_ID_FIELDS = frozenset({"media_id", "thumb_media_id", "pic_media_id", "appid", "task_id", "agentid"})
_URL_FIELDS = frozenset({"url", "content_source_url", "picurl", "pic_url", "pagepath", "link_url"})
# The URL fields that are link targets (judged by the attachment policy); the others are pictures / pages.
_LINK_FIELDS = _URL_FIELDS - {"picurl", "pic_url", "pagepath"}
_MESSAGE_TYPES = frozenset(
    {
        "text", "image", "voice", "video", "file", "textcard", "news", "mpnews", "markdown",
        "miniprogram_notice", "template_card", "link", "miniprogram",
    }
)  # fmt: skip
# 微信客服 (kf/send_msg): its own message types; menu items carry ids and types besides their text.
_KF_MESSAGE_TYPES = frozenset(
    {"text", "image", "voice", "video", "file", "link", "miniprogram", "msgmenu", "location", "business_card",
     "ca_link"}
)  # fmt: skip
_KF_EVENT_MESSAGE_TYPES = frozenset({"text", "msgmenu"})
_KF_SKIP = _MESSAGE_ID_FIELDS | {"id", "type", "userid", "open_kfid"}
# 家校沟通 (externalcontact/message/send) message types.
_SCHOOL_MESSAGE_TYPES = frozenset(
    {"text", "image", "voice", "video", "file", "news", "mpnews", "miniprogram"}
)
# msgtypes whose payload is itself an attachment of that kind.
_MEDIA_MESSAGES = frozenset({"file", "video", "image", "voice"})
_MINIPROGRAM_MESSAGES = frozenset({"miniprogram_notice", "miniprogram"})


def _generic_message(
    body: dict[str, Any], payload_key: str, skip: frozenset[str] = _MESSAGE_ID_FIELDS
) -> tuple[list[TextField], list[Attachment]]:
    payload = body.get(payload_key)
    if payload is None:
        raise BodyError(
            codes.BAD_REQUEST, f"{payload_key} is missing for msgtype {payload_key!r}", where=payload_key
        )
    # Link targets are judged by the attachment policy (domains), not scanned as message text.
    texts = list(a.strings_in(payload, payload_key, skip | _URL_FIELDS))
    attachments: list[Attachment] = []
    for field_ in a.strings_in(payload, payload_key, skip):
        if field_.where.rsplit(".", 1)[-1] in _LINK_FIELDS:
            attachments.append(Attachment(kind="link", where=field_.where, url=field_.text))
    if payload_key in _MINIPROGRAM_MESSAGES and isinstance(payload, dict):
        attachments.append(
            Attachment(
                kind="miniprogram",
                where=payload_key,
                appid=a.opt_str(payload, "appid", payload_key),
                page=a.opt_str(payload, "page", payload_key) or a.opt_str(payload, "pagepath", payload_key),
            )
        )
    if payload_key in _MEDIA_MESSAGES:
        attachments.append(Attachment(kind=payload_key, where=payload_key))
    return texts, attachments


def _msgtype(body: dict[str, Any], known: frozenset[str]) -> str:
    msgtype = a.opt_str(body, "msgtype")
    if msgtype is None:
        raise BodyError(codes.BAD_REQUEST, "msgtype is missing", where="msgtype")
    if msgtype not in known:
        raise BodyError(
            codes.BAD_REQUEST, f"msgtype {msgtype!r} is not a known message type", where="msgtype"
        )
    return msgtype


def _kf_content(body: dict[str, Any], msgtype: str) -> tuple[list[TextField], list[Attachment]]:
    """A 微信客服 message: every string of the payload but ids; menu items pointing at a mini program."""
    texts, attachments = _generic_message(body, msgtype, _KF_SKIP)
    if msgtype == "msgmenu":
        menu = a.opt_obj(body, "msgmenu") or {}
        for i, item in enumerate(a.obj_list(menu, "list", "msgmenu")):
            where = f"msgmenu.list[{i}].miniprogram"
            mini = a.opt_obj(item, "miniprogram", f"msgmenu.list[{i}]")
            if mini is not None:
                attachments.append(
                    Attachment(
                        kind="miniprogram",
                        where=where,
                        appid=a.opt_str(mini, "appid", where),
                        page=a.opt_str(mini, "pagepath", where),
                    )
                )
    return texts, attachments


# ---- parsers of the guarded writes ----


def _wecom_action(
    kind: ActionKind,
    account: str,
    texts: list[TextField],
    attachments: list[Attachment],
    recipients: int,
    req: RequestInfo,
) -> Action:
    # Action's fields in order (kind, account, direction, texts, attachments, recipients, request_id,
    # profile): positional, ~0.3 µs less than by keyword for every guarded WeCom request.
    return Action(kind, account, None, tuple(texts), tuple(attachments), recipients, req.request_id, "wecom")


def _templates(
    accounts: list[str], texts: list[TextField], attachments: list[Attachment], req: RequestInfo
) -> list[Action]:
    """One `template` Action per account; none when the body carries no customer-facing content."""
    if not texts and not attachments:
        return []
    return [_wecom_action("template", acct, texts, attachments, 0, req) for acct in accounts]


def parse_add_msg_template(body: dict[str, Any], req: RequestInfo) -> list[Action]:
    """A 群发 task: account `sender`; recipients `external_userid` (single) / `chat_id_list` (group)."""
    return plain_broadcast(body, req) or broadcast_long_way(body, req)


def _str_list(value: object) -> bool:
    """`value` is absent or a list of strings (what `fields.str_list` takes without a word)."""
    if value is None:
        return True
    if type(value) is not list:
        return False
    for item in value:  # noqa: SIM110 - not all() over a generator: 0.11 µs against 0.25 (timeit, 2 ids)
        if type(item) is not str:
            return False
    return True


def plain_broadcast(body: dict[str, Any], req: RequestInfo) -> list[Action] | None:
    """`broadcast_long_way` for a 群发 body in the usual shape (`plain_content`; a sender; the recipients
    listed; the other fields absent or of their type), in one pass; None for anything else, which the long
    way then reads or refuses. The benchmark's broadcast: 7.2 -> 4.9 µs (timeit over 20,000 distinct bodies);
    bench/stages.py "profile parse" at 16 connections 26.7 -> 19.5 µs (medians of 3 alternating rounds, with
    RequestInfo's part). tests/test_speed_request_parse.py compares it with the long way."""
    chat_type = body.get("chat_type")
    if chat_type is None or chat_type == "":
        chat_type = "single"
    elif chat_type != "single" and chat_type != "group":
        return None
    external = body.get("external_userid")
    chats = body.get("chat_id_list")
    allow_select = body.get("allow_select")
    tag_filter = body.get("tag_filter")
    sender = body.get("sender")
    if (
        not _str_list(external)
        or not _str_list(chats)
        or (allow_select is not None and type(allow_select) is not bool)
        or (tag_filter is not None and type(tag_filter) is not dict)
        or type(sender) is not str
        or not (account := sender.strip())
    ):
        return None
    content = plain_content(body)
    if content is None:
        return None
    if chat_type == "single":
        recipients = len(set(external)) if external else 0
    else:
        recipients = len(set(chats)) if chats else len(set(external)) if external else 0
    if recipients == 0:
        return None
    return [_wecom_action("broadcast", account, content[0], content[1], recipients, req)]


def broadcast_long_way(body: dict[str, Any], req: RequestInfo) -> list[Action]:
    """`parse_add_msg_template` field by field through the typed readers: every wrong field named."""
    chat_type = a.opt_str(body, "chat_type") or "single"
    if chat_type not in ("single", "group"):
        raise BodyError(codes.BAD_REQUEST, f"chat_type must be 'single' or 'group', got {chat_type!r}")
    external = a.str_list(body, "external_userid")
    chats = a.str_list(body, "chat_id_list")
    a.opt_bool(body, "allow_select")
    a.opt_obj(body, "tag_filter")
    sender = a.account_value(body.get("sender"), "sender")
    account = a.require_account(sender, "sender", req.account_header)
    texts, attachments = wecom_content(body, allow_old_shape=True)
    recipients = len(set(external)) if chat_type == "single" else len(set(chats)) or len(set(external))
    if recipients == 0:
        # WeCom reads an empty list as "every customer (or group) of the sender, after tag_filter": a
        # count the guard cannot know, so the recipient limit could be bypassed. Refuse rather than guess.
        raise BodyError(
            codes.RECIPIENTS_UNKNOWN,
            "external_userid / chat_id_list is empty: the recipients cannot be counted",
            where="external_userid" if chat_type == "single" else "chat_id_list",
        )
    return [_wecom_action("broadcast", account, texts, attachments, recipients, req)]


def parse_welcome(body: dict[str, Any], req: RequestInfo) -> list[Action]:
    """A welcome message to one new contact (`text` + `attachments[]`, or the older top-level objects)."""
    a.opt_str(body, "welcome_code")
    # The body names no sender: the staff member who gained the contact, when the client states it in
    # X-Guard-Account; else the shared bucket.
    account = a.account_or_shared(req.account_header, None, "wecom-welcome")
    texts, attachments = wecom_content(body, allow_old_shape=True)
    return [_wecom_action("welcome", account, texts, attachments, 1, req)]


def parse_moment_task(body: dict[str, Any], req: RequestInfo) -> list[Action]:
    """A moment posted by every sender in `visible_range.sender_list.user_list`: one Action each."""
    texts, attachments = wecom_content(body, allow_old_shape=False)
    visible = a.opt_obj(body, "visible_range") or {}
    senders = a.opt_obj(visible, "sender_list", "visible_range") or {}
    users = a.str_list(senders, "user_list", "visible_range.sender_list")
    a.str_list(senders, "department_list", "visible_range.sender_list")
    accounts = a.distinct(users)
    if not accounts:
        if req.account_header:
            accounts = [req.account_header]
        else:
            raise BodyError(
                codes.MISSING_ACCOUNT,
                "visible_range.sender_list.user_list names no sender (a department-wide moment cannot be "
                "checked per account; list the senders)",
                where="visible_range.sender_list.user_list",
            )
    return [_wecom_action("moment", acct, texts, attachments, 0, req) for acct in accounts]


def parse_message_send(body: dict[str, Any], req: RequestInfo) -> list[Action]:
    """An app message: account `agentid`; recipients the `touser` list (`@all`: not countable, 0)."""
    msgtype = _msgtype(body, _MESSAGE_TYPES)
    for key in ("touser", "toparty", "totag"):
        a.opt_str(body, key)
    agent = a.account_value(body.get("agentid"), "agentid", numeric=True)
    account = a.require_account(agent, "agentid", req.account_header)
    texts, attachments = _generic_message(body, msgtype)
    touser = a.opt_str(body, "touser") or ""
    recipients = len([u for u in touser.split("|") if u]) if touser != "@all" else 0
    return [_wecom_action("message", account, texts, attachments, recipients, req)]


def parse_appchat_send(body: dict[str, Any], req: RequestInfo) -> list[Action]:
    """A message to an app group chat (`chatid`): X-Guard-Account, else the shared bucket."""
    msgtype = a.opt_str(body, "msgtype")
    if msgtype is None or msgtype not in _MESSAGE_TYPES:
        raise BodyError(codes.BAD_REQUEST, f"msgtype {msgtype!r} is missing or unknown", where="msgtype")
    a.opt_str(body, "chatid")
    account = a.account_or_shared(req.account_header, None, "wecom-appchat")
    texts, attachments = _generic_message(body, msgtype)
    return [_wecom_action("message", account, texts, attachments, 1, req)]


def parse_update_template_card(body: dict[str, Any], req: RequestInfo) -> list[Action]:
    """A template card already sent, rewritten (`template_card`, or only its button's `replace_name`)."""
    users = a.str_list(body, "userids")
    a.str_list(body, "partyids")
    a.str_list(body, "tagids")
    a.opt_int(body, "atall")
    a.opt_str(body, "response_code")
    agent = a.account_value(body.get("agentid"), "agentid", numeric=True)
    account = a.implied_or_shared(agent, req.account_header, "wecom-app")
    texts: list[TextField] = []
    attachments: list[Attachment] = []
    button = a.opt_obj(body, "button")
    if button is not None:
        texts += a.text(button, "replace_name", "button")
    if body.get("template_card") is not None:
        t, atts = _generic_message(body, "template_card")
        texts += t
        attachments += atts
    return [_wecom_action("message", account, texts, attachments, len(set(users)), req)]


def parse_linkedcorp_send(body: dict[str, Any], req: RequestInfo) -> list[Action]:
    """A message to members of linked corps (互联企业): `touser` / `toparty` / `totag` are arrays."""
    msgtype = _msgtype(body, _MESSAGE_TYPES)
    users = a.str_list(body, "touser")
    a.str_list(body, "toparty")
    a.str_list(body, "totag")
    a.opt_int(body, "toall")
    agent = a.account_value(body.get("agentid"), "agentid", numeric=True)
    account = a.implied_or_shared(agent, req.account_header, "wecom-app")
    texts, attachments = _generic_message(body, msgtype)
    return [_wecom_action("message", account, texts, attachments, len(set(users)), req)]


def parse_school_send(body: dict[str, Any], req: RequestInfo) -> list[Action]:
    """A 家校 message to parents / students (`externalcontact/message/send` of 家校沟通)."""
    msgtype = _msgtype(body, _SCHOOL_MESSAGE_TYPES)
    a.opt_int(body, "recv_scope")
    recipients = sum(
        len(set(a.str_list(body, key)))
        for key in ("to_external_user", "to_parent_userid", "to_student_userid")
    )
    a.opt_list(body, "to_party")
    a.opt_int(body, "toall")
    agent = a.account_value(body.get("agentid"), "agentid", numeric=True)
    account = a.implied_or_shared(agent, req.account_header, "wecom-school")
    texts, attachments = _generic_message(body, msgtype)
    return [_wecom_action("message", account, texts, attachments, recipients, req)]


def parse_chat_send(body: dict[str, Any], req: RequestInfo) -> list[Action]:
    """The old 企业号 conversation API (wechatpy `chat.send_*`): account `sender`."""
    msgtype = _msgtype(body, _MESSAGE_TYPES)
    receiver = a.opt_obj(body, "receiver")
    if receiver is not None:
        a.opt_str(receiver, "type", "receiver")
        a.opt_str(receiver, "id", "receiver")
    sender = a.account_value(body.get("sender"), "sender")
    account = a.implied_or_shared(sender, req.account_header, "wecom-chat")
    texts, attachments = _generic_message(body, msgtype)
    return [_wecom_action("message", account, texts, attachments, 1, req)]


def parse_material_news(body: dict[str, Any], req: RequestInfo) -> list[Action]:
    """Articles kept as app material (`mpnews.articles[]` or `articles[]`), sent later by media_id."""
    a.opt_str(body, "media_id")
    agent = a.account_value(body.get("agentid"), "agentid", numeric=True)
    account = a.implied_or_shared(agent, req.account_header, "wecom-app")
    texts: list[TextField] = []
    attachments: list[Attachment] = []
    for key in ("mpnews", "articles"):
        if body.get(key) is not None:
            t, atts = _generic_message(body, key)
            texts += t
            attachments += atts
    return _templates([account], texts, attachments, req)


def parse_kf_send(body: dict[str, Any], req: RequestInfo) -> list[Action]:
    """A 微信客服 message to one WeChat user: account `open_kfid` (X-Guard-Account first)."""
    a.opt_str(body, "touser")
    a.opt_str(body, "msgid")
    msgtype = _msgtype(body, _KF_MESSAGE_TYPES)
    open_kfid = a.account_value(body.get("open_kfid"), "open_kfid")
    account = a.account_or_shared(req.account_header, open_kfid, "wecom-kf")
    texts, attachments = _kf_content(body, msgtype)
    return [_wecom_action("message", account, texts, attachments, 1, req)]


def parse_kf_send_on_event(body: dict[str, Any], req: RequestInfo) -> list[Action]:
    """A 微信客服 welcome / closing message answering an event `code` (text or menu)."""
    a.opt_str(body, "code")
    a.opt_str(body, "msgid")
    msgtype = _msgtype(body, _KF_EVENT_MESSAGE_TYPES)
    account = a.account_or_shared(req.account_header, None, "wecom-kf")
    texts, attachments = _kf_content(body, msgtype)
    return [_wecom_action("message", account, texts, attachments, 1, req)]


def parse_kf_upgrade_service(body: dict[str, Any], req: RequestInfo) -> list[Action]:
    """微信客服 → a staff member or customer group: the card's `wording` (推荐语) goes to the customer."""
    a.opt_str(body, "external_userid")
    a.opt_int(body, "type")
    open_kfid = a.account_value(body.get("open_kfid"), "open_kfid")
    account = a.account_or_shared(req.account_header, open_kfid, "wecom-kf")
    texts: list[TextField] = []
    for key in ("member", "groupchat"):
        obj = a.opt_obj(body, key)
        if obj is not None:
            a.opt_str(obj, "userid", key)
            a.opt_str(obj, "chat_id", key)
            texts += a.text(obj, "wording", key)
    return [_wecom_action("message", account, texts, [], 1, req)]


def parse_kf_account(body: dict[str, Any], req: RequestInfo) -> list[Action]:
    """A 微信客服 account's `name`, which every customer it serves sees."""
    a.opt_str(body, "media_id")
    open_kfid = a.account_value(body.get("open_kfid"), "open_kfid")
    account = a.account_or_shared(req.account_header, open_kfid, "wecom-kf")
    return _templates([account], a.text(body, "name"), [], req)


def parse_kf_intent(body: dict[str, Any], req: RequestInfo) -> list[Action]:
    """A knowledge-base Q&A (the bot answers customers with it): question, similar questions, answers."""
    a.opt_str(body, "group_id")
    a.opt_str(body, "intent_id")
    account = a.account_or_shared(req.account_header, None, "wecom-kf")
    texts: list[TextField] = []
    attachments: list[Attachment] = []
    question = a.opt_obj(body, "question")
    if question is not None:
        t, _ = top_level_content(question, (), "question")
        texts += t
    similar = a.opt_obj(body, "similar_questions")
    if similar is not None:
        for i, item in enumerate(a.obj_list(similar, "items", "similar_questions")):
            t, _ = top_level_content(item, (), f"similar_questions.items[{i}]")
            texts += t
    for i, answer in enumerate(a.obj_list(body, "answers")):
        where = f"answers[{i}]"
        t, _ = top_level_content(answer, (), where)
        texts += t
        t, atts = attachment_list(answer, "attachments", where, limit=4)
        texts += t
        attachments += atts
    return _templates([account], texts, attachments, req)


def parse_group_welcome(body: dict[str, Any], req: RequestInfo) -> list[Action]:
    """入群欢迎语素材 (add / edit): `text.content` and one of image / link / miniprogram / file / video."""
    a.opt_str(body, "template_id")
    a.opt_int(body, "notify")
    account = a.account_or_shared(req.account_header, None, "wecom-group-welcome")
    texts, attachments = top_level_content(body, TEMPLATE_ATTACHMENTS)
    return _templates([account], texts, attachments, req)


def parse_contact_way(body: dict[str, Any], req: RequestInfo) -> list[Action]:
    """「联系我」 (add / update): its `conclusions` (结束语, sent when a temporary chat ends) are
    customer-facing; counted against each staff member of `user` (X-Guard-Account first)."""
    a.opt_str(body, "config_id")
    a.opt_str(body, "remark")
    a.opt_str(body, "state")
    users = a.distinct(a.str_list(body, "user"))
    conclusions = a.opt_obj(body, "conclusions")
    if conclusions is None:
        return []
    texts, attachments = top_level_content(conclusions, OLD_SHAPE_ATTACHMENTS, "conclusions")
    if req.account_header:
        accounts = [req.account_header]
    else:
        accounts = users or [a.account_or_shared(None, None, "wecom-contact-way")]
    return _templates(accounts, texts, attachments, req)


def parse_transfer_customer(body: dict[str, Any], req: RequestInfo) -> list[Action]:
    """在职继承: `transfer_success_msg` goes to every transferred customer (none: WeCom's default text)."""
    external = a.str_list(body, "external_userid")
    a.opt_str(body, "takeover_userid")
    handover = a.account_value(body.get("handover_userid"), "handover_userid")
    account = a.implied_or_shared(handover, req.account_header, "wecom-transfer")
    texts = a.text(body, "transfer_success_msg")
    if not texts:
        return []
    return [_wecom_action("template", account, texts, [], len(set(external)), req)]


def parse_product_album(body: dict[str, Any], req: RequestInfo) -> list[Action]:
    """商品图册 (add / update): `description` and its images, shown to customers."""
    a.opt_str(body, "product_id")
    a.opt_str(body, "product_sn")
    a.opt_int(body, "price")
    account = a.account_or_shared(req.account_header, None, "wecom-product-album")
    texts = a.text(body, "description")
    t, attachments = attachment_list(body, "attachments", type_key="type")
    return _templates([account], texts + t, attachments, req)


def parse_join_way(body: dict[str, Any], req: RequestInfo) -> list[Action]:
    """客户群「加入群聊」 (add / update): `room_base_name`, the name of groups it creates for customers."""
    a.opt_str(body, "config_id")
    a.opt_str(body, "remark")
    a.opt_str(body, "state")
    a.str_list(body, "chat_id_list")
    account = a.account_or_shared(req.account_header, None, "wecom-join-way")
    return _templates([account], a.text(body, "room_base_name"), [], req)


def parse_user_profile(body: dict[str, Any], req: RequestInfo) -> list[Action]:
    """A member (create / update): what customers see on the staff member's card (对外职务, 对外属性)."""
    userid = a.account_value(body.get("userid"), "userid")
    account = a.implied_or_shared(userid, req.account_header, "wecom-profile")
    texts = a.text(body, "external_position")
    attachments: list[Attachment] = []
    profile = a.opt_obj(body, "external_profile")
    if profile is not None:
        texts += a.text(profile, "external_corp_name", "external_profile")
        channels = a.opt_obj(profile, "wechat_channels", "external_profile")
        if channels is not None:
            texts += a.text(channels, "nickname", "external_profile.wechat_channels")
        for i, attr in enumerate(a.obj_list(profile, "external_attr", "external_profile")):
            where = f"external_profile.external_attr[{i}]"
            a.opt_int(attr, "type", where)
            texts += a.text(attr, "name", where)
            text_obj = a.opt_obj(attr, "text", where)
            if text_obj is not None:
                texts += a.text(text_obj, "value", f"{where}.text")
            web = a.opt_obj(attr, "web", where)
            if web is not None:
                texts += a.text(web, "title", f"{where}.web")
                attachments.append(a.link(f"{where}.web", a.opt_str(web, "url", f"{where}.web")))
            mini = a.opt_obj(attr, "miniprogram", where)
            if mini is not None:
                t, att = _attachment("miniprogram", mini, f"{where}.miniprogram")
                texts += t
                attachments.append(att)
    return _templates([account], texts, attachments, req)


# ---- the catalogue ----


class Write(NamedTuple):
    path: str  # under /cgi-bin/
    name: str
    parse: Parser


# Guarded writes (POST): the parser reads text, attachments, recipients and account.
WRITES: tuple[Write, ...] = (
    # [docs] 客户联系 (customer contact): 群发, welcome messages, moments, 结束语, transfer messages …
    Write("externalcontact/add_msg_template", "add_msg_template", parse_add_msg_template),
    Write("externalcontact/send_welcome_msg", "send_welcome_msg", parse_welcome),
    Write("externalcontact/add_moment_task", "add_moment_task", parse_moment_task),
    Write("externalcontact/group_welcome_template/add", "group_welcome_add", parse_group_welcome),
    Write("externalcontact/group_welcome_template/edit", "group_welcome_edit", parse_group_welcome),
    Write("externalcontact/add_contact_way", "add_contact_way", parse_contact_way),
    Write("externalcontact/update_contact_way", "update_contact_way", parse_contact_way),
    Write("externalcontact/transfer_customer", "transfer_customer", parse_transfer_customer),
    Write("externalcontact/groupchat/add_join_way", "groupchat_add_join_way", parse_join_way),
    Write("externalcontact/groupchat/update_join_way", "groupchat_update_join_way", parse_join_way),
    Write("externalcontact/add_product_album", "add_product_album", parse_product_album),
    Write("externalcontact/update_product_album", "update_product_album", parse_product_album),
    # [docs] 家校沟通: a message to parents and students.
    Write("externalcontact/message/send", "school_message_send", parse_school_send),
    # [docs] the old path of 群发 (crm/ was renamed externalcontact/; still answered).
    Write("crm/add_msg_template", "crm_add_msg_template", parse_add_msg_template),
    # [docs] 微信客服: messages, the knowledge base the bot answers with, the account name, upgrade cards.
    Write("kf/send_msg", "kf_send_msg", parse_kf_send),
    Write("kf/send_msg_on_event", "kf_send_msg_on_event", parse_kf_send_on_event),
    Write("kf/knowledge/add_intent", "kf_knowledge_add_intent", parse_kf_intent),
    Write("kf/knowledge/mod_intent", "kf_knowledge_mod_intent", parse_kf_intent),
    Write("kf/account/add", "kf_account_add", parse_kf_account),
    Write("kf/account/update", "kf_account_update", parse_kf_account),
    Write("kf/customer/upgrade_service", "kf_customer_upgrade_service", parse_kf_upgrade_service),
    # [docs] 应用消息, 互联企业消息, group chats of an app.
    Write("message/send", "message_send", parse_message_send),
    Write("message/update_template_card", "message_update_template_card", parse_update_template_card),
    Write("linkedcorp/message/send", "linkedcorp_message_send", parse_linkedcorp_send),
    Write("appchat/send", "appchat_send", parse_appchat_send),
    # [docs] 成员对外信息: user/create|update carry what customers see on the staff member's card.
    Write("user/create", "user_create", parse_user_profile),
    Write("user/update", "user_update", parse_user_profile),
    # [wechatpy] the old 企业号 conversation and app material APIs its client still calls.
    Write("chat/send", "chat_send", parse_chat_send),
    Write("material/add_mpnews", "material_add_mpnews", parse_material_news),
    Write("material/update_news", "material_update_news", parse_material_news),
)  # fmt: skip

# Reads (many of them POST in WeCom), forwarded unchecked whatever the method.
READS: tuple[str, ...] = (
    # [docs] tokens, IPs, tickets; [wechatpy] jsapi tickets, service tokens, shakearound.
    "gettoken", "get_api_domain_ip", "getcallbackip", "get_jsapi_ticket", "ticket/get",
    "service/get_provider_token", "service/get_suite_token", "service/get_login_info",
    "service/get_login_url",
    "shakearound/getshakeinfo",
    # [docs] media; [wechatpy] media/get/jssdk, material reads.
    "media/get", "media/get/jssdk", "media/get_upload_by_url_result",
    "material/get", "material/get_count", "material/batchget",
    # [docs] 通讯录 reads; [wxjava] user/get_active_stat, get_userid_by_email, auth/*.
    "user/get", "user/list", "user/simplelist", "user/list_id", "user/getuserid", "user/get_userid_by_email",
    "user/getuserinfo", "user/get_active_stat", "user/convert_to_openid", "user/convert_to_userid",
    "auth/getuserinfo", "auth/getuserdetail", "auth/get_tfa_info",
    "department/list", "department/simplelist", "department/get",
    "tag/get", "tag/list",
    "batch/getresult", "batch/userid_to_openuserid", "batch/openuserid_to_userid",
    "export/get_result",
    # [docs] apps, menus, workbench.
    "agent/get", "agent/list", "agent/get_workbench_template", "menu/get",
    # [docs] app messages and app chats; [wechatpy] chat/get.
    "message/get_statistics", "appchat/get", "chat/get",
    # [docs] 客户联系: customers, tags, follow users, strategies.
    "externalcontact/list", "externalcontact/get", "externalcontact/batch/get_by_user",
    "externalcontact/contact_list", "externalcontact/get_follow_user_list",
    "externalcontact/get_corp_tag_list",
    "externalcontact/get_strategy_tag_list", "externalcontact/customer_strategy/list",
    "externalcontact/customer_strategy/get", "externalcontact/customer_strategy/get_range",
    "externalcontact/get_user_behavior_data", "externalcontact/get_unassigned_list",
    # [docs] id conversions (unionid / openid / pending_id / service external_userid).
    "externalcontact/convert_to_openid", "externalcontact/unionid_to_external_userid",
    "externalcontact/get_new_external_userid", "externalcontact/groupchat/get_new_external_userid",
    "externalcontact/to_service_external_userid", "externalcontact/from_service_external_userid",
    "externalcontact/opengid_to_chatid", "corpgroup/unionid_to_pending_id",
    "corpgroup/batch/external_userid_to_pending_id", "corpgroup/unionid_to_external_userid",
    "idconvert/external_tagid", "idconvert/unionid_to_external_userid", "idconvert/open_kfid",
    "idconvert/convert_tmp_external_userid",
    # [docs] 「联系我」, 加入群聊, subscription QR codes, 获客助手.
    "externalcontact/get_contact_way", "externalcontact/list_contact_way",
    "externalcontact/groupchat/get_join_way", "externalcontact/get_subscribe_qr_code",
    "externalcontact/get_subscribe_mode",
    "externalcontact/customer_acquisition/list_link", "externalcontact/customer_acquisition/get",
    "externalcontact/customer_acquisition/customer", "externalcontact/customer_acquisition/statistic",
    "externalcontact/customer_acquisition/get_chat_info", "externalcontact/customer_acquisition_quota",
    # [docs] customer groups.
    "externalcontact/groupchat/list", "externalcontact/groupchat/get", "externalcontact/groupchat/statistic",
    "externalcontact/groupchat/statistic_group_by_day",
    # [docs] 群发 records; [wechatpy] get_group_msg_result (the older result API).
    "externalcontact/get_groupmsg_list", "externalcontact/get_groupmsg_list_v2",
    "externalcontact/get_groupmsg_task", "externalcontact/get_groupmsg_send_result",
    "externalcontact/get_group_msg_result",
    # [docs] moments and their strategies.
    "externalcontact/get_moment_list", "externalcontact/get_moment_task",
    "externalcontact/get_moment_task_result", "externalcontact/get_moment_customer_list",
    "externalcontact/get_moment_send_result", "externalcontact/get_moment_comments",
    "externalcontact/moment_strategy/list", "externalcontact/moment_strategy/get",
    "externalcontact/moment_strategy/get_range",
    # [docs] welcome templates, transfers, intercept rules, product albums.
    "externalcontact/group_welcome_template/get", "externalcontact/transfer_result",
    "externalcontact/resigned/transfer_result", "externalcontact/get_intercept_rule_list",
    "externalcontact/get_intercept_rule", "externalcontact/get_product_album",
    "externalcontact/get_product_album_list",
    # [docs] the old crm/ paths of customer contact.
    "crm/get_external_contact", "crm/get_external_contact_list", "crm/get_customer_contacts",
    "crm/get_group_msg_result", "crm/get_unassigned_list", "crm/get_user_behavior_data",
    # [docs] 微信客服 reads (sync_msg pulls the customers' messages).
    "kf/account/list", "kf/servicer/list", "kf/service_state/get", "kf/sync_msg", "kf/customer/batchget",
    "kf/customer/get_upgrade_service_config", "kf/get_corp_statistic", "kf/get_servicer_statistic",
    "kf/knowledge/list_group", "kf/knowledge/list_intent",
    # [wxjava] 互联企业 reads.
    "linkedcorp/agent/get_perm_list", "linkedcorp/user/get", "linkedcorp/user/simplelist",
    "linkedcorp/user/list", "linkedcorp/department/list",
    # [wxjava] 家校 reads.
    "school/getuserinfo", "school/user/get", "school/user/list", "school/user/list_parent",
    "school/department/list", "school/agent/get_allow_scope", "school/get_payment_result", "school/get_trade",
    "school/living/get_living_info", "school/living/get_watch_stat", "school/living/get_unwatch_stat",
    "school/user/get_teacher_customize_health_info", "school/user/get_student_customize_health_info",
    "school/user/get_health_qrcode",
    # [wxjava] corp; [wechatpy] oa reads (approvals, calendars, schedules); [wxjava] vacations, meeting rooms.
    "corp/get_join_qrcode", "corp/getapprovaldata", "corp/getopenapprovaldata",
    "oa/getapprovalinfo", "oa/getapprovaldetail", "oa/gettemplatedetail", "oa/calendar/get",
    "oa/schedule/get", "oa/schedule/get_by_calendar", "oa/vacation/getcorpconf",
    "oa/vacation/getuservacationquota", "oa/meetingroom/list", "oa/meetingroom/get_booking_info",
    "oa/meetingroom/bookinfo/get",
)  # fmt: skip

# Writes without customer-facing content (uploads, task control, tags, remarks, configuration, rules the
# platform enforces itself), forwarded with an audit line.
PLAIN_WRITES: tuple[str, ...] = (
    # [docs] media uploads; [wechatpy] app material uploads and deletes.
    "media/upload", "media/uploadimg", "media/upload_attachment", "media/upload_by_url",
    "material/add_material", "material/del",
    # [docs] 通讯录 writes (user/create|update are guarded: external profile); [wechatpy] user/authsucc.
    "user/delete", "user/batchdelete", "user/authsucc",
    "department/create", "department/update", "department/delete",
    "tag/create", "tag/update", "tag/delete", "tag/addtagusers", "tag/deltagusers",
    "batch/invite", "batch/inviteuser", "batch/syncuser", "batch/replaceuser", "batch/replaceparty",
    "export/simple_user", "export/user", "export/department", "export/taguser",
    # [docs] apps, menus, workbench (staff-facing).
    "agent/set", "agent/set_workbench_template", "agent/set_workbench_data",
    "menu/create", "menu/delete",
    # [docs] app messages: recall; the old task-card button; app chats' membership; [wechatpy] old chat/.
    "message/recall", "message/update_taskcard",
    "appchat/create", "appchat/update",
    "chat/create", "chat/update", "chat/quit", "chat/clearnotify", "chat/setmute",
    # [docs] 客户联系: remarks, tags, strategies, migration.
    "externalcontact/remark", "externalcontact/mark_tag", "externalcontact/add_corp_tag",
    "externalcontact/edit_corp_tag", "externalcontact/del_corp_tag", "externalcontact/add_strategy_tag",
    "externalcontact/edit_strategy_tag", "externalcontact/del_strategy_tag",
    "externalcontact/customer_strategy/create", "externalcontact/customer_strategy/edit",
    "externalcontact/customer_strategy/del", "externalcontact/finish_external_userid_migration",
    # [docs] 「联系我」 and 加入群聊 without customer-facing text; subscription mode; 获客助手 links.
    "externalcontact/del_contact_way", "externalcontact/close_temp_chat",
    "externalcontact/groupchat/del_join_way", "externalcontact/set_subscribe_mode",
    "externalcontact/customer_acquisition/create_link", "externalcontact/customer_acquisition/update_link",
    "externalcontact/customer_acquisition/delete_link",
    # [docs] 群发 and moment task control.
    "externalcontact/cancel_groupmsg_send", "externalcontact/remind_groupmsg_send",
    "externalcontact/cancel_moment_task", "externalcontact/moment_strategy/create",
    "externalcontact/moment_strategy/edit", "externalcontact/moment_strategy/del",
    # [docs] transfers: resigned staff and group owners carry no message; [wechatpy] transfer (older API).
    "externalcontact/resigned/transfer_customer", "externalcontact/groupchat/transfer",
    "externalcontact/groupchat/onjob_transfer", "externalcontact/transfer", "crm/transfer_external_contact",
    # [docs] the corp's chat intercept rules: their words go to WeCom, never to a customer.
    "externalcontact/add_intercept_rule", "externalcontact/update_intercept_rule",
    "externalcontact/del_intercept_rule",
    # [docs] welcome templates, product albums: deletes.
    "externalcontact/group_welcome_template/del", "externalcontact/delete_product_album",
    # [docs] 微信客服: accounts, servicers, session state, links, knowledge groups.
    "kf/account/del", "kf/add_contact_way", "kf/servicer/add", "kf/servicer/del", "kf/service_state/trans",
    "kf/customer/cancel_upgrade_service", "kf/knowledge/add_group", "kf/knowledge/mod_group",
    "kf/knowledge/del_group", "kf/knowledge/del_intent",
    # [wxjava] 家校 roster writes.
    "school/user/create_student", "school/user/update_student", "school/user/delete_student",
    "school/user/batch_create_student", "school/user/batch_update_student",
    "school/user/batch_delete_student",
    "school/user/create_parent", "school/user/update_parent", "school/user/delete_parent",
    "school/user/batch_create_parent", "school/user/batch_update_parent", "school/user/batch_delete_parent",
    "school/set_arch_sync_mode", "school/set_upgrade_info", "school/department/create",
    "school/department/update", "school/department/delete",
    # [wechatpy] oa writes (approvals, calendars, schedules); [wxjava] templates, vacations, meeting rooms.
    "oa/applyevent", "oa/calendar/add", "oa/calendar/update", "oa/calendar/del",
    "oa/schedule/add", "oa/schedule/update", "oa/schedule/del",
    "oa/approval/copytemplate", "oa/approval/create_template", "oa/approval/update_template",
    "oa/vacation/setoneuserquota", "oa/meetingroom/add", "oa/meetingroom/edit", "oa/meetingroom/del",
    "oa/meetingroom/book", "oa/meetingroom/book_by_schedule", "oa/meetingroom/book_by_meeting",
    "oa/meetingroom/cancel_book",
)  # fmt: skip


def _rules() -> tuple[PathRule, ...]:
    guarded = [
        PathRule(frozenset({"POST"}), f"/cgi-bin/{w.path}", "exact", Route(f"wecom:{w.name}", w.parse))
        for w in WRITES
    ]
    reads = [
        PathRule(frozenset(), f"/cgi-bin/{path}", "exact", Route(f"wecom:{path}", None)) for path in READS
    ]
    plain = [
        PathRule(frozenset(), f"/cgi-bin/{path}", "exact", Route(f"wecom:{path}", None, plain_write=True))
        for path in PLAIN_WRITES
    ]
    return tuple(guarded + reads + plain)


PROFILE = Profile(name="wecom", answer=WECOM_FORMAT, rules=_rules(), owns=lambda p: p.startswith("/cgi-bin/"))
