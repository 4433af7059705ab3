"""The proxy handler: request → profile route → Actions → auth → pipeline → forward the original bytes or
refuse in the platform's format; upstream refusal → refund; observers, audit line, metrics.

Allowed requests reach the upstream byte for byte: the body is the bytes received (never re-serialized,
still compressed if it came compressed), the path and query string are the raw ones minus the guard's
key parameter, headers are the end-to-end ones minus the guard's key header.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import zlib
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, unquote_plus

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from guard.config.settings import Settings
from guard.core import codes
from guard.core.body import BodyError, check_content_type, decode_content, parse_json
from guard.core.codes import GuardCode
from guard.core.profiles import READ_METHODS, Profile, RequestInfo, Route
from guard.core.types import Decision, DecisionRecord, Disposition, Verdict
from guard.http.auth import Authenticator, Client
from guard.http.keys import ACCOUNTS, BUNDLE, CLIENT, METRICS, OBSERVERS, PIPELINE, SETTINGS
from guard.observe.audit import AuditLog, mask

log = logging.getLogger("guard.proxy")

AUTH: web.AppKey[Authenticator] = web.AppKey("auth")
AUDIT: web.AppKey[AuditLog] = web.AppKey("audit")

HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection", "TE",
        "Trailer", "Transfer-Encoding", "Upgrade", "Host", "Content-Length", "Expect",
    )
)  # fmt: skip
ACCOUNT_HEADER = "X-Guard-Account"
IDEMPOTENCY_HEADER = "Idempotency-Key"


# ---- refusals: the one place a refusal body is written ----


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
) -> web.Response:
    guard: dict[str, object] = {"decision": decision, "code": code.name, "rule": rule}
    if details:
        guard["details"] = dict(details)
    status, body = profile.answer.refusal(code, message, guard)
    return web.Response(
        status=status,
        body=body,
        content_type="application/json",
        charset="utf-8",
        headers={"X-Guard-Decision": decision, "X-Guard-Rule": header_value(rule)},
    )


def verdict_response(profile: Profile, verdict: Verdict) -> web.Response:
    code = codes.BY_CODE.get(verdict.code, codes.CONTENT_BLOCKED)
    details = {k: v for k, v in verdict.details.items() if k != "matches"}
    if verdict.check == "content":
        details["matches"] = [
            {k: m.get(k) for k in ("where", "category", "term", "start", "end", "text")}
            for m in verdict.details.get("matches", [])  # type: ignore[attr-defined]
            if isinstance(m, Mapping)
        ]
    return refusal_response(profile, code, refusal_message(verdict), rule=verdict.rule, details=details)


def error_response(profile: Profile, code: GuardCode, detail: str, rule: str | None = None) -> web.Response:
    message = f"{code.zh} / {code.en}" + (f" ({detail})" if detail else "")
    return refusal_response(profile, code, message, rule=rule or f"guard:{code.name}", details=None)


# ---- request reading ----


async def read_body(request: web.Request, limit: int) -> bytes:
    """The raw body (chunked or not), refused as soon as it passes `limit`."""
    length = request.content_length
    if length is not None and length > limit:
        raise BodyError(codes.BODY_TOO_LARGE, f"Content-Length {length} is over the limit of {limit} bytes")
    data = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        data += chunk
        if len(data) > limit:
            raise BodyError(codes.BODY_TOO_LARGE, f"body is over the limit of {limit} bytes")
    return bytes(data)


def encodings_of(headers: Mapping[str, str] | CIMultiDictProxy[str]) -> list[str]:
    values = headers.getall("Content-Encoding", []) if isinstance(headers, CIMultiDictProxy) else []
    return [part for value in values for part in value.split(",")]


def presented_key(request: web.Request, settings: Settings) -> str | None:
    key = request.headers.get(settings.key_header)
    if key:
        return key
    return request.rel_url.query.get(settings.key_param)


def forward_query(raw_query: str, key_param: str) -> str:
    """The raw query string minus the guard's key parameter; everything else kept as sent."""
    if not raw_query:
        return ""
    parts = raw_query.split("&")
    kept = [p for p in parts if unquote_plus(p.split("=", 1)[0]) != key_param]
    return "&".join(kept)


def forward_headers(headers: CIMultiDictProxy[str], key_header: str) -> CIMultiDict[str]:
    out: CIMultiDict[str] = CIMultiDict()
    connection_listed = {
        token.strip().lower() for value in headers.getall("Connection", []) for token in value.split(",")
    }
    skip = HOP_BY_HOP | connection_listed | {key_header.lower()}
    for name, value in headers.items():
        if name.lower() not in skip:
            out.add(name, value)
    return out


def relay_headers(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    out: CIMultiDict[str] = CIMultiDict()
    connection_listed = {
        token.strip().lower() for value in headers.getall("Connection", []) for token in value.split(",")
    }
    for name, value in headers.items():
        lower = name.lower()
        if lower not in HOP_BY_HOP and lower not in connection_listed:
            out.add(name, value)
    return out


def decoded_for_inspection(body: bytes, headers: CIMultiDictProxy[str]) -> bytes:
    encoding = headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        try:
            wbits = 16 + zlib.MAX_WBITS if "gzip" in encoding else zlib.MAX_WBITS
            return zlib.decompressobj(wbits).decompress(body, 4 * 1024 * 1024)
        except zlib.error:
            return b""
    return body


# ---- observers ----


async def notify_decision(app: web.Application, record: DecisionRecord) -> None:
    """Tell every observer; one that raises or is slow is logged and skipped, never felt by the client.

    An observer with a synchronous `offer_decision` (a queue put: it cannot block) is called directly,
    without arming a timeout per decision."""
    timeout = app[SETTINGS].observer_timeout
    for observer in app[OBSERVERS]:
        offer = getattr(observer, "offer_decision", None)
        if offer is not None:
            try:
                offer(record)
            except Exception as exc:
                app[METRICS].observer_errors.inc()
                log.warning("observer %s failed on a decision: %r", type(observer).__name__, exc)
            continue
        try:
            async with asyncio.timeout(timeout):
                await observer.on_decision(record)
        except Exception as exc:
            app[METRICS].observer_errors.inc()
            log.warning("observer %s failed on a decision: %r", type(observer).__name__, exc)


async def notify_system(
    app: web.Application, event: str, message: str, details: Mapping[str, object]
) -> None:
    timeout = app[SETTINGS].observer_timeout
    for observer in app[OBSERVERS]:
        try:
            async with asyncio.timeout(timeout):
                await observer.on_system(event, message, details)
        except Exception as exc:
            app[METRICS].observer_errors.inc()
            log.warning("observer %s failed on system event %s: %r", type(observer).__name__, event, exc)


async def record_decisions(
    app: web.Application,
    decisions: Sequence[Decision],
    disposition: Disposition,
    *,
    client: Client | None,
    started: float,
    upstream_status: int | None = None,
    dry_run: bool = False,
) -> None:
    metrics = app[METRICS]
    directory = app[ACCOUNTS]
    now = time.time()
    for decision in decisions:
        refusal = decision.refusal
        result = "refuse" if refusal else ("warn" if decision.warnings else "allow")
        rule = refusal.rule if refusal else (decision.warnings[0].rule if decision.warnings else "")
        metrics.decisions.inc(decision.action.limit_name, result, rule)
        record = DecisionRecord(
            decision=decision,
            disposition=disposition,
            at=now,
            client=client.name if client else None,
            staff=directory.staff_of(decision.action.account),
            upstream_status=upstream_status,
            dry_run=dry_run,
        )
        app[AUDIT].decision(record)
        await notify_decision(app, record)
        if refusal is not None and refusal.rule == "quota:unavailable":
            metrics.redis_errors.inc("hit")
            await notify_system(
                app,
                "redis_down",
                "counters unavailable; guarded actions refused",
                {"error": refusal.details.get("error", "")},
            )


# ---- the handler ----


def upstream_url(settings: Settings, profile: Profile, request: web.Request) -> str:
    base = profile.upstream or settings.upstream_for(profile.name)
    url = base + request.rel_url.raw_path
    query = forward_query(request.rel_url.raw_query_string, settings.key_param)
    return f"{url}?{query}" if query else url


async def handle(request: web.Request) -> web.StreamResponse:
    app = request.app
    settings = app[SETTINGS]
    metrics = app[METRICS]
    started = time.perf_counter()
    bundle = app[BUNDLE].current
    method = request.method.upper()
    path = request.path
    matched = bundle.profiles.match(method, path)
    profile = matched[0] if matched else bundle.profiles.owner(path)

    client = app[AUTH].identify(presented_key(request, settings))
    if client is None:
        metrics.requests.inc("any", "unauthorized")
        app[AUDIT].event("refused", reason="unauthorized", path=path, method=method)
        return error_response(
            profile, codes.UNAUTHORIZED, f"send the key in the {settings.key_header} header"
        )

    if matched is None:
        if method in READ_METHODS:
            write_twin = bundle.profiles.match("POST", path)
            if request.body_exists and write_twin is not None and write_twin[1].guarded:
                # A read carrying a body on a guarded endpoint: some servers would act on it unchecked.
                metrics.requests.inc("read", "refused")
                return error_response(
                    profile, codes.BAD_REQUEST, f"{method} with a body on a guarded endpoint"
                )
            metrics.requests.inc("read", "forwarded")
            return await pass_through(request, profile)
        if settings.strict:
            metrics.requests.inc("unknown", "refused")
            app[AUDIT].event("refused", reason="unknown_route", path=path, method=method, client=client.name)
            return error_response(profile, codes.UNKNOWN_ROUTE, f"{method} {path}")
        metrics.requests.inc("unknown", "forwarded")
        app[AUDIT].event("unknown_route_forwarded", path=path, method=method, client=client.name)
        return await pass_through(request, profile)

    route = matched[1]
    if not route.guarded:
        metrics.requests.inc("pass_through", "forwarded")
        return await pass_through(request, profile)
    return await guarded(request, profile, route, client, started)


async def guarded(
    request: web.Request, profile: Profile, route: Route, client: Client, started: float
) -> web.StreamResponse:
    app = request.app
    settings = app[SETTINGS]
    metrics = app[METRICS]
    bundle = app[BUNDLE].current
    assert route.parse is not None
    try:
        raw = await read_body(request, settings.body_limit)
        check_content_type(request.headers.get("Content-Type"))
        body = decode_content(raw, encodings_of(request.headers), settings.body_limit)
        parsed = parse_json(body)
        if not isinstance(parsed, dict):
            raise BodyError(codes.BAD_REQUEST, "the body must be a JSON object")
        info = RequestInfo(
            method=request.method,
            path=request.path,
            query=request.rel_url.query,
            account_header=(request.headers.get(ACCOUNT_HEADER) or "").strip() or None,
            request_id=request.headers.get(IDEMPOTENCY_HEADER) or None,
        )
        actions = route.parse(parsed, info)
    except BodyError as exc:
        metrics.requests.inc(route.name, "bad_request")
        app[AUDIT].event(
            "refused", reason=exc.code.name, route=route.name, detail=mask(exc.detail, 40), client=client.name
        )
        return error_response(profile, exc.code, exc.detail)

    for action in actions:
        if not client.may_act_for(action.account):
            metrics.requests.inc(route.name, "forbidden")
            app[AUDIT].event(
                "refused", reason="account_not_permitted", account=action.account, client=client.name
            )
            return error_response(profile, codes.ACCOUNT_NOT_PERMITTED, f"account {action.account}")

    decisions = await app[PIPELINE].decide(actions, bundle=bundle)
    metrics.latency.observe(time.perf_counter() - started)
    refusal = next((d.refusal for d in decisions if d.refusal is not None), None)
    if refusal is not None:
        metrics.requests.inc(route.name, "refused")
        await record_decisions(app, decisions, "refused", client=client, started=started)
        return verdict_response(profile, refusal)

    warnings = [w for d in decisions for w in d.warnings]
    try:
        status, headers, payload = await forward(request, profile, raw)
    except TimeoutError:
        # The action may have happened: the charge is kept.
        metrics.upstream_errors.inc("timeout")
        metrics.requests.inc(route.name, "upstream_timeout")
        await record_decisions(app, decisions, "upstream_timeout", client=client, started=started)
        await notify_system(
            app, "upstream_failing", "upstream timed out", {"profile": profile.name, "route": route.name}
        )
        return error_response(profile, codes.UPSTREAM_TIMEOUT, f"no answer within {settings.read_timeout:g}s")
    except aiohttp.ClientError as exc:
        # Nothing reached the platform (or it dropped the request): give the quota back.
        metrics.upstream_errors.inc("unreachable")
        metrics.requests.inc(route.name, "upstream_error")
        for decision in decisions:
            await app[PIPELINE].refund(decision)
        await record_decisions(app, decisions, "upstream_error", client=client, started=started)
        await notify_system(
            app,
            "upstream_failing",
            "upstream unreachable",
            {"profile": profile.name, "error": type(exc).__name__},
        )
        return error_response(profile, codes.UPSTREAM_UNREACHABLE, type(exc).__name__)

    disposition: Disposition = "forwarded"
    if profile.answer.upstream_refused(status, decoded_for_inspection(payload, headers)):
        disposition = "upstream_refused"
        metrics.upstream_refusals.inc()
        for decision in decisions:
            await app[PIPELINE].refund(decision)
    metrics.requests.inc(route.name, disposition)
    await record_decisions(
        app, decisions, disposition, client=client, started=started, upstream_status=status
    )
    out = relay_headers(headers)
    out["X-Guard-Decision"] = "warn" if warnings else "allow"
    if warnings:
        out["X-Guard-Rule"] = header_value(warnings[0].rule)
    return web.Response(status=status, body=payload, headers=out)


def client_session(connect_timeout: float, read_timeout: float) -> aiohttp.ClientSession:
    """The pooled client the guard forwards through (bench/passthrough.py uses the same one)."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=read_timeout),
        connector=aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
        # The guard forwards what it got: no cookies of its own, no redirects followed.
        cookie_jar=aiohttp.DummyCookieJar(),
    )


@functools.lru_cache(maxsize=16)
def forward_timeout(connect: float, read: float) -> aiohttp.ClientTimeout:
    # Also bounded as a whole: an upstream that drips a byte now and then still times out.
    return aiohttp.ClientTimeout(total=connect + read, sock_connect=connect, sock_read=read)


async def forward(
    request: web.Request, profile: Profile, body: bytes
) -> tuple[int, CIMultiDictProxy[str], bytes]:
    settings = request.app[SETTINGS]
    session = request.app[CLIENT]
    async with session.request(
        request.method,
        upstream_url(settings, profile, request),
        data=body,
        headers=forward_headers(request.headers, settings.key_header),
        allow_redirects=False,
        timeout=forward_timeout(settings.connect_timeout, settings.read_timeout),
    ) as resp:
        payload = await resp.read()
        return resp.status, resp.headers, payload


async def pass_through(request: web.Request, profile: Profile) -> web.StreamResponse:
    """Read-only and media endpoints: streamed both ways, no checks."""
    app = request.app
    settings = app[SETTINGS]
    session = app[CLIENT]
    data: Any = request.content if request.body_exists else None
    out: web.StreamResponse | None = None
    try:
        async with session.request(
            request.method,
            upstream_url(settings, profile, request),
            data=data,
            headers=forward_headers(request.headers, settings.key_header),
            allow_redirects=False,
        ) as resp:
            out = web.StreamResponse(
                status=resp.status, reason=resp.reason, headers=relay_headers(resp.headers)
            )
            if resp.content_length is not None:
                out.content_length = resp.content_length
            await out.prepare(request)
            async for chunk in resp.content.iter_chunked(64 * 1024):
                await out.write(chunk)
            await out.write_eof()
            return out
    except (TimeoutError, aiohttp.ClientError) as exc:
        timeout = isinstance(exc, TimeoutError)
        app[METRICS].upstream_errors.inc("timeout" if timeout else "unreachable")
        if out is not None and out.prepared:
            # The answer had started: all that is left is to cut the connection.
            raise
        if timeout:
            return error_response(
                profile, codes.UPSTREAM_TIMEOUT, f"no answer within {settings.read_timeout:g}s"
            )
        return error_response(profile, codes.UPSTREAM_UNREACHABLE, type(exc).__name__)
