"""`guard serve` with two probes, for bench/faults.py (a benchmark helper, not part of the guard):

- collector pauses: `gc.callbacks` times every collection (start → stop, by generation), in wall time and
  in the thread's CPU time (the collector's own work, without waiting for a core on a busy machine);
- event-loop lag: a task asks to sleep 5 ms and records how much later than that it woke up — anything
  that holds the loop (a collection, a long callback, a blocked call) shows here, whatever its cause.

Each event is one JSON line `{"t": wall time, "kind": "gc" | "lag", "gen": N, "ms": …, "cpu_ms": …}`
in the file named by SIYU_PROBE_FILE (collections of 0.2 ms or more, every generation-2 one with the
number of objects it walked, lags of 0.5 ms or more), and once a second the process's resident memory
`{"t": …, "kind": "rss", "kb": …}`.

SIYU_PROBE_GC chooses how the guard runs its collector, to measure what each step changes:
  `guard`       as `guard serve` runs (heap frozen after start-up, full collections scheduled by
                `guard.app.FullCollections`);
  `before`      the guard before FullCollections: heap frozen, full collections on CPython's own
                schedule, and a request let through as the counters' breaker probe after its cool-down
                (`CircuitBreaker(calls_probe=True)`);
  `no-freeze`   as `before`, without the heap freeze either (the guard before `guard.app.freeze_heap`).

    SIYU_PROBE_FILE=/tmp/probe.jsonl python3 bench/probe_serve.py serve --port 8080 …
"""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import os
import sys
import time
from typing import Any

import guard.app
import guard.commands.serve as serve_command
from guard.cli import main
from ratelimit import CircuitBreaker

OUT = open(os.environ["SIYU_PROBE_FILE"], "a", buffering=1)  # noqa: SIM115 - for the process's life
_events: list[dict[str, Any]] = []
_started: list[float] = [0.0, 0.0]


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0], _started[1] = time.perf_counter(), time.thread_time()
        return
    ms = (time.perf_counter() - _started[0]) * 1000
    # CPU time of the collection: the collector's own work, without the time the process waited for a
    # core on a busy machine (which the wall time `ms` includes).
    cpu_ms = (time.thread_time() - _started[1]) * 1000
    if ms >= 0.2 or info["generation"] == 2:
        event = {
            "t": time.time(), "kind": "gc", "gen": info["generation"], "ms": round(ms, 3),
            "cpu_ms": round(cpu_ms, 3),
        }  # fmt: skip
        if info["generation"] == 2:
            # What a full collection walked: what survived it, plus what it freed.
            event["objects"] = len(gc.get_objects(generation=2)) + info["collected"]
        _events.append(event)


def _rss_kb() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


async def _lag_probe() -> None:
    step = 0.005
    last_flush = last_rss = time.monotonic()
    while True:
        before = time.perf_counter()
        await asyncio.sleep(step)
        lag = (time.perf_counter() - before - step) * 1000
        if lag >= 0.5:
            _events.append({"t": time.time(), "kind": "lag", "ms": round(lag, 3)})
        if time.monotonic() - last_rss >= 1.0:
            last_rss = time.monotonic()
            _events.append({"t": time.time(), "kind": "rss", "kb": _rss_kb()})
        if time.monotonic() - last_flush > 0.25:
            last_flush = time.monotonic()
            events, _events[:] = list(_events), []
            for event in events:
                OUT.write(json.dumps(event) + "\n")


_original_serve = serve_command._serve


async def _probed_serve(app: Any, settings: Any) -> int:
    task = asyncio.create_task(_lag_probe())
    try:
        return await _original_serve(app, settings)
    finally:
        task.cancel()


if __name__ == "__main__":
    gc.callbacks.append(_on_gc)
    serve_command._serve = _probed_serve  # type: ignore[assignment]
    mode = os.environ.get("SIYU_PROBE_GC", "guard")
    if mode not in ("guard", "before", "no-freeze"):
        sys.exit(f"probe_serve.py: SIYU_PROBE_GC={mode!r}: guard, before or no-freeze")
    if mode == "no-freeze":
        guard.app.freeze_heap = lambda *, full: None  # type: ignore[assignment]
    if mode in ("before", "no-freeze"):
        guard.app.FullCollections.start = lambda self: None  # type: ignore[method-assign]
        guard.app.CircuitBreaker = functools.partial(CircuitBreaker, calls_probe=True)  # type: ignore[attr-defined,assignment]
    sys.exit(main(sys.argv[1:]))
