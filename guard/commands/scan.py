"""`guard scan [--rules DIR] [TEXT | -]`: scan one text with the content rules, print one JSON object.

Exit 0 for allow / warn, 1 for block, 2 for an error (unreadable rules, input that is not UTF-8).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rules import RulesInvalid, load_rules


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "scan",
        help="scan a text with the content rules and print the verdict as JSON",
        description="Scan TEXT (or standard input when TEXT is '-' or missing) and print "
        '{"action": ..., "matches": [{"category", "term", "start", "end", "text"}]}; '
        "start/end index the original text. Exit 0 allow/warn, 1 block, 2 error.",
    )
    p.add_argument(
        "--rules", metavar="DIR", default=None, help="rules directory (default: the shipped rules)"
    )
    p.add_argument("text", nargs="?", default="-", metavar="TEXT", help="the text, or '-' for standard input")
    p.set_defaults(run=run)


def _read_input(arg: str) -> str | None:
    """The text to scan, or None after printing why it cannot be read."""
    if arg != "-":
        # argv is decoded with surrogateescape: bytes that are not UTF-8 show up as U+DC80..U+DCFF (and no
        # valid text holds any other lone surrogate either).
        bad = next((i for i, c in enumerate(arg) if "\ud800" <= c <= "\udfff"), None)
        if bad is not None:
            print(f"guard scan: TEXT is not valid UTF-8 (bad byte at character {bad})", file=sys.stderr)
            return None
        return arg
    data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        print(
            "guard scan: standard input is not valid UTF-8 "
            f"(byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "convert it to UTF-8 first, e.g. with iconv -f GB18030 -t UTF-8",
            file=sys.stderr,
        )
        return None


def run(args: argparse.Namespace) -> int:
    try:
        rules = load_rules(args.rules)
    except RulesInvalid as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        print("guard scan: the rules directory is invalid (see above)", file=sys.stderr)
        return 2
    text = _read_input(args.text)
    if text is None:
        return 2
    result = rules.scan(text)
    print(json.dumps(result.to_json(), ensure_ascii=False))
    return 1 if result.action == "block" else 0
