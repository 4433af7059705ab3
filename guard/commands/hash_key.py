"""`guard hash-key [KEY | -]`: print the hash of a client key for a `[[keys]]` table of the config.

With `-` or no KEY the key is read from standard input (one line), so it stays out of the shell history.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "hash-key",
        help="print the hash of a client key for the [[keys]] table",
        description="Print sha256:<hex> of KEY (or of the line read from standard input when KEY is '-' "
        'or missing), the value of hash = "..." in a [[keys]] table of the config.',
    )
    p.add_argument("key", nargs="?", default="-", metavar="KEY", help="the client key, or '-' for stdin")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return print_hash(args.key)


def print_hash(key: str) -> int:
    from guard.http.auth import hash_key

    if key == "-":
        if sys.stdin.isatty():
            print("key (then Enter): ", end="", file=sys.stderr, flush=True)
        key = sys.stdin.readline().rstrip("\r\n")
    if not key:
        print("guard hash-key: the key is empty; pass KEY or one line on standard input", file=sys.stderr)
        return 2
    print(hash_key(key))
    return 0
