"""Rules directory → RuleSet. Parsing is done by pure functions that return (value, errors).

A rules directory holds:
* `words/<category>.txt` — UTF-8, one term a line, `#` starts a comment, blank lines ignored;
* `allow.txt` — phrases that cancel any hit lying inside them (missing = no allowed phrases);
* `policy.toml` — actions and options per category (missing = the shipped default policy);
* `tests.txt` — the rule set's own regression tests (`rules.selftest`), run by `load_rules`;
* `homophones_allow.txt` — ordinary words that sound like a term (`rules.homophones`; missing = shipped).
Other files (limits, accounts, profiles) belong to other parts of the guard.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import product
from pathlib import Path

from rules.engine import choose as choose_engine
from rules.errors import RuleError, RulesInvalid
from rules.homophones import Homophone, Homophones
from rules.matcher import Entry, WordMatcher
from rules.normalize import fold_many, is_cjk, is_word_char
from rules.policy import CATEGORY_NAME, Policy, parse_policy
from rules.ruleset import RuleSet
from rules.selftest import TESTS_FILE, parse_tests, run_tests
from rules.store import content_hash
from rules.textfile import read_lines

DEFAULT_DIR = Path(__file__).resolve().parent / "default"
WORDS_DIR = "words"
ALLOW_FILE = "allow.txt"
POLICY_FILE = "policy.toml"
HOMOPHONES_ALLOW_FILE = "homophones_allow.txt"
SEVERITY = {"block": 0, "warn": 1}
MIN_PINYIN_LETTERS = 4
MAX_MIXED_CHARS = 4
MIN_INITIALS = 4


@dataclass(frozen=True, slots=True)
class TermLine:
    """A term as written on a line of a word list or the allow list, and its folded key."""

    term: str
    line: int
    key: str


def parse_terms(path: Path) -> tuple[list[TermLine], list[RuleError]]:
    """Terms of a word list or allow list, each with its folded key; a term folding to nothing is an error."""
    lines, errors = read_lines(path)
    numbered: list[tuple[int, str]] = []
    for number, text in lines:
        term = (text[: text.index("#")] if "#" in text else text).strip()
        if term:
            numbered.append((number, term))
    keys = fold_many([term for _, term in numbered])
    terms: list[TermLine] = []
    for (number, term), key in zip(numbered, keys, strict=True):
        if not key:
            reason = f"term {term!r} normalizes to nothing (only spaces, punctuation, symbols or emoji)"
            errors.append(RuleError.at(path, number, reason))
        elif len(key) == 1 and is_word_char(key):
            errors.append(RuleError.at(path, number, f"term {term!r} is a single Latin letter or digit"))
        else:
            terms.append(TermLine(term, number, key))
    errors.sort(key=lambda e: e.line)
    return terms, errors


def parse_words(root: Path) -> tuple[dict[str, list[TermLine]], list[RuleError]]:
    words_dir = root / WORDS_DIR
    if not words_dir.is_dir():
        return {}, [
            RuleError.at(words_dir, 0, "missing words/ directory (one <category>.txt file per category)")
        ]
    try:
        files = sorted(p for p in words_dir.iterdir() if p.suffix == ".txt" and not p.name.startswith("."))
    except OSError as exc:
        return {}, [RuleError.at(words_dir, 0, f"cannot list directory: {exc.strerror or exc}")]
    if not files:
        return {}, [RuleError.at(words_dir, 0, "words/ holds no word list (<category>.txt)")]
    categories: dict[str, list[TermLine]] = {}
    errors: list[RuleError] = []
    for file in files:
        if not CATEGORY_NAME.match(file.stem):
            errors.append(
                RuleError.at(
                    file, 0, f"bad category name {file.stem!r} (use lower-case letters, digits, _ and -)"
                )
            )
            continue
        if file.is_dir():
            errors.append(RuleError.at(file, 0, "is a directory, expected a word list"))
            continue
        terms, file_errors = parse_terms(file)
        errors.extend(file_errors)
        categories[file.stem] = terms
    return categories, errors


def policy_path(root: Path) -> Path:
    own = root / POLICY_FILE
    return own if own.exists() else DEFAULT_DIR / POLICY_FILE


def load_policy(root: Path) -> tuple[Policy, list[RuleError], Path]:
    path = policy_path(root)
    lines, errors = read_lines(path)
    if errors:
        return Policy(), errors, path
    policy, problems = parse_policy("\n".join(text for _, text in lines), path)
    return policy, problems, path


def parse_allow(root: Path) -> tuple[list[TermLine], list[RuleError]]:
    path = root / ALLOW_FILE
    if not path.exists():
        return [], []
    return parse_terms(path)


def homophones_allow_path(root: Path) -> Path:
    own = root / HOMOPHONES_ALLOW_FILE
    return own if own.exists() else DEFAULT_DIR / HOMOPHONES_ALLOW_FILE


def parse_homophones_allow(root: Path) -> tuple[list[TermLine], list[RuleError]]:
    """The directory's `homophones_allow.txt`, else the shipped one (the words are ordinary Chinese)."""
    path = homophones_allow_path(root)
    if not path.exists():
        return [], []
    return parse_terms(path)


def build_homophones(
    words: dict[str, list[TermLine]],
    allow: Iterable[TermLine],
    root: Path,
    policy: Policy,
    engine: str | None = None,
) -> Homophones | None:
    """The homophone matcher of the categories whose policy enables it (None when none does)."""
    terms: list[Homophone] = []
    for category, lines in words.items():
        action = policy.of(category).homophones
        if action is not None:
            terms.extend(Homophone(t.term, t.key, category, action) for t in lines)
    if not terms:
        return None
    phrases = [t.key for t in parse_homophones_allow(root)[0]] + [t.key for t in allow]
    return Homophones(terms, phrases, engine)


# ---------------------------------------------------------------------------------------------- pinyin


def _readings(key: str, cjk: list[int]) -> dict[int, list[str]]:
    """The pinyin spellings of each Chinese character of `key` (by index), read a run of adjacent ones at a
    time so that polyphones take their reading in context; a run pypinyin cannot read gets none."""
    from pypinyin import Style, lazy_pinyin

    readings: dict[int, list[str]] = {}
    run: list[int] = []
    for i in [*cjk, -1]:
        if run and (i != run[-1] + 1 or i == -1):
            syllables = lazy_pinyin("".join(key[j] for j in run), style=Style.NORMAL, errors="ignore")
            if len(syllables) == len(run):
                for j, s in zip(run, syllables, strict=True):
                    forms = [s] if "v" not in s else [s, s.replace("v", "u")]
                    readings[j] = [f for f in forms if f.isascii() and f.isalpha()]
            run = []
        if i != -1:
            run.append(i)
    return readings


def _mixes(n: int) -> list[tuple[bool, ...]]:
    """Which of `n` Chinese characters to spell in pinyin: every mix up to MAX_MIXED_CHARS characters;
    beyond, all of them, one of them, and a pinyin head or tail of any length (not 2**n mixes)."""
    if n <= MAX_MIXED_CHARS:
        return list(product([False, True], repeat=n))
    picks = {tuple([True] * n)}
    for cut in range(1, n):
        picks.add(tuple([False] * cut + [True] * (n - cut)))
        picks.add(tuple([True] * cut + [False] * (n - cut)))
    for k in range(n):
        picks.add(tuple(j == k for j in range(n)))
    return sorted(picks)


def pinyin_variants(key: str) -> Iterator[str]:
    """Pinyin spellings of a folded term: 全拼 (spaces are deleted by folding, so `tou zi` is covered) and
    mixed hanzi / pinyin (百jia乐, tou资), tone numbers (tou2zi1) and, for terms of four or more Chinese
    characters, initials (wzbp). ü is spelled both v and u. Terms of one Chinese character get none; a
    variant without any Chinese character needs at least four letters."""
    from pypinyin import Style, lazy_pinyin

    cjk = [i for i, c in enumerate(key) if is_cjk(c)]
    if len(cjk) < 2:
        return
    readings = _readings(key, cjk)
    positions = [i for i in cjk if readings.get(i)]
    if len(positions) < 2:
        return
    seen: set[str] = set()
    # Tone numbers (tou2zi1): the all-pinyin spelling only; mixing them with hanzi is not how people write.
    if len(positions) == len(key):
        tone = "".join(lazy_pinyin(key, style=Style.TONE3, errors="ignore"))
        if tone.isascii() and tone.isalnum() and any(c.isdigit() for c in tone):
            seen.add(tone)
            yield tone
        # Initials (简拼: 稳赚不赔 → wzbp) only from four characters on: shorter ones collide with
        # ordinary abbreviations; the well-known short ones (bjl, lhc) are listed as terms instead.
        if len(key) >= MIN_INITIALS:
            initials = "".join(readings[i][0][0] for i in positions)
            if initials not in seen:
                seen.add(initials)
                yield initials
    for choice in _mixes(len(positions)):
        if not any(choice):
            continue
        chars: list[list[str]] = [[c] for c in key]
        for pos, use in zip(positions, choice, strict=True):
            if use:
                chars[pos] = readings[pos]
        for combo in product(*chars):
            variant = "".join(combo)
            if variant in seen or variant == key:
                continue
            seen.add(variant)
            if not any(is_cjk(c) for c in variant) and sum(c.isalpha() for c in variant) < MIN_PINYIN_LETTERS:
                continue
            yield variant


# ---------------------------------------------------------------------------------------------- loading


def rule_files(root: Path) -> list[Path]:
    """The files a RuleSet is built from (for its version hash)."""
    words = root / WORDS_DIR
    files = sorted(words.glob("*.txt")) if words.is_dir() else []
    allow = root / ALLOW_FILE
    if allow.exists():
        files.append(allow)
    files.append(policy_path(root))
    homophones_allow = homophones_allow_path(root)
    if homophones_allow.exists():
        files.append(homophones_allow)
    tests = root / TESTS_FILE
    if tests.exists():
        files.append(tests)
    return files


def rules_version(root: Path) -> str:
    """The RuleSet's version: a content hash of its word lists, allow list, (own or shipped) policy and tests.
    Pass it as `RuleStore(load_rules, path, version_of=rules_version)` to make the store's version equal
    `store.current.version`."""
    return content_hash(rule_files(root), root=root)


def compile_entries(
    words: dict[str, list[TermLine]], allow: Iterable[TermLine], policy: Policy
) -> Iterator[tuple[str, Entry]]:
    for category, terms in words.items():
        rule = policy.of(category)
        severity = SEVERITY[rule.action]
        for t in terms:
            yield t.key, Entry.of(t.key, t.term, category, severity)
            if rule.pinyin:
                for variant in pinyin_variants(t.key):
                    yield variant, Entry.of(variant, t.term, category, severity)
    for t in allow:
        yield t.key, Entry.of(t.key, t.term, None)


def load_rules(
    path: str | Path | None = None, *, self_test: bool = True, engine: str | None = None
) -> RuleSet:
    """Load and compile a rules directory (None = the shipped `rules/default/`), then run its `tests.txt`.
    `engine`: the Aho-Corasick engine (`rules.engine.choose`: None = GUARD_SCAN_ENGINE, else the fastest
    installed).

    Raises `RulesInvalid` with every problem when the directory cannot be used, including every line of
    its tests.txt that is malformed or fails (`self_test=False` skips running them).
    """
    root = Path(path) if path is not None else DEFAULT_DIR
    if not root.is_dir():
        raise RulesInvalid([RuleError.at(root, 0, "not a directory")])
    try:
        engine = choose_engine(engine)
    except ValueError as exc:  # GUARD_SCAN_ENGINE names no usable engine: said like any other problem
        raise RulesInvalid([RuleError.at(root, 0, str(exc))]) from None
    words, errors = parse_words(root)
    allow, allow_errors = parse_allow(root)
    policy, policy_errors, _ = load_policy(root)
    tests, test_errors = parse_tests(root) if self_test else ([], [])
    homophone_errors = parse_homophones_allow(root)[1]
    errors = errors + allow_errors + policy_errors + homophone_errors + test_errors
    if errors:
        raise RulesInvalid(errors)
    version = rules_version(root)
    matcher = WordMatcher(
        compile_entries(words, allow, policy),
        max_gap=policy.max_gap,
        collapse_repeats=policy.collapse_repeats,
        engine=engine,
    )
    rules = RuleSet(
        path=root,
        version=version,
        policy=policy,
        matcher=matcher,
        term_counts={c: len(t) for c, t in words.items()},
        allow_count=len(allow),
        files=tuple(rule_files(root)),
        homophones=build_homophones(words, allow, root, policy, engine),
    )
    if tests:
        failures = run_tests(rules, tests, root / TESTS_FILE)
        if failures:
            raise RulesInvalid(failures)
    return rules
