"""The policy file of a rules directory: what each category does, parsed by pure functions.

```toml
[scan]
max_gap = 3            # visible deleted characters allowed between two letters of a match
collapse_repeats = true  # second scan with runs of one repeated character collapsed (投投资资)

[defaults]             # for every category the file does not list
action = "block"
pinyin = false

[categories.finance]
action = "block"       # "block" or "warn"
pinyin = true          # also match 全拼 and mixed hanzi / pinyin variants
homophones = "warn"    # also match same-sounding characters (菠菜 for 博彩) with this action; default off
label = "金融投资 / finance and investment"

[categories.contact]   # the contact detectors
action = "warn"
detectors = ["phone", "wechat", "qq", "url", "email"]
```
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rules.errors import RuleError
from rules.tomlfile import parse_toml

CategoryAction = Literal["block", "warn"]
ACTIONS: tuple[CategoryAction, ...] = ("block", "warn")
DETECTORS: tuple[str, ...] = ("phone", "wechat", "qq", "url", "email")
CONTACT = "contact"
DEFAULT_MAX_GAP = 3
MAX_GAP_LIMIT = 32
CATEGORY_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True, slots=True)
class CategoryPolicy:
    action: CategoryAction = "block"
    pinyin: bool = False
    label: str = ""
    detectors: tuple[str, ...] = DETECTORS
    homophones: CategoryAction | None = None  # the action of a homophone (谐音) hit; None: not matched


@dataclass(frozen=True, slots=True)
class Policy:
    defaults: CategoryPolicy = field(default_factory=CategoryPolicy)
    categories: Mapping[str, CategoryPolicy] = field(default_factory=dict)
    max_gap: int = DEFAULT_MAX_GAP
    collapse_repeats: bool = True

    def of(self, category: str) -> CategoryPolicy:
        found = self.categories.get(category)
        if found is not None:
            return found
        if category == CONTACT:
            return CategoryPolicy(action="warn", pinyin=False)
        return self.defaults


# The error callback of parse_policy: (section, key or None for the header, reason).
_Err = Callable[[str, str | None, str], None]


def parse_policy(text: str, path: str | Path) -> tuple[Policy, list[RuleError]]:
    """Parse the policy TOML. Returns the policy (defaults where something is wrong) and every problem."""
    errors: list[RuleError] = []
    parsed = parse_toml(text, path, errors)
    if parsed is None:
        return Policy(), errors
    data, lines = parsed

    def err(section: str, key: str | None, reason: str) -> None:
        where = (*section.split("."),) if section else ()
        errors.append(RuleError.at(path, lines.line((*where, key) if key is not None else where), reason))

    for top in data:
        if top not in ("scan", "defaults", "categories"):
            err(top, None, f"unknown table or key [{top}] (expected scan, defaults, categories)")

    max_gap = DEFAULT_MAX_GAP
    collapse = True
    scan = data.get("scan", {})
    if not isinstance(scan, dict):
        err("", "scan", "scan must be a table")
        scan = {}
    for key, value in scan.items():
        if key == "max_gap":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_GAP_LIMIT:
                err("scan", key, f"max_gap must be an integer from 0 to {MAX_GAP_LIMIT}, got {value!r}")
            else:
                max_gap = value
        elif key == "collapse_repeats":
            if not isinstance(value, bool):
                err("scan", key, f"collapse_repeats must be true or false, got {value!r}")
            else:
                collapse = value
        else:
            err("scan", key, f"unknown key {key!r} in [scan] (expected max_gap, collapse_repeats)")

    raw_defaults = data.get("defaults", {})
    if not isinstance(raw_defaults, dict):
        err("", "defaults", "defaults must be a table")
        raw_defaults = {}
    defaults = _category(raw_defaults, "defaults", CategoryPolicy(), err)

    categories: dict[str, CategoryPolicy] = {}
    raw_categories = data.get("categories", {})
    if not isinstance(raw_categories, dict):
        err("", "categories", "categories must be a table of tables")
        raw_categories = {}
    for name, body in raw_categories.items():
        section = f"categories.{name}"
        if not CATEGORY_NAME.match(name):
            err(section, None, f"bad category name {name!r} (use lower-case letters, digits, _ and -)")
            continue
        if not isinstance(body, dict):
            err("categories", name, f"category {name!r} must be a table")
            continue
        base = CategoryPolicy(action="warn") if name == CONTACT and "action" not in body else defaults
        categories[name] = _category(body, section, base, err)
    return Policy(defaults, categories, max_gap, collapse), errors


def _category(body: dict[str, object], section: str, base: CategoryPolicy, err: _Err) -> CategoryPolicy:
    action: CategoryAction = base.action
    pinyin = base.pinyin
    label = base.label
    detectors = base.detectors
    homophones = base.homophones
    for key, value in body.items():
        if key == "action":
            if value not in ACTIONS:
                err(section, key, f"unknown action {value!r} (expected one of: {', '.join(ACTIONS)})")
            else:
                action = value
        elif key == "pinyin":
            if not isinstance(value, bool):
                err(section, key, f"pinyin must be true or false, got {value!r}")
            else:
                pinyin = value
        elif key == "label":
            if not isinstance(value, str):
                err(section, key, f"label must be a string, got {value!r}")
            else:
                label = value
        elif key == "detectors":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                err(section, key, f"detectors must be a list of names, got {value!r}")
                continue
            unknown = [v for v in value if v not in DETECTORS]
            if unknown:
                err(section, key, f"unknown detector(s) {unknown} (known: {', '.join(DETECTORS)})")
                continue
            detectors = tuple(value)
        elif key == "homophones":
            if value is False:
                homophones = None
            elif value not in ACTIONS:
                err(section, key, f"homophones must be one of: {', '.join(ACTIONS)} or false, got {value!r}")
            else:
                homophones = value
        else:
            err(section, key, f"unknown key {key!r} (expected action, pinyin, homophones, label, detectors)")
    return CategoryPolicy(
        action=action, pinyin=pinyin, label=label, detectors=detectors, homophones=homophones
    )
