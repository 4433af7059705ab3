"""`guard serve` with two probes, for bench/faults.py (a benchmark helper, not part of the guard):

- collector pauses: `gc.callbacks` times every collection (start → stop, by generation), in wall time and
  in the thread's CPU time (the collector's own work, without waiting for a core on a busy machine);
- event-loop lag: a task asks to sleep 5 ms and records how much later than that it woke up — anything
  that holds the loop (a collection, a long callback, a blocked call) shows here, whatever its cause.

Each event is one JSON line `{"t": wall time, "kind": "gc" | "lag", "gen": N, "ms": …, "cpu_ms": …}`
in the file named by SIYU_PROBE_FILE (collections of 0.2 ms or more, every generation-2 one, lags of
0.5 ms or more). With SIYU_PROBE_NO_FREEZE=1 the guard runs without its heap freeze
(`guard.app.freeze_heap`), to measure what the freeze changes.

    SIYU_PROBE_FILE=/tmp/probe.jsonl python3 bench/probe_serve.py serve --port 8080 …
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time
from typing import Any

import guard.app
import guard.commands.serve as serve_command
from guard.cli import main

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
            # What a full collection walked (taken after the pause was timed).
            event["objects"] = len(gc.get_objects(generation=2))
        _events.append(event)


async def _lag_probe() -> None:
    step = 0.005
    last_flush = time.monotonic()
    while True:
        before = time.perf_counter()
        await asyncio.sleep(step)
        lag = (time.perf_counter() - before - step) * 1000
        if lag >= 0.5:
            _events.append({"t": time.time(), "kind": "lag", "ms": round(lag, 3)})
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
    if os.environ.get("SIYU_PROBE_NO_FREEZE") == "1":
        guard.app.freeze_heap = lambda *, full: None  # type: ignore[assignment]
    sys.exit(main(sys.argv[1:]))
