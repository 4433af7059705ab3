"""The limits table (limits.toml): per account tier, per action, per window, what an account may do.

Policy only: pure Python, no redis and no ratelimit import. The rule objects it hands out
(`LimitRuleSpec`) have the attributes the quota engine counts by (name, window, limit, warn_at,
alert_over, mode), so the guard passes them to the limiter as they are.

File format (documented in docs/limits.md, "limits.toml")::

    [defaults]                 # optional
    warn_at = "80%"            # default near-limit warning: a percentage or an absolute count
    mode = "enforce"           # or "shadow"

    [tiers]                    # tier name = first day of account age (days since registration)
    new = 0
    growing = 30
    mature = 90

    [recovering]               # optional: the 养号 tier for accounts back from a ban
    stages = [0, 7, 14]        # days since recovery on which each stage starts
    until_day = 30             # from this day on the account is back in its age tier

    [limits.new]               # one table per tier (and `recovering`)
    "add_friend.active" = { day = { limit = 5, alert_over = 10 }, hour = 5 }
    broadcast = { day = 1, mode = "shadow" }

A window's value is a limit (a number) or a table with `limit`, `warn_at`, `alert_over`, `mode`. An
action's table may also set `warn_at` and `mode` for all its windows. In `[limits.recovering]` a limit
may be a list with one number per stage.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol

from rules.errors import RuleError, RulesInvalid
from rules.tomlfile import KeyLines, read_toml

# The same values as `ratelimit.Window` / `ratelimit.Mode` (and WINDOWS, MODES, MAX_COUNT below as the
# engine's): rules may not import ratelimit, and what this file accepts the limiter must count.
# tests/test_quota_limits.py holds the two sides equal.
Window = Literal["minute", "hour", "day"]
Mode = Literal["enforce", "shadow"]

ACTIONS: tuple[str, ...] = (
    "add_friend.active",
    "add_friend.passive",
    "broadcast",
    "broadcast.recipients",
    "moment",
    "message",
    "welcome",
    "template",
)
WINDOWS: tuple[Window, ...] = ("minute", "hour", "day")
MODES: tuple[Mode, ...] = ("enforce", "shadow")
RECOVERING = "recovering"
NEW = "new"
FILE_NAME = "limits.toml"

_TOP_KEYS = ("defaults", "tiers", "recovering", "limits")
_WINDOW_KEYS = ("limit", "warn_at", "alert_over", "mode")
_PERCENT = re.compile(r"^\s*(\d{1,3})\s*%\s*$")


@dataclass(frozen=True, slots=True)
class LimitRuleSpec:
    """One limit on one action in one window; structurally a `ratelimit.LimitRule`.

    `name` is the action (e.g. "add_friend.active"): an account's counter for an action is shared
    by all tiers, so a tier change during the day keeps what was already used.
    """

    # Why a class of its own and not `ratelimit.Rule`, whose fields it repeats: the layers. The engine
    # owns the protocol it counts by (`ratelimit.LimitRule`, six read-only attributes) and never sees
    # this class; the policy owns the rules it hands out, and may not import the engine. The guard, which
    # imports both, passes these specs to the limiter as they are (mypy checks the fit where the guard
    # builds a `Charge`; the limiter validates each rule once). `ratelimit.Rule` stays the engine's own
    # concrete rule for callers without a limits file (its tests, bench/quota.py); it validates itself on
    # construction, while a spec is valid because the limits parser rejected anything else with file:line.

    name: str
    window: Window
    limit: int
    warn_at: int | None = None
    alert_over: int | None = None
    mode: Mode = "enforce"


class TierPlacement(NamedTuple):
    """An account's tier today, and its day number in it (age in days; for `recovering`, days since recovery;
    None when the registration date is unknown)."""

    tier: str
    days: int | None


class AccountFacts(Protocol):
    """What tier placement needs to know of an account (`rules.accounts.AccountInfo` has it)."""

    @property
    def registered(self) -> date | None: ...

    @property
    def tier(self) -> str | None: ...

    @property
    def recovering_since(self) -> date | None: ...


@dataclass(frozen=True, slots=True)
class _WindowLimit:
    window: Window
    limits: tuple[int, ...]  # one per stage (one value outside the recovering tier)
    warn_at: int | None  # absolute; None = no near-limit warning
    warn_percent: int | None  # when warn_at comes from a percentage
    alert_over: int | None
    mode: Mode

    def spec(self, action: str, stage: int) -> LimitRuleSpec:
        limit = self.limits[min(stage, len(self.limits) - 1)]
        warn_at = self.warn_at
        if self.warn_percent is not None:
            warn_at = -(-self.warn_percent * limit // 100)  # ceiling, in integers
            # A warning at the limit itself says nothing the limit does not: leave it out.
            warn_at = warn_at if 0 < warn_at < limit else None
        return LimitRuleSpec(action, self.window, limit, warn_at, self.alert_over, self.mode)


@dataclass(frozen=True)
class LimitTable:
    """The parsed limits file. Build with `load_limits` / `parse_limits`."""

    source: str
    tiers: tuple[tuple[str, int], ...]  # (name, first day), by first day
    stages: tuple[int, ...] = ()  # recovering stages (days since recovery); empty: no recovering tier
    recovering_until: int = 0
    _table: Mapping[str, Mapping[str, tuple[_WindowLimit, ...]]] = field(default_factory=dict, repr=False)

    @property
    def tier_names(self) -> tuple[str, ...]:
        names = tuple(name for name, _ in self.tiers)
        return (*names, RECOVERING) if self.stages else names

    def rules_for(
        self, action: str, tier: str, *, days_in_tier: int | None = None
    ) -> tuple[LimitRuleSpec, ...]:
        """The rules an `action` of an account in `tier` is charged under (empty: no limit configured).

        `days_in_tier` picks the stage of the `recovering` tier (days since recovery; None = first
        stage); other tiers ignore it. Unknown actions and tiers are programming errors (ValueError).
        """
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; known: {', '.join(ACTIONS)}")
        if tier not in self.tier_names:
            raise ValueError(f"unknown tier {tier!r}; known: {', '.join(self.tier_names)}")
        stage = 0
        if tier == RECOVERING and days_in_tier is not None:
            stage = sum(1 for start in self.stages if start <= days_in_tier) - 1
        return tuple(w.spec(action, max(stage, 0)) for w in self._table.get(tier, {}).get(action, ()))

    def tier_for(
        self,
        registered: date | None,
        today: date,
        recovering_since: date | None = None,
        *,
        tier: str | None = None,
    ) -> TierPlacement:
        """Which tier an account is in today.

        Recovering (養号) comes first: from `recovering_since` until `until_day` days later. Then an
        explicit `tier` (from the accounts registry) wins; then age since `registered`. No date and no
        tier: `new`.
        """
        if self.stages and recovering_since is not None:
            since = (today - recovering_since).days
            if 0 <= since < self.recovering_until:
                return TierPlacement(RECOVERING, since)
        age = (today - registered).days if registered is not None else None
        if tier is not None:
            if tier not in self.tier_names:
                raise ValueError(f"unknown tier {tier!r}; known: {', '.join(self.tier_names)}")
            return TierPlacement(tier, age)
        if age is None:
            return TierPlacement(NEW, None)
        placed = self.tiers[0][0]
        for name, first_day in self.tiers:
            if age >= first_day:
                placed = name
        return TierPlacement(placed, age)

    def rules_for_account(self, action: str, account: AccountFacts, today: date) -> tuple[LimitRuleSpec, ...]:
        """`tier_for` then `rules_for`, for an entry of the accounts registry."""
        placement = self.tier_for(account.registered, today, account.recovering_since, tier=account.tier)
        return self.rules_for(action, placement.tier, days_in_tier=placement.days)


# Counts are exact in the counting scripts up to 2**53 (Lua numbers are doubles): `ratelimit.types.MAX_COUNT`.
MAX_COUNT = 2**53 - 1


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT


# --- parsing ------------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, path: Path, lines: KeyLines) -> None:
        self.path = path
        self.lines = lines
        self.errors: list[RuleError] = []

    def error(self, key: tuple[str, ...], reason: str) -> None:
        self.errors.append(RuleError.at(self.path, self.lines.line(key), reason))

    def unknown_keys(self, table: Mapping[str, Any], allowed: Iterable[str], where: tuple[str, ...]) -> None:
        allowed = tuple(allowed)
        for key in table:
            if key not in allowed:
                name = ".".join(where) or "the top level"
                self.error(
                    (*where, key), f"unknown key {key!r} in {name} (expected one of: {', '.join(allowed)})"
                )

    def parse(self, data: dict[str, Any]) -> LimitTable | None:
        self.unknown_keys(data, _TOP_KEYS, ())
        warn_default, mode_default = self.defaults(data.get("defaults", {}))
        tiers = self.tiers(data.get("tiers"))
        stages, until = self.recovering(data.get("recovering"))
        limits = data.get("limits")
        table: dict[str, dict[str, tuple[_WindowLimit, ...]]] = {}
        if not isinstance(limits, dict):
            self.error(
                ("limits",), "missing [limits.<tier>] tables" if limits is None else "limits must be a table"
            )
        else:
            known = [name for name, _ in tiers] + ([RECOVERING] if stages else [])
            for tier, actions in limits.items():
                where = ("limits", tier)
                if tier not in known:
                    hint = " (add a [recovering] table first)" if tier == RECOVERING else ""
                    self.error(
                        where, f"tier {tier!r} is not defined in [tiers]{hint}; defined: {', '.join(known)}"
                    )
                    continue
                if not isinstance(actions, dict):
                    self.error(where, f"[limits.{tier}] must be a table of actions")
                    continue
                n_stages = len(stages) if tier == RECOVERING else 1
                table[tier] = self.actions(actions, where, n_stages, warn_default, mode_default)
            for tier in known:
                if tier not in limits:
                    self.error(("tiers", tier), f"tier {tier!r} has no [limits.{tier}] table")
        if self.errors:
            return None
        return LimitTable(str(self.path), tiers, stages, until, table)

    def defaults(self, raw: object) -> tuple[object, Mode]:
        if not isinstance(raw, dict):
            self.error(("defaults",), "defaults must be a table")
            return "80%", "enforce"
        self.unknown_keys(raw, ("warn_at", "mode"), ("defaults",))
        warn = raw.get("warn_at", "80%")
        self.warn_value(warn, ("defaults", "warn_at"))
        mode = self.mode(raw.get("mode", "enforce"), ("defaults", "mode"))
        return warn, mode

    def tiers(self, raw: object) -> tuple[tuple[str, int], ...]:
        if not isinstance(raw, dict) or not raw:
            self.error(("tiers",), "missing [tiers]: name = first day of account age, e.g. new = 0")
            return ((NEW, 0),)
        tiers: list[tuple[str, int]] = []
        for name, first_day in raw.items():
            if name == RECOVERING:
                self.error(("tiers", name), "`recovering` is configured in its own [recovering] table")
            elif not _count(first_day):
                self.error(
                    ("tiers", name),
                    f"tier {name!r}: first day must be a whole number of days >= 0, not {first_day!r}",
                )
            else:
                tiers.append((name, first_day))
        tiers.sort(key=lambda t: t[1])
        if NEW not in raw:
            self.error(("tiers",), "tier `new` is required: accounts the registry does not list are new")
        if tiers and tiers[0][1] != 0:
            self.error(("tiers", tiers[0][0]), "the first tier must start on day 0")
        days = [d for _, d in tiers]
        if len(set(days)) != len(days):
            self.error(("tiers",), "two tiers start on the same day")
        return tuple(tiers)

    def recovering(self, raw: object) -> tuple[tuple[int, ...], int]:
        if raw is None:
            return (), 0
        where = ("recovering",)
        if not isinstance(raw, dict):
            self.error(where, "recovering must be a table with stages and until_day")
            return (), 0
        self.unknown_keys(raw, ("stages", "until_day"), where)
        stages = raw.get("stages", [0])
        until = raw.get("until_day")
        ok = True
        if (
            not isinstance(stages, list)
            or not stages
            or not all(_count(s) for s in stages)
            or stages[0] != 0
            or any(a >= b for a, b in itertools.pairwise(stages))
        ):
            self.error(
                (*where, "stages"), "stages must be increasing whole days starting with 0, e.g. [0, 7, 14]"
            )
            ok = False
        if not _count(until) or (ok and until <= stages[-1]):
            self.error((*where, "until_day"), "until_day must be a whole number of days after the last stage")
            ok = False
        if not ok:
            return (0,), 1
        return tuple(stages), int(until)  # type: ignore[arg-type]

    def mode(self, value: object, key: tuple[str, ...]) -> Mode:
        if value == "enforce" or value == "shadow":
            return value
        self.error(key, f'mode must be "enforce" or "shadow", not {value!r}')
        return "enforce"

    def warn_value(self, value: object, key: tuple[str, ...]) -> tuple[int | None, int | None]:
        """(absolute, percent) of a warn_at value; `false` turns the warning off."""
        if value is False:
            return None, None
        if _count(value):
            return value, None  # type: ignore[return-value]
        if isinstance(value, str):
            match = _PERCENT.match(value)
            if match and 1 <= int(match.group(1)) <= 100:
                return None, int(match.group(1))
        self.error(
            key, f'warn_at must be a count (e.g. 4), a percentage (e.g. "80%") or false, not {value!r}'
        )
        return None, None

    def actions(
        self,
        raw: dict[str, Any],
        where: tuple[str, ...],
        n_stages: int,
        warn_default: object,
        mode_default: Mode,
    ) -> dict[str, tuple[_WindowLimit, ...]]:
        result: dict[str, tuple[_WindowLimit, ...]] = {}
        for action, spec in raw.items():
            key = (*where, action)
            if action not in ACTIONS:
                self.error(key, f"unknown action {action!r}; known: {', '.join(ACTIONS)}")
                continue
            if not isinstance(spec, dict) or not spec:
                self.error(key, f"{action}: expected a table of windows, e.g. {{ day = 5 }}")
                continue
            self.unknown_keys(spec, (*WINDOWS, "warn_at", "mode"), key)
            warn = spec.get("warn_at", warn_default)
            mode = self.mode(spec["mode"], (*key, "mode")) if "mode" in spec else mode_default
            windows = []
            for window in WINDOWS:
                if window in spec:
                    parsed = self.window(spec[window], (*key, window), window, n_stages, warn, mode)
                    if parsed is not None:
                        windows.append(parsed)
            if not any(w in spec for w in WINDOWS):
                self.error(key, f"{action}: give at least one of {', '.join(WINDOWS)}")
            result[action] = tuple(windows)
        return result

    def window(
        self,
        raw: object,
        key: tuple[str, ...],
        window: Window,
        n_stages: int,
        warn: object,
        mode: Mode,
    ) -> _WindowLimit | None:
        alert_over: object = None
        if isinstance(raw, dict):
            self.unknown_keys(raw, _WINDOW_KEYS, key)
            if "limit" not in raw:
                self.error(key, f"{window}: missing `limit`")
                return None
            limit = raw["limit"]
            warn = raw.get("warn_at", warn)
            alert_over = raw.get("alert_over")
            if "mode" in raw:
                mode = self.mode(raw["mode"], (*key, "mode"))
        else:
            limit = raw
        limits: tuple[int, ...]
        if isinstance(limit, list):
            if n_stages == 1:
                self.error(key, f"{window}: a list of limits is only for the recovering tier's stages")
                return None
            if len(limit) != n_stages or not all(_count(v) for v in limit):
                self.error(
                    key, f"{window}: expected {n_stages} whole numbers >= 0 (one per recovering stage)"
                )
                return None
            limits = tuple(limit)
        elif _count(limit):
            limits = (limit,)
        else:
            self.error(key, f"{window}: limit must be a whole number from 0 to 2**53-1, not {limit!r}")
            return None
        if alert_over is not None and not _count(alert_over):
            self.error(
                (*key, "alert_over"),
                f"alert_over must be a whole number from 0 to 2**53-1, not {alert_over!r}",
            )
            return None
        warn_abs, warn_pct = self.warn_value(warn, (*key, "warn_at"))
        if warn_abs is not None and mode == "enforce" and warn_abs > max(limits):
            self.error(
                (*key, "warn_at"), f"warn_at {warn_abs} is above the limit {max(limits)}: it would never fire"
            )
            return None
        return _WindowLimit(window, limits, warn_abs, warn_pct, alert_over, mode)  # type: ignore[arg-type]


def parse_limits(path: Path) -> tuple[LimitTable | None, list[RuleError]]:
    """Parse one limits file: the table, or None and every problem found."""
    errors: list[RuleError] = []
    parsed = read_toml(path, errors)
    if parsed is None:
        return None, errors
    parser = _Parser(path, parsed[1])
    table = parser.parse(parsed[0])
    return table, parser.errors


def shipped_limits_path() -> Path:
    return Path(str(resources.files("rules").joinpath("default", FILE_NAME)))


def limits_path(directory: Path | None) -> Path:
    """The limits file a rules directory uses: its own, or the shipped default when it has none."""
    if directory is not None and (Path(directory) / FILE_NAME).is_file():
        return Path(directory) / FILE_NAME
    return shipped_limits_path()


def load_limits(directory: Path | None = None) -> LimitTable:
    """Load `limits.toml` of a rules directory (the shipped one when it has none); RulesInvalid lists every
    problem."""
    table, errors = parse_limits(limits_path(directory))
    if table is None:
        raise RulesInvalid(errors)
    return table


def validate_limits(directory: Path | None = None) -> list[RuleError]:
    """Every problem of the limits file a rules directory uses (empty: fine). For `guard rules check`."""
    return parse_limits(limits_path(directory))[1]
