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
from dataclasses import dataclass, field
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
    # The lists above made ready to match, and the kinds as a dict, once per policy instead of once per
    # attachment (found through an lru_cache, which hashed the whole tuple of globs each time, the shipped
    # deny list cost ~1.2 µs a link; prepared ~0.4 µs; `dict(kinds)` ~0.3 µs a call).
    _link_allow: _Globs = field(init=False, repr=False, compare=False)
    _link_deny: _Globs = field(init=False, repr=False, compare=False)
    _miniprogram_allow: _Globs = field(init=False, repr=False, compare=False)
    _miniprogram_deny: _Globs = field(init=False, repr=False, compare=False)
    _kinds: dict[str, bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        prepared = (
            ("_link_allow", _compiled(self.link_allow)),
            ("_link_deny", _compiled(self.link_deny)),
            ("_miniprogram_allow", _compiled(self.miniprogram_allow)),
            ("_miniprogram_deny", _compiled(self.miniprogram_deny)),
            ("_kinds", dict(self.kinds)),
        )
        for name, value in prepared:
            object.__setattr__(self, name, value)

    def kind_allowed(self, kind: str) -> bool:
        # A kind the policy does not name (a platform added one) is refused: it cannot be judged.
        return self._kinds.get(kind, False)

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
            if self._link_deny.match(host) or not self._link_allow.match(host):
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
            if self._miniprogram_deny.match(appid) or not self._miniprogram_allow.match(appid):
                return AttachmentRefusal(
                    "attachment:miniprogram_appid",
                    where,
                    f"小程序 {appid or '(无 appid)'} 不在允许名单内",
                    f"the mini program {appid or '(no appid)'} is not allowed",
                )
        return None


def _host(url: str) -> tuple[str | None, str]:
    """The link's host (lowercase, no trailing dot; None when it has none) and its scheme (lowercase).

    A URL of the plain shape `scheme://host[:port]` followed by `/`, `?`, `#` or its end, the host only
    letters, digits, `.`, `_` and `-`, is read by one regex; anything else goes through `urlsplit`
    (`_host_parsed`), whose answer on the plain shape is the same (tests/test_speed_decision_attachments.py
    compares the two on many URLs). Each link of a campaign's first message is a URL not seen before:
    `urlsplit` (its own cache misses) took ~3.3 µs of the ~6.5 µs of `AttachmentPolicy.check` for one
    link; this way ~0.5 µs (one core of the development machine, a new URL each call)."""
    text = _with_scheme(url)
    plain = _PLAIN_URL(text)
    if plain is None:
        return _host_parsed(text)
    return plain.group(2).rstrip(".").lower(), plain.group(1).lower()


# `scheme://host[:port]` then the end of the URL or a character that ends urlsplit's netloc. ASCII classes
# written out (no IGNORECASE: it would let some non-ASCII letters match); `\Z`, not `$` (which allows a
# trailing newline). A tab, CR or LF anywhere in this part — urlsplit removes them before it splits —
# or a user, a bracketed IPv6 address, a backslash, a non-ASCII character ends the match early, and the
# URL takes the long way.
_PLAIN_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://([A-Za-z0-9._\-]+)(?::[0-9]*)?(?=[/?#]|\Z)").match


def _with_scheme(url: str) -> str:
    """The link without surrounding blanks, `http://` put before one without a scheme."""
    text = url.strip()
    return text if "://" in text else "http://" + text.lstrip("/")


def _host_parsed(text: str) -> tuple[str | None, str]:
    """`_host` the long way: `text` (stripped, with a scheme) through urllib's `urlsplit`."""
    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError:
        return None, ""
    if not host:
        return None, parts.scheme
    return host.rstrip(".").lower(), parts.scheme.lower()


class _Globs:
    """A list of host (or appid) globs made ready to match: the plain names (no `*`, `?` or `[`) in a set,
    each also covering its subdomains; the other globs in one regex.

    Answers what `_regex` of the whole list answers, with set lookups for the plain names: the regex of a
    plain name matches the name itself and whatever ends in a dot and the name, its prefix without a
    newline (a value with one takes the regex). The shipped deny list (20 plain names) cost ~1.6 µs a host
    as one regex, ~0.4 µs this way (tests/test_speed_decision_attachments.py compares the two)."""

    __slots__ = ("anything", "globs", "names", "patterns")

    def __init__(self, patterns: tuple[str, ...]) -> None:
        self.patterns = patterns
        self.names = frozenset(p.lower() for p in patterns if not _is_glob(p))
        globs = tuple(p for p in patterns if _is_glob(p))
        self.anything = "*" in globs  # fnmatch's "*" matches every value (the usual allow list)
        self.globs = _regex(globs) if globs and not self.anything else None

    def match(self, value: str) -> bool:
        value = value.lower()
        if "\n" in value:
            return _regex(self.patterns).match(value) is not None
        if self.anything:
            return True
        names = self.names
        if value in names:
            return True
        if names:
            dot = value.find(".")
            while dot >= 0:
                if value[dot + 1 :] in names:
                    return True
                dot = value.find(".", dot + 1)
        return self.globs is not None and self.globs.match(value) is not None


def _is_glob(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern or "[" in pattern


@functools.lru_cache(maxsize=256)
def _compiled(patterns: tuple[str, ...]) -> _Globs:
    return _Globs(patterns)


@functools.lru_cache(maxsize=256)
def _regex(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """One regex for a list of globs; a plain name ("example.com") also covers its subdomains."""
    parts = []
    for pattern in patterns:
        glob = fnmatch.translate(pattern.lower())
        if not _is_glob(pattern):
            glob = r"(?:.*\.)?" + glob
        parts.append(f"(?:{glob})")
    return re.compile("|".join(parts) if parts else r"(?!)")


def _matches(value: str, patterns: tuple[str, ...]) -> bool:
    """Does `value` match one of `patterns`, the long way (one regex): what `_Globs.match` answers."""
    return _regex(patterns).match(value.lower()) is not None


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
