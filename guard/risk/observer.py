"""The decision observer of the risk side: turns every DecisionRecord into report counters and alerts.

`on_decision` only puts the record on a bounded queue (the proxy path never waits for Redis on our
account); one worker task, owned by the app's cleanup_ctx, drains the queue. Alerts are deduplicated
per (account, rule, level, window) by the store, across every guard process sharing it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from guard.config.risk import RiskSettings
from guard.core.types import DecisionRecord, Verdict
from guard.observe.masking import mask_pii, masked_excerpt
from guard.risk.model import Alert
from guard.risk.reports import Reports, day_of, staff_of_record, tally
from guard.risk.store import AlertStore
from ratelimit import RuleOutcome

log = logging.getLogger("guard.alerts")

RETRY_SECONDS = 1.0
RETRY_MAX = 10_000
# Decisions recorded together (their report counters summed into one Redis round trip).
BATCH_MAX = 500
# After the first decision of a batch arrives, the worker waits this long for more before recording: under
# a steady trickle (one request at a time) that makes one report round trip per interval instead of one
# per decision, which the proxy's own requests would otherwise wait behind. Alerts go out at most this late.
BATCH_LINGER_SECONDS = 0.02
_WINDOW_FORMATS = {"minute": "%Y-%m-%dT%H:%M", "hour": "%Y-%m-%dT%H", "day": "%Y-%m-%d"}
_WINDOW_SECONDS = {"minute": 60.0, "hour": 3600.0, "day": 86400.0}
_RULE_ZH = {
    "add_friend.active": "主动加好友",
    "add_friend.passive": "通过好友申请",
    "broadcast": "群发",
    "broadcast.recipients": "群发人数",
    "moment": "朋友圈",
    "message": "消息",
    "welcome": "欢迎语",
    "template": "话术模板",
}
_WINDOW_ZH = {"minute": "每分钟", "hour": "每小时", "day": "每日"}


def window_label(at: float, window: str, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(at, tz).strftime(_WINDOW_FORMATS.get(window, "%Y-%m-%d"))


def block_excerpt(record: DecisionRecord, verdict: Verdict) -> tuple[str, str]:
    """(category, masked excerpt) of the first hit of a content refusal."""
    if not verdict.matches:
        return verdict.rule.partition(":")[2], ""
    match = verdict.matches[0]
    for field in record.decision.action.texts:
        if field.where == match.where and field.text[match.start : match.end] == match.text:
            return match.category, masked_excerpt(field.text, match.start, match.end)
    return match.category, mask_pii(match.text)[:20]


class RiskObserver:
    """A `DecisionObserver`: queue in the proxy path, alerts and report counters in the worker."""

    alerts: AlertStore
    reports: Reports

    def __init__(
        self,
        settings: RiskSettings,
        tz: ZoneInfo,
        alerts: AlertStore | None = None,
        reports: Reports | None = None,
        staff_of: Callable[[str], str | None] | None = None,
    ) -> None:
        self.settings = settings
        self.tz = tz
        self._staff_of = staff_of
        if alerts is not None and reports is not None:
            self.bind(alerts, reports, staff_of)
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize=settings.queue_size)
        self._retry: collections.deque[tuple[str, Any]] = collections.deque()
        self.dropped = 0
        self._dropped_told = 0
        self.failed = 0
        self.published = 0

    def bind(
        self, alerts: AlertStore, reports: Reports, staff_of: Callable[[str], str | None] | None = None
    ) -> None:
        """Attach the stores (at app start-up, once Redis is connected)."""
        self.alerts = alerts
        self.reports = reports
        if staff_of is not None:
            self._staff_of = staff_of

    # ---- DecisionObserver --------------------------------------------------------------------------

    async def on_decision(self, record: DecisionRecord) -> None:
        self._offer(("decision", record))

    def offer_decision(self, record: DecisionRecord) -> None:
        """`on_decision` without the coroutine: the proxy calls this when an observer has it, since a
        put on the queue can neither block nor fail."""
        self._offer(("decision", record))

    async def on_system(self, event: str, message: str, details: Mapping[str, object]) -> None:
        self._offer(("system", (event, message, dict(details), time.time())))

    def _offer(self, item: tuple[str, Any]) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("risk observer queue full: %d decisions not counted", self.dropped)

    # ---- the worker ---------------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            if self._retry:
                try:
                    first = await asyncio.wait_for(self._queue.get(), RETRY_SECONDS)
                except TimeoutError:
                    await self._flush_retry()
                    continue
            else:
                first = await self._queue.get()
            if self._queue.qsize() < BATCH_MAX - 1:
                await asyncio.sleep(BATCH_LINGER_SECONDS)
            # Whatever else is queued goes in the same batch: one Redis round trip for its counters.
            batch = [first]
            while len(batch) < BATCH_MAX and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            if self._retry:
                await self._flush_retry()
            try:
                await self._handle_batch(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failed += len(batch)
                log.warning("risk observer could not record %d decisions: %s", len(batch), exc)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _handle_batch(self, batch: list[tuple[str, Any]]) -> None:
        counts: dict[date, dict[str, int]] = {}
        alerts: list[tuple[Alert, float]] = []
        for kind, payload in batch:
            if kind == "decision":
                record = self._with_staff(payload)
                if record.dry_run:
                    continue
                day = counts.setdefault(day_of(record.at, self.tz), {})
                for name, n in tally(record).items():
                    day[name] = day.get(name, 0) + n
                alerts.extend(self.alerts_for(record))
            else:
                alerts.append(self.system_alert(*payload))
        if self.dropped > self._dropped_told:
            lost, self._dropped_told = self.dropped - self._dropped_told, self.dropped
            alerts.append(
                self.system_alert(
                    "risk_backlog_full",
                    f"{lost} decisions were not counted: the risk side could not keep up",
                    {"dropped_total": self.dropped},
                    time.time(),
                )
            )
        for day_, day_counts in counts.items():
            if day_counts:
                await self._attempt(("counts", (day_, day_counts)))
        for alert, ttl in alerts:
            await self._attempt(("alert", (alert, ttl)))

    async def drain(self) -> None:
        """Wait until everything queued so far is handled (tests, shutdown)."""
        await self._queue.join()

    # A step that failed (Redis unreachable) waits here and is retried in order, so a Redis outage
    # delays report counters and alerts instead of losing them (up to RETRY_MAX steps).
    async def _attempt(self, step: tuple[str, Any]) -> None:
        if self._retry:
            self._keep(step)
            return
        try:
            await self._do(step)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("risk observer: %s not recorded yet (%s); will retry", step[0], exc)
            self._keep(step)

    def _keep(self, step: tuple[str, Any]) -> None:
        if len(self._retry) >= RETRY_MAX:
            self._retry.popleft()
            self.dropped += 1
        self._retry.append(step)

    async def _do(self, step: tuple[str, Any]) -> None:
        kind, payload = step
        if kind == "counts":
            await self.reports.store.add(*payload)
        else:
            await self.publish(*payload)

    async def _flush_retry(self) -> None:
        while self._retry:
            try:
                await self._do(self._retry[0])
            except asyncio.CancelledError:
                raise
            except Exception:
                return
            self._retry.popleft()

    @property
    def waiting(self) -> int:
        """Steps waiting for Redis to come back."""
        return len(self._retry)

    async def publish(self, alert: Alert, ttl: float) -> Alert | None:
        stored = await self.alerts.publish(alert, dedup_ttl=ttl)
        if stored is not None:
            self.published += 1
            log.warning(
                "alert %s %s account=%s staff=%s rule=%s used=%s limit=%s attempts=%s excerpt=%s",
                stored.id, stored.level, stored.account, stored.staff, stored.rule,
                stored.used, stored.limit, stored.attempts, stored.excerpt,
            )  # fmt: skip
        return stored

    def _with_staff(self, record: DecisionRecord) -> DecisionRecord:
        if record.staff is not None:
            return record
        staff = None
        if self._staff_of is not None:
            with contextlib.suppress(Exception):
                staff = self._staff_of(record.decision.action.account)
        # The registry's owner of the account, else the key that made the request.
        staff = staff or staff_of_record(record)
        return record if staff is None else replace(record, staff=staff)

    async def handle_decision(self, record: DecisionRecord) -> None:
        """Record one decision now (the worker does this in batches)."""
        await self._handle_batch([("decision", record)])

    async def handle_system(self, event: str, message: str, details: dict[str, Any], at: float) -> None:
        await self._handle_batch([("system", (event, message, details, at))])

    def system_alert(
        self, event: str, message: str, details: Mapping[str, Any], at: float
    ) -> tuple[Alert, float]:
        seconds = self.settings.system_alert_seconds
        bucket = str(int(at // seconds)) if seconds > 0 else str(at)
        safe = {k: mask_pii(str(v)[:400])[:200] for k, v in details.items()}
        alert = Alert(
            level="system",
            kind="system",
            rule=event,
            message_zh=f"风控系统异常：{mask_pii(message[:600])[:300]}",
            message_en=f"Guard health: {mask_pii(message[:600])[:300]}",
            window=bucket,
            at=at,
            details=safe,
        )
        return alert, seconds

    def alerts_for(self, record: DecisionRecord) -> list[tuple[Alert, float]]:
        """The alerts one decision raises, each with its dedup lifetime (pure but for the clock)."""
        out = self._quota_alerts(record)
        refusal = record.decision.refusal
        if refusal is not None and refusal.check == "content":
            out.append(self._content_alert(record, refusal))
        elif refusal is not None and refusal.check == "attachments":
            out.append(self._attachment_alert(record, refusal))
        if record.disposition in ("upstream_timeout", "upstream_error"):
            out.append(self._upstream_alert(record))
        return out

    def _quota_alerts(self, record: DecisionRecord) -> list[tuple[Alert, float]]:
        out: list[tuple[Alert, float]] = []
        quota = record.decision.quota
        for outcome in quota.outcomes if quota is not None else ():
            crossed = set(outcome.crossed)
            if not outcome.allowed and outcome.mode == "enforce":
                crossed.add("limit")  # a refusal at the limit is the redline, whichever hit crossed it
            for threshold in ("warn", "limit", "alert_over"):
                if threshold in crossed:
                    out.append(self._quota_alert(record, outcome, threshold))
        return out

    def _content_alert(self, record: DecisionRecord, refusal: Verdict) -> tuple[Alert, float]:
        action = record.decision.action
        category, excerpt = block_excerpt(record, refusal)
        window = self.settings.block_alert_window
        alert = Alert(
            level="block",
            kind="content",
            rule=f"content:{category}" if category else refusal.rule or "content",
            message_zh=f"已拦截违规内容（{category or '敏感词'}），账号 {action.account}",
            message_en=f"Blocked a message with a prohibited term ({category or 'sensitive'}) "
            f"from account {action.account}",
            account=action.account,
            staff=record.staff,
            window=window_label(record.at, window, self.tz),
            excerpt=excerpt,
            at=record.at,
            details={"action": action.kind, "code": refusal.code},
        )
        return alert, _WINDOW_SECONDS[window]

    def _attachment_alert(self, record: DecisionRecord, refusal: Verdict) -> tuple[Alert, float]:
        action = record.decision.action
        alert = Alert(
            level="block",
            kind="attachment",
            rule=refusal.rule or "attachment",
            message_zh=f"已拦截不合规附件，账号 {action.account}",
            message_en=f"Blocked an attachment that is not allowed, account {action.account}",
            account=action.account,
            staff=record.staff,
            window=window_label(record.at, "hour", self.tz),
            at=record.at,
            details={"action": action.kind, "code": refusal.code},
        )
        return alert, 3600.0

    def _upstream_alert(self, record: DecisionRecord) -> tuple[Alert, float]:
        seconds = self.settings.system_alert_seconds or 300.0
        disposition, status = record.disposition, record.upstream_status
        alert = Alert(
            level="system",
            kind="system",
            rule=f"upstream:{disposition}",
            message_zh=f"平台接口异常（{disposition}，状态 {status}）",
            message_en=f"Upstream failing ({disposition}, status {status})",
            window=str(int(record.at // seconds)),
            at=record.at,
            details={"profile": record.decision.action.profile},
        )
        return alert, seconds

    def _quota_alert(
        self, record: DecisionRecord, outcome: RuleOutcome, threshold: str
    ) -> tuple[Alert, float]:
        action = record.decision.action
        rule = f"{outcome.rule}/{outcome.window}"
        name_zh = _RULE_ZH.get(outcome.rule, outcome.rule)
        win_zh = _WINDOW_ZH.get(outcome.window, outcome.window)
        resets = datetime.fromtimestamp(outcome.resets_at, self.tz).strftime("%m-%d %H:%M")
        if threshold == "warn":
            level, zh, en = (
                "warning",
                f"账号 {action.account} {win_zh}{name_zh}已用 {outcome.used}/{outcome.limit}，接近上限",
                f"Account {action.account}: {outcome.rule} per {outcome.window} at {outcome.used}/"
                f"{outcome.limit}, near the limit",
            )
        elif threshold == "limit":
            level, zh, en = (
                "redline",
                f"账号 {action.account} {win_zh}{name_zh}已达上限 {outcome.limit}（{resets} 重置）",
                f"Account {action.account} reached its {outcome.rule} limit of {outcome.limit} per "
                f"{outcome.window} (resets {resets})",
            )
        else:
            rule = f"{rule}:attempts"
            level, zh, en = (
                "redline",
                f"账号 {action.account} {win_zh}{name_zh}尝试 {outcome.attempts} 次，超过告警线",
                f"Account {action.account} attempted {outcome.rule} {outcome.attempts} times this "
                f"{outcome.window}, over the alert line",
            )
        ttl = max(1.0, float(outcome.resets_at) - time.time() + 60.0)
        alert = Alert(
            level=level,  # type: ignore[arg-type]
            kind="quota",
            rule=rule,
            message_zh=zh,
            message_en=en,
            account=action.account,
            staff=record.staff,
            window=str(outcome.resets_at),
            used=int(outcome.used),
            limit=int(outcome.limit),
            attempts=int(outcome.attempts),
            at=record.at,
            details={"action": action.kind, "mode": outcome.mode, "resets_at": outcome.resets_at},
        )
        return alert, ttl
