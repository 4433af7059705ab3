"""The WeCom group robot: markdown messages of at most 4096 bytes; the robot answers `{"errcode": 0}`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from guard.risk.model import Alert

WECOM_MARKDOWN_MAX_BYTES = 4096
_LEVEL_LABEL = {
    "redline": ("warning", "红线 redline"),
    "block": ("warning", "拦截 block"),
    "warning": ("comment", "预警 warning"),
    "system": ("info", "系统 system"),
}


def wecom_markdown(alerts: Sequence[Alert]) -> tuple[dict[str, Any], int]:
    """The robot message for as many of `alerts` as fit in 4096 bytes; returns (message, alerts used)."""
    head = f"**风控告警 Risk alerts** ({len(alerts)})"
    lines: list[str] = []
    used = 0
    size = len(head.encode())
    for alert in alerts:
        colour, label = _LEVEL_LABEL.get(alert.level, ("info", alert.level))
        who = " · ".join(
            x for x in (alert.account and f"账号 {alert.account}", alert.staff and f"员工 {alert.staff}") if x
        )
        figures = ""
        if alert.limit is not None:
            figures = f" · {alert.used}/{alert.limit}"
        if alert.attempts is not None:
            figures += f" · attempts {alert.attempts}"
        # An alert sent from memory (Redis unreachable) has no stream id yet.
        ident = f" · id `{alert.id}`" if alert.id else " · 未入库 from memory"
        line = (
            f'> <font color="{colour}">{label}</font> {alert.message_zh}\n'
            f"> {alert.message_en}\n"
            f"> `{alert.rule}`{figures}{(' · ' + who) if who else ''}"
            f"{(' · ' + alert.excerpt) if alert.excerpt else ''}{ident}"
        )
        extra = len(line.encode()) + 2
        if used and size + extra > WECOM_MARKDOWN_MAX_BYTES:
            break
        lines.append(line)
        size += extra
        used += 1
    if used < len(alerts):
        head = f"**风控告警 Risk alerts** ({used}/{len(alerts)})"
    content = "\n\n".join([head, *lines])
    return {"msgtype": "markdown", "markdown": {"content": content[:WECOM_MARKDOWN_MAX_BYTES]}}, used


class WeComRobot:
    def render(self, alerts: Sequence[Alert]) -> tuple[dict[str, Any], int]:
        return wecom_markdown(alerts)

    def refusal(self, answer: str) -> str | None:
        try:
            parsed = json.loads(answer)
        except ValueError:
            return None
        if not isinstance(parsed, dict):
            return None
        errcode = parsed.get("errcode", 0)
        if errcode in (0, None):
            return None
        return f"errcode {errcode}: {parsed.get('errmsg', '')}"
