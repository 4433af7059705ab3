"""The protocol of an alert receiver's format, and the generic JSON one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from guard.risk.model import Alert


class AlertFormat(Protocol):
    def render(self, alerts: Sequence[Alert]) -> tuple[dict[str, Any], int]:
        """The message for as many of `alerts` as fit in one; returns (message, alerts used)."""
        ...

    def refusal(self, answer: str) -> str | None:
        """Why a receiver that answered 2xx still did not take the message (its own error), or None."""
        ...


class JsonWebhook:
    """`{"source": "siyu-guard", "alerts": [...]}`; any 2xx answer means delivered."""

    def render(self, alerts: Sequence[Alert]) -> tuple[dict[str, Any], int]:
        return {"source": "siyu-guard", "alerts": [a.to_dict() for a in alerts]}, len(alerts)

    def refusal(self, answer: str) -> str | None:
        return None
