"""Typed reading of a parsed JSON body into `Action`s: small helpers that either return the value of the
expected type or raise a `BodyError` that names the field (`attachments[2].link.title must be a string`).

Profiles (built-in and custom) are written with these, so every wrong type is refused the same way.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from typing import Any

from guard.core import codes
from guard.core.body import BodyError
from guard.core.types import Attachment, TextField


def _join(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def wrong_type(where: str, expected: str, value: object) -> BodyError:
    got = "null" if value is None else type(value).__name__
    got = {"dict": "object", "list": "array", "str": "string", "bool": "boolean", "int": "integer"}.get(
        got, got
    )
    return BodyError(codes.BAD_REQUEST, f"{where} must be {expected}, got {got}", where=where)


def root_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise wrong_type("the body", "a JSON object", body)
    return body


def opt_obj(obj: Mapping[str, Any], key: str, where: str = "") -> dict[str, Any] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise wrong_type(_join(where, key), "an object", value)
    return value


def opt_list(obj: Mapping[str, Any], key: str, where: str = "") -> list[Any] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise wrong_type(_join(where, key), "an array", value)
    return value


def opt_str(obj: Mapping[str, Any], key: str, where: str = "") -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise wrong_type(_join(where, key), "a string", value)
    return value


def opt_int(obj: Mapping[str, Any], key: str, where: str = "") -> int | None:
    """An integer; WeCom and GeWe clients also send numbers as digit strings, which are accepted."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        raise wrong_type(_join(where, key), "an integer", value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and value.strip().isascii():
        return int(value.strip())
    raise wrong_type(_join(where, key), "an integer", value)


def opt_bool(obj: Mapping[str, Any], key: str, where: str = "") -> bool | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise wrong_type(_join(where, key), "a boolean", value)


def str_list(obj: Mapping[str, Any], key: str, where: str = "") -> list[str]:
    items = opt_list(obj, key, where) or []
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise wrong_type(_join(_join(where, key), i), "a string", item)
    return items


def obj_list(obj: Mapping[str, Any], key: str, where: str = "") -> list[dict[str, Any]]:
    items = opt_list(obj, key, where) or []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise wrong_type(_join(_join(where, key), i), "an object", item)
    return items


def id_list(obj: Mapping[str, Any], key: str, where: str = "") -> list[str]:
    """A list of ids sent either as an array of strings or as one comma-separated string (GeWe's `wxids`
    takes both); empty items are dropped."""
    value = obj.get(key)
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return [item.strip() for item in str_list(obj, key, where) if item.strip()]


def text(obj: Mapping[str, Any], key: str, where: str = "") -> list[TextField]:
    value = obj.get(key)
    if isinstance(value, str):  # the usual case read here, not through opt_str and _join: ~0.4 µs a field
        return [TextField(f"{where}.{key}" if where else key, value)] if value else []
    opt_str(obj, key, where)  # absent (None), or the wrong type: raises
    return []


def strings_in(value: Any, where: str, skip: frozenset[str] = frozenset()) -> Iterator[TextField]:
    """Every string inside `value` (recursively), with its place; keys in `skip` (ids, media ids) are
    left out. For payloads whose every text field cannot be listed by name (template cards, XML app
    messages) the guard scans them all."""
    if isinstance(value, str):
        if value:
            yield TextField(where, value)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in skip:
                yield from strings_in(item, _join(where, key), skip)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from strings_in(item, _join(where, i), skip)


def account_value(value: Any, where: str, *, numeric: bool = False) -> str | None:
    """An account id: a string; `numeric` fields (WeCom's agentid) also take an integer."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise wrong_type(where, "a string", value)
    if isinstance(value, int):
        if not numeric:
            raise wrong_type(where, "a string", value)
        return str(value)
    if isinstance(value, str):
        return value.strip() or None
    raise wrong_type(where, "a string", value)


# Accounts the guard counts requests against when the body names no staff account and the client sent no
# X-Guard-Account (an SDK cannot set a header per call): `shared:<bucket>`, documented per endpoint in
# docs/profiles.md. Every key may act for a shared bucket; the request is still checked in full.
SHARED_PREFIX = "shared:"


def account_or_shared(header: str | None, implied: str | None, bucket: str) -> str:
    """X-Guard-Account when sent; else the account the body implies (e.g. a 微信客服 `open_kfid`); else the
    shared bucket `shared:<bucket>`. Never a refusal: the SDK's ordinary call has no header to send."""
    return header or implied or f"{SHARED_PREFIX}{bucket}"


def require_account(account: str | None, where: str, header: str | None) -> str:
    if account:
        return account
    if header:
        return header
    raise BodyError(
        codes.MISSING_ACCOUNT,
        f"no sending account: {where} is missing (or send the account in the X-Guard-Account header)",
        where=where,
    )


def link(where: str, url: str | None) -> Attachment:
    return Attachment(kind="link", where=where, url=url)


def implied_or_shared(implied: str | None, header: str | None, bucket: str) -> str:
    """The account the body names (e.g. a WeCom `agentid`, a profile's `userid`) when it names one; else
    X-Guard-Account; else the shared bucket `shared:<bucket>`. Unlike `account_or_shared`, a body that
    names its account exactly is counted against it whatever the header says."""
    return implied or header or f"{SHARED_PREFIX}{bucket}"


def distinct(values: list[str]) -> list[str]:
    """The non-blank values, stripped, first occurrence first."""
    return list(dict.fromkeys(v.strip() for v in values if v.strip()))


# XML inside a JSON string (WeChat's app-message and moment XML, forwarded as is): read only bounded, and
# never with a document type declaration, so no entity is expanded (no "billion laughs") or fetched.
MAX_XML_CHARS = 128 * 1024
_XML_DECLARATION = re.compile(r"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)


def xml_root(value: str, where: str) -> ET.Element:
    """`value` (the string at `where`) parsed as XML; a BodyError naming `where` when it is longer than
    `MAX_XML_CHARS`, declares a DOCTYPE or an entity, or is not well-formed."""
    if len(value) > MAX_XML_CHARS:
        raise BodyError(
            codes.BAD_REQUEST, f"{where}: XML over {MAX_XML_CHARS} characters is refused", where=where
        )
    if _XML_DECLARATION.search(value):
        raise BodyError(
            codes.BAD_REQUEST, f"{where}: XML with a DOCTYPE or ENTITY declaration is refused", where=where
        )
    try:
        return ET.fromstring(value)
    except ET.ParseError as exc:
        raise BodyError(codes.BAD_REQUEST, f"{where} is not well-formed XML ({exc})", where=where) from exc
