"""`guard scan` (being built)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("scan", help="scan (being built)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    print("guard scan: not built yet", file=sys.stderr)
    return 2
