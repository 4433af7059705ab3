"""The accounts registry (accounts.toml): which accounts the guard knows, how old they are, who runs them.

Policy only: pure Python. An account the registry does not list is a new account (tier `new`).

File format (docs/limits.md, "accounts.toml")::

    [accounts."wxid_shop_01"]
    registered = 2026-03-01        # TOML date (or "2026-03-01"); gives the tier by age
    tier = "mature"                # optional: fixes the tier instead of the age
    staff = "zhang.san"            # who operates it (reports, alerts)
    matrix = "east"                # backup matrix: accounts sharing add requests
    frozen = false                 # frozen by the risk manager: every guarded action is refused
    recovering_since = 2026-11-01  # back from a ban: the recovering (养号) tier
    note = "front desk phone"      # free text
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from rules.errors import RuleError, RulesInvalid
from rules.limits import limits_path, parse_limits
from rules.tomlfile import KeyLines, read_toml

FILE_NAME = "accounts.toml"
_FIELDS = ("registered", "tier", "staff", "matrix", "frozen", "recovering_since", "note")


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """One account as the registry knows it; `listed=False` for an account it does not list."""

    account: str
    listed: bool = False
    registered: dt.date | None = None
    tier: str | None = None
    staff: str | None = None
    matrix: str | None = None
    frozen: bool = False
    recovering_since: dt.date | None = None
    note: str | None = None
    line: int = 0  # where the entry starts in the file (0: not listed)


@dataclass(frozen=True)
class AccountRegistry:
    source: str
    accounts: Mapping[str, AccountInfo] = field(default_factory=dict)

    def get(self, account: str) -> AccountInfo:
        """The entry of `account`, or an unlisted one (treated as a new account)."""
        return self.accounts.get(account) or AccountInfo(account)

    def __contains__(self, account: object) -> bool:
        return account in self.accounts

    def __len__(self) -> int:
        return len(self.accounts)

    def matrix_members(self, name: str) -> tuple[str, ...]:
        """The accounts of a backup matrix, in file order (frozen ones included: the limiter skips them)."""
        return tuple(a.account for a in self.accounts.values() if a.matrix == name)

    @property
    def matrices(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a.matrix for a in self.accounts.values() if a.matrix is not None))

    @property
    def frozen(self) -> tuple[str, ...]:
        """Accounts the file marks frozen (the guard mirrors them into the limiter's freeze switch)."""
        return tuple(a.account for a in self.accounts.values() if a.frozen)


def _date(value: object) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return None  # a date-time is not a calendar day: refuse rather than guess the zone
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


class _Parser:
    """Reads the `[accounts."<id>"]` tables of one file, collecting every problem as file:line."""

    def __init__(self, path: Path, lines: KeyLines, tiers: Iterable[str] | None) -> None:
        self.path = path
        self.lines = lines
        self.tiers = tuple(tiers) if tiers is not None else None
        self.errors: list[RuleError] = []

    def error(self, key: tuple[str, ...], reason: str) -> None:
        self.errors.append(RuleError.at(self.path, self.lines.line(key), reason))

    def parse(self, data: dict[str, Any]) -> AccountRegistry | None:
        """The registry, or None when the file has any problem (`errors` lists them)."""
        for key in data:
            if key != "accounts":
                self.error(
                    (key,), f'unknown key {key!r} at the top level (accounts go in [accounts."<id>"] tables)'
                )
        raw = data.get("accounts", {})
        if not isinstance(raw, dict):
            self.error(("accounts",), 'accounts must be a table of [accounts."<id>"] tables')
            return None
        accounts: dict[str, AccountInfo] = {}
        for account, entry in raw.items():
            values = self.entry(account, entry)
            if values is not None:
                line = self.lines.line(("accounts", account))
                accounts[account] = AccountInfo(account, listed=True, line=line, **values)
        return None if self.errors else AccountRegistry(str(self.path), accounts)

    def entry(self, account: str, entry: object) -> dict[str, Any] | None:
        """The fields of one account's table; None when the id or the table itself is unusable."""
        where = ("accounts", account)
        if not account.strip() or account != account.strip():
            self.error(where, f"account id {account!r} must be non-empty without surrounding spaces")
            return None
        if not isinstance(entry, dict):
            self.error(
                where,
                f'account {account!r}: expected a table, e.g. [accounts."{account}"] registered = 2026-01-31',
            )
            return None
        for key in entry:
            if key not in _FIELDS:
                self.error(
                    (*where, key),
                    f"account {account!r}: unknown key {key!r} (expected one of: {', '.join(_FIELDS)})",
                )
        values = self.values(account, entry, where)
        self.cross_check(account, values, where)
        return values

    def values(self, account: str, entry: dict[str, Any], where: tuple[str, ...]) -> dict[str, Any]:
        """Each known field, checked on its own; a wrong one is reported and left out (a wrong date: None)."""
        values: dict[str, Any] = {}
        for key in ("registered", "recovering_since"):
            if key in entry:
                day = _date(entry[key])
                if day is None:
                    self.error(
                        (*where, key),
                        f"account {account!r}: {key} must be a date like 2026-01-31, not {entry[key]!r}",
                    )
                values[key] = day
        for key in ("tier", "staff", "matrix", "note"):
            if key in entry:
                value = entry[key]
                if not isinstance(value, str) or not value.strip():
                    self.error(
                        (*where, key), f"account {account!r}: {key} must be a non-empty string, not {value!r}"
                    )
                    continue
                values[key] = value.strip()
        if "frozen" in entry:
            if not isinstance(entry["frozen"], bool):
                self.error(
                    (*where, "frozen"),
                    f"account {account!r}: frozen must be true or false, not {entry['frozen']!r}",
                )
            else:
                values["frozen"] = entry["frozen"]
        return values

    def cross_check(self, account: str, values: dict[str, Any], where: tuple[str, ...]) -> None:
        """What the fields say together: a tier the limits file defines, no recovery before registration."""
        tier = values.get("tier")
        if tier is not None and self.tiers is not None and tier not in self.tiers:
            self.error(
                (*where, "tier"),
                f"account {account!r}: unknown tier {tier!r}; defined: {', '.join(self.tiers)}",
            )
        registered, since = values.get("registered"), values.get("recovering_since")
        if registered is not None and since is not None and since < registered:
            self.error(
                (*where, "recovering_since"), f"account {account!r}: recovering_since is before registered"
            )


def shipped_accounts_path() -> Path:
    return Path(str(resources.files("rules").joinpath("default", FILE_NAME)))


def accounts_path(directory: Path | None) -> Path:
    if directory is not None and (Path(directory) / FILE_NAME).is_file():
        return Path(directory) / FILE_NAME
    return shipped_accounts_path()


def parse_accounts(
    path: Path, *, tiers: Iterable[str] | None = None
) -> tuple[AccountRegistry | None, list[RuleError]]:
    """Parse one accounts file; `tiers` (e.g. `LimitTable.tier_names`) also checks each `tier = …`."""
    errors: list[RuleError] = []
    parsed = read_toml(path, errors)
    if parsed is None:
        return None, errors
    parser = _Parser(path, parsed[1], tiers)
    return parser.parse(parsed[0]), parser.errors


def load_accounts(directory: Path | None = None, *, tiers: Iterable[str] | None = None) -> AccountRegistry:
    """Load `accounts.toml` of a rules directory (the shipped, empty one when it has none)."""
    registry, errors = parse_accounts(accounts_path(directory), tiers=tiers)
    if registry is None:
        raise RulesInvalid(errors)
    return registry


def validate_accounts(
    directory: Path | None = None, *, tiers: Iterable[str] | None = None
) -> list[RuleError]:
    return parse_accounts(accounts_path(directory), tiers=tiers)[1]


def validate_quota_files(directory: Path | None = None) -> list[RuleError]:
    """Every problem of the limits and accounts files a rules directory uses (for `guard rules check`).

    Account tiers are checked against the limits file's tiers when that file is valid.
    """
    limits, errors = parse_limits(limits_path(directory))
    tiers = limits.tier_names if limits is not None else None
    return errors + validate_accounts(directory, tiers=tiers)
