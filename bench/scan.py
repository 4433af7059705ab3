"""Speed of the content scanner: raw pyahocorasick vs the full `RuleSet.scan` pipeline, in one run.

    python3 bench/scan.py [--lexicon FILE] [--seeds DIR] [--repeat N]

Loads the 65k-term benchmark lexicon as ONE category (never shipped as product rules), cuts the seed
articles into 200-character messages, and prints:
* raw pyahocorasick: words added in file order, `iter()` over each message as-is — Mchar/s;
* full pipeline: `RuleSet.scan` (folding, t2s, both scans, allow list, detectors, offsets) — Mchar/s;
* the same C-level passes alone (the match folding + coded automaton, then also the detectors' folding):
  the ceiling for any pipeline built on them;
* their ratio (target ≥ 4×), the load+compile time of the lexicon (target ≤ 1.0 s, measured in a fresh
  process so the per-process folding tables are included) and its RSS growth (target ≤ 64 MiB).
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MESSAGE_CHARS = 200


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def messages(seeds: Path) -> list[str]:
    out: list[str] = []
    for path in sorted(seeds.glob("*.txt")):
        text = path.read_text(encoding="utf-8", errors="replace")
        out.extend(text[i : i + MESSAGE_CHARS] for i in range(0, len(text), MESSAGE_CHARS))
    return out


def prepare_rules(lexicon: Path, into: Path) -> tuple[int, int]:
    """A rules directory with the lexicon as words/lexicon.txt; terms `guard rules check` rejects
    (single Latin letters, terms of punctuation only) are left out and counted."""
    from rules.load import parse_terms

    (into / "words").mkdir(parents=True)
    target = into / "words" / "lexicon.txt"
    shutil.copyfile(lexicon, target)
    terms, errors = parse_terms(target)
    if errors:
        bad = {e.line for e in errors}
        lines = lexicon.read_text(encoding="utf-8", errors="replace").splitlines()
        kept = [t for n, t in enumerate(lines, 1) if n not in bad]
        target.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return len(terms), len(errors)


def measure_load(rules_dir: Path) -> dict[str, float]:
    """Load + compile in a fresh interpreter: seconds and RSS growth (imports excluded)."""
    code = f"""
import json, time, sys
sys.path.insert(0, {str(ROOT)!r})
import ahocorasick, opencc, pypinyin, rules.load
sys.path.insert(0, {str(Path(__file__).parent)!r})
from scan import rss_kib
before = rss_kib()
t = time.perf_counter()
r = rules.load.load_rules({str(rules_dir)!r})
seconds = time.perf_counter() - t
print(json.dumps({{"seconds": seconds, "rss_mib": (rss_kib() - before) / 1024, "keys": r.summary()["keys"]}}))
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    result: dict[str, float] = json.loads(out)
    return result


def throughputs(fns: list[Callable[[str], object]], msgs: list[str], repeat: int) -> list[float]:
    """Best-of-`repeat` Mchar/s of calling each fn(message) for every message. The candidates take turns
    within each round, so a load spike on a shared machine hits all of them alike."""
    chars = sum(len(m) for m in msgs)
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            started = time.perf_counter()
            for m in msgs:
                fn(m)
            best[i] = min(best[i], time.perf_counter() - started)
    return [chars / b / 1e6 for b in best]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lexicon", type=Path, default=SHARED / "bench" / "lexicon-65k.txt")
    ap.add_argument("--seeds", type=Path, default=SHARED / "seeds")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    import ahocorasick

    from rules import load_rules
    from rules.normalize import detect_text, marked_match, strip_coded

    msgs = messages(args.seeds)
    chars = sum(len(m) for m in msgs)
    with tempfile.TemporaryDirectory() as tmp:
        rules_dir = Path(tmp) / "rules"
        kept, dropped = prepare_rules(args.lexicon, rules_dir)
        load = measure_load(rules_dir)
        rules = load_rules(rules_dir)

        words = [w.strip() for w in args.lexicon.read_text(encoding="utf-8").splitlines() if w.strip()]
        raw = ahocorasick.Automaton()
        for w in words:
            raw.add_word(w, w)
        raw.make_automaton()

        def raw_scan(text: str) -> None:
            for _ in raw.iter(text):
                pass

        matcher = (
            rules._matcher
        )  # the word matcher alone: folding + coded automaton, no offsets, no detectors
        encode, outside, automaton = matcher._encode, matcher._outside, matcher._automaton

        def automaton_pass(text: str) -> None:
            for _ in automaton.iter(strip_coded(marked_match(text, encode, outside))):
                pass

        def floor_pass(text: str) -> None:
            # What every message pays before any Python-level logic: both foldings (one str.translate
            # each) and the automaton over the coded text. No pipeline built on them can be faster.
            for _ in automaton.iter(strip_coded(marked_match(text, encode, outside))):
                pass
            detect_text(text)

        shipped = load_rules()
        raw_mcs, full_mcs, pass_mcs, floor_mcs, shipped_mcs = throughputs(
            [raw_scan, rules.scan, automaton_pass, floor_pass, shipped.scan], msgs, args.repeat
        )
        hits = sum(1 for m in msgs if rules.scan(m).matches)
        shipped_hits = sum(1 for m in msgs if shipped.scan(m).matches)

    print(f"lexicon: {kept} terms as one category ({dropped} lines rejected by the checker)")
    print(f"messages: {len(msgs)} x {MESSAGE_CHARS} chars from {args.seeds}")
    print(f"          ({chars} chars, {hits} messages with a match)")
    print(f"raw pyahocorasick (file order, text as-is): {raw_mcs:6.2f} Mchar/s")
    print(f"full RuleSet.scan pipeline:                 {full_mcs:6.2f} Mchar/s")
    print(f"ratio full / raw:                           {full_mcs / raw_mcs:6.2f}x   (target >= 4x)")
    print(
        f"folding + coded automaton only:             {pass_mcs:6.2f} Mchar/s ({pass_mcs / raw_mcs:.2f}x raw)"
    )
    print(
        f"+ the detectors' folding (the floor):      {floor_mcs:6.2f} Mchar/s "
        f"({floor_mcs / raw_mcs:.2f}x raw)"
    )
    print(
        f"full pipeline, shipped rules instead:       {shipped_mcs:6.2f} Mchar/s "
        f"({shipped_hits} messages with a match)"
    )
    print(f"load + compile (fresh process):             {load['seconds']:6.3f} s     (target <= 1.0 s)")
    print(f"RSS growth for the lexicon:                 {load['rss_mib']:6.1f} MiB   (target <= 64 MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
