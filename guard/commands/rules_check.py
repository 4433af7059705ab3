"""`guard rules check [DIR]`: validate a rules directory.

Prints every problem as `file:line: reason` on stderr and exits 2, or prints a summary and exits 0.
`guard rules` takes sub-commands so others (e.g. `reload`) can be added next to `check`.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from guard.core.profiles import ProfileError, load_profile_file
from rules import DEFAULT_DIR, RuleError, RulesInvalid, load_rules
from rules.check import check_rules_dir
from rules.store import directory_hash

_TOML_POSITION = re.compile(r"\(at line (\d+), column \d+\)")


def validate_profiles(root: Path) -> list[RuleError]:
    """Custom route profiles (`profiles/*.toml`) are the guard's, so their check is added here."""
    errors: list[RuleError] = []
    for path in sorted((root / "profiles").glob("*.toml")):
        try:
            load_profile_file(path)
        except ProfileError as exc:
            # A TOML syntax error names its line in the reason; other profile errors concern the file.
            at = _TOML_POSITION.search(exc.reason)
            errors.append(RuleError.at(exc.path, int(at.group(1)) if at else 0, exc.reason))
    return errors


def register(sub: Any) -> Any:
    p: argparse.ArgumentParser = sub.add_parser("rules", help="rules directory tools (check)")
    rules_sub = p.add_subparsers(dest="rules_command", required=True, metavar="SUBCOMMAND")
    check = rules_sub.add_parser(
        "check",
        help="validate a rules directory",
        description="Validate DIR (default: the shipped rules): exit 2 with file:line: reason "
        "for every problem.",
    )
    check.add_argument("dir", nargs="?", default=None, metavar="DIR", help="rules directory")
    check.set_defaults(run=run_check)
    return rules_sub


def run_check(args: argparse.Namespace) -> int:
    root = args.dir if args.dir is not None else str(DEFAULT_DIR)
    errors = check_rules_dir(root, extra=[validate_profiles])
    if not errors:
        try:
            rules = load_rules(root)  # compile too: what passes the check must load
        except RulesInvalid as exc:
            errors = exc.errors
    if errors:
        # Only `file:line: reason` lines, so editors and scripts can parse every line.
        for error in errors:
            print(error, file=sys.stderr)
        return 2
    total = sum(rules.term_counts.values())
    print(
        f"OK {root}: {len(rules.categories)} categories, {total} terms, {rules.allow_count} allowed phrases"
    )
    for category in rules.categories:
        policy = rules.policy.of(category)
        if category in rules.term_counts:
            extra = " +pinyin" if policy.pinyin else ""
            detail = f"{rules.term_counts[category]} terms{extra}"
        else:
            detail = "detectors: " + ", ".join(policy.detectors)
        print(f"  {category:<12} {policy.action:<5}  {detail}")
    # The version a guard serving this directory shows (GET /v1/rules, guard_rules_info{version}, the
    # dashboard): the directory's hash, as its rules store computes it.
    print(f"version {directory_hash(root)}")
    # The Aho-Corasick engine a guard in this environment compiles with (daachorse with the `fast` extra).
    print(f"engine {rules.engine}")
    return 0
