"""The routing model shared by every profile: a `Profile` answers `match(method, path)` with a `Route`; a
guarded route's parser turns the JSON body into `Action`s, a pass-through route is forwarded unchecked; an
`AnswerFormat` writes refusals in the platform's own format. Also the field shapes platform catalogues are
written in (`Shape`, `read_shape`)."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from guard.core import fields as a
from guard.core.codes import GuardCode
from guard.core.types import Action, Attachment, TextField

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


# Not frozen: one is made for every guarded request, and a frozen dataclass's __init__ (a call of
# object.__setattr__ per field) took 0.85 µs of it, a plain one 0.35 (timeit). Parsers only read it.
@dataclass(slots=True)
class RequestInfo:
    """What a parser may look at besides the body (read only: parsers never change it)."""

    method: str
    path: str
    query: Mapping[str, str]
    account_header: str | None = None
    request_id: str | None = None


Parser = Callable[[dict[str, Any], RequestInfo], list[Action]]


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint of a catalogue: a guarded write (`parse` reads its Actions), a read, or a write without
    customer-facing content (`plain_write`: forwarded unchecked, with an audit line)."""

    name: str
    parse: Parser | None  # None: pass-through, forwarded unchecked
    plain_write: bool = False

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
    # HTTP status of the guard's answers (None: 200); see `status_for`.
    status: int | None = None
    # Result codes that mean "retry with a fresh access token": the action did not happen, and the
    # client's retry is the real attempt.
    retry_codes: tuple[int, ...] = ()

    def refusal(self, code: GuardCode, message: str, guard: Mapping[str, object]) -> bytes:
        body: dict[str, object] = {self.code_field: code.code, self.message_field: message}
        body.update(self.extra)
        body["guard"] = dict(guard)
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        # A lone surrogate (from a \\ud800 escape in the request) cannot be UTF-8: replace, never fail.
        return text.encode("utf-8", "replace")

    def status_for(self, code: GuardCode, http_error_status: bool) -> int:
        """The HTTP status of the guard's own answer on this platform's path: the platform's own (200, as
        WeCom and GeWe answer their errors, so SDKs read the code), unless the operator opted into HTTP
        error statuses, which the transport-level codes (401, 403, 413, 502 …) then keep."""
        if http_error_status and code.status != 200:
            return code.status
        return self.status if self.status is not None else 200

    def asks_retry(self, body: bytes) -> bool:
        """The upstream's answer says: retry with a fresh token."""
        if not self.retry_codes:
            return False
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return False
        value = data.get(self.code_field) if isinstance(data, dict) else None
        return type(value) is int and value in self.retry_codes

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


# 40001 invalid credential, 40014 invalid access_token, 42001 access_token expired: every WeCom SDK
# fetches a new token and sends the same request again.
WECOM_FORMAT = AnswerFormat("wecom", "errcode", "errmsg", (0,), retry_codes=(40001, 40014, 42001))
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
    if (
        path.startswith("/")
        and not path.endswith("/")
        and "//" not in path
        and "/." not in path
        and ";" not in path
    ):
        # Nothing to resolve (no empty, `.` or `..` segment, no parameters): 0.3 µs, the split below 0.7.
        return path.lower()
    return resolve_path(path)


def resolve_path(path: str) -> str:
    """`normalize_path` the long way: every segment looked at."""
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
    # The rules that can match a path, by position in `rules` (see `candidates`): a catalogue has hundreds
    # of rules, and trying each in turn cost up to 20 µs a request (a GeWe path tried all of WeCom's first).
    _exact: Mapping[str, tuple[int, ...]] = field(init=False, repr=False, compare=False)
    _suffix: Mapping[str, tuple[int, ...]] = field(init=False, repr=False, compare=False)
    _globs: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        exact: dict[str, list[int]] = {}
        suffix: dict[str, list[int]] = {}
        globs: list[int] = []
        for i, rule in enumerate(self.rules):
            if rule.kind == "exact":
                exact.setdefault(rule.key, []).append(i)
            elif rule.kind == "suffix":
                suffix.setdefault(rule.key, []).append(i)
            else:
                globs.append(i)
        object.__setattr__(self, "_exact", {k: tuple(v) for k, v in exact.items()})
        object.__setattr__(self, "_suffix", {k: tuple(v) for k, v in suffix.items()})
        object.__setattr__(self, "_globs", tuple(globs))

    def candidates(self, path: str) -> list[int]:
        """The positions of the rules that may match `path` (normalized), in order: the exact rules whose key
        is the path, the suffix rules whose key is the path or one of its tails after a `/`, every glob."""
        found = list(self._exact.get(path, ()))
        if self._suffix:
            found += self._suffix.get(path, ())
            start = path.find("/")
            while start != -1:
                found += self._suffix.get(path[start + 1 :], ())
                start = path.find("/", start + 1)
        if self._globs:
            found += self._globs
            found.sort()
        elif self._suffix:
            found.sort()
        return found

    def match(self, method: str, path: str) -> Route | None:
        """The route of the first rule, in the catalogue's order, that matches (`path` normalized)."""
        rules = self.rules
        # Only exact rules (WeCom's catalogue): the candidates are the path's exact rules, taken without
        # `candidates`' call and list (ProfileSet.match of a WeCom path 0.86 -> 0.6 µs, timeit).
        found = self._exact.get(path, ()) if not self._suffix and not self._globs else self.candidates(path)
        for i in found:
            rule = rules[i]
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

    def owning(self, path: str) -> Profile | None:
        """The profile whose paths `path` lies under (None: no platform's)."""
        path = normalize_path(path)
        return next((profile for profile in self.profiles if profile.owns(path)), None)

    def owner(self, path: str) -> Profile:
        """The profile whose format answers a request on `path` that no route matched."""
        return self.owning(path) or self.get("wecom") or self.profiles[0]

    def get(self, name: str) -> Profile | None:
        return next((p for p in self.profiles if p.name == name), None)


# ---- field shapes: what each field of an object carries ----

# `text`: customer-facing text (scanned); `to`: the one recipient; `url` / `appid` / `page`: where the
# attachment points; `id`: any other string (media ids, thumbnails), type-checked only.
Role = Literal["text", "to", "url", "appid", "page", "id"]
# An object's fields in reading order (the first wrong field is the one a refusal names).
Shape = Mapping[str, Role]


def read_shape(
    obj: Mapping[str, Any], shape: Shape, where: str = ""
) -> tuple[list[TextField], dict[Role, str]]:
    """The texts of `obj` and the other fields of `shape` that are present, by role; every field is
    type-checked in order."""
    texts: list[TextField] = []
    found: dict[Role, str] = {}
    for key, role in shape.items():
        if obj.get(key) is None:
            continue  # absent, as most fields of a shape are: no reader called for it (~0.2 µs each)
        if role == "text":
            texts += a.text(obj, key, where)
        else:
            value = a.opt_str(obj, key, where)
            if value is not None:
                found[role] = value
    return texts, found


def attachment(kind: str, where: str, found: Mapping[Role, str]) -> Attachment:
    """The attachment of `kind` at `where`, pointing where the `url` / `appid` / `page` fields say."""
    # Attachment's fields in order (kind, where, url, appid, page): positional, ~0.2 µs less than by keyword.
    return Attachment(kind, where, found.get("url"), found.get("appid"), found.get("page"))
