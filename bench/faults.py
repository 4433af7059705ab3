"""Pauses and tail latency under load (a benchmark, not a test; issue 10, "Hold under fire").

In ONE run, the same stub upstream and the same wrk load as bench/proxy.py — clean WeCom broadcasts, each
from a fresh account, so every request is checked in full, counted in Redis and forwarded — against

  1. the bare aiohttp pass-through (bench/passthrough.py), and
  2. `guard serve` with Redis counters, run under bench/probe_serve.py: every garbage collection is
     timed (`gc.callbacks`) and an event-loop lag probe (a 5 ms sleep that records how late it wakes)
     sees anything else that holds the loop,

at 1, 16 and 256 connections. For each it prints p50 / p99 / max latency (wrk), the longest collector
pause (wall time, and the CPU time of that work: on a busy machine the wall time also holds the moments
the process waited for a core), the longest loop lag seen in the guard during that run, how many
generation-2 collections ran, and the share of answers that were "counters unavailable" (490010, from
the guard's /metrics: a loop held past `redis_timeout` makes healthy Redis calls time out; the goal
is 0).

    python3 bench/faults.py [--duration 10] [--connections 1,16,256] [--rounds 1] [--no-freeze] [--no-sockets]

Then it times how soon the guard (default timeouts) closes lingering sockets: one that sends nothing, a
half-sent header block, a connection kept alive after an answer, a body that stops.

`--no-freeze` runs the guard without its heap freeze (`guard.app.freeze_heap`): the "before" figures.
`--both` runs the guard both ways in the same run. Needs `wrk` and `redis-server` on PATH.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
from proxy import PATH, STUB, WRK_SCRIPT, to_ms  # noqa: E402
from servers import free_port, wait_for_port  # noqa: E402


def run_wrk(url: str, script: Path, connections: int, duration: int) -> dict[str, float]:
    threads = min(2, connections)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    text = out.stdout

    def grab(pattern: str) -> str:
        found = re.search(pattern, text)
        if found is None:
            raise RuntimeError(f"wrk output without {pattern!r}:\n{text}")
        return found.group(1)

    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return {
        "rps": float(grab(r"Requests/sec:\s+([\d.]+)")),
        "requests": float(grab(r"(\d+) requests in")),
        "p50": to_ms(grab(r"\s50%\s+(\S+)")),
        "p99": to_ms(grab(r"\s99%\s+(\S+)")),
        "max": to_ms(grab(r"Latency\s+\S+\s+\S+\s+(\S+)")),
        "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "socket_errors": float(sum(int(x) for x in errors.groups())) if errors else 0.0,
    }


def decisions(port: int) -> dict[str, float]:
    """The guard's decision counters: total, and those refused as 'counters unavailable'."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    total = unavailable = 0.0
    for line in text.splitlines():
        if line.startswith("guard_decisions_total{"):
            value = float(line.rsplit(" ", 1)[1])
            total += value
            if 'rule="quota:unavailable"' in line:
                unavailable += value
    return {"total": total, "unavailable": unavailable}


def probe_events(path: Path, start: float, end: float) -> dict[str, float]:
    gc_max = gc_cpu_max = lag_max = 0.0
    gen2 = 0
    gen2_max = 0.0
    if path.exists():
        for line in path.read_text().splitlines():
            event = json.loads(line)
            if not start <= event["t"] <= end:
                continue
            if event["kind"] == "gc":
                gc_max = max(gc_max, event["ms"])
                gc_cpu_max = max(gc_cpu_max, event["cpu_ms"])
                if event["gen"] == 2:
                    gen2 += 1
                    gen2_max = max(gen2_max, event["ms"])
            else:
                lag_max = max(lag_max, event["ms"])
    return {
        "gc_max": gc_max, "gc_cpu_max": gc_cpu_max, "gen2": gen2, "gen2_max": gen2_max, "lag_max": lag_max
    }  # fmt: skip


def close_times(port: int, within: float) -> dict[str, float | None]:
    """Seconds until the guard closes each kind of lingering socket (None: still open after `within`):
    one that sends nothing, one that sends half a header block, one kept alive after an answer, one whose
    body stops after 10 bytes. All four run at once."""
    head = b"POST /cgi-bin/message/send HTTP/1.1\r\nHost: guard\r\nContent-Type: application/json\r\n"
    openers = {
        "idle (nothing sent)": b"",
        "half-sent header block": head,
        "kept alive after an answer": b"GET /healthz HTTP/1.1\r\nHost: guard\r\n\r\n",
        "body stopped after 10 bytes": head + b"Content-Length: 100\r\n\r\n" + b"{" * 10,
    }
    sockets = {}
    started = time.monotonic()
    for name, data in openers.items():
        sock = socket.create_connection(("127.0.0.1", port))
        if data:
            sock.sendall(data)
        sockets[sock] = name
    found: dict[str, float | None] = dict.fromkeys(openers)
    try:
        while sockets and time.monotonic() - started < within:
            for sock in select.select(list(sockets), [], [], 0.05)[0]:
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    found[sockets.pop(sock)] = time.monotonic() - started
                    sock.close()
    finally:
        for sock in sockets:
            sock.close()
    return found


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", default="1,16,256")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--no-freeze", action="store_true", help="the guard without its heap freeze")
    parser.add_argument("--both", action="store_true", help="the guard with and without the heap freeze")
    parser.add_argument(
        "--no-sockets", action="store_true", help="skip timing how soon lingering sockets are closed (~75 s)"
    )
    args = parser.parse_args()
    for tool in ("wrk", "redis-server"):
        if shutil.which(tool) is None:
            print(f"bench/faults.py: {tool} is not installed", file=sys.stderr)
            return 2
    levels = [int(c) for c in args.connections.split(",")]

    tmp = Path(tempfile.mkdtemp(prefix="siyu-faults-"))
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Any] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GUARD_", "SIYU_"))}
    env["PYTHONPATH"] = str(ROOT)
    load_before = os.getloadavg()
    try:
        stub_port, pass_port, redis_port = free_port(), free_port(), free_port()
        procs.append(
            subprocess.Popen(
                ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(tmp)],
                stdout=subprocess.DEVNULL,
            )
        )  # fmt: skip
        (tmp / "stub.py").write_text(STUB)
        procs.append(subprocess.Popen([sys.executable, str(tmp / "stub.py"), str(stub_port)], env=env))
        stub = f"http://127.0.0.1:{stub_port}"
        procs.append(
            subprocess.Popen(
                [sys.executable, str(ROOT / "bench" / "passthrough.py"), "--port", str(pass_port),
                 "--upstream", stub],
                env=env,
            )
        )  # fmt: skip
        variants = (
            [("guard", False), ("guard, no freeze", True)]
            if args.both
            else [("guard, no freeze" if args.no_freeze else "guard", args.no_freeze)]
        )
        guards: dict[str, tuple[int, Path]] = {}
        for db, (name, no_freeze) in enumerate(variants):
            port = free_port()
            probe = tmp / f"probe{db}.jsonl"
            log = open(tmp / f"guard{db}.log", "wb")  # noqa: SIM115 - closed in `finally`
            logs.append(log)
            procs.append(
                subprocess.Popen(
                    [sys.executable, str(ROOT / "bench" / "probe_serve.py"), "serve", "--port", str(port),
                     "--upstream", stub, "--redis", f"redis://127.0.0.1:{redis_port}/{db}"],
                    env={**env, "GUARD_RELOAD_INTERVAL": "0", "SIYU_PROBE_FILE": str(probe),
                         "SIYU_PROBE_NO_FREEZE": "1" if no_freeze else "0"},
                    stderr=log,
                )
            )  # fmt: skip
            guards[name] = (port, probe)
        for port in [redis_port, stub_port, pass_port, *(p for p, _ in guards.values())]:
            wait_for_port(port, timeout=30.0)
        time.sleep(1.0)

        runs = iter(range(1_000_000))

        def script() -> Path:
            run_id = next(runs)
            path = tmp / f"load{run_id}.lua"
            path.write_text(WRK_SCRIPT.replace("__PATH__", PATH).replace("RUN_ID", str(run_id)))
            return path

        targets = {"pass-through": pass_port, **{name: port for name, (port, _) in guards.items()}}
        for port in targets.values():
            run_wrk(f"http://127.0.0.1:{port}", script(), 16, 2)  # warm-up
        rows: list[dict[str, Any]] = []
        for round_no in range(1, max(1, args.rounds) + 1):
            for connections in levels:
                for name, port in targets.items():
                    before = decisions(port) if name in guards else None
                    start = time.time()
                    figures = run_wrk(f"http://127.0.0.1:{port}", script(), connections, args.duration)
                    end = time.time()
                    row: dict[str, Any] = {"round": round_no, "target": name, "conn": connections, **figures}
                    if before is not None:
                        time.sleep(0.6)  # the probe writes its events every 0.25 s
                        after = decisions(port)
                        row.update(probe_events(guards[name][1], start, end))
                        total = after["total"] - before["total"]
                        row["unavailable"] = after["unavailable"] - before["unavailable"]
                        row["unavailable_share"] = row["unavailable"] / total if total else 0.0
                    rows.append(row)
        load_after = os.getloadavg()

        print(
            f"\nPauses and tail latency: {args.duration}s per run (wrk), {args.rounds} round(s), clean WeCom "
            f"broadcasts, each from a fresh account; guard with Redis counters, all checks, audit lines."
        )
        print(
            "Load average before " + "/".join(f"{x:.2f}" for x in load_before) + ", after "
            + "/".join(f"{x:.2f}" for x in load_after) + f" ({os.cpu_count()} CPUs).\n"
        )  # fmt: skip
        header = (
            f"{'conn':>4} {'target':18} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
            f"{'non2xx':>6} | {'gc max ms':>9} {'(cpu)':>6} {'gen2 n':>6} {'gen2 max':>8} {'lag max ms':>10} "
            f"{'unavail':>8}"
        )
        print(header)
        for row in rows:
            probe = (
                f"{row['gc_max']:9.2f} {row['gc_cpu_max']:6.2f} {row['gen2']:6d} {row['gen2_max']:8.2f} "
                f"{row['lag_max']:10.2f} {row['unavailable_share']:8.2%}"
                if "gc_max" in row
                else ""
            )
            print(
                f"{row['conn']:4d} {row['target']:18} {row['rps']:7.0f} {row['p50']:8.2f} {row['p99']:8.2f} "
                f"{row['max']:8.2f} {int(row['non2xx']):6d} | {probe}"
            )
        print()
        if not args.no_sockets:
            name, (port, _) = next(iter(guards.items()))
            print(f"\nLingering sockets against {name} (default timeouts): seconds until closed")
            for kind, seconds in close_times(port, within=120.0).items():
                shown = f"{seconds:6.1f} s" if seconds is not None else "still open after 120 s"
                print(f"  {kind:30} {shown}")
            print()
        for name in guards:
            mine = [r for r in rows if r["target"] == name]
            print(
                f"{name}: longest collector pause {max(r['gc_max'] for r in mine):.2f} ms "
                f"({max(r['gc_cpu_max'] for r in mine):.2f} ms of CPU), longest loop lag "
                f"{max(r['lag_max'] for r in mine):.2f} ms, 'counters unavailable' answers "
                f"{int(sum(r['unavailable'] for r in mine))} (goal 0)"
            )
        return 0
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        for handle in logs:
            handle.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
