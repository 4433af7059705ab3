"""siyu-guard content rules: what may be sent. Pure Python; imports neither aiohttp nor redis.

>>> from rules import load_rules
>>> rules = load_rules()            # the shipped rules/default/
>>> rules.scan("稳赚不赔的投资机会").action
'block'
"""

from __future__ import annotations

from rules.errors import RuleError, RulesInvalid
from rules.load import DEFAULT_DIR, load_rules, rules_version
from rules.ruleset import Match, RuleSet, ScanResult
from rules.store import ReloadResult, RuleStore, content_hash, directory_hash

__all__ = [
    "DEFAULT_DIR",
    "Match",
    "ReloadResult",
    "RuleError",
    "RuleSet",
    "RuleStore",
    "RulesInvalid",
    "ScanResult",
    "content_hash",
    "directory_hash",
    "load_rules",
    "rules_version",
]
