"""The risk manager's HTTP endpoints on the guard (all JSON; errors bilingual):

GET  /v1/alerts?since=&level=&account=&limit=   alert history, oldest first        (risk, admin)
GET  /v1/alerts/stream                          live alerts as Server-Sent Events  (risk, admin)
GET  /v1/accounts/{id}                          tier, today's usage per rule, frozen (risk, admin)
POST /v1/accounts/{id}/freeze | /unfreeze       stop / resume every guarded action  (admin)
POST /v1/accounts/{id}/recover                  start the 养号 `recovering` tier today (admin)
POST /v1/accounts/{id}/complaints               count a user complaint              (risk, admin)
GET  /v1/matrix/{name}/pick?action=             the matrix account with most quota left (any key)
GET  /v1/reports/daily?day=|from=&to=&format=   the daily compliance report         (risk, admin)
GET  /v1/risk/overview                          everything the dashboard shows      (risk, admin)
GET  /dashboard                                 the dashboard page (static; the key is entered there)
"""

from __future__ import annotations

from aiohttp import web

from guard.risk.api.accounts import (
    add_complaint,
    freeze_account,
    get_account,
    matrix_pick,
    recover_account,
    unfreeze_account,
)
from guard.risk.api.alerts import alert_stream, list_alerts
from guard.risk.api.dashboard import dashboard
from guard.risk.api.reports import daily_report, overview


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/alerts", list_alerts)
    app.router.add_get("/v1/alerts/stream", alert_stream)
    app.router.add_get("/v1/accounts/{account}", get_account)
    app.router.add_post("/v1/accounts/{account}/freeze", freeze_account)
    app.router.add_post("/v1/accounts/{account}/unfreeze", unfreeze_account)
    app.router.add_post("/v1/accounts/{account}/recover", recover_account)
    app.router.add_post("/v1/accounts/{account}/complaints", add_complaint)
    app.router.add_get("/v1/matrix/{name}/pick", matrix_pick)
    app.router.add_get("/v1/reports/daily", daily_report)
    app.router.add_get("/v1/risk/overview", overview)
    app.router.add_get("/dashboard", dashboard)
    app.router.add_get("/dashboard/", dashboard)
    app.router.add_get("/dashboard/{file}", dashboard)
