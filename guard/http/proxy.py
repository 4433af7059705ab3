"""The proxy handler: request → profile route → Actions → auth → pipeline → forward the original bytes or
refuse in the platform's format; upstream refusal → refund; observers, audit line, metrics.

Allowed requests reach the upstream byte for byte: the body is the bytes received (never re-serialized,
still compressed if it came compressed), the path and query string are the raw ones minus the guard's
key parameter, headers are the end-to-end ones minus the guard's key (header or bearer).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, unquote_plus

import aiohttp
from aiohttp import hdrs, web
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE, HttpVersion11
from multidict import CIMultiDict, CIMultiDictProxy

from guard.config.settings import Settings
from guard.core import codes
from guard.core.body import BodyError
from guard.core.bundle import Bundle
from guard.core.codes import GuardCode
from guard.core.fields import SHARED_PREFIX
from guard.core.profiles import READ_METHODS, Profile, RequestInfo, Route
from guard.core.profiles.model import AnswerFormat
from guard.core.types import Action, Decision, Disposition, read_verdicts
from guard.http.auth import Authenticator, Client, PresentedKey, presented_key
from guard.http.body import inspect_answer, read_json
from guard.http.keys import AUDIT, AUTH, BUNDLE, CLIENT, METRICS, PIPELINE, SETTINGS, UPSTREAM_POOL
from guard.http.notify import VerdictReads, notify_system, record_decisions
from guard.http.responses import error_response, header_value, verdict_response
from guard.http.upstream import target_of
from guard.observe.masking import mask

log = logging.getLogger("guard.proxy")

HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection", "TE",
        "Trailer", "Transfer-Encoding", "Upgrade", "Host", "Content-Length", "Expect",
    )
)  # fmt: skip
ACCOUNT_HEADER = "X-Guard-Account"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def forward_query(raw_query: str, key_param: str) -> str:
    """The raw query string minus the guard's key parameter; everything else kept as sent."""
    if not raw_query:
        return ""
    # Without `%` or `+` a name decodes to itself, so none is the key parameter unless the key parameter's
    # name is in the query as it is: such a query goes on whole, without a split and a decode per
    # parameter (0.65 → 0.09 µs for WeCom's `access_token=…`, timeit; tests/test_speed_forward_paths.py
    # compares it with the long way).
    if key_param not in raw_query and "%" not in raw_query and "+" not in raw_query:
        return raw_query
    return _forward_query_parts(raw_query, key_param)


def _forward_query_parts(raw_query: str, key_param: str) -> str:
    """`forward_query` the long way: each parameter's name decoded and compared."""
    parts = raw_query.split("&")
    kept = [p for p in parts if unquote_plus(p.split("=", 1)[0]) != key_param]
    return "&".join(kept)


def not_passed_on(headers: CIMultiDictProxy[str], skip: frozenset[str]) -> frozenset[str]:
    """`skip` (lower-case names) and the names the Connection header lists."""
    # The Connection-listed set only when there is a Connection header (answers rarely carry one):
    # building the empty set every time cost ~0.2 µs of the ~1 µs a filter takes (timeit).
    if "Connection" not in headers:
        return skip
    return skip | {
        token.strip().lower() for value in headers.getall("Connection") for token in value.split(",")
    }


def end_to_end_headers(
    headers: CIMultiDictProxy[str], drop: frozenset[str] = frozenset()
) -> CIMultiDict[str]:
    """`headers` minus the hop-by-hop ones (and those the Connection header lists) and `drop` (lower case)."""
    skip = not_passed_on(headers, HOP_BY_HOP | drop if drop else HOP_BY_HOP)
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        if name.lower() not in skip:
            out.add(name, value)
    return out


@functools.lru_cache(maxsize=16)
def key_skip(key_header: str, bearer: bool) -> frozenset[str]:
    """The hop-by-hop headers and those carrying the guard's key (lower case). Made once per key header
    and key source: the sets and their union cost ~0.4 µs a request (timeit)."""
    return HOP_BY_HOP | {key_header.lower(), *(("authorization",) if bearer else ())}


def forward_pairs(
    headers: CIMultiDictProxy[str], settings: Settings, key: PresentedKey
) -> list[tuple[str, str]]:
    """What goes upstream, as (name, value) pairs: the end-to-end headers minus the guard's key, wherever
    the client put it. Pairs, as the lean client writes them: no CIMultiDict made to be iterated once."""
    skip = not_passed_on(headers, key_skip(settings.key_header, key.source == "bearer"))
    return [(name, value) for name, value in headers.items() if name.lower() not in skip]


def forward_headers(
    headers: CIMultiDictProxy[str], settings: Settings, key: PresentedKey
) -> CIMultiDict[str]:
    """`forward_pairs` for the aiohttp session."""
    return CIMultiDict(forward_pairs(headers, settings, key))


# Not frozen: a frozen dataclass sets each of its ten fields through `object.__setattr__`, 1.0 → 0.2 µs a
# request (timeit). Nothing changes a Call after `call_of` made it.
@dataclass(slots=True)
class Call:
    """One request on a platform's path, as the proxy handles it: the profile that answers it, the path
    the routes see (decoded, the `/k/<key>` prefix removed) and the raw one that is forwarded, the key
    and where it came from, and the client it identifies."""

    request: web.Request
    settings: Settings
    profile: Profile
    path: str
    raw_path: str
    key: PresentedKey
    # Whether a route matched or the path lies under a profile's paths; a path no profile owns is
    # forwarded nowhere.
    owned: bool = True
    # None: the key identifies no client (the request is refused).
    client: Client | None = None
    # The profile's upstream (None: none is configured). Found once here: it was looked up three times
    # a request (handle, forward's assert and target).
    upstream: str | None = None

    def refuse(self, code: GuardCode, detail: str) -> web.Response:
        return error_response(self.profile, code, detail, http_error_status=self.settings.http_error_status)


KEY_PREFIX = "/k/"


def split_key_prefix(raw_path: str) -> tuple[str | None, str]:
    """`/k/<key>/cgi-bin/…` → (key, `/cgi-bin/…`): a key as the base URL's first path segment, for SDKs
    that can set nothing but a base URL. Other paths come back unchanged with no key."""
    if not raw_path.startswith(KEY_PREFIX):
        return None, raw_path
    segment, slash, rest = raw_path[len(KEY_PREFIX) :].partition("/")
    return unquote(segment) or None, slash + rest if slash else "/"


def upstream_url(call: Call, base: str) -> str:
    query = forward_query(call.request.rel_url.raw_query_string, call.settings.key_param)
    url = base + call.raw_path
    return f"{url}?{query}" if query else url


def call_of(
    request: web.Request, settings: Settings, bundle: Bundle, auth: Authenticator
) -> tuple[Call, tuple[Profile, Route] | None]:
    """The request's Call (its client identified by `auth`) and its route (None: no profile knows it)."""
    path_key, raw_path = split_key_prefix(request.rel_url.raw_path)
    key = presented_key(request, settings)
    if path_key is not None:
        # The key in the path is taken only when no other is presented; it is stripped either way.
        key = key if key.value else PresentedKey(path_key, "path")
        path = unquote(raw_path)
    else:
        path = request.path
    matched = bundle.profiles.match(request.method.upper(), path)
    owner = matched[0] if matched else bundle.profiles.owning(path)
    profile = owner or bundle.profiles.owner(path)
    # One Call a request, made with its client (it was made, then copied with the client: ~0.5 µs).
    client = auth.identify(key.value)
    upstream = profile.upstream or settings.upstream_for(profile.name)
    return Call(request, settings, profile, path, raw_path, key, owner is not None, client, upstream), matched


async def handle(request: web.Request) -> web.StreamResponse:
    app = request.app
    settings = app[SETTINGS]
    metrics = app[METRICS]
    started = time.perf_counter()
    bundle = app[BUNDLE].current
    method = request.method.upper()
    call, matched = call_of(request, settings, bundle, app[AUTH])
    client = call.client
    if client is None:
        metrics.requests.inc("any", "unauthorized")
        app[AUDIT].event("refused", reason="unauthorized", path=call.path, method=method)
        return call.refuse(
            codes.UNAUTHORIZED,
            f"send the key in the {settings.key_header} header or as the base URL's first path segment "
            f"{KEY_PREFIX}<key>",
        )
    if not call.owned:
        metrics.requests.inc("unknown", "refused")
        app[AUDIT].event("refused", reason="unowned_path", path=call.path, method=method, client=client.name)
        return call.refuse(codes.UNKNOWN_ROUTE, f"{method} {call.path}: no platform's path")
    if call.upstream is None:
        metrics.requests.inc("any", "no_upstream")
        name = call.profile.name
        where = "" if call.profile.source == "built-in" else f", or upstream in {call.profile.source}"
        return call.refuse(
            codes.UPSTREAM_NOT_CONFIGURED,
            f"profile {name!r} has no upstream: set upstreams.{name} (GUARD_UPSTREAMS={name}=URL){where}",
        )
    if matched is None:
        return await unmatched(call)
    route = matched[1]
    if route.plain_write:
        metrics.requests.inc("plain_write", "forwarded")
        app[AUDIT].event("plain_write_forwarded", route=route.name, method=method, client=client.name)
        return await pass_through(call)
    if not route.guarded:
        metrics.requests.inc("pass_through", "forwarded")
        return await pass_through(call)
    return await guarded(call, route, client, started)


async def unmatched(call: Call) -> web.StreamResponse:
    """A request no route of the catalogues knows. A read without a body is forwarded; anything that
    carries a body (whatever its method) is an unknown write: refused under `strict`, else forwarded with
    an audit line — but never when it names a guarded endpoint with another method."""
    app = call.request.app
    metrics = app[METRICS]
    method = call.request.method.upper()
    assert call.client is not None
    has_body = call.request.body_exists
    if method in READ_METHODS and not has_body:
        metrics.requests.inc("read", "forwarded")
        return await pass_through(call)
    write_twin = app[BUNDLE].current.profiles.match("POST", call.path)
    if write_twin is not None and write_twin[1].guarded:
        # A guarded endpoint reached with another method: some servers would act on it unchecked.
        metrics.requests.inc("unknown", "refused")
        return call.refuse(codes.BAD_REQUEST, f"{method} on a guarded endpoint; send it as POST")
    if call.settings.strict:
        metrics.requests.inc("unknown", "refused")
        app[AUDIT].event(
            "refused", reason="unknown_route", path=call.path, method=method, client=call.client.name
        )
        return call.refuse(codes.UNKNOWN_ROUTE, f"{method} {call.path}")
    metrics.requests.inc("unknown", "forwarded")
    app[AUDIT].event("unknown_route_forwarded", path=call.path, method=method, client=call.client.name)
    return await pass_through(call)


async def read_actions(call: Call, route: Route) -> tuple[bytes, list[Action]]:
    """The raw body (what is forwarded) and the Actions the route's parser reads from it; a BodyError
    when the body cannot be read, decoded or understood."""
    assert route.parse is not None
    request = call.request
    raw, parsed = await read_json(request, call.settings.body_limit)
    if not isinstance(parsed, dict):
        raise BodyError(codes.BAD_REQUEST, "the body must be a JSON object")
    info = RequestInfo(
        method=request.method,
        path=call.path,
        query=request.rel_url.query,
        account_header=(request.headers.get(ACCOUNT_HEADER) or "").strip() or None,
        request_id=request.headers.get(IDEMPOTENCY_HEADER) or None,
    )
    return raw, list(route.parse(parsed, info))


async def guarded(call: Call, route: Route, client: Client, started: float) -> web.StreamResponse:
    app = call.request.app
    metrics = app[METRICS]
    try:
        raw, actions = await read_actions(call, route)
    except BodyError as exc:
        metrics.requests.inc(route.name, "bad_request")
        app[AUDIT].event(
            "refused", reason=exc.code.name, route=route.name, detail=mask(exc.detail, 40), client=client.name
        )
        return call.refuse(exc.code, exc.detail)
    if not actions:
        # A write of a guarded endpoint that carries nothing customer-facing this time (a contact way
        # without closing words): nothing to check or charge, but the write is on record.
        app[AUDIT].event("forwarded_without_content", route=route.name, client=client.name)

    for action in actions:
        if not action.account.startswith(SHARED_PREFIX) and not client.may_act_for(action.account):
            metrics.requests.inc(route.name, "forbidden")
            app[AUDIT].event(
                "refused", reason="account_not_permitted", account=action.account, client=client.name
            )
            return call.refuse(codes.ACCOUNT_NOT_PERMITTED, f"account {action.account}")

    decisions = await app[PIPELINE].decide(actions, bundle=app[BUNDLE].current)
    metrics.latency.observe(time.perf_counter() - started)
    # Each decision's refusal and warnings, read once here for the refusal below, the relay's
    # X-Guard-Decision and the record: `Decision.refusal`, a scan for the first warning and the record's
    # `read_verdicts` each walked the verdicts (0.9 → 0.5 µs a request with one decision, timeit).
    reads = [read_verdicts(decision.verdicts) for decision in decisions]
    for refusal, _ in reads:
        if refusal is not None:
            metrics.requests.inc(route.name, "refused")
            await record_decisions(app, decisions, "refused", client=client, reads=reads)
            return verdict_response(call.profile, refusal, http_error_status=call.settings.http_error_status)
    return await forward_allowed(call, route, raw, decisions, reads)


async def forward_allowed(
    call: Call,
    route: Route,
    raw: bytes,
    decisions: Sequence[Decision],
    reads: Sequence[VerdictReads] | None = None,
) -> web.StreamResponse:
    """Forward an allowed request and relay the answer; give the quota back when nothing was done.
    `reads`: each decision's `read_verdicts`, when the caller has them."""
    app = call.request.app
    if reads is None:
        reads = [read_verdicts(decision.verdicts) for decision in decisions]
    metrics = app[METRICS]
    profile = call.profile
    try:
        status, headers, payload = await forward(call, raw)
    except TimeoutError as exc:
        forget_frames(exc)
        # The action may have happened: the charge is kept.
        metrics.upstream_errors.inc("timeout")
        metrics.requests.inc(route.name, "upstream_timeout")
        await record_decisions(app, decisions, "upstream_timeout", client=call.client, reads=reads)
        await notify_system(
            app, "upstream_failing", "upstream timed out", {"profile": profile.name, "route": route.name}
        )
        return call.refuse(codes.UPSTREAM_TIMEOUT, f"no answer within {call.settings.read_timeout:g}s")
    except aiohttp.ClientError as exc:
        forget_frames(exc)
        # Nothing reached the platform (or it dropped the request): give the quota back.
        metrics.upstream_errors.inc("unreachable")
        metrics.requests.inc(route.name, "upstream_error")
        for decision in decisions:
            await app[PIPELINE].refund(decision)
        await record_decisions(app, decisions, "upstream_error", client=call.client, reads=reads)
        await notify_system(
            app,
            "upstream_failing",
            "upstream unreachable",
            {"profile": profile.name, "error": type(exc).__name__},
        )
        return call.refuse(codes.UPSTREAM_UNREACHABLE, type(exc).__name__)

    disposition: Disposition = "forwarded"
    # Decoded only when encoded: an answer without Content-Encoding is its own payload.
    answer = inspect_answer(payload, headers) if "Content-Encoding" in headers else payload
    fmt = profile.answer
    # The full parse only for an answer that is not plainly ok: 2.8 → 0.5 µs for a platform's usual one.
    if not plainly_ok(fmt, status, answer) and fmt.upstream_refused(status, answer):
        disposition = "upstream_refused"
        metrics.upstream_refusals.inc()
        retry = fmt.asks_retry(answer)
        for decision in decisions:
            await app[PIPELINE].refund(decision, attempts=retry)
    out = end_to_end_headers(headers)
    # The first warning (of the first decision that has one); a loop, not a generator: ~0.3 µs less.
    warning = None
    for _, warnings in reads:
        if warnings:
            warning = warnings[0]
            break
    if warning is None:
        out["X-Guard-Decision"] = "allow"
    else:
        out["X-Guard-Decision"] = "warn"
        out["X-Guard-Rule"] = header_value(warning.rule)
    response = relayed_answer(call.request, status, out, payload)
    # The answer goes out first, then the request is recorded (metrics, audit line, observers): the
    # client no longer waits for that bookkeeping, ~0.1 ms of CPU a request (bench/stages.py at one
    # connection: audit line 70, record decisions 25, metrics 10, observers 5 µs), most of the guard's
    # own work after the upstream answered. Every request is still recorded, in this same task and turn
    # (writing the answer does not wait unless the client's socket is full), and as before only after
    # the upstream answered; also when the client is gone by then (`finally`).
    try:
        await send_answer(call.request, response, payload)
    except ConnectionError as exc:
        if not client_gone(call.request):
            raise
        # The client hung up before its answer was written: the upstream acted, so the charge and the
        # record stay. Handled here rather than raised: aiohttp would log it as an error with a traceback
        # and keep the exception in a cycle with its handler frames (~90 objects a hang-up that only a
        # full collection frees). aiohttp finds the connection closed and drops it.
        forget_frames(exc)
    finally:
        metrics.requests.inc(route.name, disposition)
        await record_decisions(
            app, decisions, disposition, client=call.client, upstream_status=status, reads=reads
        )
    return response


def relayed_answer(
    request: web.Request, status: int, headers: CIMultiDict[str], payload: bytes
) -> web.StreamResponse:
    """The relayed answer as aiohttp sees it: a `web.Response`, or the `web.StreamResponse` that
    `send_answer` writes itself when it can (`direct_answer`)."""
    if direct_answer(request, status):
        # The headers handed over, not copied (`web.Response` copies them): made for this answer alone.
        return web.StreamResponse(status=status, headers=headers)
    return web.Response(status=status, body=payload, headers=headers)


def direct_answer(request: web.Request, status: int) -> bool:
    """Whether the answer can be written straight through the request's writer: an HTTP/1.1 request kept
    alive, an answer with a body (not to HEAD or CONNECT, not 1xx, 204 or 304), no `on_response_prepare`
    receiver in the request's apps (aiohttp calls them while preparing), aiohttp's writer where this code
    finds it. Anything else takes aiohttp's own way (`web.Response`)."""
    return (
        request.version == HttpVersion11
        and status >= 200
        and status != 204
        and status != 304
        and request.method not in ("HEAD", "CONNECT")
        and request.keep_alive
        and getattr(request, "_payload_writer", None) is not None
        and (match_info := request.match_info) is not None
        and not any(app.on_response_prepare for app in match_info.apps)
    )


async def send_answer(request: web.Request, response: web.StreamResponse, payload: bytes) -> None:
    """Write the answer `relayed_answer` made. A `web.Response` is prepared and ended as aiohttp does it;
    the direct one (`direct_answer`) is written as that would write it — the same bytes: the headers given,
    then what `Response._start` and `StreamResponse._prepare_headers` add when missing, in their order
    (Content-Length; Content-Type `application/octet-stream` for a body; Date; Server; nothing for
    Connection on a kept-alive HTTP/1.1 request), the status line with aiohttp's reason phrase, through the
    writer's own `write_headers` and `write_eof` (one write of head and body) — without aiohttp's
    per-answer steps around them (`prepare`, `_start`, `_prepare_headers`, the prepare hook's walk over
    the apps, `_write_headers`, `write_eof`'s checks). Measured alone with aiohttp's writer over a stub
    transport: 11.3 → 5.1 µs an answer; tests/test_speed_forward_answer.py compares the bytes on the wire
    with aiohttp's way on many answers. The response is then marked written (aiohttp's own fields: it
    prepares and ends a returned response, which then does nothing) and kept alive, as aiohttp marks
    it; a write that fails marks it written and closed."""
    if isinstance(response, web.Response):
        await response.prepare(request)
        await response.write_eof()
        return
    writer = request._payload_writer
    headers = response.headers
    if hdrs.CONTENT_LENGTH not in headers:
        headers[hdrs.CONTENT_LENGTH] = str(len(payload))
    writer.length = len(payload)
    if payload:
        headers.setdefault(hdrs.CONTENT_TYPE, "application/octet-stream")
    if hdrs.DATE not in headers:
        headers[hdrs.DATE] = rfc822_formatted_time()
    headers.setdefault(hdrs.SERVER, SERVER_SOFTWARE)
    try:
        await writer.write_headers(f"HTTP/1.1 {response.status} {response.reason}", headers)
        await writer.write_eof(payload)
    except BaseException:
        response.force_close()
        raise
    finally:
        response._eof_sent = True
        response._body_length = writer.output_size
    response._keep_alive = True


@functools.lru_cache(maxsize=64)
def ok_openings(code_field: str, ok_values: tuple[object, ...]) -> tuple[tuple[bytes, ...], bytes]:
    """The openings of an answer whose code is plainly an ok value (`{"errcode":0,` or `{"errcode":0}`),
    and the code field's name quoted: nothing (no openings) unless the field and the ok values are
    plain (a word; integers), so that their JSON is exactly the text written here."""
    word = code_field.replace("_", "a")
    if not (word.isascii() and word.isalnum()):
        return (), b""
    quoted = f'"{code_field}"'.encode()
    ints = [ok for ok in ok_values if type(ok) is int]
    return tuple(b"{" + quoted + b":" + str(ok).encode() + end for ok in ints for end in (b",", b"}")), quoted


def plainly_ok(fmt: AnswerFormat, status: int, answer: bytes) -> bool:
    """True only when `fmt.upstream_refused(status, answer)` is certainly False without parsing the
    answer: a status below 400 and a body that opens with the code field and an ok value, names that
    field nowhere else and has no backslash (so no escaped key can decode to the field's name either).
    Such a body, if it is JSON at all, is an object whose code is that ok value; if it is not JSON, the
    upstream did not clearly refuse either. Anything else gets the full parse. Measured (timeit, the
    bench stub's answer): upstream_refused 2.8 µs, this check 0.5 µs."""
    if status >= 400:
        return False
    try:
        openings, quoted = ok_openings(fmt.code_field, fmt.ok_values)
    except TypeError:  # an ok value that cannot be hashed: no shortcut
        return False
    return (
        bool(openings) and answer.startswith(openings) and b"\\" not in answer and answer.count(quoted) == 1
    )


def client_gone(request: web.Request) -> bool:
    """The client's connection is closed (it hung up): nothing more can be sent to it."""
    transport = request.transport
    return transport is None or transport.is_closing()


def forget_frames(exc: BaseException) -> None:
    """Drop the tracebacks of a failed forward (and of its causes) once it is handled. aiohttp's connector
    frames hold the exception that holds them: ~100 objects a failure that only a full collection frees —
    at 256 connections with the upstream down, collections of 55,000-130,000 objects (bench/faults.py)."""
    todo: list[BaseException | None] = [exc]
    seen: set[int] = set()
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = None
        todo += (current.__cause__, current.__context__)


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


def upstream_request(call: Call, data: Any, **options: Any) -> Any:
    """The request to the profile's own upstream, as an `async with` context: same method, path (without
    a `/k/<key>` prefix) and query (without the key parameter), the body `data`, the headers minus the
    guard's key; redirects are the client's business."""
    request = call.request
    assert call.upstream is not None
    return request.app[CLIENT].request(
        request.method,
        upstream_url(call, call.upstream),
        data=data,
        headers=forward_headers(request.headers, call.settings, call.key),
        allow_redirects=False,
        **options,
    )


async def forward(call: Call, body: bytes) -> tuple[int, CIMultiDictProxy[str], bytes]:
    """The guarded forward: the body in memory goes out, the answer is read whole. Through the lean
    client (guard.http.upstream; bench/stages.py: the process's CPU a request 510 → 346 µs at 16
    connections, see its docstring), except what it does not do — a HEAD (llhttp would wait for a body)
    or an upstream URL it does not take (credentials, a query, a non-ASCII host): those go through the
    aiohttp session as before. The session takes no proxy from the environment (no trust_env), so
    neither does the lean client."""
    request = call.request
    settings = call.settings
    upstream = call.upstream
    assert upstream is not None
    target = target_of(upstream)
    method = request.method
    if target is not None and method != "HEAD":
        return await request.app[UPSTREAM_POOL].request(
            method,
            target,
            # The raw path and query exactly as the aiohttp path builds them, after the base URL's path.
            upstream_url(call, target.prefix),
            forward_pairs(request.headers, settings, call.key),
            body,
        )
    timeout = forward_timeout(settings.connect_timeout, settings.read_timeout)
    async with upstream_request(call, body, timeout=timeout) as resp:
        payload = await resp.read()
        return resp.status, resp.headers, payload


async def pass_through(call: Call) -> web.StreamResponse:
    """Reads, media and plain writes: streamed both ways, no checks."""
    request = call.request
    data: Any = request.content if request.body_exists else None
    out: web.StreamResponse | None = None
    try:
        async with upstream_request(call, data) as resp:
            out = web.StreamResponse(
                status=resp.status, reason=resp.reason, headers=end_to_end_headers(resp.headers)
            )
            if resp.content_length is not None:
                out.content_length = resp.content_length
            try:
                await out.prepare(request)
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    await out.write(chunk)
                await out.write_eof()
            except ConnectionError as exc:
                if not client_gone(request):
                    raise
                forget_frames(exc)  # as in forward_allowed: nothing left to send, nothing to log
            return out
    except (TimeoutError, aiohttp.ClientError) as exc:
        timeout = isinstance(exc, TimeoutError)
        request.app[METRICS].upstream_errors.inc("timeout" if timeout else "unreachable")
        if out is not None and out.prepared:
            # The answer had started: all that is left is to cut the connection.
            raise
        forget_frames(exc)
        if timeout:
            return call.refuse(codes.UPSTREAM_TIMEOUT, f"no answer within {call.settings.read_timeout:g}s")
        return call.refuse(codes.UPSTREAM_UNREACHABLE, type(exc).__name__)
