"""The checks pipeline: frozen → content → attachments → quota; the first refusal wins and nothing is
charged for a request refused before the quota check.

A request may act for several accounts (a WeCom moment task with many senders). It is all-or-nothing:
every account passes the non-quota checks first; then each account is charged in turn (one atomic
check-and-hit per account — on a Redis Cluster each account's keys sit in their own hash slot, so one
script cannot span them), and when a later account is refused the charges already taken for the
earlier ones are refunded before the refusal is answered.

While the counters are unavailable (Redis down), an action whose failure policy is `allow` goes through
uncounted; once every account of the request has passed, each such action is handed to the limiter to be
charged when Redis answers again (`Limiter.charge_later`), so that the counters end up with every action
that was sent; a refund of it (the upstream refused) is queued behind that charge.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date, datetime

from guard.config.settings import FailurePolicy
from guard.core.accounts import AccountDirectory
from guard.core.bundle import Bundle, BundleStore
from guard.core.checks import (
    UNAVAILABLE_RULE,
    AttachmentCheck,
    CheckContext,
    ContentCheck,
    FrozenCheck,
    QuotaCheck,
)
from guard.core.types import Action, Decision, Verdict
from ratelimit import HitResult, Limiter, StorageUnavailable
from ratelimit.windows import span

log = logging.getLogger("guard.pipeline")


class Pipeline:
    def __init__(
        self,
        store: BundleStore,
        limiter: Limiter,
        directory: AccountDirectory,
        failure_policy: Callable[[str], FailurePolicy],
    ) -> None:
        self.store = store
        self.limiter = limiter
        self.directory = directory
        self.checks = (FrozenCheck(directory), ContentCheck(), AttachmentCheck())
        self.quota = QuotaCheck(limiter, directory, failure_policy)
        # The calendar day (the limiter's zone) and the epoch seconds it spans: `today` is worked out again
        # only when the clock leaves it (datetime.fromtimestamp with a ZoneInfo: ~1.5 µs a request).
        self._day: tuple[Limiter | None, float, float, date] = (None, 0.0, 0.0, date.min)
        # The last context made: a request of the same bundle, day and mode reuses it (~0.7 µs a request).
        self._ctx: CheckContext | None = None

    def today(self) -> date:
        limiter = self.limiter
        now = limiter.clock()
        cached, start, end, day = self._day
        if cached is limiter and start <= now < end:
            return day
        day = datetime.fromtimestamp(now, limiter.tz).date()
        bounds = span("day", now, limiter.tz)
        self._day = (limiter, bounds.start, bounds.end, day)
        return day

    def context(self, bundle: Bundle, dry_run: bool = False) -> CheckContext:
        """The checks' context for a request now."""
        today = self.today()
        ctx = self._ctx
        if ctx is None or ctx.bundle is not bundle or ctx.today != today or ctx.dry_run != dry_run:
            ctx = self._ctx = CheckContext(bundle, today, dry_run)
        return ctx

    async def decide(
        self, actions: Sequence[Action], *, dry_run: bool = False, bundle: Bundle | None = None
    ) -> list[Decision]:
        ctx = self.context(bundle or self.store.current, dry_run)
        verdicts: list[tuple[Verdict, ...]] = []
        refused = False
        for action in actions:
            found: tuple[Verdict, ...] = ()  # most actions pass every check: no list made for them
            for check in self.checks:
                verdict = check(action, ctx)
                if verdict.outcome != "allow":
                    found += (verdict,)
                    if verdict.outcome == "refuse":
                        refused = True
                        break
            verdicts.append(found)
        if refused:
            return [Decision(a, v) for a, v in zip(actions, verdicts, strict=True)]

        quota = self.quota
        decisions: list[Decision] = []
        for i, action in enumerate(actions):
            # QuotaCheck.hit's steps written out: one coroutine frame less between here and Redis's reply.
            charges = quota.charges(action, ctx)
            try:
                result: HitResult | None = await self.limiter.hit(
                    action.account, charges, request_id=action.request_id, dry_run=dry_run
                )
            except StorageUnavailable as exc:
                verdict, result = quota.unavailable(action, exc), None
            else:
                assert result is not None
                verdict = quota.verdict(action, result) or await quota.refusal(action, ctx, result)
            found = verdicts[i] if verdict.outcome == "allow" else (*verdicts[i], verdict)
            decisions.append(Decision(action, found, result))
            if verdict.outcome == "refuse":
                await self._roll_back(decisions[:-1], dry_run)
                other = Verdict(
                    check="request",
                    outcome="refuse",
                    code=verdict.code,
                    rule=verdict.rule,
                    reason_zh=f"同一请求中的账号 {action.account} 被拒绝，整个请求未发送："
                    f"{verdict.reason_zh}",
                    reason_en=f"account {action.account} of the same request was refused, so none was sent: "
                    f"{verdict.reason_en}",
                    details={"account": action.account},
                )
                decisions = [replace(d, verdicts=(*d.verdicts, other)) for d in decisions[:-1]] + [
                    decisions[-1]
                ]
                decisions += [
                    Decision(action=a, verdicts=(*verdicts[j], other)) for j, a in enumerate(actions) if j > i
                ]
                return decisions
        if not dry_run:
            for decision in decisions:
                if decision.quota is None and uncounted(decision):
                    action = decision.action
                    self.limiter.charge_later(
                        action.account, quota.charges(action, ctx), request_id=action.request_id
                    )
        return decisions

    async def _roll_back(self, decisions: Sequence[Decision], dry_run: bool) -> None:
        if dry_run:
            return
        for decision in decisions:
            if decision.quota is not None:  # an uncounted one has nothing charged or queued yet
                await self.refund(decision)

    async def refund(self, decision: Decision, *, attempts: bool = False) -> bool:
        """Give back what `decision` charged (the upstream refused, or another account of the request did);
        `attempts`: the upstream asked for a retry, so the hit is no attempt either."""
        result = decision.quota
        if result is None and uncounted(decision):
            action = decision.action
            ctx = self.context(self.store.current)
            charges = self.quota.charges(action, ctx)
            return self.limiter.refund_later(
                action.account, charges, request_id=action.request_id, attempts=attempts
            )
        if not isinstance(result, HitResult) or not result.allowed or result.duplicate:
            return False
        try:
            return await self.limiter.refund(decision.action.account, result, attempts=attempts)
        except StorageUnavailable as exc:
            # The storage makes it later, once Redis answers, when it surely did not happen now.
            log.warning("refund for %s failed for now: %s", decision.action.account, exc)
            return False


def uncounted(decision: Decision) -> bool:
    """Let through without the counters (unavailable; the failure policy allows it)."""
    return decision.quota is None and any(
        v.check == "quota" and v.rule == UNAVAILABLE_RULE and v.outcome == "warn" for v in decision.verdicts
    )
