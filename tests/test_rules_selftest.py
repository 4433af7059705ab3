"""A rules directory's own tests (tests.txt): parsed line by line, run by `load_rules`, every failure named
as `tests.txt:<line>: expected …, got …`; a reload whose tests fail keeps the old rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from guard.core.bundle import BundleStore
from rules import DEFAULT_DIR, RuleSet, RulesInvalid, RuleStore, load_rules, rules_version
from rules.selftest import TESTS_FILE, parse_tests, run_tests


def make(root: Path, tests: str, words: str = "投资\n", policy: str | None = None) -> Path:
    (root / "words").mkdir(parents=True, exist_ok=True)
    (root / "words" / "finance.txt").write_text(words, encoding="utf-8")
    (root / "words" / "adlaw.txt").write_text("最低价\n", encoding="utf-8")
    if policy is not None:
        (root / "policy.toml").write_text(policy, encoding="utf-8")
    (root / TESTS_FILE).write_text(tests, encoding="utf-8")
    return root


def failures(root: Path) -> list[str]:
    try:
        load_rules(root)
    except RulesInvalid as exc:
        return [f"{Path(e.path).name}:{e.line}: {e.reason}" for e in exc.errors]
    return []


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("blocked: 投资", "unknown action 'blocked' (expected one of: block, warn, allow)"),
        ("block 投资", "expected '<action>[ <category>]: <text>' (action block, warn or allow)"),
        ("投资", "expected '<action>[ <category>]: <text>' (action block, warn or allow)"),
        ("block finance:投资", "expected '<action>[ <category>]: <text>' (action block, warn or allow)"),
        ("block Finance: 投资", "bad category name 'Finance'"),
        ("block finance:   ", "empty text"),
        (r"block: 投\x资", r"unknown escape (use \uXXXX, \UXXXXXXXX, \n, \t or \\)"),
        (r"block: \UFFFFFFFF", r"unknown escape (use \uXXXX, \UXXXXXXXX, \n, \t or \\)"),
    ],
)  # fmt: skip
def test_malformed_lines_are_named(tmp_path: Path, line: str, reason: str) -> None:
    make(tmp_path, f"# header\n\n{line}\n")
    assert failures(tmp_path) == [f"tests.txt:3: {reason}"]


def test_lines_are_parsed_with_escapes_and_without_comments(tmp_path: Path) -> None:
    make(
        tmp_path,
        "\ufeff# comment after a BOM\n  # indented comment\n\nblock finance: 投\\u200b资 #1 \n"
        "allow: a\\tb\\nc\\\\d\nwarn:  最低价\nallow finance: \\U0001F600\n",
    )
    tests, errors = parse_tests(tmp_path)
    assert errors == []
    assert [(t.line, t.action, t.category, t.text) for t in tests] == [
        (4, "block", "finance", "投\u200b资 #1"),  # `#` inside a test is text, not a comment
        (5, "allow", None, "a\tb\nc\\d"),
        (6, "warn", None, "最低价"),
        (7, "allow", "finance", "\U0001f600"),
    ]


def test_a_directory_without_tests_has_none(tmp_path: Path) -> None:
    make(tmp_path, "")
    (tmp_path / TESTS_FILE).unlink()
    assert parse_tests(tmp_path) == ([], [])
    assert load_rules(tmp_path).scan("投资").action == "block"


@pytest.mark.parametrize(
    ("line", "passes"),
    [
        ("block: 投资", True),
        ("block finance: 投 资", True),
        ("block adlaw: 投资", False),
        ("warn: 投资", False),
        ("allow: 投资", False),
        ("allow adlaw: 投资", True),  # no adlaw match, whatever else matches
        ("allow finance: 投资", False),
        ("warn: 最低价", True),
        ("warn adlaw: 最低价", True),
        ("block: 最低价", False),
        ("block: 你好", False),
        ("warn: 最低价的投资", False),  # the action is the most severe one: block
        ("block finance: 最低价的投资", True),
        ("block adlaw: 最低价的投资", True),  # blocked, and an adlaw match is among the matches
        ("allow: 今天天气很好", True),
        ("warn contact: 电话13812345678", True),
        ("warn: 电话13812345678", True),
        ("allow: 电话13812345678", False),
    ],
)  # fmt: skip
def test_what_a_line_expects(tmp_path: Path, line: str, passes: bool) -> None:
    make(tmp_path, line + "\n")
    assert (failures(tmp_path) == []) is passes


def test_every_failure_names_its_line_what_was_expected_and_what_came(tmp_path: Path) -> None:
    make(
        tmp_path,
        "block finance: 投资\n"
        "allow: 投。资\n"
        "block finance: 最低价\n"
        "warn contact: hello\n"
        "block porn: 投资\n"
        "allow: 投\\u200b资\n",
    )
    assert failures(tmp_path) == [
        'tests.txt:2: expected allow, got block [finance 投资 "投。资" 0-3] for "投。资"',
        'tests.txt:3: expected block finance, got warn [adlaw 最低价 "最低价" 0-3] for "最低价"',
        'tests.txt:4: expected warn contact, got allow for "hello"',
        "tests.txt:5: unknown category 'porn' (this rule set has: adlaw, finance, contact)",
        'tests.txt:6: expected allow, got block [finance 投资 "投\\u200b资" 0-3] for "投\\u200b资"',
    ]


def test_self_test_false_only_compiles(tmp_path: Path) -> None:
    make(tmp_path, "allow: 投资\n")
    assert failures(tmp_path)
    rules = load_rules(tmp_path, self_test=False)
    tests, errors = parse_tests(tmp_path)
    assert errors == [] and len(run_tests(rules, tests, tmp_path / TESTS_FILE)) == 1


def test_tests_are_part_of_the_version(tmp_path: Path) -> None:
    make(tmp_path, "block: 投资\n")
    before = rules_version(tmp_path)
    (tmp_path / TESTS_FILE).write_text("block: 投资\nallow: 你好\n", encoding="utf-8")
    assert rules_version(tmp_path) != before
    assert load_rules(tmp_path).version == rules_version(tmp_path)


async def test_a_reload_whose_tests_fail_keeps_the_old_rules(tmp_path: Path) -> None:
    make(tmp_path, "block: 投资\nallow: 赌博\n")
    store: RuleStore[RuleSet] = RuleStore(load_rules, tmp_path)
    good, version = store.current, store.version
    # The maintainer adds 赌博 but forgets the test that said it passes: refused, the old rules stay.
    (tmp_path / "words" / "gambling.txt").write_text("赌博\n", encoding="utf-8")
    result = await store.reload()
    assert not result.ok
    assert result.error is not None and "tests.txt:2: expected allow, got block" in result.error
    assert store.current is good and store.version == version
    assert store.current.scan("赌博").action == "allow"
    # The test fixed too: the reload goes through.
    (tmp_path / TESTS_FILE).write_text("block: 投资\nblock gambling: 赌博\n", encoding="utf-8")
    assert (await store.reload()).ok
    assert store.current.scan("赌博").action == "block"


async def test_the_guards_bundle_reload_runs_the_tests(tmp_path: Path) -> None:
    make(tmp_path, "block: 投资\n")
    bundles = BundleStore(tmp_path)
    first = bundles.load_now()
    (tmp_path / TESTS_FILE).write_text("block: 投资\nallow: 投资理财\n", encoding="utf-8")
    assert await bundles.reload() is False
    assert bundles.current is first
    assert bundles.last_error is not None and "tests.txt:2: expected allow, got block" in bundles.last_error


def test_a_broken_tests_file_stops_the_start(tmp_path: Path) -> None:
    make(tmp_path, "allow: 投资\n")
    with pytest.raises(RulesInvalid, match=r"tests\.txt:1: expected allow, got block"):
        BundleStore(tmp_path).load_now()


def test_the_shipped_rules_test_themselves() -> None:
    tests, errors = parse_tests(DEFAULT_DIR)
    assert errors == []
    rules = load_rules(self_test=False)
    assert run_tests(rules, tests, DEFAULT_DIR / TESTS_FILE) == []
    actions = {t.action for t in tests}
    assert actions == {"block", "warn", "allow"}
    assert len([t for t in tests if t.action == "allow"]) >= 50
    assert len([t for t in tests if t.action == "block"]) >= 50
    # every shipped category has at least one test that needs it to match
    assert {t.category for t in tests if t.action != "allow"} >= set(rules.categories)
