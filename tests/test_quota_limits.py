"""The limits table (rules/limits.py): the shipped handbook defaults, the file format, tier placement,
and broken files reported as file:line."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

import pytest

import ratelimit.types as engine
from rules import limits
from rules.errors import RulesInvalid
from rules.limits import (
    ACTIONS,
    LimitRuleSpec,
    LimitTable,
    TierPlacement,
    limits_path,
    load_limits,
    shipped_limits_path,
    validate_limits,
)


@pytest.fixture(scope="module")
def shipped() -> LimitTable:
    return load_limits(None)


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "limits.toml").write_text(text, encoding="utf-8")
    return tmp_path


def by_window(rules: tuple[LimitRuleSpec, ...]) -> dict[str, LimitRuleSpec]:
    return {r.window: r for r in rules}


# --- the shipped defaults: the handbook ----------------------------------------------------------------


def test_new_accounts_get_the_handbook_red_lines(shipped: LimitTable) -> None:
    active = by_window(shipped.rules_for("add_friend.active", "new"))
    passive = by_window(shipped.rules_for("add_friend.passive", "new"))
    broadcast = by_window(shipped.rules_for("broadcast", "new"))
    assert (active["day"].limit, active["day"].alert_over, active["day"].mode) == (5, 10, "enforce")
    assert (passive["day"].limit, passive["day"].alert_over, passive["day"].mode) == (30, 30, "enforce")
    assert (broadcast["day"].limit, broadcast["day"].mode) == (1, "enforce")
    # No shorter window caps the new tier below those day limits.
    for rules, day_limit in ((active, 5), (passive, 30), (broadcast, 1)):
        assert all(r.limit >= day_limit for w, r in rules.items() if w != "day")
    assert active["day"].warn_at == 4  # 80 % of 5


def test_every_tier_limits_every_action(shipped: LimitTable) -> None:
    assert shipped.tier_names == ("new", "growing", "mature", "recovering")
    for tier in shipped.tier_names:
        for action in ACTIONS:
            for days in (0, 7, 14, 29):
                rules = shipped.rules_for(action, tier, days_in_tier=days)
                assert any(r.window == "day" for r in rules), (tier, action)


def test_tiers_only_loosen_with_age_and_recovering_stays_below_new(shipped: LimitTable) -> None:
    for action in ACTIONS:
        day = [by_window(shipped.rules_for(action, t))["day"].limit for t in ("new", "growing", "mature")]
        assert day == sorted(day), action
        new_day = day[0]
        ramp = [
            by_window(shipped.rules_for(action, "recovering", days_in_tier=d))["day"].limit for d in range(30)
        ]
        assert ramp == sorted(ramp) and max(ramp) <= new_day, action


def test_shipped_file_is_the_fallback(tmp_path: Path) -> None:
    assert limits_path(tmp_path) == shipped_limits_path()
    assert limits_path(None) == shipped_limits_path()
    assert validate_limits(None) == []
    assert validate_limits(tmp_path) == []
    own = write(tmp_path, "[tiers]\nnew = 0\n[limits.new]\nmoment = { day = 9 }\n")
    assert limits_path(own) == own / "limits.toml"
    assert load_limits(own).rules_for("moment", "new")[0].limit == 9


# --- format ----------------------------------------------------------------------------------------------

CUSTOM = """\
[defaults]
warn_at = "50%"
mode = "shadow"

[tiers]
new = 0
veteran = 365
mid = 60

[recovering]
stages = [0, 3]
until_day = 10

[limits.new]
"add_friend.active" = { day = { limit = 4, alert_over = 6, mode = "enforce" }, hour = 3 }
broadcast = { day = { limit = 10, warn_at = 9 }, mode = "enforce" }
message = { minute = 7, warn_at = false }

[limits.mid]
moment = { day = 3 }

[limits.veteran]

[limits.recovering]
"add_friend.active" = { day = { limit = [1, 2], alert_over = 5 }, hour = 1 }
"""


def test_custom_file(tmp_path: Path) -> None:
    table = load_limits(write(tmp_path, CUSTOM))
    assert table.tiers == (("new", 0), ("mid", 60), ("veteran", 365))
    active = by_window(table.rules_for("add_friend.active", "new"))
    assert active["day"] == LimitRuleSpec(
        "add_friend.active", "day", 4, warn_at=2, alert_over=6, mode="enforce"
    )
    assert active["hour"] == LimitRuleSpec(
        "add_friend.active", "hour", 3, warn_at=2, alert_over=None, mode="shadow"
    )
    assert table.rules_for("broadcast", "new") == (LimitRuleSpec("broadcast", "day", 10, 9, None, "enforce"),)
    assert table.rules_for("message", "new") == (LimitRuleSpec("message", "minute", 7, None, None, "shadow"),)
    assert table.rules_for("welcome", "new") == ()  # not configured: no limit
    assert table.rules_for("moment", "veteran") == ()
    stage = [
        by_window(table.rules_for("add_friend.active", "recovering", days_in_tier=d))["day"].limit
        for d in range(5)
    ]
    assert stage == [1, 1, 1, 2, 2]
    assert (
        by_window(table.rules_for("add_friend.active", "recovering"))["day"].limit == 1
    )  # no day: first stage
    with pytest.raises(ValueError, match="unknown action"):
        table.rules_for("poke", "new")
    with pytest.raises(ValueError, match="unknown tier"):
        table.rules_for("moment", "growing")


def test_tier_placement(shipped: LimitTable) -> None:
    today = date(2026, 11, 22)
    assert shipped.tier_for(None, today) == TierPlacement("new", None)
    assert shipped.tier_for(date(2026, 11, 22), today) == TierPlacement("new", 0)
    assert shipped.tier_for(date(2026, 10, 24), today) == TierPlacement("new", 29)
    assert shipped.tier_for(date(2026, 10, 23), today) == TierPlacement("growing", 30)
    assert shipped.tier_for(date(2026, 8, 24), today) == TierPlacement("mature", 90)
    # Recovering wins for until_day days, then the age tier is back.
    assert shipped.tier_for(date(2020, 1, 1), today, date(2026, 11, 22)) == TierPlacement("recovering", 0)
    assert shipped.tier_for(date(2020, 1, 1), today, date(2026, 10, 24)) == TierPlacement("recovering", 29)
    assert shipped.tier_for(date(2020, 1, 1), today, date(2026, 10, 23)).tier == "mature"
    # An explicit tier beats the age, not a recovery.
    assert shipped.tier_for(date(2026, 11, 20), today, tier="mature") == TierPlacement("mature", 2)
    assert shipped.tier_for(None, today, date(2026, 11, 21), tier="mature") == TierPlacement("recovering", 1)
    with pytest.raises(ValueError, match="unknown tier"):
        shipped.tier_for(None, today, tier="gold")


def test_rules_for_account(shipped: LimitTable) -> None:
    from rules.accounts import AccountInfo

    today = date(2026, 11, 22)
    unknown = AccountInfo("wxid_nobody")
    assert by_window(shipped.rules_for_account("add_friend.active", unknown, today))["day"].limit == 5
    old = AccountInfo("wxid_old", listed=True, registered=date(2024, 1, 1))
    assert by_window(shipped.rules_for_account("add_friend.active", old, today))["day"].limit == 30
    banned = AccountInfo(
        "wxid_b", listed=True, registered=date(2024, 1, 1), recovering_since=date(2026, 11, 20)
    )
    assert by_window(shipped.rules_for_account("add_friend.active", banned, today))["day"].limit == 0


# --- broken files: every problem, each at its file:line ---------------------------------------------------


def errors_of(tmp_path: Path, text: str) -> list[str]:
    directory = write(tmp_path, text)
    found = [str(e) for e in validate_limits(directory)]
    with pytest.raises(RulesInvalid) as raised:
        load_limits(directory)
    assert [str(e) for e in raised.value.errors] == found
    return found


def test_syntax_error_names_the_line(tmp_path: Path) -> None:
    (error,) = errors_of(tmp_path, "[tiers]\nnew = 0\n[limits.new]\nmoment = { day = 3 \n")
    assert error.startswith(f"{tmp_path / 'limits.toml'}:4: TOML syntax:")


def test_duplicate_key_is_a_syntax_error(tmp_path: Path) -> None:
    (error,) = errors_of(tmp_path, "[tiers]\nnew = 0\nnew = 1\n")
    assert ":3: TOML syntax:" in error


def test_semantic_errors_name_their_lines(tmp_path: Path) -> None:
    text = """\
[tiers]
new = 0
old = "ninety"

[limits.new]
"add_friend.active" = { day = 5 }
"add_friend.activ" = { day = 5 }
broadcast = { day = -1 }
moment = { week = 3 }
message = { day = { limit = 10, warn_at = 11 } }
welcome = { day = [1, 2] }
"broadcast.recipients" = { day = { limit = 100, alert_over = "many" }, mode = "loud" }

[limits.gold]
moment = { day = 1 }
"""
    found = errors_of(tmp_path, text)
    path = tmp_path / "limits.toml"
    expected = {
        3: "tier 'old': first day",
        7: "unknown action 'add_friend.activ'",
        8: "limit must be a whole number",
        9: "unknown key 'week'",
        10: "warn_at 11 is above the limit 10",
        11: "only for the recovering tier",
        12: "mode must be",
        14: "tier 'gold' is not defined",
    }
    for line, reason in expected.items():
        assert any(e.startswith(f"{path}:{line}: ") and reason in e for e in found), (line, reason, found)
    assert any(e.startswith(f"{path}:12: ") and "alert_over must be" in e for e in found)


def test_structural_errors(tmp_path: Path) -> None:
    found = errors_of(tmp_path, 'colour = "red"\n[tiers]\ngrowing = 30\n')
    assert any(":1: unknown key 'colour'" in e for e in found)
    assert any("tier `new` is required" in e for e in found)
    assert any("the first tier must start on day 0" in e for e in found)
    assert any(":0: missing [limits.<tier>] tables" in e for e in found)


def test_every_tier_needs_a_limits_table(tmp_path: Path) -> None:
    (error,) = errors_of(tmp_path, "[tiers]\nnew = 0\ngrowing = 30\n[limits.new]\nmoment = { day = 1 }\n")
    assert ":3: tier 'growing' has no [limits.growing] table" in error


def test_recovering_errors(tmp_path: Path) -> None:
    found = errors_of(
        tmp_path,
        """\
[tiers]
new = 0
[recovering]
stages = [0, 9, 3]
until_day = "a month"
[limits.new]
moment = { day = 1 }
[limits.recovering]
moment = { day = 1 }
""",
    )
    assert any(":4: stages must be increasing" in e for e in found)
    assert any(":5: until_day must be" in e for e in found)
    found = errors_of(
        tmp_path, "[tiers]\nnew = 0\n[recovering]\nstages = [0, 7]\nuntil_day = 7\n[limits.new]\n"
    )
    assert any(":5: until_day must be a whole number of days after the last stage" in e for e in found)
    found = errors_of(
        tmp_path,
        """\
[tiers]
new = 0
[recovering]
stages = [0, 7]
until_day = 30
[limits.new]
moment = { day = 1 }
[limits.recovering]
moment = { day = [1, 2, 3] }
""",
    )
    assert any(":9: day: expected 2 whole numbers" in e for e in found)
    (error,) = errors_of(
        tmp_path, "[tiers]\nnew = 0\n[limits.new]\nmoment = { day = 1 }\n[limits.recovering]\n"
    )
    assert ":5: tier 'recovering' is not defined in [tiers] (add a [recovering] table first)" in error


def test_bad_warn_at_values(tmp_path: Path) -> None:
    for bad in ('"80"', '"180%"', "0.8", "true"):
        found = errors_of(
            tmp_path, f"[defaults]\nwarn_at = {bad}\n[tiers]\nnew = 0\n[limits.new]\nmoment = {{ day = 3 }}\n"
        )
        assert any(":2: warn_at must be" in e for e in found), (bad, found)


def test_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "limits.toml").write_bytes("[tiers]\nnew = 0 # 新\n".encode("gb18030"))
    (error,) = [str(e) for e in validate_limits(tmp_path)]
    assert error.startswith(f"{tmp_path / 'limits.toml'}:0: not UTF-8")


def test_keys_in_quoted_and_dotted_forms_are_located(tmp_path: Path) -> None:
    text = """\
[tiers]
new = 0

[limits]
new."message".day = -5
"""
    (error,) = errors_of(tmp_path, text)
    assert ":5: day: limit must be" in error


def test_byte_order_mark_and_crlf_are_accepted(tmp_path: Path) -> None:
    text = "\ufeff[tiers]\r\nnew = 0\r\n[limits.new]\r\nmoment = { day = 4 }\r\n"
    (tmp_path / "limits.toml").write_bytes(text.encode("utf-8"))
    assert load_limits(tmp_path).rules_for("moment", "new")[0].limit == 4


def test_numbers_must_be_whole_and_exactly_countable(tmp_path: Path) -> None:
    for bad in ("5.0", "true", '"5"', str(2**53), "-1"):
        found = errors_of(tmp_path, f"[tiers]\nnew = 0\n[limits.new]\nmoment = {{ day = {bad} }}\n")
        assert any(":4: day: limit must be a whole number" in e for e in found), (bad, found)


# --- the policy's rules fit the engine ------------------------------------------------------------------


def test_specs_are_what_the_limiter_counts(shipped: LimitTable) -> None:
    """`LimitRuleSpec` repeats `ratelimit.Rule` on purpose (rules may not import ratelimit): the two stay
    equal field for field, and every rule the limits file yields passes the limiter's own check."""

    def shape(cls: type) -> list[tuple[str, object]]:
        return [(f.name, f.default) for f in dataclasses.fields(cls)]

    assert shape(LimitRuleSpec) == shape(engine.Rule)
    assert (limits.WINDOWS, limits.MODES) == (engine.WINDOWS, engine.MODES)
    assert limits.MAX_COUNT == engine.MAX_COUNT
    specs = [
        spec
        for tier in shipped.tier_names
        for action in ACTIONS
        for days in (None, 0, 10, 20)
        for spec in shipped.rules_for(action, tier, days_in_tier=days)
    ]
    assert specs
    for spec in specs:
        assert isinstance(spec, engine.LimitRule)
        assert engine.rule_problem(spec) is None, spec
