"""The rules directory as WeCom's own chat intercept rules (企业微信 敏感词规则): the plan, and the diff
against what the corp has. Pure: no I/O beyond reading the rules directory, no aiohttp.

WeCom checks what staff type by hand in the WeCom client, which no proxy sees, with a literal word
matcher: `externalcontact/add_intercept_rule` takes `rule_name` (1-20 characters), `word_list` (at most
300 words of 1-32 characters), `semantics_list` (1 phone number, 2 e-mail, 3 red packet),
`intercept_type` (1 warn and block, 2 warn only) and `applicable_range` (`user_list`, `department_list`);
a corp has at most 100 rules, hand-made ones included.

The plan: one rule per category and part (`<prefix><category>-<n>`), blocking categories as type 1,
warning ones as type 2; the contact detectors as `semantics_list` on the first rule of the contact
category's type. Within the rule budget the words go in this order: blocking terms, warning terms,
then the spellings the guard's normalizer folds but a literal matcher misses (traditional forms,
full-width Latin and digits, spaced-out characters), blocking ones first. What does not fit, or cannot
be a WeCom word (longer than 32 characters), is left out and said why.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from rules import DEFAULT_DIR, RuleError, RulesInvalid
from rules.check import InterceptConfig, parse_intercept
from rules.load import load_policy, parse_words
from rules.policy import CONTACT

MAX_WORDS = 300
MAX_WORD_CHARS = 32
MAX_NAME_CHARS = 20
CORP_RULE_LIMIT = 100
ROOT_DEPARTMENT = 1
BLOCK, WARN = 1, 2  # intercept_type
SEMANTICS = {"phone": 1, "email": 2}  # detectors WeCom has a semantics rule for (3 is red packets)


@dataclass(frozen=True, slots=True)
class LeftOut:
    category: str
    term: str
    reason: str
    kind: str = "term"  # "term" as written in the word list, or a variant kind
    blocking: bool = False

    def to_json(self) -> dict[str, object]:
        return {"category": self.category, "term": self.term, "kind": self.kind, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Plan:
    rules: tuple[dict[str, Any], ...]
    left_out: tuple[LeftOut, ...]
    config: InterceptConfig
    budget_words: Mapping[str, int] = field(default_factory=dict)

    @property
    def blocking_left_out(self) -> bool:
        return any(item.blocking for item in self.left_out)

    def to_json(self) -> dict[str, object]:
        return {
            "rules": list(self.rules),
            "left_out": [item.to_json() for item in self.left_out],
            "max_rules": self.config.max_rules,
            "words": sum(len(r["word_list"]) for r in self.rules),
        }


# ---- variants: what the normalizer folds that a literal matcher does not ----


@cache
def _s2t() -> Any:
    import opencc

    return opencc.OpenCC("s2t")


def traditional(term: str) -> str:
    return str(_s2t().convert(term))


def fullwidth(term: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" and c.isalnum() else c for c in term)


def spaced(term: str) -> str:
    return " ".join(term.replace(" ", "")) if len(term) > 1 else term


VARIANTS = {"traditional": traditional, "fullwidth": fullwidth, "spaced": spaced}


# ---- the plan ----


def word_problem(word: str) -> str | None:
    if not word:
        return "empty"
    if len(word) > MAX_WORD_CHARS:
        return f"longer than {MAX_WORD_CHARS} characters ({len(word)}), WeCom's limit for a word"
    if any(c in word for c in "\r\n\t"):
        return "contains a line break or tab"
    return None


def rule_name(prefix: str, category: str, part: int) -> str:
    """`<prefix><category>-<part>` in at most 20 characters (a long category is cut and hashed)."""
    tail = f"-{part}"
    room = MAX_NAME_CHARS - len(prefix) - len(tail)
    if len(category) > room:
        digest = hashlib.sha1(category.encode()).hexdigest()[:3]
        category = category[: room - 3] + digest
    return f"{prefix}{category}{tail}"


def owned_name(prefix: str) -> re.Pattern[str]:
    """The names of the rules the guard owns; every other rule is the corp's own."""
    return re.compile(rf"^{re.escape(prefix)}[a-z0-9_-]+-[0-9]+$")


def applicable_range(config: InterceptConfig) -> dict[str, list[Any]]:
    if not config.users and not config.departments:
        return {"department_list": [ROOT_DEPARTMENT]}
    out: dict[str, list[Any]] = {}
    if config.users:
        out["user_list"] = list(config.users)
    if config.departments:
        out["department_list"] = list(config.departments)
    return out


class _Budget:
    """Words per category, packed into rules of 300, within `max_rules`."""

    def __init__(self, max_rules: int) -> None:
        self.free = max_rules
        self.rules: dict[str, int] = {}
        self.words: dict[str, list[str]] = {}

    def add(self, category: str, word: str) -> bool:
        have = self.words.setdefault(category, [])
        if len(have) >= self.rules.get(category, 0) * MAX_WORDS:
            if self.free <= 0:
                return False
            self.free -= 1
            self.rules[category] = self.rules.get(category, 0) + 1
        have.append(word)
        return True


class _Planner:
    """One plan being packed: the budget, the words placed and what was left out, in the order WeCom's
    budget is spent (blocking terms, warning terms, the contact semantics, then the variants)."""

    def __init__(
        self,
        words: Mapping[str, Sequence[str]],
        actions: Mapping[str, str],
        semantics: Sequence[int],
        semantics_action: str,
        config: InterceptConfig,
    ) -> None:
        self.words = words
        self.actions = actions
        self.semantics = semantics
        self.semantics_action = semantics_action
        self.config = config
        self.order = sorted(words, key=lambda c: (actions[c] != "block", c))
        self.budget = _Budget(config.max_rules)
        self.left: list[LeftOut] = []
        self.seen: set[str] = set()
        self.sem_type = BLOCK if semantics_action == "block" else WARN
        self.own_semantics_rule = False

    def _type_of(self, category: str) -> int:
        return BLOCK if self.actions[category] == "block" else WARN

    def _by_tier(self) -> list[str]:
        return [c for tier in ("block", "warn") for c in self.order if self.actions[c] == tier]

    def offer(self, category: str, word: str, kind: str, term: str) -> None:
        blocking = kind == "term" and self.actions[category] == "block"
        if word in self.seen:
            return
        problem = word_problem(word)
        if problem is not None:
            self.left.append(LeftOut(category, term, problem, kind, blocking))
            return
        if self.budget.add(category, word):
            self.seen.add(word)
        else:
            reason = f"over the rule budget (max_rules = {self.config.max_rules})"
            self.left.append(LeftOut(category, term if kind == "term" else word, reason, kind, blocking))

    def place_terms(self) -> None:
        for category in self._by_tier():
            for term in self.words[category]:
                self.offer(category, term, "term", term)

    def place_semantics(self) -> None:
        """The contact detectors ride on the first rule of their type; without one they need a rule of
        their own, which comes after the terms and before the variants."""
        used = self.budget.rules
        if not self.semantics or any(self._type_of(c) == self.sem_type for c in used if used[c]):
            return
        if self.budget.free > 0:
            self.budget.free -= 1
            self.own_semantics_rule = True
            return
        names = ", ".join(k for k, v in SEMANTICS.items() if v in self.semantics)
        reason = f"over the rule budget (max_rules = {self.config.max_rules})"
        self.left.append(LeftOut(CONTACT, names, reason, "semantics", self.semantics_action == "block"))

    def place_variants(self) -> None:
        for kind in self.config.variants:
            make = VARIANTS[kind]
            for category in self._by_tier():
                for term in self.words[category]:
                    variant = make(term)
                    if variant != term:
                        self.offer(category, variant, kind, term)

    def bodies(self) -> list[dict[str, Any]]:
        scope = applicable_range(self.config)
        bodies: list[dict[str, Any]] = []
        placed = False
        for category in self.order:
            have = self.budget.words.get(category, [])
            itype = self._type_of(category)
            for part in range(math.ceil(len(have) / MAX_WORDS)):
                body: dict[str, Any] = {
                    "rule_name": rule_name(self.config.prefix, category, part + 1),
                    "word_list": have[part * MAX_WORDS : (part + 1) * MAX_WORDS],
                    "intercept_type": itype,
                    "applicable_range": scope,
                }
                if self.semantics and not placed and itype == self.sem_type:
                    body["semantics_list"] = list(self.semantics)
                    placed = True
                bodies.append(body)
        if self.own_semantics_rule and not placed:
            bodies.append(
                {
                    "rule_name": rule_name(self.config.prefix, CONTACT, 1),
                    "word_list": [],
                    "semantics_list": list(self.semantics),
                    "intercept_type": self.sem_type,
                    "applicable_range": scope,
                }
            )
        return bodies


def plan_from(
    words: Mapping[str, Sequence[str]],
    actions: Mapping[str, str],
    semantics: Sequence[int],
    semantics_action: str,
    config: InterceptConfig,
) -> Plan:
    """The plan for `words` (category -> terms as written), each category's action (block / warn) and the
    contact detectors WeCom knows (`semantics`, with the contact category's action)."""
    planner = _Planner(words, actions, semantics, semantics_action, config)
    planner.place_terms()
    planner.place_semantics()
    planner.place_variants()
    counts = {c: len(w) for c, w in planner.budget.words.items()}
    return Plan(tuple(planner.bodies()), tuple(planner.left), config, counts)


def build_plan(path: str | Path | None = None) -> Plan:
    """The plan for a rules directory (None: the shipped one). Raises RulesInvalid like `load_rules`."""
    root = Path(path) if path is not None else DEFAULT_DIR
    if not root.is_dir():
        raise RulesInvalid([RuleError.at(root, 0, "not a directory")])
    parsed, errors = parse_words(root)
    policy, policy_errors, _ = load_policy(root)
    config, config_errors = parse_intercept(root)
    errors = errors + policy_errors + config_errors
    if errors:
        raise RulesInvalid(errors)
    words = {c: list(dict.fromkeys(t.term for t in terms)) for c, terms in parsed.items()}
    actions = {c: policy.of(c).action for c in words}
    contact = policy.of(CONTACT)
    semantics = sorted({SEMANTICS[d] for d in contact.detectors if d in SEMANTICS})
    return plan_from(words, actions, semantics, contact.action, config)


# ---- the diff against the corp's rules ----


@dataclass(frozen=True, slots=True)
class Existing:
    """One of the corp's rules as `get_intercept_rule` gives it."""

    rule_id: str
    rule_name: str
    word_list: tuple[str, ...] = ()
    semantics_list: tuple[int, ...] = ()
    intercept_type: int = 0
    user_list: tuple[str, ...] = ()
    department_list: tuple[int, ...] = ()

    @classmethod
    def from_json(cls, rule: Mapping[str, Any]) -> Existing:
        scope = rule.get("applicable_range") or {}
        extra = rule.get("extra_rule") or {}
        return cls(
            rule_id=str(rule.get("rule_id", "")),
            rule_name=str(rule.get("rule_name", "")),
            word_list=tuple(str(w) for w in rule.get("word_list") or ()),
            semantics_list=tuple(
                int(s) for s in extra.get("semantics_list") or rule.get("semantics_list") or ()
            ),
            intercept_type=int(rule.get("intercept_type") or 0),
            user_list=tuple(str(u) for u in scope.get("user_list") or ()),
            department_list=tuple(int(d) for d in scope.get("department_list") or ()),
        )


@dataclass(frozen=True, slots=True)
class Diff:
    create: tuple[dict[str, Any], ...]
    update: tuple[dict[str, Any], ...]  # update_intercept_rule bodies (only what changed, plus rule_id)
    delete: tuple[Existing, ...]
    unchanged: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not (self.create or self.update or self.delete)


def _range_delta(
    want: Mapping[str, Sequence[Any]], have: Existing
) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    add: dict[str, list[Any]] = {}
    remove: dict[str, list[Any]] = {}
    for key, current in (("user_list", have.user_list), ("department_list", have.department_list)):
        wanted = list(want.get(key, ()))
        plus = [x for x in wanted if x not in current]
        minus = [x for x in current if x not in wanted]
        if plus:
            add[key] = plus
        if minus:
            remove[key] = minus
    return add, remove


def update_body(want: Mapping[str, Any], have: Existing) -> dict[str, Any] | None:
    """The `update_intercept_rule` body that turns `have` into `want`; None when they agree. WeCom's update
    takes `word_list` (the whole new list), `extra_rule.semantics_list`, `intercept_type` and the range
    as `add_applicable_range` / `remove_applicable_range`."""
    body: dict[str, Any] = {}
    if set(want["word_list"]) != set(have.word_list):
        body["word_list"] = list(want["word_list"])
    if sorted(want.get("semantics_list", [])) != sorted(have.semantics_list):
        body["extra_rule"] = {"semantics_list": list(want.get("semantics_list", []))}
    if want["intercept_type"] != have.intercept_type:
        body["intercept_type"] = want["intercept_type"]
    add, remove = _range_delta(want["applicable_range"], have)
    if add:
        body["add_applicable_range"] = add
    if remove:
        body["remove_applicable_range"] = remove
    if not body:
        return None
    return {"rule_id": have.rule_id, "rule_name": want["rule_name"], **body}


def diff(desired: Iterable[Mapping[str, Any]], owned: Iterable[Existing]) -> Diff:
    """What to create, update and delete so that the owned rules are the desired ones. `owned` holds only
    the guard's own rules (see `owned_name`); the corp's other rules are never part of a diff."""
    by_name: dict[str, Existing] = {}
    extra: list[Existing] = []
    for rule in owned:
        if rule.rule_name in by_name:
            extra.append(rule)  # a duplicate name (e.g. an interrupted sync): keep one
        else:
            by_name[rule.rule_name] = rule
    create: list[dict[str, Any]] = []
    update: list[dict[str, Any]] = []
    unchanged: list[str] = []
    wanted: set[str] = set()
    for body in desired:
        name = body["rule_name"]
        wanted.add(name)
        have = by_name.get(name)
        if have is None:
            create.append(dict(body))
            continue
        change = update_body(body, have)
        if change is None:
            unchanged.append(name)
        else:
            update.append(change)
    delete = [r for name, r in by_name.items() if name not in wanted] + extra
    return Diff(tuple(create), tuple(update), tuple(delete), tuple(unchanged))
