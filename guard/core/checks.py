"""The checks of the pipeline, each a small object: options in `__init__`, work in `__call__`, a `Verdict`
out (never an exception for a policy answer).

Order (pipeline.py): frozen → content → attachments → quota. Only the quota check writes anything, and only
it is a coroutine (`QuotaCheck.hit`): the others do no I/O and are plain calls (an awaited call costs a
coroutine object per check and request).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from guard.config.settings import FailurePolicy
from guard.core import codes
from guard.core.accounts import AccountDirectory
from guard.core.bundle import Bundle
from guard.core.codes import GuardCode
from guard.core.types import ALLOW, RECIPIENTS_LIMIT, Action, CheckName, ContentMatch, Detail, Verdict
from ratelimit import Charge, HitResult, Limiter, StorageUnavailable
from rules.attachments import AttachmentPolicy, AttachmentRefusal
from rules.limits import RECOVERING, LimitRuleSpec
from rules.ruleset import Match, RuleSet

log = logging.getLogger("guard.checks")


@dataclass(frozen=True, slots=True)
class CheckContext:
    bundle: Bundle
    today: date
    dry_run: bool = False


def refuse(
    check: CheckName,
    code: GuardCode,
    rule: str,
    zh: str,
    en: str,
    *,
    matches: tuple[ContentMatch, ...] = (),
    **details: Detail,
) -> Verdict:
    return Verdict(
        check=check,
        outcome="refuse",
        code=code.code,
        rule=rule,
        reason_zh=f"{code.zh}{zh}",
        reason_en=f"{code.en} {en}".strip(),
        matches=matches,
        details=details,
    )


class FrozenCheck:
    """Refuse every action of a frozen account (registry flag or a risk manager's freeze). The quota
    engine's hit re-checks the shared freeze flag atomically, so a freeze made on another process a
    moment ago is still enforced there."""

    name = "frozen"

    def __init__(self, directory: AccountDirectory) -> None:
        self.directory = directory

    def __call__(self, action: Action, ctx: CheckContext) -> Verdict:
        if self.directory.is_frozen_local(action.account):
            return frozen_verdict(action.account)
        return ALLOW


def frozen_verdict(account: str) -> Verdict:
    return refuse("frozen", codes.ACCOUNT_FROZEN, "account:frozen", "", "", account=account)


class ContentCheck:
    """Scan every text field with the current content rules; a `block` match refuses, `warn` warns."""

    name = "content"

    def __init__(self) -> None:
        # The matches of texts scanned lately under the current rule set: a campaign sends the same text
        # from many accounts, and a scan of three short texts costs ~20 µs a request (bench/stages.py, 16
        # connections: "check: content (scan)" 23 µs) against ~0.3 µs for three lookups. Keyed by the rule
        # set object, so a reload never answers from the old rules; `RuleSet.scan` is a pure function of
        # the text. Bounded: texts up to MAX_SCAN_CACHE_CHARS, at most MAX_SCAN_CACHE_TEXTS of them.
        self._scanned: tuple[RuleSet | None, dict[str, tuple[Match, ...]]] = (None, {})

    def _cache(self, ruleset: RuleSet) -> dict[str, tuple[Match, ...]]:
        cached, scanned = self._scanned
        if cached is not ruleset:
            scanned = {}
            self._scanned = (ruleset, scanned)
        return scanned

    def matches(self, ruleset: RuleSet, text: str) -> tuple[Match, ...]:
        """What `ruleset.scan(text)` matches, from the cache when this rule set scanned the text lately."""
        scanned = self._cache(ruleset)
        found = scanned.get(text)
        return _scan_into(scanned, ruleset, text) if found is None else found

    def __call__(self, action: Action, ctx: CheckContext) -> Verdict:
        blocked: list[ContentMatch] = []
        warned: list[ContentMatch] = []
        ruleset = ctx.bundle.ruleset
        scanned = self._cache(ruleset)
        for field in action.texts:
            text = field.text
            found = scanned.get(text)  # a text scanned lately: no call at all
            if found is None:  # a new text: scanned, without `matches`' second look-up (~0.3 µs a text)
                found = _scan_into(scanned, ruleset, text)
            for m in found:
                item = ContentMatch(field.where, m.category, m.term, m.start, m.end, m.text, m.action)
                (blocked if m.action == "block" else warned).append(item)
        if blocked:
            first = blocked[0]
            return refuse(
                "content",
                codes.CONTENT_BLOCKED,
                f"content:{first.category}",
                f"命中「{first.text}」（类别 {first.category}，位置 {first.where}）。",
                f"Matched {first.text!r} (category {first.category}, in {first.where}).",
                matches=(*blocked, *warned),
            )
        if warned:
            first = warned[0]
            return Verdict(
                check="content",
                outcome="warn",
                rule=f"content:{first.category}",
                reason_zh=f"内容命中提醒词（类别 {first.category}）",
                reason_en=f"the text matched a warn-level term (category {first.category})",
                matches=tuple(warned),
            )
        return ALLOW


class AttachmentCheck:
    """Link domains, mini-program appids, and which attachment kinds may go out (rules/attachments)."""

    name = "attachments"

    def __init__(self) -> None:
        # What the current policy let through, by (kind, url, appid): a campaign sends the same link or mini
        # program many times, and the policy's URL parse and host match cost ~3 µs each. Keyed by the policy
        # object, so a reload never passes what the new policy refuses; refusals (which name where the
        # attachment sat) are always worked out.
        self._passed: tuple[AttachmentPolicy | None, set[tuple[str, str | None, str | None]]] = (None, set())

    def __call__(self, action: Action, ctx: CheckContext) -> Verdict:
        policy = ctx.bundle.attachments
        cached, passed = self._passed
        if cached is not policy:
            passed = set()
            self._passed = (policy, passed)
        for att in action.attachments:
            key = (att.kind, att.url, att.appid)
            if key in passed:
                continue
            refusal = policy.check(att.kind, att.where, url=att.url, appid=att.appid)
            if refusal is not None:
                return attachment_refused(refusal)
            if len(passed) >= MAX_PASSED_ATTACHMENTS:
                passed.clear()
            passed.add(key)
        return ALLOW


# Texts whose matches `ContentCheck` keeps (at most this many, each at most this long) before it starts again.
MAX_SCAN_CACHE_TEXTS = 1024
MAX_SCAN_CACHE_CHARS = 1024


def _scan_into(scanned: dict[str, tuple[Match, ...]], ruleset: RuleSet, text: str) -> tuple[Match, ...]:
    """`ruleset.scan(text)`'s matches, kept in `scanned` (`ContentCheck`'s texts of `ruleset`) when short."""
    found = ruleset.scan(text).matches
    if len(text) <= MAX_SCAN_CACHE_CHARS:
        if len(scanned) >= MAX_SCAN_CACHE_TEXTS:
            scanned.clear()
        scanned[text] = found
    return found


def attachment_refused(refusal: AttachmentRefusal) -> Verdict:
    """The verdict on an attachment the policy refuses: where it sat, in Chinese and English."""
    return refuse(
        "attachments",
        codes.ATTACHMENT_REFUSED,
        refusal.rule,
        f"{refusal.reason_zh}（位置 {refusal.where}）。",
        f"{refusal.reason_en} (in {refusal.where}).",
        where=refusal.where,
    )


# Attachments kept as passed (`AttachmentCheck`) before the set starts again.
MAX_PASSED_ATTACHMENTS = 4096


def format_reset(epoch: int, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(epoch, tz).strftime("%Y-%m-%d %H:%M %Z")


# The rule of a quota verdict given without the counters (Redis unavailable: refused, or allowed by policy).
UNAVAILABLE_RULE = "quota:unavailable"

# An action's charges of 1, the rules a broadcast's recipient count is charged under, and the broadcast's
# whole charges by recipient count (`QuotaCheck`).
_Charges = tuple[tuple[Charge, ...], tuple[LimitRuleSpec, ...], dict[int, tuple[Charge, ...]]]
# Recipient counts whose charges `QuotaCheck` keeps per (limit name, tier, recovering day).
MAX_RECIPIENT_COUNTS = 256

WINDOW_ZH = {"day": "今日", "hour": "本小时", "minute": "本分钟"}
WINDOW_EN = {"day": "today", "hour": "this hour", "minute": "this minute"}


class QuotaCheck:
    """Check-and-charge every limit of the action in one round trip (ratelimit). A refusal names the
    limit, the count and the reset time, and suggests the backup-matrix account with most quota left."""

    name = "quota"

    def __init__(
        self,
        limiter: Limiter,
        directory: AccountDirectory,
        failure_policy: Callable[[str], FailurePolicy],
    ) -> None:
        self.limiter = limiter
        self.directory = directory
        # The settings' per-action Redis-down policy: "refuse" or "allow".
        self.failure_policy = failure_policy
        # The charges of each (limit name, tier, recovering day) under one bundle, whose limits never change:
        # looked up once instead of per request (~6 µs; from here 2-3). The bundle itself is the cache's
        # key, so a reload is never answered from the old rules.
        self._charge_lists: tuple[Bundle | None, dict[tuple[str, str, int | None], _Charges]] = (None, {})

    def charges(self, action: Action, ctx: CheckContext, account: str | None = None) -> tuple[Charge, ...]:
        """What `action` of `account` (default: its own) costs today: 1 under each limit rule of the action
        and, for a broadcast, its recipient count under each rule of `broadcast.recipients`."""
        account = account or action.account
        bundle = ctx.bundle
        since = self.directory.recovering_since(account)
        placement = bundle.placement(account, ctx.today, since)
        name = action.limit_name
        key = (name, placement.tier, placement.days if placement.tier == RECOVERING else None)
        cached, lists = self._charge_lists
        if cached is not bundle:
            lists = {}
            self._charge_lists = (bundle, lists)
        found = lists.get(key)
        if found is None:
            found = lists[key] = self._charges_of(name, account, ctx, since)
        units, per_recipient, by_count = found
        count = action.recipients
        if action.kind == "broadcast" and count > 0 and per_recipient:
            # One tuple per recipient count, so that the limiter knows it again by identity (its shortcut:
            # ~1.2 µs a hit); a count not seen lately costs what building the tuple costs anyway.
            combined = by_count.get(count)
            if combined is None:
                if len(by_count) >= MAX_RECIPIENT_COUNTS:
                    by_count.clear()
                combined = by_count[count] = units + tuple(Charge(rule, count) for rule in per_recipient)
            return combined
        return units

    @staticmethod
    def _charges_of(name: str, account: str, ctx: CheckContext, since: date | None) -> _Charges:
        """The action's charges of 1, and for a broadcast the rules its recipient count is charged under."""
        bundle, today = ctx.bundle, ctx.today
        units = tuple(Charge(rule, 1) for rule in bundle.limit_rules(account, name, today, since))
        per_recipient = (
            bundle.limit_rules(account, RECIPIENTS_LIMIT, today, since) if name == "broadcast" else ()
        )
        return units, per_recipient, {}

    async def hit(self, action: Action, ctx: CheckContext) -> tuple[Verdict, HitResult | None]:
        # Even with no limit for this action the script runs: it reads the account's freeze switch in the
        # same round trip, so a freeze made on another guard process holds here at once.
        # (Pipeline.decide runs these same steps itself, one coroutine frame less.)
        charges = self.charges(action, ctx)
        try:
            result = await self.limiter.hit(
                action.account, charges, request_id=action.request_id, dry_run=ctx.dry_run
            )
        except StorageUnavailable as exc:
            return self.unavailable(action, exc), None
        return self.verdict(action, result) or await self.refusal(action, ctx, result), result

    def unavailable(self, action: Action, exc: StorageUnavailable) -> Verdict:
        """The verdict when the counters could not answer: the action's failure policy decides."""
        # Nothing was charged: a hit the guard gave up on does nothing when it reaches Redis late,
        # and one whose answer was lost is settled once Redis is back (ratelimit.redis).
        if self.failure_policy(action.limit_name) == "allow":
            # Let through uncounted now; the pipeline has it charged once Redis answers again
            # (`Pipeline.decide`), so the counters still see every action that was sent.
            return Verdict(
                check="quota",
                outcome="warn",
                rule=UNAVAILABLE_RULE,
                reason_zh="计数服务不可用，按配置放行（恢复后补记）",
                reason_en="counters unavailable; allowed by the configured failure policy "
                "(counted once they are back)",
                details={"error": str(exc), "reason": exc.kind},
            )
        return refuse(
            "quota",
            codes.COUNTERS_UNAVAILABLE,
            UNAVAILABLE_RULE,
            "",
            "",
            error=str(exc),
            reason=exc.kind,
        )

    def verdict(self, action: Action, result: HitResult) -> Verdict | None:
        """The verdict of a hit the counters answered; None when a limit refused it (`refusal` words that,
        with a read for a backup account)."""
        if result.frozen:
            return frozen_verdict(action.account)
        if not result.allowed:
            return None
        for outcome in result.outcomes:  # `result.crossed` only when a threshold was crossed
            if outcome.crossed:
                break
        else:
            return ALLOW
        crossed = tuple(f"{o.rule}/{o.window}:{t}" for o, t in result.crossed)
        return Verdict(
            check="quota",
            outcome="warn",
            rule=f"quota:{crossed[0].split(':', 1)[0]}",
            reason_zh="接近或超过额度提醒线",
            reason_en="near or over a limit's alert threshold",
            details={"crossed": crossed},
        )

    async def refusal(self, action: Action, ctx: CheckContext, result: HitResult) -> Verdict:
        """The refusal of a hit a limit refused: the limit, the count, the reset time, a backup account."""
        refused = result.refused_by
        outcome = refused[0] if refused else result.outcomes[0]
        tz = self.limiter.tz
        reset = format_reset(outcome.resets_at, tz)
        backup = await self.suggest_backup(action, ctx)
        if backup:
            zh_backup, en_backup = (
                f"可改用备用账号 {backup}（仍有额度）。",
                f" Backup account {backup} still has quota.",
            )
        elif self.directory.matrix_of(action.account):
            zh_backup, en_backup = (
                "备用账号矩阵中暂无仍有额度的账号。",
                " No backup account of its matrix has quota left.",
            )
        else:
            zh_backup, en_backup = "", ""
        over = outcome.used + outcome.cost
        return refuse(
            "quota",
            codes.QUOTA_EXCEEDED,
            f"quota:{outcome.rule}/{outcome.window}",
            f"规则 {outcome.rule}：{WINDOW_ZH.get(outcome.window, outcome.window)}上限 {outcome.limit}，"
            f"已用 {outcome.used}，本次需要 {outcome.cost}，将于 {reset} 重置。{zh_backup}",
            f"Rule {outcome.rule}: limit {outcome.limit} {WINDOW_EN.get(outcome.window, outcome.window)}, "
            f"used {outcome.used}, this request needs {outcome.cost} (would be {over}); resets at {reset}."
            f"{en_backup}",
            limit_rule=outcome.rule,
            window=outcome.window,
            limit=outcome.limit,
            used=outcome.used,
            attempts=outcome.attempts,
            resets_at=outcome.resets_at,
            resets_at_local=reset,
            backup_account=backup,
        )

    async def suggest_backup(self, action: Action, ctx: CheckContext) -> str | None:
        matrix = self.directory.matrix_of(action.account)
        if not matrix:
            return None
        candidates = []
        for member in self.directory.matrix_members(matrix):
            if member == action.account or self.directory.is_frozen_local(member):
                continue
            # The charges themselves, not just their rules: a backup must have room for the whole cost
            # (a broadcast's recipient count), not merely one unit.
            charges = self.charges(action, ctx, member)
            if charges:
                candidates.append((member, charges))
        if not candidates:
            return None
        try:
            return await self.limiter.pick(candidates)
        except StorageUnavailable:
            return None


def merge(verdicts: Sequence[Verdict]) -> tuple[Verdict, ...]:
    return tuple(v for v in verdicts if v.outcome != "allow")
