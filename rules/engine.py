"""Which Aho-Corasick engine compiles the word lists: pyahocorasick, or daachorse when it is installed.

pyahocorasick is the engine the design card names and a hard dependency. daachorse (the Python binding of
the Rust `daachorse` crate: a double-array automaton, `pip install 'siyu-guard[fast]'`) is an optional
extra, chosen automatically when it can be imported, because it runs the scan several times faster and
compiles a 65k-term lexicon in a fraction of the time and memory (figures: BENCHMARKS.md, "Content
scanner"). Both give the same results: `tests/test_rules_engine.py` compares them on every seed message,
the shipped rules, a slice of the benchmark lexicon and adversarial strings.

`GUARD_SCAN_ENGINE=pyahocorasick` (or `daachorse`) overrides the automatic choice; the engine in use is
`RuleSet.engine` and the `engine` key of `RuleSet.summary()`.
"""

from __future__ import annotations

import importlib
import os
from functools import cache
from types import ModuleType

ENGINE_ENV = "GUARD_SCAN_ENGINE"
PYAHOCORASICK = "pyahocorasick"
DAACHORSE = "daachorse"
ENGINES = (PYAHOCORASICK, DAACHORSE)


@cache
def daachorse_module() -> ModuleType | None:
    """The daachorse module, or None when it is not installed. (Imported by name: it is optional, and its
    calls are few and wrapped in `rules.matcher`.)"""
    try:
        return importlib.import_module("daachorse")
    except ImportError:
        return None


def available() -> list[str]:
    """The engines that can be used in this process, the default first."""
    return [PYAHOCORASICK] + ([DAACHORSE] if daachorse_module() is not None else [])


def choose(requested: str | None = None) -> str:
    """The engine to compile with: `requested`, else `GUARD_SCAN_ENGINE`, else daachorse when installed,
    else pyahocorasick. Raises ValueError for an unknown name or an engine that is not installed."""
    name = (requested or os.environ.get(ENGINE_ENV, "")).strip().lower()
    if not name:
        return DAACHORSE if daachorse_module() is not None else PYAHOCORASICK
    if name not in ENGINES:
        raise ValueError(f"{ENGINE_ENV}={name!r}: the engines are {', '.join(ENGINES)}")
    if name == DAACHORSE and daachorse_module() is None:
        raise ValueError(f"{ENGINE_ENV}={name!r}, but daachorse is not installed ('siyu-guard[fast]')")
    return name
