"""Where alerts go besides the feed: webhooks. One small protocol, `AlertFormat` (what a receiver gets for a
batch of alerts and whether its answer says it took them), a format per kind of receiver (a WeCom group
robot, a generic JSON webhook), and one `WebhookSink` that delivers the alert stream through any of them.
"""

from __future__ import annotations

from guard.risk.sinks.delivery import RateGate, WebhookSink
from guard.risk.sinks.format import AlertFormat, JsonWebhook
from guard.risk.sinks.wecom import WeComRobot, wecom_markdown

__all__ = ["AlertFormat", "JsonWebhook", "RateGate", "WeComRobot", "WebhookSink", "wecom_markdown"]
