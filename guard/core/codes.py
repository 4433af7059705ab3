"""Guard codes: every reason the guard refuses a request, with its HTTP status and a bilingual explanation
that tells a staff member what to do. A refusal's `errcode` (WeCom) / `ret` (GeWe) is one of these numbers;
they sit in a range (4_900_xx) that neither platform uses, so client code can tell a guard refusal from an
upstream one. README "Guard codes" documents each.
"""

from __future__ import annotations

from typing import NamedTuple


class GuardCode(NamedTuple):
    code: int
    name: str
    # The HTTP status of the refusal: 200 for policy refusals (as WeCom answers its own errors, so SDKs
    # read the body), 4xx/5xx for transport-level problems.
    status: int
    zh: str
    en: str


CONTENT_BLOCKED = GuardCode(
    490001, "content_blocked", 200,
    "内容包含违规词，已拦截，未发送。请删除或改写标出的词语后重新发送。",
    "The message contains a prohibited term and was not sent. Remove or rephrase the marked term and resend.",
)  # fmt: skip
ATTACHMENT_REFUSED = GuardCode(
    490002, "attachment_refused", 200,
    "附件不符合发送规范（链接域名、小程序或文件类型未被允许），已拦截。请更换附件或联系风控。",
    "An attachment is not allowed (link domain, mini program or file type). Replace it or ask risk control.",
)  # fmt: skip
QUOTA_EXCEEDED = GuardCode(
    490003, "quota_exceeded", 200,
    "该账号此操作已达上限，已拦截。请等待额度重置，或改用备用账号。",
    "This account reached its limit for this action. Wait for the reset or use a backup account.",
)  # fmt: skip
ACCOUNT_FROZEN = GuardCode(
    490004, "account_frozen", 200,
    "该账号已被风控冻结，暂停一切对外操作。请联系风控负责人。",
    "This account is frozen by risk control; all outbound actions are paused. Contact the risk manager.",
)  # fmt: skip
BAD_REQUEST = GuardCode(
    490005, "bad_request", 400,
    "请求无法解析（JSON 格式、编码或字段类型有误），为安全起见未转发。请检查请求后重试。",
    "The request could not be parsed (JSON syntax, encoding or a field type), so it was not forwarded. "
    "Fix the request and retry.",
)  # fmt: skip
BODY_TOO_LARGE = GuardCode(
    490006, "body_too_large", 413,
    "请求体超过大小上限，未转发。请缩短内容或分批发送。",
    "The request body is over the size limit and was not forwarded. Shorten it or send in parts.",
)  # fmt: skip
UNKNOWN_ROUTE = GuardCode(
    490007, "unknown_route", 403,
    "该接口未在风控白名单中，写操作已拦截。如需使用请联系管理员添加路由规则。",
    "This endpoint is not known to the guard, so the write was refused. Ask an admin to add a route profile.",
)  # fmt: skip
UNAUTHORIZED = GuardCode(
    490008, "unauthorized", 401,
    "缺少或无效的风控密钥，请求未转发。请在请求中携带分配给你的密钥。",
    "Missing or invalid guard key; nothing was forwarded. Send the key you were given.",
)  # fmt: skip
ACCOUNT_NOT_PERMITTED = GuardCode(
    490009, "account_not_permitted", 403,
    "你的密钥无权操作该账号，请求未转发。请使用你负责的账号，或联系管理员授权。",
    "Your key may not act for this account; nothing was forwarded. "
    "Use an account you manage or ask an admin.",
)  # fmt: skip
COUNTERS_UNAVAILABLE = GuardCode(
    490010, "counters_unavailable", 503,
    "风控计数服务暂不可用，为避免超限已暂停该操作。请稍后重试。",
    "The guard's counters are unavailable, so this action is paused to avoid going over limits. Retry later.",
)  # fmt: skip
UPSTREAM_TIMEOUT = GuardCode(
    490011, "upstream_timeout", 504,
    "平台接口响应超时，操作可能已执行，请勿立即重复发送，先确认结果。",
    "The platform did not answer in time; the action may have happened. Check before resending.",
)  # fmt: skip
UPSTREAM_UNREACHABLE = GuardCode(
    490012, "upstream_unreachable", 502,
    "无法连接平台接口，操作未执行。请稍后重试。",
    "The platform API could not be reached; nothing happened. Retry later.",
)  # fmt: skip
UNSUPPORTED_BODY = GuardCode(
    490013, "unsupported_body", 415,
    "请求体类型或压缩方式不受支持（需 JSON，gzip/deflate 可用），未转发。",
    "The body type or encoding is not supported (JSON required; gzip/deflate accepted); nothing forwarded.",
)  # fmt: skip
MISSING_ACCOUNT = GuardCode(
    490014, "missing_account", 400,
    "请求中没有发送账号（如 sender / appId），无法核对额度，未转发。请补充账号字段。",
    "The request names no sending account (e.g. sender / appId), so it cannot be checked; nothing forwarded.",
)  # fmt: skip
FORBIDDEN_ROLE = GuardCode(
    490015, "forbidden_role", 403,
    "你的密钥角色无权执行该操作。",
    "Your key's role may not do this.",
)  # fmt: skip
RECIPIENTS_UNKNOWN = GuardCode(
    490016, "recipients_unknown", 200,
    "群发未列出接收对象（发给全部客户、按标签筛选或全部客户群），无法核对每日群发人数上限，已拦截。"
    "请在 external_userid（或 chat_id_list）中列出本次接收对象后重新发送。",
    "The broadcast lists no recipients (all customers, a tag filter or all groups), so the daily recipient "
    "limit cannot be checked; it was not sent. List them in external_userid (or chat_id_list) and resend.",
)  # fmt: skip
NOT_FOUND = GuardCode(
    490017, "not_found", 404,
    "所请求的对象不存在。",
    "The requested item does not exist.",
)  # fmt: skip
UPSTREAM_NOT_CONFIGURED = GuardCode(
    490018, "upstream_not_configured", 502,
    "该平台的接口地址未配置，请求未转发。请联系管理员配置 upstreams。",
    "No upstream is configured for this platform; nothing was forwarded. Ask an admin to set upstreams.",
)  # fmt: skip

ALL_CODES: tuple[GuardCode, ...] = (
    CONTENT_BLOCKED,
    ATTACHMENT_REFUSED,
    QUOTA_EXCEEDED,
    ACCOUNT_FROZEN,
    BAD_REQUEST,
    BODY_TOO_LARGE,
    UNKNOWN_ROUTE,
    UNAUTHORIZED,
    ACCOUNT_NOT_PERMITTED,
    COUNTERS_UNAVAILABLE,
    UPSTREAM_TIMEOUT,
    UPSTREAM_UNREACHABLE,
    UNSUPPORTED_BODY,
    MISSING_ACCOUNT,
    FORBIDDEN_ROLE,
    RECIPIENTS_UNKNOWN,
    NOT_FOUND,
    UPSTREAM_NOT_CONFIGURED,
)
BY_CODE: dict[int, GuardCode] = {c.code: c for c in ALL_CODES}
