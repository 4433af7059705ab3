"""What the risk side holds while the app runs: one `RiskState` per app, behind `guard.http.keys.RISK`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from guard.config.risk import RiskSettings
from guard.risk.observer import RiskObserver
from guard.risk.reports import Reports
from guard.risk.sinks import WebhookSink
from guard.risk.store import AlertStore


@dataclass
class RiskState:
    """Everything the risk side holds while the app runs (one per app, behind `RISK`).

    Created by `install` before the app starts (app state cannot change once it runs); the stores are
    bound at start-up, when the Redis connection exists.
    """

    settings: RiskSettings
    observer: RiskObserver
    alerts: AlertStore = field(default=None)  # type: ignore[assignment]
    reports: Reports = field(default=None)  # type: ignore[assignment]
    sinks: list[WebhookSink] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    streams: set[asyncio.Task[Any]] = field(default_factory=set)
