"""Settings of the risk side, read from the `[risk]` table of the guard's TOML config.

```toml
[risk]
retention_days = 90          # daily report aggregates
alert_maxlen = 100000        # alerts kept in the stream / ring buffer
complaints_per_day = 3       # a redline alert when an account gets this many complaints in a day
complaints_per_week = 5      #   … or in the last 7 days
complaints_auto_freeze = false
block_alert_window = "hour"  # one `block` alert per (account, category) per minute | hour | day

[[risk.webhooks]]
name = "risk-group"
kind = "wecom"               # WeCom group robot markdown; "json" posts {"alerts": [...]}
url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=..."
levels = ["redline", "block", "system"]   # default: every level
per_window = 20              # at most this many messages …
window_seconds = 60          # … in any window of this length (the robot's cap is 20/min)
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from guard.config.errors import SettingsError

AlertLevel = Literal["warning", "redline", "block", "system"]
ALERT_LEVELS: tuple[str, ...] = get_args(AlertLevel)
WebhookKind = Literal["wecom", "json"]
AlertWindow = Literal["minute", "hour", "day"]


class RiskSettingsError(SettingsError):
    """A `[risk]` setting is wrong; `key` is the full dotted name (`risk.webhook.url`)."""

    def __init__(self, key: str, reason: str, source: str = "") -> None:
        super().__init__(f"risk.{key}" if key else "risk", reason, source)


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    name: str
    url: str
    kind: WebhookKind = "wecom"
    levels: tuple[str, ...] = ALERT_LEVELS
    per_window: int = 20
    window_seconds: float = 60.0
    timeout: float = 10.0
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    # Most alerts in one message (WeCom markdown content is capped at 4096 bytes; we also cut by size).
    batch_max: int = 20


@dataclass(frozen=True, slots=True)
class RiskSettings:
    retention_days: int = 90
    alert_maxlen: int = 100_000
    complaints_per_day: int = 3
    complaints_per_week: int = 5
    complaints_auto_freeze: bool = False
    block_alert_window: AlertWindow = "hour"
    # One `system` alert per (event, message) in this many seconds.
    system_alert_seconds: float = 300.0
    # Decisions waiting for the alert/report worker; beyond this they are counted as dropped.
    queue_size: int = 10_000
    webhooks: tuple[WebhookSettings, ...] = field(default_factory=tuple)


def _int(key: str, value: object, source: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RiskSettingsError(
            key, f"must be a whole number between {low} and {high}, got {value!r}", source
        )
    return value


def _float(key: str, value: object, source: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise RiskSettingsError(key, f"must be a number between {low} and {high}, got {value!r}", source)
    return float(value)


def _webhook(index: int, raw: object, source: str) -> WebhookSettings:
    key = f"webhooks[{index}]"
    if not isinstance(raw, Mapping):
        raise RiskSettingsError(key, "must be a table ([[risk.webhooks]])", source)
    known = {f for f in WebhookSettings.__dataclass_fields__}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise RiskSettingsError(f"{key}.{unknown[0]}", "unknown setting", source)
    url = raw.get("url")
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        raise RiskSettingsError(f"{key}.url", f"must be an http(s) URL, got {url!r}", source)
    kind = raw.get("kind", "wecom")
    if kind not in ("wecom", "json"):
        raise RiskSettingsError(f"{key}.kind", f"must be 'wecom' or 'json', got {kind!r}", source)
    levels = raw.get("levels", list(ALERT_LEVELS))
    if not isinstance(levels, list) or not levels or any(lv not in ALERT_LEVELS for lv in levels):
        raise RiskSettingsError(
            f"{key}.levels", f"must be a list drawn from {', '.join(ALERT_LEVELS)}", source
        )
    name = raw.get("name", f"webhook{index}")
    if not isinstance(name, str) or not name or any(c.isspace() or c in "{}" for c in name):
        raise RiskSettingsError(f"{key}.name", "must be a plain name", source)
    return WebhookSettings(
        name=name,
        url=url,
        kind=kind,
        levels=tuple(levels),
        per_window=_int(f"{key}.per_window", raw.get("per_window", 20), source, 1, 10_000),
        window_seconds=_float(f"{key}.window_seconds", raw.get("window_seconds", 60.0), source, 0.01, 86_400),
        timeout=_float(f"{key}.timeout", raw.get("timeout", 10.0), source, 0.01, 600),
        backoff_initial=_float(
            f"{key}.backoff_initial", raw.get("backoff_initial", 1.0), source, 0.001, 3600
        ),
        backoff_max=_float(f"{key}.backoff_max", raw.get("backoff_max", 60.0), source, 0.001, 86_400),
        batch_max=_int(f"{key}.batch_max", raw.get("batch_max", 20), source, 1, 1000),
    )


def parse_risk_settings(raw: Mapping[str, Any] | None, source: str = "") -> RiskSettings:
    """Validate a `[risk]` table; every error names the key."""
    if raw is None:
        return RiskSettings()
    if not isinstance(raw, Mapping):
        raise RiskSettingsError("", "must be a table ([risk])", source)
    known = set(RiskSettings.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise RiskSettingsError(unknown[0], "unknown setting", source)
    window = raw.get("block_alert_window", "hour")
    if window not in ("minute", "hour", "day"):
        raise RiskSettingsError("block_alert_window", f"must be minute, hour or day, got {window!r}", source)
    auto_freeze = raw.get("complaints_auto_freeze", False)
    if not isinstance(auto_freeze, bool):
        raise RiskSettingsError(
            "complaints_auto_freeze", f"must be true or false, got {auto_freeze!r}", source
        )
    hooks = raw.get("webhooks", [])
    if not isinstance(hooks, list):
        raise RiskSettingsError("webhooks", "must be an array of tables ([[risk.webhooks]])", source)
    webhooks = tuple(_webhook(i, h, source) for i, h in enumerate(hooks))
    names = [w.name for w in webhooks]
    if len(set(names)) != len(names):
        raise RiskSettingsError("webhooks", "webhook names must be unique", source)
    return RiskSettings(
        retention_days=_int("retention_days", raw.get("retention_days", 90), source, 1, 3660),
        alert_maxlen=_int("alert_maxlen", raw.get("alert_maxlen", 100_000), source, 10, 10_000_000),
        complaints_per_day=_int("complaints_per_day", raw.get("complaints_per_day", 3), source, 1, 1_000_000),
        complaints_per_week=_int(
            "complaints_per_week", raw.get("complaints_per_week", 5), source, 1, 1_000_000
        ),
        complaints_auto_freeze=auto_freeze,
        block_alert_window=window,
        system_alert_seconds=_float(
            "system_alert_seconds", raw.get("system_alert_seconds", 300.0), source, 0, 86_400
        ),
        queue_size=_int("queue_size", raw.get("queue_size", 10_000), source, 1, 10_000_000),
        webhooks=webhooks,
    )
