"""Rules directory → RuleSet, the policy file, versions, and `check_rules_dir` on broken directories."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from rules import DEFAULT_DIR, RuleError, RulesInvalid, load_rules
from rules.check import VALIDATORS, check_rules_dir


def write(root: Path, name: str, body: str | bytes) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(body, bytes):
        path.write_bytes(body)
    else:
        path.write_text(body, encoding="utf-8")
    return path


def problems(root: Path) -> list[str]:
    return [str(e) for e in check_rules_dir(root)]


def test_shipped_rules_load_and_check_clean() -> None:
    assert check_rules_dir(DEFAULT_DIR) == []
    rules = load_rules()
    assert {"finance", "gambling", "porn", "adlaw", "medical", "diversion", "contact"} <= set(
        rules.categories
    )
    assert all(rules.term_counts[c] >= 25 for c in rules.term_counts)
    assert rules.action_of("finance") == "block"
    assert rules.action_of("contact") == "warn"
    assert len(rules.version) == 16


def test_rule_error_format() -> None:
    e = RuleError("words/x.txt", 3, "bad")
    assert str(e) == "words/x.txt:3: bad"
    exc = RulesInvalid([e, RuleError("a", 0, "b")])
    assert exc.errors == [e, RuleError("a", 0, "b")]
    assert "words/x.txt:3: bad" in str(exc)


def test_comments_blank_lines_and_category_from_file_stem(tmp_path: Path) -> None:
    write(tmp_path, "words/casino.txt", "# gambling words\n\n  赌场  \n百家乐 # inline comment\r\n")
    rules = load_rules(tmp_path)
    assert rules.term_counts == {"casino": 2}
    assert [m.term for m in rules.scan("赌场百家乐").matches] == ["赌场", "百家乐"]
    assert rules.action_of("casino") == "block"  # unlisted category blocks


def test_missing_policy_falls_back_to_the_shipped_one(tmp_path: Path) -> None:
    write(tmp_path, "words/finance.txt", "投资\n")
    rules = load_rules(tmp_path)
    assert rules.policy.of("finance").pinyin
    assert rules.scan("touzi").action == "block"
    assert rules.scan("13812345678").action == "warn"  # contact detectors from the shipped policy


def test_a_given_directory_is_complete_for_words_and_allow(tmp_path: Path) -> None:
    write(tmp_path, "words/x.txt", "黄片\n")
    rules = load_rules(tmp_path)
    assert rules.scan("三黄片").action == "block"  # the shipped allow list is not mixed in
    assert "finance" not in rules.categories


def test_policy_actions_and_options(tmp_path: Path) -> None:
    write(tmp_path, "words/ad.txt", "最佳\n")
    write(tmp_path, "policy.toml", '[defaults]\naction = "warn"\n[categories.other]\naction = "block"\n')
    rules = load_rules(tmp_path)
    assert rules.scan("最佳").action == "warn"


def test_version_is_a_content_hash(tmp_path: Path) -> None:
    write(tmp_path, "words/x.txt", "投资\n")
    v1 = load_rules(tmp_path).version
    assert load_rules(tmp_path).version == v1
    other = tmp_path / "copy"
    shutil.copytree(tmp_path / "words", other / "words")
    assert load_rules(other).version == v1  # depends on content, not on where the directory is
    write(tmp_path, "words/x.txt", "投资\n赌博\n")
    assert load_rules(tmp_path).version != v1


BROKEN = [
    ("no words dir", {}, ["words:0: missing words/ directory"]),
    ("empty words dir", {"words/.keep": ""}, ["words:0: words/ holds no word list"]),
    ("bad utf-8", {"words/x.txt": b"ok\n\xff\xfe bad\nfine\n"}, ["x.txt:2: not valid UTF-8"]),
    ("nothing left", {"words/x.txt": "投资\n！！！\n😀\n"}, ["x.txt:2: term", "x.txt:3: term"]),
    ("single letter", {"words/x.txt": "v\n"}, ["x.txt:1: term 'v' is a single Latin letter"]),
    ("bad category name", {"words/Bad Name.txt": "投资\n"}, ["Bad Name.txt:0: bad category name"]),
    (
        "unknown action",
        {
            "words/x.txt": "投资\n",
            "policy.toml": '[defaults]\naction = "block"\n\n[categories.x]\naction = "drop"\n',
        },
        ["policy.toml:5: unknown action 'drop'"],
    ),
    (
        "bad toml",
        {"words/x.txt": "投资\n", "policy.toml": "[scan]\nmax_gap = = 3\n"},
        ["policy.toml:2: TOML syntax"],
    ),
    (
        "bad option values",
        {
            "words/x.txt": "a1\n",
            "policy.toml": "[scan]\nmax_gap = 99\n[categories.x]\npinyin = 1\ncolour = 2\n",
        },
        ["policy.toml:2: max_gap", "policy.toml:4: pinyin must be", "policy.toml:5: unknown key 'colour'"],
    ),
    ("allow list", {"words/x.txt": "投资\n", "allow.txt": "ok\n\n。。。\n"}, ["allow.txt:3: term"]),
    (
        "policy not utf-8",
        {"words/x.txt": "投资\n", "policy.toml": b"[defaults]\naction = '\xff'\n"},
        ["policy.toml:2:"],
    ),
    (
        "unknown detector",
        {"words/x.txt": "a1\n", "policy.toml": '[categories.contact]\ndetectors = ["fax"]\n'},
        ["fax"],
    ),
]


@pytest.mark.parametrize(("name", "files", "expected"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_directories_report_every_problem(
    tmp_path: Path, name: str, files: dict[str, str | bytes], expected: list[str]
) -> None:
    for rel, body in files.items():
        write(tmp_path, rel, body)
    found = problems(tmp_path)
    assert len(found) == len(expected), found
    for want, got in zip(expected, found, strict=True):
        assert want in got, (want, got)
    with pytest.raises(RulesInvalid) as info:
        load_rules(tmp_path)
    assert [str(e) for e in info.value.errors] == found


def test_unreadable_word_file(tmp_path: Path) -> None:
    write(tmp_path, "words/ok.txt", "投资\n")
    os.symlink(tmp_path / "nowhere.txt", tmp_path / "words" / "gone.txt")
    found = problems(tmp_path)
    assert len(found) == 1
    assert "gone.txt:0: cannot read file" in found[0]


def test_all_problems_not_just_the_first(tmp_path: Path) -> None:
    write(tmp_path, "words/a.txt", "ok\n\xff\n".encode("latin-1"))
    write(tmp_path, "words/b.txt", "。\n好\n？\n")
    write(tmp_path, "policy.toml", '[categories.a]\naction = "nope"\n')
    found = problems(tmp_path)
    assert [f.split(": ", 1)[0].rsplit("/", 1)[-1] for f in found] == [
        "a.txt:2",
        "b.txt:1",
        "b.txt:3",
        "policy.toml:2",
    ]


def test_validators_are_a_list_others_can_extend(tmp_path: Path) -> None:
    write(tmp_path, "words/x.txt", "投资\n")

    def no_limits(root: Path) -> list[RuleError]:
        return (
            [RuleError.at(root / "limits.toml", 0, "missing")] if not (root / "limits.toml").exists() else []
        )

    VALIDATORS.append(no_limits)
    try:
        assert problems(tmp_path) == [f"{tmp_path / 'limits.toml'}:0: missing"]
    finally:
        VALIDATORS.remove(no_limits)
    assert problems(tmp_path) == []


def test_not_a_directory(tmp_path: Path) -> None:
    assert problems(tmp_path / "nope") == [f"{tmp_path / 'nope'}:0: not a directory"]
    with pytest.raises(RulesInvalid):
        load_rules(tmp_path / "nope")
