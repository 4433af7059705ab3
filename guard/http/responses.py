"""The one place the guard writes an answer of its own: refusals on a platform's path (in that platform's
error format, HTTP 200 as the platforms answer, with `X-Guard-Decision` / `X-Guard-Rule`), and errors of
the guard's own endpoints (/v1/…: one JSON shape, bilingual, raised as an aiohttp HTTP exception).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from urllib.parse import quote

from aiohttp import web

from guard.core import codes
from guard.core.codes import GuardCode
from guard.core.profiles import Profile
from guard.core.types import ContentMatch, Verdict


def json_response(data: object, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(data, ensure_ascii=False, default=str).encode("utf-8", "replace"),
        content_type="application/json",
        charset="utf-8",
    )


@functools.cache
def _error_type(status: int) -> type[web.HTTPException]:
    base = web.HTTPServerError if status >= 500 else web.HTTPClientError
    return type(f"GuardHTTP{status}", (base,), {"status_code": status})


def api_error(code: GuardCode, detail: str = "", *, zh: str = "", en: str = "") -> web.HTTPException:
    """The error answer of a /v1 endpoint, to raise: `{"error": code name, "code", "message": "zh / en"}`.

    `zh` / `en` replace the code's general text with what exactly went wrong; `detail` (technical,
    English) is appended in parentheses. A policy code whose platform status is 200 answers 400 here."""
    message = f"{zh or code.zh} / {en or code.en}" + (f" ({detail})" if detail else "")
    body = {"error": code.name, "code": code.code, "message": message}
    status = code.status if code.status != 200 else 400
    return _error_type(status)(text=json.dumps(body, ensure_ascii=False), content_type="application/json")


# ---- refusals on a platform's path ----


def header_value(value: str) -> str:
    """HTTP header values are latin-1: percent-encode anything else (a Chinese category name)."""
    return quote(value, safe=":/._-+@=,;*")


def refusal_message(verdict: Verdict) -> str:
    return f"{verdict.reason_zh} / {verdict.reason_en}"


def refusal_response(
    profile: Profile,
    code: GuardCode,
    message: str,
    *,
    rule: str,
    details: Mapping[str, object] | None = None,
    decision: str = "refuse",
    http_error_status: bool = False,
) -> web.Response:
    guard: dict[str, object] = {"decision": decision, "code": code.name, "rule": rule}
    if details:
        guard["details"] = dict(details)
    return web.Response(
        status=profile.answer.status_for(code, http_error_status),
        body=profile.answer.refusal(code, message, guard),
        content_type="application/json",
        charset="utf-8",
        headers={"X-Guard-Decision": decision, "X-Guard-Rule": header_value(rule)},
    )


def match_json(match: ContentMatch) -> dict[str, object]:
    return {
        "where": match.where,
        "category": match.category,
        "term": match.term,
        "start": match.start,
        "end": match.end,
        "text": match.text,
    }


def verdict_response(profile: Profile, verdict: Verdict, *, http_error_status: bool = False) -> web.Response:
    code = codes.BY_CODE.get(verdict.code, codes.CONTENT_BLOCKED)
    details: dict[str, object] = dict(verdict.details)
    if verdict.check == "content":
        details["matches"] = [match_json(m) for m in verdict.matches]
    return refusal_response(
        profile,
        code,
        refusal_message(verdict),
        rule=verdict.rule,
        details=details,
        http_error_status=http_error_status,
    )


def error_response(
    profile: Profile, code: GuardCode, detail: str, *, http_error_status: bool = False
) -> web.Response:
    """The guard's answer on a platform's path to a request it cannot take (bad input, auth, unknown
    route, upstream trouble): the code's bilingual text and what exactly was wrong."""
    message = f"{code.zh} / {code.en}" + (f" ({detail})" if detail else "")
    return refusal_response(
        profile, code, message, rule=f"guard:{code.name}", http_error_status=http_error_status
    )
