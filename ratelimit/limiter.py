"""The limiter: rules and charges in, one atomic storage call, outcomes out."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from typing import cast
from zoneinfo import ZoneInfo

from ratelimit.storage import (
    STATUS_DUPLICATE,
    STATUS_FROZEN,
    HitPlan,
    PlanItem,
    RawRule,
    ReadPlan,
    RefundItem,
    RefundPlan,
    Storage,
    account_tag,
    counter_key,
    counter_suffix,
    decode_numbers,
)
from ratelimit.types import (
    THRESHOLDS,
    Charge,
    HitResult,
    LimitRule,
    Mode,
    RuleOutcome,
    Threshold,
    Window,
    is_count,
    new_tuple,
    rule_problem,
)
from ratelimit.windows import Span, span


def _as_charge(item: Charge | LimitRule | tuple[LimitRule, int]) -> Charge:
    """A Charge from a Charge, a (rule, cost) pair, or a bare rule (cost 1)."""
    if isinstance(item, Charge):
        return item
    if isinstance(item, tuple):
        return Charge(*item)
    return Charge(item, 1)


def _crossed_slow(mask: int) -> tuple[Threshold, ...]:
    return tuple(t for bit, t in enumerate(THRESHOLDS) if mask & (1 << bit))


# Every mask the scripts can return, decoded once.
_CROSSED = tuple(_crossed_slow(mask) for mask in range(1 << len(THRESHOLDS)))


def _crossed(mask: int) -> tuple[Threshold, ...]:
    return _CROSSED[mask] if 0 <= mask < len(_CROSSED) else _crossed_slow(mask)


def _outcome(fields: tuple[str, Window, int, Mode, int, int], raw: RawRule) -> RuleOutcome:
    """One rule's outcome from its planned (name, window, limit, mode, cost, end) and Redis's numbers.
    Positional, without RuleOutcome's Python-level `__new__`: this runs for every rule of every hit."""
    name, window, limit, mode, cost, end = fields
    used, attempts, crossed, allowed = raw
    outcome: RuleOutcome = new_tuple(
        RuleOutcome,
        (
            name,
            window,
            used,
            limit,
            max(0, limit - used),
            attempts,
            allowed,
            mode,
            _crossed(crossed),
            end,
            cost,
        ),
    )
    return outcome


def _is_value_type(kind: type) -> bool:
    """Are objects of this type immutable values (a frozen dataclass, a tuple such as a NamedTuple)? Only
    their plans are remembered across hits: a rule object whose fields could change is read every time."""
    if issubclass(kind, tuple):
        return True
    params = getattr(kind, "__dataclass_params__", None)
    return dataclasses.is_dataclass(kind) and bool(getattr(params, "frozen", False))


class _Second:
    """The plan of one list of charges for the hits in one second (`second` <= now < `second` + 1): every
    window starts and ends on a whole second, so the spans and the expiries (`Span.ttl`) are the same
    throughout it. Never changed once made (but for the descriptor, computed on first use): a hit reads the
    one it started with, even after awaiting the storage while another hit made the next second's."""

    __slots__ = (
        "day_end",
        "descriptor",
        "ends",
        "items",
        "outcome_fields",
        "request_ttl",
        "second",
        "suffixes",
    )

    def __init__(
        self,
        second: float,
        ends: tuple[int, ...],
        suffixes: tuple[str, ...],
        items: tuple[PlanItem, ...],
        outcome_fields: tuple[tuple[str, Window, int, Mode, int, int], ...],
        day_end: int,
        request_ttl: int,
        descriptor: str,
    ) -> None:
        self.second = second
        self.ends = ends  # the end of each charge's window
        self.suffixes = suffixes  # each charge's counter key, less the account tag
        self.items = items
        self.outcome_fields = outcome_fields  # each charge's (name, window, limit, mode, cost, end)
        self.day_end = day_end
        self.request_ttl = request_ttl
        self.descriptor = descriptor  # "" until a hit with a request id needs it


class _Charges:
    """One list of charges (the same rule objects and costs), checked once, with its plan for the second in
    which it was last hit. The guard charges every request of an action under the same few rule objects:
    what their plan needs besides the account — the windows, the key suffixes, the expiries, the items, the
    descriptor — is computed once a second instead of once a hit (bench/stages.py, 16 connections:
    "quota: limiter plan" 29 -> 16 µs a request)."""

    __slots__ = ("charges", "planned")

    def __init__(self, charges: tuple[Charge, ...]) -> None:
        # Also keeps the rules alive: the cache of these is keyed by the rules' id().
        self.charges = charges
        self.planned: _Second | None = None


class Limiter:
    """Per-account counters over calendar windows in one timezone.

    `clock` returns epoch seconds; inject one to move through midnights in tests.
    """

    def __init__(
        self, storage: Storage, *, tz: str = "Asia/Shanghai", clock: Callable[[], float] = time.time
    ):
        self.storage = storage
        self.tz = ZoneInfo(tz)
        self.clock = clock
        # Per-call work that rarely changes: the current span of each window, and rules already checked.
        self._spans: dict[str, Span] = {}
        self._valid_rules: set[LimitRule] = set()
        # Lists of charges already checked, by their rules' id() and costs (see `_Charges`).
        self._charge_lists: dict[tuple[tuple[int, int], ...], _Charges] = {}
        self._value_types: dict[type, bool] = {}
        # Tuples of charges already known, by id() (see `_known_charges`).
        self._tuples: dict[int, tuple[tuple[object, ...], _Charges]] = {}

    def _span(self, window: Window, now: float) -> Span:
        current = self._spans.get(window)
        if current is None or not current.start <= now < current.end:
            current = self._spans[window] = span(window, now, self.tz)
        return current

    def _valid(self, rule: LimitRule) -> str | None:
        try:
            if rule in self._valid_rules:
                return None
        except TypeError:  # an unhashable rule object: check it every time
            return rule_problem(rule)
        problem = rule_problem(rule)
        if problem is None:
            if len(self._valid_rules) > 4096:  # rules are replaced on reload; keep the cache bounded
                self._valid_rules.clear()
            self._valid_rules.add(rule)
        return problem

    def _check(self, account: str, charges: Sequence[Charge]) -> None:
        if not account:
            raise ValueError("account must be a non-empty string")
        seen: set[tuple[str, str]] = set()
        for charge in charges:
            problem = self._valid(charge.rule)
            if problem is not None:
                raise ValueError(f"rule {charge.rule.name!r}: {problem}")
            if not is_count(charge.cost):
                raise ValueError(f"rule {charge.rule.name!r}: cost must be a whole number from 0 to 2**53-1")
            ident = (charge.rule.name, charge.rule.window)
            if ident in seen:
                raise ValueError(f"rule {ident[0]!r} ({ident[1]}) is charged twice in one hit")
            seen.add(ident)

    async def hit(
        self,
        account: str,
        charges: Sequence[Charge],
        *,
        request_id: str | None = None,
        dry_run: bool = False,
    ) -> HitResult:
        """Check every charge and take them all only if every enforce-mode rule passes.

        One storage round trip. A frozen account is refused with nothing charged. With a
        `request_id`, a second hit with the same id on the same day returns the first answer with
        `duplicate=True` and charges nothing. A dry run answers what a hit would do and writes nothing.
        """
        known = self._known_charges(account, charges)
        # An empty id (an empty Idempotency-Key header) must not make every request a retry of the first.
        request_id = request_id or None
        now = self.clock()
        planned = known.planned
        if planned is None or not planned.second <= now < planned.second + 1:
            planned = known.planned = self._plan_second(known.charges, now, planned)
        tag = account_tag(account)
        # HitPlan's fields in order, without its Python-level __new__ (~0.3 µs a hit).
        plan: HitPlan = new_tuple(
            HitPlan,
            (
                account,
                tuple(map(tag.__add__, planned.suffixes)),  # tag + suffix, without a comprehension's frame
                planned.items,
                dry_run,
                request_id,
                planned.day_end,
                planned.request_ttl,
                "" if request_id is None else planned.descriptor or self._describe(known.charges, planned),
                now,
            ),
        )
        raw = await self.storage.hit(plan)

        if raw.status == STATUS_DUPLICATE:
            return self._replay(raw.descriptor, raw.numbers, request_id, planned.day_end)
        if raw.status == STATUS_FROZEN:
            return HitResult(False, (), frozen=True, request_id=request_id, day_resets_at=planned.day_end)
        # `_outcome` written out: no call per rule (two rules: ~2.6 -> 1.9 µs a hit, timeit, busy machine).
        # fmt: off
        outcomes = tuple([
            new_tuple(RuleOutcome, (name, window, used, limit, max(0, limit - used), attempts, ok, mode,
                                    _crossed(crossed), end, cost))
            for (name, window, limit, mode, cost, end), (used, attempts, crossed, ok)
            in zip(planned.outcome_fields, raw.rules, strict=True)
        ])
        # fmt: on
        # HitResult's fields in order: allowed, outcomes, duplicate, frozen, request_id, day_resets_at.
        result: HitResult = new_tuple(
            HitResult, (raw.allowed, outcomes, False, False, request_id, planned.day_end)
        )
        return result

    def _known_charges(
        self, account: str, charges: Sequence[Charge | LimitRule | tuple[LimitRule, int]]
    ) -> _Charges:
        """`charges` as Charges, checked with the account (ValueError, as `_check`): once per list of the
        same rule objects and costs when the rules are immutable values."""
        if type(charges) is tuple:
            # The very tuple of an earlier hit (the guard hands one tuple to every request of an action,
            # tier and recipient count): a tuple of value types cannot have changed; ~1.2 µs a hit less.
            seen = self._tuples.get(id(charges))
            if seen is not None and seen[0] is charges:
                if not account:
                    raise ValueError("account must be a non-empty string")
                return seen[1]
        known, shared = self._known_list(account, charges)
        if shared and type(charges) is tuple:
            if len(self._tuples) >= 256:
                self._tuples.clear()
            # The entry keeps `charges` alive, so no other tuple can take its id() while it is here.
            self._tuples[id(charges)] = (charges, known)
        return known

    def _known_list(
        self, account: str, charges: Sequence[Charge | LimitRule | tuple[LimitRule, int]]
    ) -> tuple[_Charges, bool]:
        """`_known_charges` without the tuple shortcut; also whether the answer is the shared one (all the
        rules immutable values, the costs plain ints)."""
        listed = [c if type(c) is Charge else _as_charge(c) for c in charges]
        value_types = self._value_types
        key: list[tuple[int, int]] = []
        for rule, cost in listed:
            kind = type(rule)
            is_value = value_types.get(kind)
            if is_value is None:
                is_value = value_types[kind] = _is_value_type(kind)
            # A cost of True or 1.0 equals 1 as a key, yet is refused: only plain ints share a plan.
            if not is_value or type(cost) is not int:
                self._check(account, listed)
                return _Charges(tuple(listed)), False
            key.append((id(rule), cost))
        known = self._charge_lists.get(tuple(key))
        if known is not None:
            if not account:
                raise ValueError("account must be a non-empty string")
            return known, True
        self._check(account, listed)
        if len(self._charge_lists) >= 1024:  # rules are replaced on reload; keep the cache bounded
            self._charge_lists.clear()
        known = self._charge_lists[tuple(key)] = _Charges(tuple(listed))
        return known, True

    def _plan_second(self, charges: tuple[Charge, ...], now: float, last: _Second | None) -> _Second:
        """The plan of `charges` for the second of `now`; what depends only on the windows is taken from
        `last` (the previous second's) while they have not moved."""
        spans = [self._span(c.rule.window, now) for c in charges]
        day = self._span("day", now)
        ends = tuple(s.end for s in spans)
        items = self._items(charges, spans, now)
        second = float(math.floor(now))
        if last is not None and last.ends == ends:
            fields = last.outcome_fields
            return _Second(second, ends, last.suffixes, items, fields, day.end, day.ttl(now), last.descriptor)
        suffixes = tuple(
            counter_suffix(c.rule.name, c.rule.window, end) for c, end in zip(charges, ends, strict=True)
        )
        fields = tuple(
            (c.rule.name, c.rule.window, c.rule.limit, c.rule.mode, c.cost, end)
            for c, end in zip(charges, ends, strict=True)
        )
        return _Second(second, ends, suffixes, items, fields, day.end, day.ttl(now), "")

    def _describe(self, charges: tuple[Charge, ...], planned: _Second) -> str:
        planned.descriptor = self._descriptor(charges, planned.ends)
        return planned.descriptor

    @staticmethod
    def _items(
        charges: Sequence[Charge], spans: Sequence[Span], now: float, enforce: bool = True
    ) -> tuple[PlanItem, ...]:
        return tuple(
            PlanItem(
                limit=c.rule.limit,
                warn_at=-1 if c.rule.warn_at is None else c.rule.warn_at,
                alert_over=-1 if c.rule.alert_over is None else c.rule.alert_over,
                enforce=enforce and c.rule.mode == "enforce",
                cost=c.cost,
                ttl=s.ttl(now),
            )
            for c, s in zip(charges, spans, strict=True)
        )

    @staticmethod
    def _descriptor(charges: Sequence[Charge], ends: Sequence[int]) -> str:
        return json.dumps(
            [
                [c.rule.name, c.rule.window, c.rule.limit, c.rule.mode, c.cost, end]
                for c, end in zip(charges, ends, strict=True)
            ],
            separators=(",", ":"),
        )

    def _plan(
        self,
        account: str,
        charges: Sequence[Charge],
        spans: Sequence[Span],
        request_id: str | None,
        dry_run: bool,
        now: float,
        *,
        enforce: bool = True,
    ) -> HitPlan:
        keys = tuple(
            counter_key(account, c.rule.name, c.rule.window, s.end)
            for c, s in zip(charges, spans, strict=True)
        )
        items = self._items(charges, spans, now, enforce)
        descriptor = ""
        if request_id is not None:
            descriptor = self._descriptor(charges, [s.end for s in spans])
        day = self._span("day", now)
        return HitPlan(account, keys, items, dry_run, request_id, day.end, day.ttl(now), descriptor, now)

    def charge_later(self, account: str, charges: Sequence[Charge], *, request_id: str | None = None) -> bool:
        """Charge an action that was let through while the storage was unavailable (`redis_down =
        allow`), once the storage answers again: in the windows of now, every rule counting even past its
        limit (the action was sent). With a request id it is charged at most once, like a hit.

        False when the storage has no such backlog (the in-memory storage never fails)."""
        defer = getattr(self.storage, "charge_later", None)
        if defer is None:
            return False
        charges = [_as_charge(c) for c in charges]
        self._check(account, charges)
        now = self.clock()
        spans = [self._span(c.rule.window, now) for c in charges]
        defer(self._plan(account, charges, spans, request_id or None, False, now, enforce=False))
        return True

    def refund_later(
        self,
        account: str,
        charges: Sequence[Charge],
        *,
        request_id: str | None = None,
        attempts: bool = False,
    ) -> bool:
        """Give back, once the storage answers again, what `charge_later` was asked to charge (the upstream
        refused the action after all). The storage keeps the order: the charge first, then this."""
        defer = getattr(self.storage, "refund_later", None)
        if defer is None:
            return False
        charges = [_as_charge(c) for c in charges]
        self._check(account, charges)
        now = self.clock()
        items = tuple(
            RefundItem(
                counter_key(account, c.rule.name, c.rule.window, self._span(c.rule.window, now).end),
                c.cost,
                c.cost if attempts else 0,
            )
            for c in charges
        )
        defer(RefundPlan(account, items, request_id or None, self._span("day", now).end, now))
        return True

    def _replay(self, descriptor: str, numbers: str, request_id: str | None, day_end: int) -> HitResult:
        allowed, rules = decode_numbers(numbers)
        described = json.loads(descriptor)
        outcomes = tuple(
            _outcome((str(name), cast(Window, window), int(limit), cast(Mode, mode), int(cost), int(end)), r)
            for (name, window, limit, mode, cost, end), r in zip(described, rules, strict=True)
        )
        return HitResult(allowed, outcomes, duplicate=True, request_id=request_id, day_resets_at=day_end)

    async def refund(
        self,
        account: str,
        result_or_charges: HitResult | Sequence[Charge],
        *,
        request_id: str | None = None,
        attempts: bool = False,
    ) -> bool:
        """Give back what a hit charged (never below zero) and release its idempotency record.

        `attempts`: also take the hit back from the attempts (toward `alert_over`), for a hit that the
        platform answered with "retry" (an expired token): the client's retry is the real try.

        Given a `HitResult`, the charge goes back to the windows of that hit even after they rolled
        over (an expired window is left alone); a refused or frozen result had charged nothing. Given
        charges, they go back to the current windows. With a request id (the result's, or the
        keyword) the refund happens at most once: it returns False when the record is already gone.
        """
        now = self.clock()
        day_end = self._span("day", now).end
        request_id = request_id or None
        if isinstance(result_or_charges, HitResult):
            result = result_or_charges
            request_id = request_id or result.request_id or None
            day_end = result.day_resets_at or day_end
            charged = result.allowed and not result.frozen
            items = tuple(
                RefundItem(
                    counter_key(account, o.rule, o.window, o.resets_at),
                    o.cost if charged else 0,
                    o.cost if charged and attempts else 0,
                )
                for o in result.outcomes
            )
        else:
            charges = [_as_charge(c) for c in result_or_charges]
            self._check(account, charges)
            items = tuple(
                RefundItem(
                    counter_key(account, c.rule.name, c.rule.window, self._span(c.rule.window, now).end),
                    c.cost,
                )
                for c in charges
            )
        return await self.storage.refund(RefundPlan(account, items, request_id, day_end, now))

    async def usage(self, account: str, rules: Sequence[LimitRule]) -> tuple[RuleOutcome, ...]:
        """Read-only: each rule's counters in the current window (`allowed`: would a cost of 1 pass)."""
        self._check(account, [Charge(r, 1) for r in rules])
        now = self.clock()
        ends = [self._span(r.window, now).end for r in rules]
        keys = tuple(counter_key(account, r.name, r.window, end) for r, end in zip(rules, ends, strict=True))
        raw = await self.storage.read(ReadPlan(account, keys, now))
        return tuple(
            RuleOutcome(
                rule=r.name,
                window=r.window,
                used=used,
                limit=r.limit,
                remaining=max(0, r.limit - used),
                attempts=attempts,
                allowed=used + 1 <= r.limit or r.mode == "shadow",
                mode=r.mode,
                crossed=(),
                resets_at=end,
            )
            for r, end, (used, attempts) in zip(rules, ends, raw.counts, strict=True)
        )

    async def freeze(self, account: str) -> None:
        """Refuse every hit of `account` on every process until `unfreeze` (checked inside the hit)."""
        await self.storage.set_frozen(account, True)

    async def unfreeze(self, account: str) -> None:
        await self.storage.set_frozen(account, False)

    async def is_frozen(self, account: str) -> bool:
        raw = await self.storage.read(ReadPlan(account, (), self.clock()))
        return raw.frozen

    async def pick(self, candidates: Sequence[tuple[str, Sequence[LimitRule | Charge]]]) -> str | None:
        """The non-frozen account with the most remaining quota (the minimum over its enforce rules).

        For a backup matrix: candidates are (account, the rules its next action would be charged
        under — or the charges themselves, so an account qualifies only if every charge still fits;
        a bare rule counts as a charge of 1). Ties go to the earlier candidate; None when every
        candidate is frozen or has no room. One read per candidate, all at once.
        """
        now = self.clock()
        plans: list[tuple[str, list[Charge], ReadPlan]] = []
        for account, items in candidates:
            charges = [_as_charge(item) for item in items]
            self._check(account, charges)
            enforced = [c for c in charges if c.rule.mode == "enforce"]
            keys = tuple(
                counter_key(account, c.rule.name, c.rule.window, self._span(c.rule.window, now).end)
                for c in enforced
            )
            plans.append((account, enforced, ReadPlan(account, keys, now)))
        reads = await asyncio.gather(*(self.storage.read(plan) for _, _, plan in plans))
        best: tuple[int, str] | None = None
        for (account, enforced, _), raw in zip(plans, reads, strict=True):
            if raw.frozen:
                continue
            left = [max(0, c.rule.limit - used) for c, (used, _) in zip(enforced, raw.counts, strict=True)]
            if any(room < c.cost for room, c in zip(left, enforced, strict=True)):
                continue
            remaining = min(left, default=2**62)
            if remaining > 0 and (best is None or remaining > best[0]):
                best = (remaining, account)
        return None if best is None else best[1]

    async def ping(self) -> bool:
        return await self.storage.ping()

    async def aclose(self) -> None:
        await self.storage.aclose()
