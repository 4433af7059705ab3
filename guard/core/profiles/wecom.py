"""The WeCom server API (paths under /cgi-bin/): its endpoint catalogue and the parsers it names.

The catalogue is data: `WRITES` (guarded writes, each with the parser that reads where its customer-facing
text, attachments, recipients and account sit), `READS`, and `PLAIN_WRITES` (writes without
customer-facing content); both of the latter are forwarded unchecked. Attachment objects are described by
`ATTACHMENTS` (their fields and what each carries), not by branches.
"""

from __future__ import annotations

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
ATTACHMENTS: dict[str, Shape] = {
    "image": {"media_id": "id", "pic_url": "url"},
    "link": {"title": "text", "desc": "text", "url": "url", "picurl": "id"},
    "miniprogram": {"title": "text", "appid": "appid", "page": "page", "pic_media_id": "id"},
    "video": {"media_id": "id"},
    "file": {"media_id": "id"},
}
# The older shape of add_msg_template: these objects at the top level of the body.
OLD_SHAPE_ATTACHMENTS = ("link", "miniprogram", "image")
MAX_ATTACHMENTS = 9


def _attachment(kind: str, body: dict[str, Any], where: str) -> tuple[list[TextField], Attachment]:
    """One attachment object (`link` / `miniprogram` / `image` / `video` / `file`) at `where`."""
    texts, found = read_shape(body, ATTACHMENTS[kind], where)
    return texts, attachment(kind, where, found)


def wecom_content(body: dict[str, Any], *, allow_old_shape: bool) -> tuple[list[TextField], list[Attachment]]:
    """`text.content` + `attachments[]` (+ the older top-level `link` / `miniprogram` / `image`)."""
    texts: list[TextField] = []
    attachments: list[Attachment] = []
    text_obj = a.opt_obj(body, "text")
    if text_obj is not None:
        texts += a.text(text_obj, "content", "text")
    items = a.obj_list(body, "attachments")
    if len(items) > MAX_ATTACHMENTS:
        raise BodyError(
            codes.BAD_REQUEST, f"attachments: at most {MAX_ATTACHMENTS} allowed, got {len(items)}"
        )
    for i, item in enumerate(items):
        where = f"attachments[{i}]"
        msgtype = a.opt_str(item, "msgtype", where)
        if msgtype is None:
            raise BodyError(codes.BAD_REQUEST, f"{where}.msgtype is missing", where=where)
        if msgtype not in ATTACHMENTS:
            raise BodyError(codes.BAD_REQUEST, f"{where}.msgtype {msgtype!r} is not a known attachment type")
        payload = a.opt_obj(item, msgtype, where)
        if payload is None:
            raise BodyError(codes.BAD_REQUEST, f"{where}.{msgtype} is missing", where=where)
        t, att = _attachment(msgtype, payload, f"{where}.{msgtype}")
        texts += t
        attachments.append(att)
    if allow_old_shape:
        for kind in OLD_SHAPE_ATTACHMENTS:
            payload = a.opt_obj(body, kind)
            if payload is not None:
                t, att = _attachment(kind, payload, kind)
                texts += t
                attachments.append(att)
    return texts, attachments


# ---- app messages (message/send, appchat/send) ----

_MESSAGE_ID_FIELDS = frozenset({"media_id", "thumb_media_id", "pic_media_id", "appid", "task_id", "agentid"})
_URL_FIELDS = frozenset({"url", "content_source_url", "picurl", "pic_url", "pagepath"})
# The URL fields that are link targets (judged by the attachment policy); the others are pictures / pages.
_LINK_FIELDS = _URL_FIELDS - {"picurl", "pic_url", "pagepath"}
_MESSAGE_TYPES = frozenset(
    {
        "text", "image", "voice", "video", "file", "textcard", "news", "mpnews", "markdown",
        "miniprogram_notice", "template_card", "link", "miniprogram",
    }
)  # fmt: skip
# msgtypes whose payload is itself an attachment of that kind.
_MEDIA_MESSAGES = frozenset({"file", "video", "image", "voice"})
_MINIPROGRAM_MESSAGES = frozenset({"miniprogram_notice", "miniprogram"})


def _generic_message(body: dict[str, Any], payload_key: str) -> tuple[list[TextField], list[Attachment]]:
    payload = body.get(payload_key)
    if payload is None:
        raise BodyError(
            codes.BAD_REQUEST, f"{payload_key} is missing for msgtype {payload_key!r}", where=payload_key
        )
    # Link targets are judged by the attachment policy (domains), not scanned as message text.
    texts = list(a.strings_in(payload, payload_key, _MESSAGE_ID_FIELDS | _URL_FIELDS))
    attachments: list[Attachment] = []
    for field_ in a.strings_in(payload, payload_key, _MESSAGE_ID_FIELDS):
        if field_.where.rsplit(".", 1)[-1] in _LINK_FIELDS:
            attachments.append(Attachment(kind="link", where=field_.where, url=field_.text))
    if payload_key in _MINIPROGRAM_MESSAGES and isinstance(payload, dict):
        attachments.append(
            Attachment(
                kind="miniprogram",
                where=payload_key,
                appid=a.opt_str(payload, "appid", payload_key),
                page=a.opt_str(payload, "page", payload_key),
            )
        )
    if payload_key in _MEDIA_MESSAGES:
        attachments.append(Attachment(kind=payload_key, where=payload_key))
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
    return Action(
        kind=kind,
        account=account,
        texts=tuple(texts),
        attachments=tuple(attachments),
        recipients=recipients,
        request_id=req.request_id,
        profile="wecom",
    )


def parse_add_msg_template(body: dict[str, Any], req: RequestInfo) -> list[Action]:
    """A 群发 task: account `sender`; recipients `external_userid` (single) / `chat_id_list` (group)."""
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
    """A welcome message to one new contact."""
    a.opt_str(body, "welcome_code")
    # The welcome message names no sender: the account is the staff member who gained the contact,
    # which the client states in X-Guard-Account.
    account = a.require_account(None, "X-Guard-Account", req.account_header)
    texts, attachments = wecom_content(body, allow_old_shape=False)
    return [_wecom_action("welcome", account, texts, attachments, 1, req)]


def parse_moment_task(body: dict[str, Any], req: RequestInfo) -> list[Action]:
    """A moment posted by every sender in `visible_range.sender_list.user_list`: one Action each."""
    texts, attachments = wecom_content(body, allow_old_shape=False)
    visible = a.opt_obj(body, "visible_range") or {}
    senders = a.opt_obj(visible, "sender_list", "visible_range") or {}
    users = a.str_list(senders, "user_list", "visible_range.sender_list")
    a.str_list(senders, "department_list", "visible_range.sender_list")
    accounts = list(dict.fromkeys(u.strip() for u in users if u.strip()))
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
    msgtype = a.opt_str(body, "msgtype")
    if msgtype is None:
        raise BodyError(codes.BAD_REQUEST, "msgtype is missing", where="msgtype")
    if msgtype not in _MESSAGE_TYPES:
        raise BodyError(
            codes.BAD_REQUEST, f"msgtype {msgtype!r} is not a known message type", where="msgtype"
        )
    for key in ("touser", "toparty", "totag"):
        a.opt_str(body, key)
    agent = a.account_value(body.get("agentid"), "agentid", numeric=True)
    account = a.require_account(agent, "agentid", req.account_header)
    texts, attachments = _generic_message(body, msgtype)
    touser = a.opt_str(body, "touser") or ""
    recipients = len([u for u in touser.split("|") if u]) if touser != "@all" else 0
    return [_wecom_action("message", account, texts, attachments, recipients, req)]


def parse_appchat_send(body: dict[str, Any], req: RequestInfo) -> list[Action]:
    """A message to an app group chat (`chatid`); the account comes from X-Guard-Account."""
    msgtype = a.opt_str(body, "msgtype")
    if msgtype is None or msgtype not in _MESSAGE_TYPES:
        raise BodyError(codes.BAD_REQUEST, f"msgtype {msgtype!r} is missing or unknown", where="msgtype")
    a.opt_str(body, "chatid")
    account = a.require_account(None, "X-Guard-Account", req.account_header)
    texts, attachments = _generic_message(body, msgtype)
    return [_wecom_action("message", account, texts, attachments, 1, req)]


# ---- the catalogue ----


class Write(NamedTuple):
    path: str  # under /cgi-bin/
    name: str
    parse: Parser


# Guarded writes (POST): the parser reads text, attachments, recipients and account.
WRITES: tuple[Write, ...] = (
    Write("externalcontact/add_msg_template", "add_msg_template", parse_add_msg_template),
    Write("externalcontact/send_welcome_msg", "send_welcome_msg", parse_welcome),
    Write("externalcontact/add_moment_task", "add_moment_task", parse_moment_task),
    Write("message/send", "message_send", parse_message_send),
    Write("appchat/send", "appchat_send", parse_appchat_send),
)

# Reads (many of them POST in WeCom), forwarded unchecked whatever the method.
READS = (
    "gettoken", "get_api_domain_ip", "getcallbackip", "media/get", "media/get/jssdk",
    "user/get", "user/list", "user/simplelist", "user/list_id", "user/getuserid", "department/list",
    "department/simplelist", "agent/get", "agent/list",
    "externalcontact/list", "externalcontact/get", "externalcontact/batch/get_by_user",
    "externalcontact/get_follow_user_list", "externalcontact/get_corp_tag_list",
    "externalcontact/groupchat/list", "externalcontact/groupchat/get",
    "externalcontact/get_groupmsg_list", "externalcontact/get_groupmsg_list_v2",
    "externalcontact/get_groupmsg_task", "externalcontact/get_groupmsg_send_result",
    "externalcontact/get_moment_list", "externalcontact/get_moment_task",
    "externalcontact/get_moment_task_result", "externalcontact/get_moment_customer_list",
    "externalcontact/get_moment_send_result", "externalcontact/get_moment_comments",
    "externalcontact/get_user_behavior_data", "externalcontact/groupchat/statistic",
    "externalcontact/get_unassigned_list",
)  # fmt: skip

# Writes without customer-facing content (media uploads, task control, remarks), forwarded unchecked.
PLAIN_WRITES = (
    "media/upload", "media/uploadimg", "media/upload_attachment",
    "externalcontact/cancel_groupmsg_send", "externalcontact/remind_groupmsg_send",
    "externalcontact/remark",
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
