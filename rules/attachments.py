"""Attachment policy: which outbound attachments may leave — link domains, mini-program appids, and
whether images, videos, files, voice and name cards may go out at all.

Pure Python (no aiohttp, no redis). File format (`attachments.toml` in the rules directory;
docs/profiles.md, "Attachment policy"):

    [link]
    allow = ["*"]                 # host globs a link may point to ("*" = any host)
    deny = ["*.t.cn", "t.cn"]     # host globs refused even when allowed (checked first)
    require_https = false
    [miniprogram]
    allow = ["*"]                 # appids (globs) that may be sent
    deny = []
    [kinds]
    image = true                  # whether an attachment of this kind may go out at all
    video = true
    file = true
    voice = true
    card = false                  # 名片: pushes customers to another (personal) account
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

from rules.errors import RuleError
from rules.tomlfile import parse_toml

# Raises AttachmentPolicyError pointing at the line of a key: (key path, reason).
_Fail = Callable[[tuple[str, ...], str], NoReturn]

KINDS = ("link", "miniprogram", "image", "video", "file", "voice", "card")


class AttachmentPolicyError(ValueError):
    """The attachment policy file is wrong; `str()` is `file:line: reason` (line 0: the whole file)."""

    def __init__(self, path: str, reason: str, line: int = 0) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path = path
        self.reason = reason
        self.line = line

    def as_rule_error(self) -> RuleError:
        return RuleError.at(self.path, self.line, self.reason)


@dataclass(frozen=True, slots=True)
class AttachmentRefusal:
    """Why one attachment may not go out: `rule` is e.g. `attachment:link_domain`."""

    rule: str
    where: str
    reason_zh: str
    reason_en: str


@dataclass(frozen=True, slots=True)
class AttachmentPolicy:
    link_allow: tuple[str, ...] = ("*",)
    link_deny: tuple[str, ...] = ()
    require_https: bool = False
    miniprogram_allow: tuple[str, ...] = ("*",)
    miniprogram_deny: tuple[str, ...] = ()
    kinds: tuple[tuple[str, bool], ...] = tuple((k, True) for k in KINDS)

    def kind_allowed(self, kind: str) -> bool:
        # A kind the policy does not name (a platform added one) is refused: it cannot be judged.
        return dict(self.kinds).get(kind, False)

    def check(
        self, kind: str, where: str, url: str | None = None, appid: str | None = None
    ) -> AttachmentRefusal | None:
        """None when this attachment may go out."""
        if kind not in ("link", "miniprogram") and not self.kind_allowed(kind):
            return AttachmentRefusal(
                f"attachment:{kind}",
                where,
                f"不允许发送此类附件（{kind}）",
                f"attachments of kind {kind!r} may not be sent",
            )
        if kind == "link":
            if not self.kind_allowed("link"):
                return AttachmentRefusal("attachment:link", where, "不允许发送链接", "links may not be sent")
            if url is None or not url.strip():
                return None
            host, scheme = _host(url)
            if host is None:
                return AttachmentRefusal(
                    "attachment:link_url",
                    where,
                    f"链接地址无法识别：{url[:80]}",
                    f"the link URL cannot be parsed: {url[:80]}",
                )
            if self.require_https and scheme != "https":
                return AttachmentRefusal(
                    "attachment:link_https", where, "链接必须使用 https", "links must use https"
                )
            if _matches(host, self.link_deny) or not _matches(host, self.link_allow):
                return AttachmentRefusal(
                    "attachment:link_domain",
                    where,
                    f"链接域名 {host} 不在允许名单内",
                    f"the link domain {host} is not allowed",
                )
            return None
        if kind == "miniprogram":
            if not self.kind_allowed("miniprogram"):
                return AttachmentRefusal(
                    "attachment:miniprogram", where, "不允许发送小程序", "mini programs may not be sent"
                )
            if appid is None:
                appid = ""
            if _matches(appid, self.miniprogram_deny) or not _matches(appid, self.miniprogram_allow):
                return AttachmentRefusal(
                    "attachment:miniprogram_appid",
                    where,
                    f"小程序 {appid or '(无 appid)'} 不在允许名单内",
                    f"the mini program {appid or '(no appid)'} is not allowed",
                )
        return None


def _host(url: str) -> tuple[str | None, str]:
    text = url.strip()
    if "://" not in text:
        text = "http://" + text.lstrip("/")
    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError:
        return None, ""
    if not host:
        return None, parts.scheme
    return host.rstrip(".").lower(), parts.scheme.lower()


@functools.lru_cache(maxsize=256)
def _compiled(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """One regex for a list of globs; a plain name ("example.com") also covers its subdomains."""
    parts = []
    for pattern in patterns:
        glob = fnmatch.translate(pattern.lower())
        if "*" not in pattern and "?" not in pattern and "[" not in pattern:
            glob = r"(?:.*\.)?" + glob
        parts.append(f"(?:{glob})")
    return re.compile("|".join(parts) if parts else r"(?!)")


def _matches(value: str, patterns: tuple[str, ...]) -> bool:
    return _compiled(patterns).match(value.lower()) is not None


def _globs(data: dict[str, Any], key: str, where: str, fail: _Fail) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        fail((where, key), f"{where}.{key} must be a list of non-empty strings")
    return tuple(v.strip() for v in value)


def parse_attachment_policy(text: str, path: str = "attachments.toml") -> AttachmentPolicy:
    """Pure: the policy file's text → AttachmentPolicy (errors name the file, the line and the key)."""
    errors: list[RuleError] = []
    parsed = parse_toml(text, path, errors)
    if parsed is None:
        raise AttachmentPolicyError(path, errors[0].reason, errors[0].line)
    data, lines = parsed

    def fail(key: tuple[str, ...], reason: str) -> NoReturn:
        raise AttachmentPolicyError(path, reason, lines.line(key))

    unknown = set(data) - {"link", "miniprogram", "kinds"}
    if unknown:
        fail((sorted(unknown)[0],), f"unknown table [{sorted(unknown)[0]}]")
    link = data.get("link", {})
    mini = data.get("miniprogram", {})
    kinds = data.get("kinds", {})
    for name, table in (("link", link), ("miniprogram", mini), ("kinds", kinds)):
        if not isinstance(table, dict):
            fail((name,), f"[{name}] must be a table")
    for key in set(link) - {"allow", "deny", "require_https"}:
        fail(("link", key), f"unknown key link.{key}")
    for key in set(mini) - {"allow", "deny"}:
        fail(("miniprogram", key), f"unknown key miniprogram.{key}")
    allowed: dict[str, bool] = {k: True for k in KINDS}
    allowed["card"] = False
    for key, value in kinds.items():
        if key not in KINDS:
            fail(("kinds", key), f"unknown attachment kind kinds.{key} (known: {', '.join(KINDS)})")
        if not isinstance(value, bool):
            fail(("kinds", key), f"kinds.{key} must be true or false")
        allowed[key] = value
    require_https = link.get("require_https", False)
    if not isinstance(require_https, bool):
        fail(("link", "require_https"), "link.require_https must be true or false")
    return AttachmentPolicy(
        link_allow=_globs(link, "allow", "link", fail) if "allow" in link else ("*",),
        link_deny=_globs(link, "deny", "link", fail),
        require_https=require_https,
        miniprogram_allow=_globs(mini, "allow", "miniprogram", fail) if "allow" in mini else ("*",),
        miniprogram_deny=_globs(mini, "deny", "miniprogram", fail),
        kinds=tuple(allowed.items()),
    )


DEFAULT_DIR = Path(__file__).parent / "default"


def load_attachment_policy(directory: Path | None) -> AttachmentPolicy:
    """`attachments.toml` of `directory`, or the shipped one when the directory has none."""
    path = directory / "attachments.toml" if directory is not None else None
    if path is None or not path.is_file():
        path = DEFAULT_DIR / "attachments.toml"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AttachmentPolicyError(str(path), f"cannot read: {exc}") from None
    return parse_attachment_policy(text, str(path))
