"""Route profiles: which requests the guard checks, how each becomes `Action`s, and how a refusal is
answered in the platform's own format.

Built in: `wecom` (WeCom server API, paths under /cgi-bin/) and `gewe` (personal-WeChat GeWe API, any path
prefix); their paths do not overlap, both are active. Custom profiles are TOML files in the rules
directory's `profiles/` (README "Route profiles"); they are matched before the built-in ones.

A profile answers `match(method, path)` with a `Route`: a guarded route has a parser turning the JSON body
into one or more Actions (several accounts in one request, e.g. a moment task for many senders); a
pass-through route (read-only and media endpoints) is forwarded without checks.
"""

from __future__ import annotations

import fnmatch
import json
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guard.core import codes
from guard.core import fields as a
from guard.core.body import BodyError
from guard.core.codes import GuardCode
from guard.core.types import ACTION_KINDS, Action, ActionKind, Attachment, Direction, TextField

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What a parser may look at besides the body."""

    method: str
    path: str
    query: Mapping[str, str]
    account_header: str | None = None
    request_id: str | None = None


Parser = Callable[[dict[str, Any], RequestInfo], list[Action]]


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    parse: Parser | None  # None: pass-through, forwarded unchecked

    @property
    def guarded(self) -> bool:
        return self.parse is not None


# ---- answer formats ----


@dataclass(frozen=True, slots=True)
class AnswerFormat:
    """How a platform answers: where its result code sits, which value means success, and so how the
    guard writes a refusal and recognises an upstream refusal (to refund the quota)."""

    name: str
    code_field: str
    message_field: str
    ok_values: tuple[object, ...]
    extra: Mapping[str, object] = field(default_factory=dict)
    # HTTP status of policy refusals; transport-level codes (401, 413, 502, 504…) keep their own.
    status: int | None = None

    def refusal(self, code: GuardCode, message: str, guard: Mapping[str, object]) -> tuple[int, bytes]:
        body: dict[str, object] = {self.code_field: code.code, self.message_field: message}
        body.update(self.extra)
        body["guard"] = dict(guard)
        status = code.status if code.status != 200 or self.status is None else self.status
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        # A lone surrogate (from a \\ud800 escape in the request) cannot be UTF-8: replace, never fail.
        return status, text.encode("utf-8", "replace")

    def upstream_refused(self, status: int, body: bytes) -> bool:
        """True when the upstream clearly did not perform the action."""
        if status >= 400:
            return True
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return False
        if not isinstance(data, dict) or self.code_field not in data:
            return False
        value = data[self.code_field]
        return not any(value == ok and type(value) is type(ok) for ok in self.ok_values)


WECOM_FORMAT = AnswerFormat("wecom", "errcode", "errmsg", (0,))
GEWE_FORMAT = AnswerFormat("gewe", "ret", "msg", (200,), extra={"data": None})


# ---- profiles ----


@dataclass(frozen=True, slots=True)
class PathRule:
    methods: frozenset[str]  # empty: any method
    pattern: str
    kind: str  # "exact" | "suffix" | "glob"
    route: Route
    # The pattern as matched: lower case, like the normalized request path.
    key: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", self.pattern.lower())

    def matches(self, method: str, path: str) -> bool:
        """`path` is normalized (normalize_path)."""
        if self.methods and method not in self.methods:
            return False
        if self.kind == "exact":
            return path == self.key
        if self.kind == "suffix":
            return path == self.key or path.endswith("/" + self.key)
        return fnmatch.fnmatchcase(path, self.key)


def normalize_path(path: str) -> str:
    """The path as routing sees it: `//`, `.` and `..` segments resolved, `;matrix` parameters and a
    trailing slash dropped, lower case. Servers differ in how they read odd paths; matching the most
    lenient reading means no spelling of a guarded endpoint slips through as an unknown one."""
    parts: list[str] = []
    for segment in path.split("/"):
        segment = segment.split(";", 1)[0]
        if segment in ("", "."):
            continue
        if segment == "..":
            if parts:
                parts.pop()
            continue
        parts.append(segment)
    return ("/" + "/".join(parts)).lower()


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    answer: AnswerFormat
    rules: tuple[PathRule, ...]
    # Paths this profile owns, so that an unknown write under them is answered in its format.
    owns: Callable[[str], bool]
    upstream: str | None = None
    source: str = "built-in"

    def match(self, method: str, path: str) -> Route | None:
        for rule in self.rules:
            if rule.matches(method, path):
                return rule.route
        return None


@dataclass(frozen=True, slots=True)
class ProfileSet:
    profiles: tuple[Profile, ...]

    def match(self, method: str, path: str) -> tuple[Profile, Route] | None:
        path = normalize_path(path)
        for profile in self.profiles:
            route = profile.match(method, path)
            if route is not None:
                return profile, route
        return None

    def owner(self, path: str) -> Profile:
        """The profile whose format answers a request on `path` that no route matched."""
        path = normalize_path(path)
        for profile in self.profiles:
            if profile.owns(path):
                return profile
        return self.get("wecom") or self.profiles[0]

    def get(self, name: str) -> Profile | None:
        return next((p for p in self.profiles if p.name == name), None)


# ---- WeCom ----

WECOM_ATTACHMENT_TYPES = ("image", "link", "miniprogram", "video", "file")
MAX_ATTACHMENTS = 9


def _wecom_attachment(kind: str, body: dict[str, Any], where: str) -> tuple[list[TextField], Attachment]:
    """One attachment object (`link` / `miniprogram` / `image` / `video` / `file`) at `where`."""
    texts: list[TextField] = []
    if kind == "link":
        texts += a.text(body, "title", where) + a.text(body, "desc", where)
        url = a.opt_str(body, "url", where)
        a.opt_str(body, "picurl", where)
        return texts, Attachment(kind="link", where=where, url=url)
    if kind == "miniprogram":
        texts += a.text(body, "title", where)
        appid = a.opt_str(body, "appid", where)
        page = a.opt_str(body, "page", where)
        a.opt_str(body, "pic_media_id", where)
        return texts, Attachment(kind="miniprogram", where=where, appid=appid, page=page)
    if kind == "image":
        a.opt_str(body, "media_id", where)
        pic = a.opt_str(body, "pic_url", where)
        return texts, Attachment(kind="image", where=where, url=pic)
    if kind in ("video", "file"):
        a.opt_str(body, "media_id", where)
        return texts, Attachment(kind=kind, where=where)
    raise BodyError(codes.BAD_REQUEST, f"{where}: unknown attachment type {kind!r}", where=where)


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
        if msgtype not in WECOM_ATTACHMENT_TYPES:
            raise BodyError(codes.BAD_REQUEST, f"{where}.msgtype {msgtype!r} is not a known attachment type")
        payload = a.opt_obj(item, msgtype, where)
        if payload is None:
            raise BodyError(codes.BAD_REQUEST, f"{where}.{msgtype} is missing", where=where)
        t, att = _wecom_attachment(msgtype, payload, f"{where}.{msgtype}")
        texts += t
        attachments.append(att)
    if allow_old_shape:
        for kind in ("link", "miniprogram", "image"):
            payload = a.opt_obj(body, kind)
            if payload is not None:
                t, att = _wecom_attachment(kind, payload, kind)
                texts += t
                attachments.append(att)
    return texts, attachments


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
    a.opt_str(body, "welcome_code")
    # The welcome message names no sender: the account is the staff member who gained the contact,
    # which the client states in X-Guard-Account.
    account = a.require_account(None, "X-Guard-Account", req.account_header)
    texts, attachments = wecom_content(body, allow_old_shape=False)
    return [_wecom_action("welcome", account, texts, attachments, 1, req)]


def parse_moment_task(body: dict[str, Any], req: RequestInfo) -> list[Action]:
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


_MESSAGE_ID_FIELDS = frozenset({"media_id", "thumb_media_id", "pic_media_id", "appid", "task_id", "agentid"})
_URL_FIELDS = frozenset({"url", "content_source_url", "picurl", "pic_url", "pagepath"})
_MESSAGE_TYPES = frozenset(
    {
        "text", "image", "voice", "video", "file", "textcard", "news", "mpnews", "markdown",
        "miniprogram_notice", "template_card", "link", "miniprogram",
    }
)  # fmt: skip


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
        if field_.where.rsplit(".", 1)[-1] in _URL_FIELDS - {"picurl", "pic_url", "pagepath"}:
            attachments.append(Attachment(kind="link", where=field_.where, url=field_.text))
    if payload_key in ("miniprogram_notice", "miniprogram") and isinstance(payload, dict):
        attachments.append(
            Attachment(
                kind="miniprogram",
                where=payload_key,
                appid=a.opt_str(payload, "appid", payload_key),
                page=a.opt_str(payload, "page", payload_key),
            )
        )
    if payload_key in ("file", "video", "image", "voice"):
        attachments.append(Attachment(kind=payload_key, where=payload_key))
    return texts, attachments


def parse_message_send(body: dict[str, Any], req: RequestInfo) -> list[Action]:
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
    msgtype = a.opt_str(body, "msgtype")
    if msgtype is None or msgtype not in _MESSAGE_TYPES:
        raise BodyError(codes.BAD_REQUEST, f"msgtype {msgtype!r} is missing or unknown", where="msgtype")
    a.opt_str(body, "chatid")
    account = a.require_account(None, "X-Guard-Account", req.account_header)
    texts, attachments = _generic_message(body, msgtype)
    return [_wecom_action("message", account, texts, attachments, 1, req)]


WECOM_PASS_THROUGH = (
    "gettoken", "get_api_domain_ip", "getcallbackip",
    "media/upload", "media/uploadimg", "media/upload_attachment", "media/get", "media/get/jssdk",
    "user/get", "user/list", "user/simplelist", "user/list_id", "user/getuserid", "department/list",
    "department/simplelist", "agent/get", "agent/list",
    "externalcontact/list", "externalcontact/get", "externalcontact/batch/get_by_user",
    "externalcontact/get_follow_user_list", "externalcontact/get_corp_tag_list",
    "externalcontact/groupchat/list", "externalcontact/groupchat/get",
    "externalcontact/get_groupmsg_list", "externalcontact/get_groupmsg_list_v2",
    "externalcontact/get_groupmsg_task", "externalcontact/get_groupmsg_send_result",
    "externalcontact/cancel_groupmsg_send", "externalcontact/remind_groupmsg_send",
    "externalcontact/get_moment_list", "externalcontact/get_moment_task",
    "externalcontact/get_moment_task_result", "externalcontact/get_moment_customer_list",
    "externalcontact/get_moment_send_result", "externalcontact/get_moment_comments",
    "externalcontact/get_user_behavior_data", "externalcontact/groupchat/statistic",
    "externalcontact/get_unassigned_list", "externalcontact/remark",
)  # fmt: skip


def _wecom_profile() -> Profile:
    def guarded(path: str, name: str, parse: Parser) -> PathRule:
        return PathRule(frozenset({"POST"}), f"/cgi-bin/{path}", "exact", Route(f"wecom:{name}", parse))

    rules = [
        guarded("externalcontact/add_msg_template", "add_msg_template", parse_add_msg_template),
        guarded("externalcontact/send_welcome_msg", "send_welcome_msg", parse_welcome),
        guarded("externalcontact/add_moment_task", "add_moment_task", parse_moment_task),
        guarded("message/send", "message_send", parse_message_send),
        guarded("appchat/send", "appchat_send", parse_appchat_send),
    ]
    rules += [
        PathRule(frozenset(), f"/cgi-bin/{path}", "exact", Route(f"wecom:{path}", None))
        for path in WECOM_PASS_THROUGH
    ]
    return Profile(
        name="wecom", answer=WECOM_FORMAT, rules=tuple(rules), owns=lambda p: p.startswith("/cgi-bin/")
    )


# ---- GeWe ----


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


def parse_gewe_add_contacts(body: dict[str, Any], req: RequestInfo) -> list[Action]:
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


def parse_gewe_text(body: dict[str, Any], req: RequestInfo) -> list[Action]:
    a.opt_str(body, "toWxid")
    a.opt_str(body, "ats")
    return _gewe_action("message", body, req, a.text(body, "content"))


def parse_gewe_app_msg(body: dict[str, Any], req: RequestInfo) -> list[Action]:
    a.opt_str(body, "toWxid")
    # `appmsg` is the WeChat app-message XML: its title, description and url are all in it; scan it whole.
    return _gewe_action("message", body, req, a.text(body, "appmsg"))


def parse_gewe_link(body: dict[str, Any], req: RequestInfo) -> list[Action]:
    a.opt_str(body, "toWxid")
    a.opt_str(body, "thumbUrl")
    url = a.opt_str(body, "linkUrl")
    texts = a.text(body, "title") + a.text(body, "desc")
    return _gewe_action("message", body, req, texts, [Attachment(kind="link", where="linkUrl", url=url)])


def parse_gewe_mini_app(body: dict[str, Any], req: RequestInfo) -> list[Action]:
    a.opt_str(body, "toWxid")
    att = Attachment(
        kind="miniprogram",
        where="miniAppId",
        appid=a.opt_str(body, "miniAppId"),
        page=a.opt_str(body, "pagePath"),
    )
    texts = a.text(body, "title") + a.text(body, "displayName")
    return _gewe_action("message", body, req, texts, [att])


def parse_gewe_name_card(body: dict[str, Any], req: RequestInfo) -> list[Action]:
    a.opt_str(body, "toWxid")
    a.opt_str(body, "nameCardWxid")
    texts = a.text(body, "nickName")
    return _gewe_action("message", body, req, texts, [Attachment(kind="card", where="nameCardWxid")])


def _gewe_media(kind: str, url_key: str, text_keys: tuple[str, ...] = ()) -> Parser:
    def parse(body: dict[str, Any], req: RequestInfo) -> list[Action]:
        a.opt_str(body, "toWxid")
        url = a.opt_str(body, url_key)
        texts = [t for key in text_keys for t in a.text(body, key)]
        return _gewe_action("message", body, req, texts, [Attachment(kind=kind, where=url_key, url=url)])

    return parse


def parse_gewe_sns(body: dict[str, Any], req: RequestInfo) -> list[Action]:
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


def _gewe_profile() -> Profile:
    def guarded(suffix: str, parse: Parser) -> PathRule:
        return PathRule(frozenset({"POST"}), suffix, "suffix", Route(f"gewe:{suffix}", parse))

    rules = (
        guarded("contacts/addContacts", parse_gewe_add_contacts),
        guarded("message/postText", parse_gewe_text),
        guarded("message/postAppMsg", parse_gewe_app_msg),
        guarded("message/postLink", parse_gewe_link),
        guarded("message/postMiniApp", parse_gewe_mini_app),
        guarded("message/postNameCard", parse_gewe_name_card),
        guarded("message/postImage", _gewe_media("image", "imgUrl")),
        guarded("message/postFile", _gewe_media("file", "fileUrl", ("fileName",))),
        guarded("message/postVideo", _gewe_media("video", "videoUrl")),
        guarded("message/postEmoji", _gewe_media("image", "emojiMd5")),
        guarded("message/postVoice", _gewe_media("voice", "voiceUrl")),
        guarded("sns/sendTextSns", parse_gewe_sns),
        guarded("sns/sendImgSns", parse_gewe_sns),
        guarded("sns/sendUrlSns", parse_gewe_sns),
        guarded("sns/sendVideoSns", parse_gewe_sns),
    )
    read_prefixes = (
        "login/",
        "contacts/fetch",
        "contacts/get",
        "contacts/search",
        "group/get",
        "personal/get",
    )

    def owns(path: str) -> bool:
        return any(f"/{seg}/" in path for seg in ("contacts", "message", "sns", "group", "login", "personal"))

    pass_through = tuple(
        PathRule(frozenset(), f"*/{prefix}*", "glob", Route(f"gewe:{prefix}", None))
        for prefix in read_prefixes
    )
    return Profile(name="gewe", answer=GEWE_FORMAT, rules=rules + pass_through, owns=owns)


# ---- custom profiles (TOML files) ----


class ProfileError(ValueError):
    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def _segments(spec: str) -> list[tuple[str, bool]]:
    """`a.b[].c` → [("a", False), ("b", True), ("c", False)]: a flag marks "each element of this array"."""
    out: list[tuple[str, bool]] = []
    for part in spec.split("."):
        many = part.endswith("[]")
        name = part[:-2] if many else part
        if not name:
            raise ValueError(f"empty segment in field path {spec!r}")
        out.append((name, many))
    return out


def values_at(body: Any, spec: str) -> list[tuple[str, Any]]:
    """Every (place, value) the field path `spec` reaches in `body`; absent parts yield nothing."""
    found: list[tuple[str, Any]] = [("", body)]
    for name, many in _segments(spec):
        nxt: list[tuple[str, Any]] = []
        for where, value in found:
            if value is None:
                continue
            if not isinstance(value, dict):
                raise a.wrong_type(where or "the body", "an object", value)
            here = f"{where}.{name}" if where else name
            item = value.get(name)
            if item is None:
                continue
            if many:
                if not isinstance(item, list):
                    raise a.wrong_type(here, "an array", item)
                nxt += [(f"{here}[{i}]", element) for i, element in enumerate(item)]
            else:
                nxt.append((here, item))
        found = nxt
    return found


@dataclass(frozen=True, slots=True)
class CustomRoute:
    kind: ActionKind
    account: str
    direction: Direction | None
    direction_field: str | None
    direction_map: Mapping[str, Direction]
    texts: tuple[str, ...]
    recipients: str | None
    links: tuple[str, ...]
    miniprograms: tuple[str, ...]
    attachments: Mapping[str, tuple[str, ...]]
    profile: str

    def parse(self, body: dict[str, Any], req: RequestInfo) -> list[Action]:
        accounts = [a.account_value(v, w, numeric=True) for w, v in values_at(body, self.account)]
        accounts_ = list(dict.fromkeys(x for x in accounts if x))
        if not accounts_:
            accounts_ = [a.require_account(None, self.account, req.account_header)]
        direction = self.direction
        if self.direction_field:
            raw = values_at(body, self.direction_field)
            if not raw:
                raise BodyError(
                    codes.BAD_REQUEST, f"{self.direction_field} is missing", where=self.direction_field
                )
            where, value = raw[0]
            key = json.dumps(value) if not isinstance(value, str) else value
            if key not in self.direction_map:
                raise BodyError(
                    codes.BAD_REQUEST,
                    f"{where} must be one of {', '.join(sorted(self.direction_map))}, got {value!r}",
                    where=where,
                )
            direction = self.direction_map[key]
        texts: list[TextField] = []
        for spec in self.texts:
            for where, value in values_at(body, spec):
                if not isinstance(value, str):
                    raise a.wrong_type(where, "a string", value)
                if value:
                    texts.append(TextField(where, value))
        attachments: list[Attachment] = []
        for spec in self.links:
            for where, value in values_at(body, spec):
                if not isinstance(value, str):
                    raise a.wrong_type(where, "a string", value)
                attachments.append(Attachment(kind="link", where=where, url=value))
        for spec in self.miniprograms:
            for where, value in values_at(body, spec):
                if not isinstance(value, str):
                    raise a.wrong_type(where, "a string", value)
                attachments.append(Attachment(kind="miniprogram", where=where, appid=value))
        for kind, specs in self.attachments.items():
            for spec in specs:
                for where, _value in values_at(body, spec):
                    attachments.append(Attachment(kind=kind, where=where))
        recipients = 1
        if self.recipients:
            found = values_at(body, self.recipients)
            if found:
                where, value = found[0]
                if isinstance(value, list):
                    recipients = len(value)
                elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                    recipients = value
                else:
                    raise a.wrong_type(where, "an array or a non-negative integer", value)
            else:
                recipients = 0
        return [
            Action(
                kind=self.kind,
                account=acct,
                direction=direction if self.kind == "add_friend" else None,
                texts=tuple(texts),
                attachments=tuple(attachments),
                recipients=recipients,
                request_id=req.request_id,
                profile=self.profile,
            )
            for acct in accounts_
        ]


def _str_tuple(data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{where}.{key} must be a list of field paths")
    for spec in value:
        _segments(spec)
    return tuple(value)


_ROUTE_KEYS = {
    "method", "path", "kind", "account", "direction", "direction_field", "direction_map", "texts",
    "recipients", "links", "miniprograms", "images", "videos", "files", "cards",
}  # fmt: skip
_PROFILE_KEYS = {"name", "format", "upstream", "answer", "routes", "pass_through"}


def load_profile_file(path: Path) -> Profile:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(path, f"cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(path, str(exc)) from None
    try:
        return _build_profile(data, path)
    except ValueError as exc:
        if isinstance(exc, ProfileError):
            raise
        raise ProfileError(path, str(exc)) from None


def _build_profile(data: dict[str, Any], path: Path) -> Profile:
    unknown = set(data) - _PROFILE_KEYS
    if unknown:
        raise ValueError(f"unknown key {sorted(unknown)[0]!r}")
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name or name in ("wecom", "gewe"):
        raise ValueError("name must be a non-empty string other than 'wecom' / 'gewe'")
    fmt = data.get("format", "json")
    answer_spec = data.get("answer", {})
    if not isinstance(answer_spec, dict):
        raise ValueError("answer must be a table")
    if fmt == "wecom":
        answer = WECOM_FORMAT
    elif fmt == "gewe":
        answer = GEWE_FORMAT
    elif fmt == "json":
        code_field = answer_spec.get("code_field", "code")
        message_field = answer_spec.get("message_field", "message")
        ok_values = answer_spec.get("ok_values", [0])
        status = answer_spec.get("status", 200)
        if not isinstance(code_field, str) or not isinstance(message_field, str):
            raise ValueError("answer.code_field and answer.message_field must be strings")
        if not isinstance(ok_values, list) or not ok_values:
            raise ValueError("answer.ok_values must be a non-empty list")
        if not isinstance(status, int) or not 200 <= status <= 599:
            raise ValueError("answer.status must be an HTTP status")
        answer = AnswerFormat(name, code_field, message_field, tuple(ok_values), status=status)
    else:
        raise ValueError(f"format must be wecom, gewe or json, got {fmt!r}")
    upstream = data.get("upstream")
    if upstream is not None and (
        not isinstance(upstream, str) or not upstream.startswith(("http://", "https://"))
    ):
        raise ValueError("upstream must be an http(s) URL")
    rules: list[PathRule] = []
    routes = data.get("routes", [])
    if not isinstance(routes, list) or not routes:
        raise ValueError("at least one [[routes]] table is required")
    for i, spec in enumerate(routes):
        where = f"routes[{i}]"
        if not isinstance(spec, dict):
            raise ValueError(f"{where} must be a table")
        unknown = set(spec) - _ROUTE_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        pattern = spec.get("path")
        if not isinstance(pattern, str) or not pattern.startswith("/"):
            raise ValueError(f"{where}.path must be a path pattern starting with /")
        method = spec.get("method", "POST")
        if not isinstance(method, str) or method.upper() in READ_METHODS:
            raise ValueError(f"{where}.method must be a write method (POST, PUT, PATCH, DELETE)")
        kind = spec.get("kind")
        if kind not in ACTION_KINDS:
            raise ValueError(f"{where}.kind must be one of {', '.join(ACTION_KINDS)}, got {kind!r}")
        account = spec.get("account")
        if not isinstance(account, str) or not account:
            raise ValueError(f"{where}.account must be the field path of the sending account")
        _segments(account)
        direction = spec.get("direction")
        direction_field = spec.get("direction_field")
        direction_map = spec.get("direction_map", {})
        if kind == "add_friend" and direction is None and direction_field is None:
            raise ValueError(f"{where}: add_friend needs direction or direction_field + direction_map")
        if direction is not None and direction not in ("active", "passive"):
            raise ValueError(f"{where}.direction must be active or passive")
        if direction_field is not None:
            if not isinstance(direction_field, str):
                raise ValueError(f"{where}.direction_field must be a field path")
            _segments(direction_field)
            if not isinstance(direction_map, dict) or not direction_map:
                raise ValueError(f"{where}.direction_map must map field values to active / passive")
            if any(v not in ("active", "passive") for v in direction_map.values()):
                raise ValueError(f"{where}.direction_map values must be active or passive")
        recipients = spec.get("recipients")
        if recipients is not None:
            if not isinstance(recipients, str):
                raise ValueError(f"{where}.recipients must be a field path")
            _segments(recipients)
        route = CustomRoute(
            kind=kind,
            account=account,
            direction=direction,
            direction_field=direction_field,
            direction_map=dict(direction_map),
            texts=_str_tuple(spec, "texts", where),
            recipients=recipients,
            links=_str_tuple(spec, "links", where),
            miniprograms=_str_tuple(spec, "miniprograms", where),
            attachments={
                kind_: _str_tuple(spec, key, where)
                for key, kind_ in (
                    ("images", "image"),
                    ("videos", "video"),
                    ("files", "file"),
                    ("cards", "card"),
                )
                if key in spec
            },
            profile=name,
        )
        rules.append(
            PathRule(frozenset({method.upper()}), pattern, "glob", Route(f"{name}:{pattern}", route.parse))
        )
    for pattern in _str_tuple_paths(data.get("pass_through", [])):
        rules.append(PathRule(frozenset(), pattern, "glob", Route(f"{name}:pass:{pattern}", None)))
    patterns = [r.key for r in rules]
    return Profile(
        name=name,
        answer=answer,
        rules=tuple(rules),
        owns=lambda p: any(fnmatch.fnmatchcase(p, pat) for pat in patterns),
        upstream=upstream,
        source=str(path),
    )


def _str_tuple_paths(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.startswith("/") for v in value):
        raise ValueError("pass_through must be a list of path patterns starting with /")
    return tuple(value)


BUILT_IN: tuple[Profile, ...] = (_wecom_profile(), _gewe_profile())


def load_profiles(directories: Sequence[Path]) -> ProfileSet:
    """Custom profiles from `profiles/*.toml` of each directory (the first directory that has a profile of a
    name wins), then the built-in ones."""
    custom: dict[str, Profile] = {}
    for directory in directories:
        folder = directory / "profiles"
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            profile = load_profile_file(path)
            custom.setdefault(profile.name, profile)
    return ProfileSet(tuple(custom.values()) + BUILT_IN)
