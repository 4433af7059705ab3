"""Custom profiles: TOML files in a rules directory's `profiles/` (docs/profiles.md, "Custom profiles"),
each route naming by field paths (`a.b[].c`) where the account, direction, texts, attachments and
recipients sit. `load_profiles` puts them before the built-in WeCom and GeWe profiles."""

from __future__ import annotations

import fnmatch
import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guard.core import codes
from guard.core import fields as a
from guard.core.body import BodyError
from guard.core.profiles import gewe, wecom
from guard.core.profiles.model import (
    GEWE_FORMAT,
    READ_METHODS,
    WECOM_FORMAT,
    AnswerFormat,
    PathRule,
    Profile,
    ProfileSet,
    RequestInfo,
    Route,
)
from guard.core.types import ACTION_KINDS, Action, ActionKind, Attachment, Direction, TextField

BUILT_IN: tuple[Profile, ...] = (wecom.PROFILE, gewe.PROFILE)


class ProfileError(ValueError):
    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


# ---- field paths ----


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


def _strings_at(body: Any, spec: str) -> list[tuple[str, str]]:
    """Like `values_at`, every value a string."""
    out: list[tuple[str, str]] = []
    for where, value in values_at(body, spec):
        if not isinstance(value, str):
            raise a.wrong_type(where, "a string", value)
        out.append((where, value))
    return out


# ---- a route of a custom profile ----


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
        accounts = self._accounts(body, req)
        direction = self._direction(body)
        texts = [
            TextField(where, value)
            for spec in self.texts
            for where, value in _strings_at(body, spec)
            if value
        ]
        attachments = self._attachments(body)
        recipients = self._recipients(body)
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
            for acct in accounts
        ]

    def _accounts(self, body: dict[str, Any], req: RequestInfo) -> list[str]:
        accounts = [a.account_value(v, w, numeric=True) for w, v in values_at(body, self.account)]
        found = list(dict.fromkeys(x for x in accounts if x))
        return found or [a.require_account(None, self.account, req.account_header)]

    def _direction(self, body: dict[str, Any]) -> Direction | None:
        if not self.direction_field:
            return self.direction
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
        return self.direction_map[key]

    def _attachments(self, body: dict[str, Any]) -> list[Attachment]:
        attachments = [
            Attachment(kind="link", where=where, url=value)
            for spec in self.links
            for where, value in _strings_at(body, spec)
        ]
        attachments += [
            Attachment(kind="miniprogram", where=where, appid=value)
            for spec in self.miniprograms
            for where, value in _strings_at(body, spec)
        ]
        attachments += [
            Attachment(kind=kind, where=where)
            for kind, specs in self.attachments.items()
            for spec in specs
            for where, _value in values_at(body, spec)
        ]
        return attachments

    def _recipients(self, body: dict[str, Any]) -> int:
        """The length of the recipients array (or the count given), 0 when absent; 1 when not configured."""
        if not self.recipients:
            return 1
        found = values_at(body, self.recipients)
        if not found:
            return 0
        where, value = found[0]
        if isinstance(value, list):
            return len(value)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        raise a.wrong_type(where, "an array or a non-negative integer", value)


# ---- reading a profile file ----

_ROUTE_KEYS = {
    "method", "path", "kind", "account", "direction", "direction_field", "direction_map", "texts",
    "recipients", "links", "miniprograms", "images", "videos", "files", "cards",
}  # fmt: skip
_PROFILE_KEYS = {"name", "format", "upstream", "answer", "routes", "pass_through"}
_FORMATS = {"wecom": WECOM_FORMAT, "gewe": GEWE_FORMAT}
# Route keys listing attachment field paths → the attachment kind.
_ATTACHMENT_KEYS = (("images", "image"), ("videos", "video"), ("files", "file"), ("cards", "card"))


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
    answer = _answer_format(data, name)
    upstream = data.get("upstream")
    if upstream is not None and (
        not isinstance(upstream, str) or not upstream.startswith(("http://", "https://"))
    ):
        raise ValueError("upstream must be an http(s) URL")
    routes = data.get("routes", [])
    if not isinstance(routes, list) or not routes:
        raise ValueError("at least one [[routes]] table is required")
    rules = [_route_rule(spec, f"routes[{i}]", name) for i, spec in enumerate(routes)]
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


def _answer_format(data: dict[str, Any], name: str) -> AnswerFormat:
    fmt = data.get("format", "json")
    spec = data.get("answer", {})
    if not isinstance(spec, dict):
        raise ValueError("answer must be a table")
    if isinstance(fmt, str) and fmt in _FORMATS:
        return _FORMATS[fmt]
    if fmt != "json":
        raise ValueError(f"format must be wecom, gewe or json, got {fmt!r}")
    code_field = spec.get("code_field", "code")
    message_field = spec.get("message_field", "message")
    ok_values = spec.get("ok_values", [0])
    status = spec.get("status", 200)
    if not isinstance(code_field, str) or not isinstance(message_field, str):
        raise ValueError("answer.code_field and answer.message_field must be strings")
    if not isinstance(ok_values, list) or not ok_values:
        raise ValueError("answer.ok_values must be a non-empty list")
    if not isinstance(status, int) or not 200 <= status <= 599:
        raise ValueError("answer.status must be an HTTP status")
    return AnswerFormat(name, code_field, message_field, tuple(ok_values), status=status)


def _route_rule(spec: Any, where: str, profile: str) -> PathRule:
    """The `[[routes]]` table `spec` as a guarded path rule of `profile`."""
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
    direction, direction_field, direction_map = _direction_spec(spec, where, kind)
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
        direction_map=direction_map,
        texts=_str_tuple(spec, "texts", where),
        recipients=recipients,
        links=_str_tuple(spec, "links", where),
        miniprograms=_str_tuple(spec, "miniprograms", where),
        attachments={kind_: _str_tuple(spec, key, where) for key, kind_ in _ATTACHMENT_KEYS if key in spec},
        profile=profile,
    )
    return PathRule(frozenset({method.upper()}), pattern, "glob", Route(f"{profile}:{pattern}", route.parse))


def _direction_spec(spec: dict[str, Any], where: str, kind: str) -> tuple[Any, Any, dict[str, Direction]]:
    """`direction`, or `direction_field` + `direction_map`, checked."""
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
    return direction, direction_field, dict(direction_map)


def _str_tuple(data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{where}.{key} must be a list of field paths")
    for spec in value:
        _segments(spec)
    return tuple(value)


def _str_tuple_paths(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.startswith("/") for v in value):
        raise ValueError("pass_through must be a list of path patterns starting with /")
    return tuple(value)


# ---- all profiles ----


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
