"""The risk manager's side (alerts, dashboard, accounts and report endpoints), installed into the app.

Being built; `install` is called by `guard.app` once the core app is assembled.
"""

from __future__ import annotations

from aiohttp import web


def install(app: web.Application) -> None:
    """Add the risk endpoints, alert sinks and decision observers to `app`."""
