"""A bare aiohttp pass-through proxy: the baseline the guard is measured against in bench/proxy.py.

Same shape as the guard's forwarding (pooled ClientSession, body read whole, relayed answer) but no
parsing, no checks, no counters:  python3 bench/passthrough.py --port 9001 --upstream http://127.0.0.1:9000
"""

from __future__ import annotations

import argparse

import aiohttp
from aiohttp import web

HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length", "upgrade", "te", "trailer"}
SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("session")
UPSTREAM: web.AppKey[str] = web.AppKey("upstream")


async def handle(request: web.Request) -> web.Response:
    body = await request.read()
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
    async with request.app[SESSION].request(
        request.method, request.app[UPSTREAM] + request.rel_url.raw_path_qs, data=body, headers=headers
    ) as resp:
        payload = await resp.read()
        out = {k: v for k, v in resp.headers.items() if k.lower() not in HOP}
        return web.Response(status=resp.status, body=payload, headers=out)


async def session_ctx(app: web.Application) -> object:
    app[SESSION] = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), auto_decompress=False, skip_auto_headers=("User-Agent",)
    )
    yield
    await app[SESSION].close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    app = web.Application(handler_args={"auto_decompress": False})
    app[UPSTREAM] = args.upstream.rstrip("/")
    app.cleanup_ctx.append(session_ctx)  # type: ignore[arg-type]
    app.router.add_route("*", "/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
