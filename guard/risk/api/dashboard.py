"""GET /dashboard: the risk manager's page, static files shipped in guard/risk/dashboard/ (the key is
entered on the page and sent with every call it makes)."""

from __future__ import annotations

from importlib import resources

from aiohttp import web

DASHBOARD_FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}


def _dashboard_file(name: str) -> bytes:
    return resources.files("guard.risk").joinpath("dashboard", name).read_bytes()


async def dashboard(request: web.Request) -> web.StreamResponse:
    name = request.match_info.get("file") or "index.html"
    if name not in DASHBOARD_FILES:
        raise web.HTTPNotFound()
    if request.path == "/dashboard":
        raise web.HTTPFound("/dashboard/")
    return web.Response(
        body=_dashboard_file(name),
        content_type=DASHBOARD_FILES[name],
        charset="utf-8",
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )
