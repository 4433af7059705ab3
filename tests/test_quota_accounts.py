"""The accounts registry (rules/accounts.py): entries, unknown accounts as new, matrices, and broken
files reported as file:line."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from rules.accounts import (
    AccountInfo,
    accounts_path,
    load_accounts,
    shipped_accounts_path,
    validate_accounts,
)
from rules.errors import RulesInvalid
from rules.limits import load_limits

REGISTRY = """\
# staff accounts
[accounts."wxid_east_01"]
registered = 2026-01-05
staff = "zhang.san"
matrix = "east"

[accounts."wxid_east_02"]
tier = "mature"
staff = "li.si"
matrix = "east"
frozen = true

[accounts.wxid_solo]
registered = "2025-06-01"
recovering_since = 2026-11-10
note = "banned once, appealed"

[accounts."wxid_east_03"]
registered = 2026-11-20
matrix = "east"
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "accounts.toml").write_text(text, encoding="utf-8")
    return tmp_path


def test_entries_and_unknown_accounts(tmp_path: Path) -> None:
    registry = load_accounts(write(tmp_path, REGISTRY))
    assert len(registry) == 4
    east = registry.get("wxid_east_01")
    assert east == AccountInfo(
        "wxid_east_01", listed=True, registered=date(2026, 1, 5), staff="zhang.san", matrix="east", line=2
    )
    assert registry.get("wxid_east_02").frozen and registry.get("wxid_east_02").tier == "mature"
    solo = registry.get("wxid_solo")
    assert (solo.registered, solo.recovering_since, solo.note) == (
        date(2025, 6, 1),
        date(2026, 11, 10),
        "banned once, appealed",
    )
    stranger = registry.get("wxid_stranger")
    assert stranger == AccountInfo("wxid_stranger") and not stranger.listed
    assert "wxid_solo" in registry and "wxid_stranger" not in registry


def test_unknown_accounts_are_new(tmp_path: Path) -> None:
    registry = load_accounts(write(tmp_path, REGISTRY))
    limits = load_limits(None)
    today = date(2026, 11, 22)
    stranger = registry.get("wxid_stranger")
    placement = limits.tier_for(stranger.registered, today, stranger.recovering_since, tier=stranger.tier)
    assert placement.tier == "new"
    solo = registry.get("wxid_solo")
    assert limits.tier_for(solo.registered, today, solo.recovering_since).tier == "recovering"


def test_matrices(tmp_path: Path) -> None:
    registry = load_accounts(write(tmp_path, REGISTRY))
    assert registry.matrix_members("east") == ("wxid_east_01", "wxid_east_02", "wxid_east_03")
    assert registry.matrix_members("west") == ()
    assert registry.matrices == ("east",)
    assert registry.frozen == ("wxid_east_02",)


def test_shipped_registry_is_empty_and_the_fallback(tmp_path: Path) -> None:
    assert accounts_path(tmp_path) == shipped_accounts_path()
    assert len(load_accounts(None)) == 0
    assert validate_accounts(tmp_path) == []


def errors_of(tmp_path: Path, text: str, tiers: tuple[str, ...] | None = None) -> list[str]:
    directory = write(tmp_path, text)
    found = [str(e) for e in validate_accounts(directory, tiers=tiers)]
    with pytest.raises(RulesInvalid) as raised:
        load_accounts(directory, tiers=tiers)
    assert [str(e) for e in raised.value.errors] == found
    return found


def test_broken_entries_name_their_lines(tmp_path: Path) -> None:
    text = """\
[accounts."a"]
registered = 2026-13-01
"""
    (error,) = errors_of(tmp_path, text)
    assert error.startswith(f"{tmp_path / 'accounts.toml'}:2: TOML syntax:")

    text = """\
[accounts."a"]
registered = "last spring"
frozen = "yes"
colour = "red"

[accounts."b"]
registered = 2026-01-01T08:00:00
tier = "gold"
staff = ""

[accounts."c"]
registered = 2026-05-01
recovering_since = 2026-04-01

[accounts."  "]
staff = "x"
"""
    found = errors_of(tmp_path, text, tiers=load_limits(None).tier_names)
    path = tmp_path / "accounts.toml"
    expected = {
        2: "registered must be a date",
        3: "frozen must be true or false",
        4: "unknown key 'colour'",
        7: "registered must be a date",  # a date-time is not a calendar day
        8: "unknown tier 'gold'",
        9: "staff must be a non-empty string",
        13: "recovering_since is before registered",
        15: "must be non-empty without surrounding spaces",
    }
    for line, reason in expected.items():
        assert any(e.startswith(f"{path}:{line}: ") and reason in e for e in found), (line, reason, found)
    assert len(found) == len(expected)


def test_top_level_shape(tmp_path: Path) -> None:
    (error,) = errors_of(tmp_path, 'owner = "ops"\n')
    assert ":1: unknown key 'owner'" in error
    (error,) = errors_of(tmp_path, 'accounts = "none"\n')
    assert ":1: accounts must be a table" in error
    (error,) = errors_of(tmp_path, "[accounts]\nwxid_x = 5\n")
    assert ":2: account 'wxid_x': expected a table" in error


def test_tier_is_checked_only_against_known_tiers_when_given(tmp_path: Path) -> None:
    directory = write(tmp_path, '[accounts."a"]\ntier = "gold"\n')
    assert load_accounts(directory).get("a").tier == "gold"
    assert len(validate_accounts(directory, tiers=("new",))) == 1


def test_validate_quota_files_checks_both(tmp_path: Path) -> None:
    from rules.accounts import validate_quota_files

    assert validate_quota_files(None) == []
    write(tmp_path, '[accounts."a"]\ntier = "gold"\n')
    (error,) = [str(e) for e in validate_quota_files(tmp_path)]
    assert ":2: account 'a': unknown tier 'gold'" in error
    (tmp_path / "limits.toml").write_text("[tiers]\nnew = 0\ngold = 5\n[limits.new]\n[limits.gold]\n")
    assert validate_quota_files(tmp_path) == []
    (tmp_path / "limits.toml").write_text("[tiers\n")
    found = [str(e) for e in validate_quota_files(tmp_path)]
    assert len(found) == 1 and ":1: TOML syntax" in found[0]
