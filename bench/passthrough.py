"""A bare aiohttp pass-through proxy: the baseline the guard is measured against in bench/proxy.py.

An ordinary aiohttp proxy with the guard's own forwarding settings, so that the comparison measures the
checks and nothing else: the same pooled client (`guard.proxy.client_session`: connector, timeouts, no
auto-decompression, no cookie jar), the same per-request timeout, raw request bodies, uvloop like
`guard serve`, no access log. The body is read whole, forwarded, and the answer relayed, with hop-by-hop
headers dropped both ways. No parsing, no checks, no counters, no log lines:

    python3 bench/passthrough.py --port 9001 --upstream http://127.0.0.1:9000 [--reuse-port]

Two of them started with `--reuse-port` on one port are the pass-through's own two-process figure: what
this machine gives a second process of a proxy at all, the baseline of `guard serve --workers 2`.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from guard.config.settings import Settings
from guard.http.proxy import client_session, forward_timeout

HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length", "upgrade", "te", "trailer"}
SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("session")
UPSTREAM: web.AppKey[str] = web.AppKey("upstream")
# The guard's defaults, as `guard serve` in bench/proxy.py runs with them.
CONNECT_TIMEOUT, READ_TIMEOUT = Settings().connect_timeout, Settings().read_timeout


async def handle(request: web.Request) -> web.Response:
    body = await request.read()
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
    async with request.app[SESSION].request(
        request.method,
        request.app[UPSTREAM] + request.rel_url.raw_path_qs,
        data=body,
        headers=headers,
        allow_redirects=False,
        timeout=forward_timeout(CONNECT_TIMEOUT, READ_TIMEOUT),
    ) as resp:
        payload = await resp.read()
        out = {k: v for k, v in resp.headers.items() if k.lower() not in HOP}
        return web.Response(status=resp.status, body=payload, headers=out)


async def session_ctx(app: web.Application) -> AsyncIterator[None]:
    app[SESSION] = client_session(CONNECT_TIMEOUT, READ_TIMEOUT)
    yield
    await app[SESSION].close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument(
        "--reuse-port",
        action="store_true",
        help="bind with SO_REUSEPORT, so that several of these processes share the port (as the workers of "
        "`guard serve --workers N` do)",
    )
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    app = web.Application(handler_args={"auto_decompress": False}, client_max_size=1024 * 1024)
    app[UPSTREAM] = args.upstream.rstrip("/")
    app.cleanup_ctx.append(session_ctx)
    app.router.add_route("*", "/{tail:.*}", handle)
    web.run_app(
        app,
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        backlog=1024,
        reuse_port=args.reuse_port or None,
    )


if __name__ == "__main__":
    main()
