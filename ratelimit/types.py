"""Shared value types of the quota engine: rules, charges, outcomes and the one storage error.

The engine is mechanism only: a rule is a name, a window, a limit and two thresholds. What the name
means (an action of the guard) and where the numbers come from (a limits file, a tier) is policy and
lives elsewhere; anything with these attributes is a rule (`LimitRule` is structural).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

Window = Literal["minute", "hour", "day"]
Mode = Literal["enforce", "shadow"]
Threshold = Literal["warn", "limit", "alert_over"]

WINDOWS: tuple[Window, ...] = ("minute", "hour", "day")
MODES: tuple[Mode, ...] = ("enforce", "shadow")
# Order in which crossed thresholds are reported; also their bit in the scripts' mask (1, 2, 4).
THRESHOLDS: tuple[Threshold, ...] = ("warn", "limit", "alert_over")

# A NamedTuple from a tuple of ALL its fields in order, without the Python-level `__new__` NamedTuple
# generates (~0.3 µs less each): for the ones the hot path makes per rule of every hit.
new_tuple: Any = tuple.__new__


@runtime_checkable
class LimitRule(Protocol):
    """One counter per account and window.

    `warn_at` is an absolute count of used units (near-limit warning); `alert_over` is a count of
    ATTEMPTS (allowed and refused) that, once passed, raises an alert; `shadow` rules count and report
    but never refuse.
    """

    @property
    def name(self) -> str: ...

    @property
    def window(self) -> Window: ...

    @property
    def limit(self) -> int: ...

    @property
    def warn_at(self) -> int | None: ...

    @property
    def alert_over(self) -> int | None: ...

    @property
    def mode(self) -> Mode: ...


@dataclass(frozen=True, slots=True)
class Rule:
    """The engine's own concrete `LimitRule`, checked on construction: for callers that build rules in
    code (the tests, bench/quota.py). The guard passes the policy's `rules.limits.LimitRuleSpec` instead,
    which has the same fields; the engine knows it only through the protocol (the comment on `LimitRuleSpec`
    says why there are two)."""

    name: str
    window: Window
    limit: int
    warn_at: int | None = None
    alert_over: int | None = None
    mode: Mode = "enforce"

    def __post_init__(self) -> None:
        problem = rule_problem(self)
        if problem is not None:
            raise ValueError(f"rule {self.name!r}: {problem}")


# Counters are exact up to 2**53 inside the Lua scripts (Lua numbers are doubles).
MAX_COUNT = 2**53 - 1


def is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT


def rule_problem(rule: LimitRule) -> str | None:
    """Why `rule` cannot be counted, or None. Checked for every rule the limiter is given."""
    if not rule.name or any(c.isspace() or c in "{}" for c in rule.name):
        return "name must be non-empty, without spaces or braces"
    if rule.window not in WINDOWS:
        return f"window must be one of {', '.join(WINDOWS)}, not {rule.window!r}"
    if rule.mode not in MODES:
        return f"mode must be one of {', '.join(MODES)}, not {rule.mode!r}"
    for field in ("limit", "warn_at", "alert_over"):
        value = getattr(rule, field)
        if value is None and field != "limit":
            continue
        if not is_count(value):
            return f"{field} must be a whole number from 0 to 2**53-1, not {value!r}"
    return None


class Charge(NamedTuple):
    """What one request costs under one rule (1, or e.g. the recipient count of a broadcast)."""

    rule: LimitRule
    cost: int = 1


class RuleOutcome(NamedTuple):
    """One rule's state after a hit (or a read).

    `used` and `attempts` are the counts after this hit (for a dry run: what they would be).
    `crossed` names the thresholds this very hit crossed; each is reported once per window.
    `resets_at` is the end of the window in epoch seconds (it also identifies the window).
    """

    rule: str
    window: Window
    used: int
    limit: int
    remaining: int
    attempts: int
    allowed: bool
    mode: Mode
    crossed: tuple[Threshold, ...]
    resets_at: int
    cost: int = 0


class HitResult(NamedTuple):
    allowed: bool
    outcomes: tuple[RuleOutcome, ...]
    duplicate: bool = False
    frozen: bool = False
    request_id: str | None = None
    # End of the calendar day of the hit (epoch seconds): the idempotency record lives in that day.
    day_resets_at: int = 0

    @property
    def refused_by(self) -> tuple[RuleOutcome, ...]:
        """The enforce-mode rules that refused this hit (empty when allowed or frozen)."""
        return tuple(o for o in self.outcomes if not o.allowed and o.mode == "enforce")

    @property
    def crossed(self) -> tuple[tuple[RuleOutcome, Threshold], ...]:
        """Every (rule, threshold) this hit crossed: what the alerting side reports."""
        return tuple((o, t) for o in self.outcomes for t in o.crossed)


class StorageUnavailable(Exception):
    """The counter storage could not answer in time (or its circuit breaker is open).

    The only error a storage failure surfaces as; callers apply their policy (refuse or allow). `kind`
    says why: timeout, connection, error (Redis was asked and failed), queue (the guard had no free slot
    towards Redis in time), circuit_open (Redis was not asked: the breaker is open). `maybe_applied`: the
    operation was written and its answer lost, so it may have happened.
    """

    def __init__(
        self, backend: str, reason: str, *, kind: str = "error", maybe_applied: bool = False
    ) -> None:
        super().__init__(f"{backend} unavailable: {reason}")
        self.backend = backend
        self.reason = reason
        self.kind = kind
        self.maybe_applied = maybe_applied
