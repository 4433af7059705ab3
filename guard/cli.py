"""The `guard` command line: serve, hash-key, scan, rules check, report, intercept."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from guard import __version__
from guard.commands import hash_key, intercept, report, rules_check, scan, serve


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="guard",
        description="siyu-guard: compliance and risk guard for outbound WeChat / WeCom messages",
    )
    parser.add_argument("--version", action="version", version=f"siyu-guard {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve.register(sub)
    hash_key.register(sub)
    scan.register(sub)
    rules_check.register(sub)
    report.register(sub)
    intercept.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    sys.stdout.flush()
    return rc
