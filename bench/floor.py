"""The floor of a guard on this stack: bench/passthrough.py plus only the work no guard can skip.

bench/proxy.py measures it beside the bare pass-through and `guard serve`, to show how far the guard's
throughput can rise at all on aiohttp and CPython: whatever the guard does beyond this is its own cost,
and the floor ÷ pass-through ratio is the ceiling of the guard ÷ pass-through ratio (issue 13). Per
request, on top of the pass-through's read / forward / relay, exactly what DESIGN.md makes every guarded
request do, each the cheapest way this stack offers:

* the body parsed as JSON (plain `json.loads`: no duplicate-key or constant checks, no route profile);
* every text a customer would see (the text content, the link's title and description) scanned with the
  shipped rules (`RuleSet.scan`, the guard's own scanner: no cheaper one exists);
* one atomic Redis call per account: an EVALSHA of a three-line counter script (INCRBY + EXPIRE) over
  the guard's own pipelined connection (`ratelimit.connection.PipelinedNode`), awaited before the
  forward — no windows, plans, breaker, refunds or settle lists;
* one JSON audit line a request, written with one `os.write` to a file (no structlog, no masking);
* the forward through the guard's own lean client (`guard.http.upstream.UpstreamPool`, the cheapest this
  stack has: the guard forwards through it too), the answer relayed as the pass-through relays it.

No auth, metrics, observers, risk alerts or reports. Not a product: a measuring stick.

    python3 bench/floor.py --port 9002 --upstream http://127.0.0.1:9000 --redis redis://127.0.0.1:6379/0 \
        --audit /tmp/floor.log
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from passthrough import CONNECT_TIMEOUT, HOP, READ_TIMEOUT, UPSTREAM

from guard.http.upstream import UpstreamPool, target_of
from ratelimit.connection import ConnectionSpec, PipelinedNode
from rules import RuleSet, load_rules

COUNTER = b"""
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if n == tonumber(ARGV[1]) then redis.call('EXPIRE', KEYS[1], 86400) end
return n
"""
COUNTER_SHA = hashlib.sha1(COUNTER).hexdigest()
REDIS: web.AppKey[PipelinedNode] = web.AppKey("redis")
POOL: web.AppKey[UpstreamPool] = web.AppKey("pool")
RULES: web.AppKey[RuleSet] = web.AppKey("rules")
AUDIT_FD: web.AppKey[int] = web.AppKey("audit_fd")


def texts_of(data: dict[str, Any]) -> list[str]:
    """The customer-facing texts of an add_msg_template body: the text and each link's title / desc."""
    out = [data.get("text", {}).get("content", "")]
    for item in data.get("attachments", ()):
        link = item.get("link") or {}
        out += [link.get("title", ""), link.get("desc", "")]
    return [t for t in out if t]


async def handle(request: web.Request) -> web.Response:
    app = request.app
    body = await request.read()
    data = json.loads(body)
    ruleset = app[RULES]
    hits = sum(len(ruleset.scan(text).matches) for text in texts_of(data))
    account = data.get("sender", "")
    recipients = len(data.get("external_userid", ()))
    count = await app[REDIS].call(None, "EVALSHA", COUNTER_SHA, 1, f"floor:{account}", recipients)
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP]
    target = target_of(app[UPSTREAM])
    assert target is not None
    status, answer_headers, payload = await app[POOL].request(
        request.method, target, target.prefix + request.rel_url.raw_path_qs, headers, body
    )
    out = {k: v for k, v in answer_headers.items() if k.lower() not in HOP}
    answer = web.Response(status=status, body=payload, headers=out)
    line = {
        "event": "decision",
        "timestamp": time.time(),
        "account": account,
        "recipients": recipients,
        "hits": hits,
        "count": count,
        "decision": "allow",
        "upstream_status": status,
        "path": request.path,
    }
    os.write(app[AUDIT_FD], json.dumps(line, ensure_ascii=False).encode() + b"\n")
    return answer


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--audit", required=True, help="file the audit lines are appended to")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    spec = ConnectionSpec.from_url(args.redis)
    if spec is None:
        parser.error(f"--redis: not a redis:// URL: {args.redis}")

    async def resources(app: web.Application) -> AsyncIterator[None]:
        app[POOL] = UpstreamPool(CONNECT_TIMEOUT, READ_TIMEOUT)
        app[REDIS] = node = PipelinedNode(spec, connect_timeout=1.0, timeout=1.0)
        await node.call(None, "SCRIPT", "LOAD", COUNTER)
        app[AUDIT_FD] = os.open(args.audit, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        yield
        await app[POOL].close()
        await node.aclose()
        os.close(app[AUDIT_FD])

    app = web.Application(handler_args={"auto_decompress": False}, client_max_size=1024 * 1024)
    app[UPSTREAM] = args.upstream.rstrip("/")
    app[RULES] = load_rules()
    app.cleanup_ctx.append(resources)
    app.router.add_route("*", "/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None, backlog=1024)


if __name__ == "__main__":
    main()
