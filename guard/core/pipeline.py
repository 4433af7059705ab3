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

    def today(self) -> date:
        return datetime.fromtimestamp(self.limiter.clock(), self.limiter.tz).date()

    async def decide(
        self, actions: Sequence[Action], *, dry_run: bool = False, bundle: Bundle | None = None
    ) -> list[Decision]:
        ctx = CheckContext(bundle=bundle or self.store.current, today=self.today(), dry_run=dry_run)
        verdicts: list[list[Verdict]] = []
        refused = False
        for action in actions:
            found: list[Verdict] = []
            for check in self.checks:
                verdict = check(action, ctx)
                if verdict.outcome != "allow":
                    found.append(verdict)
                if verdict.outcome == "refuse":
                    refused = True
                    break
            verdicts.append(found)
        if refused:
            return [Decision(action=a, verdicts=tuple(v)) for a, v in zip(actions, verdicts, strict=True)]

        decisions: list[Decision] = []
        for i, action in enumerate(actions):
            verdict, result = await self.quota.hit(action, ctx)
            found = verdicts[i] + ([verdict] if verdict.outcome != "allow" else [])
            decisions.append(Decision(action=action, verdicts=tuple(found), quota=result))
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
                if uncounted(decision):
                    action = decision.action
                    self.limiter.charge_later(
                        action.account, self.quota.charges(action, ctx), request_id=action.request_id
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
            ctx = CheckContext(bundle=self.store.current, today=self.today())
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
