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

    python3 bench/faults.py [--duration 10] [--connections 1,16,256] [--rounds 1]
        [--variants guard,before,no-freeze] [--soak SECONDS] [--redis-faults] [--no-sockets]

`--variants`: how the guard runs its collector (bench/probe_serve.py, SIYU_PROBE_GC), each its own guard
process measured in turns in the same run: `guard` as `guard serve` runs it (heap frozen after start-up,
full collections scheduled by `guard.app.FullCollections`, no request used as the counters' breaker
probe), `before` (the guard before those two: frozen, full collections on CPython's own schedule, a
request let through as the probe after the breaker's cool-down), `no-freeze` (`before` without the heap
freeze). Default: guard.

`--soak SECONDS`: then wrk at the highest connection count for that long against each variant, in 30 s
parts, printing after each part the guard's resident memory (RSS), the longest pause and the number of
full collections, and the RSS again after 5 s at rest: memory that keeps growing is a leak.

`--redis-faults`: then, against each variant under steady load from this script (`--fault-load N`
clients, each sending the next request as soon as it has its answer, each request from a fresh account),
Redis is frozen (SIGSTOP … SIGCONT), killed (SIGKILL … start) and restarted (SIGTERM … start) for
`--fault-seconds` (1.5 s). For each: the answers in flight at any moment of the fault (forwarded /
"counters unavailable" / other, p50 / p99 / max and the slowest answer's start), the answers of the 2 s
after it, how soon after Redis was back the first request was forwarded again (issue 10: answers
≤ 150 ms during a fault), and how many requests sent once the breaker had opened still waited for Redis
to time out (a request let through as the breaker's probe: none with `CircuitBreaker(calls_probe=False)`).

Then it times how soon the guard (default timeouts) closes lingering sockets: one that sends nothing, a
half-sent header block, a connection kept alive after an answer, a body that stops.
Needs `wrk` and `redis-server` on PATH.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
from proxy import PATH, STUB, WRK_SCRIPT, to_ms  # noqa: E402
from servers import free_port, stop_all, wait_for_port  # noqa: E402


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
    gen2 = gen2_objects = 0
    gen2_max = gen2_cpu = 0.0
    if path.exists():
        for line in path.read_text().splitlines():
            event = json.loads(line)
            if not start <= event["t"] <= end:
                continue
            if event["kind"] == "rss":
                continue
            if event["kind"] == "gc":
                gc_max = max(gc_max, event["ms"])
                gc_cpu_max = max(gc_cpu_max, event["cpu_ms"])
                if event["gen"] == 2:
                    gen2 += 1
                    gen2_max = max(gen2_max, event["ms"])
                    gen2_cpu = max(gen2_cpu, event["cpu_ms"])
                    gen2_objects = max(gen2_objects, event.get("objects", 0))
            else:
                lag_max = max(lag_max, event["ms"])
    return {
        "gc_max": gc_max, "gc_cpu_max": gc_cpu_max, "gen2": gen2, "gen2_max": gen2_max, "gen2_cpu": gen2_cpu,
        "gen2_objects": gen2_objects, "lag_max": lag_max,
    }  # fmt: skip


def rss_at(path: Path, moment: float) -> float:
    """The guard's resident memory (MiB) last sampled at or before `moment` (0 when none yet)."""
    found = 0.0
    if path.exists():
        for line in path.read_text().splitlines():
            event = json.loads(line)
            if event["kind"] == "rss" and event["t"] <= moment:
                found = event["kb"] / 1024
    return found


FAULT_BODY = (
    '{"chat_type":"single","external_userid":["wmBenchCustomer0001","wmBenchCustomer0002"],'
    '"sender":"fault-%s-%d","text":{"content":"双十一新品到店，欢迎来门店试穿，会员享受积分兑换礼品"},'
    '"attachments":[{"msgtype":"link","link":{"title":"秋冬新品","desc":"门店同款","url":"https://shop.example.com/new"}}]}'
)


Answer = tuple[float, float, int, str]


async def steady_load(url: str, clients: int, tag: str, stop: asyncio.Event, answers: list[Answer]) -> None:
    """`clients` clients, each sending the next request (from a fresh account) once it has its answer,
    until `stop`; each answer is recorded as (sent, seconds taken, WeCom errcode; -1: no answer, why the
    counters were unavailable)."""
    counter = iter(range(10**9))
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:

        async def one() -> None:
            while not stop.is_set():
                body = (FAULT_BODY % (tag, next(counter))).encode()
                sent = time.monotonic()
                try:
                    async with client.post(
                        url + PATH, data=body, headers={"Content-Type": "application/json"}
                    ) as resp:
                        data = await resp.json(content_type=None)
                    code = int(data.get("errcode", -1))
                    error = str(((data.get("guard") or {}).get("details") or {}).get("error", ""))
                except (aiohttp.ClientError, ValueError, TimeoutError):
                    code, error = -1, ""
                answers.append((sent, time.monotonic() - sent, code, error))

        await asyncio.gather(*(one() for _ in range(clients)))


class RedisProcess:
    """The benchmark's redis-server, which the fault runs freeze, kill and restart (same port, no data)."""

    def __init__(self, port: int, directory: Path) -> None:
        self.port = port
        self.argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", "no", "--dir", str(directory)]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL)
        wait_for_port(self.port, timeout=30.0)

    def begin(self, fault: str) -> None:
        assert self.proc is not None
        if fault == "sigstop":
            self.proc.send_signal(signal.SIGSTOP)
            return
        self.proc.send_signal(signal.SIGKILL if fault == "sigkill" else signal.SIGTERM)
        self.proc.wait(timeout=10)

    def end(self, fault: str) -> None:
        assert self.proc is not None
        if fault == "sigstop":
            self.proc.send_signal(signal.SIGCONT)
        else:
            self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values) or [0.0]
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


async def redis_fault(
    url: str, redis: RedisProcess, fault: str, clients: int, seconds: float, tag: str
) -> dict[str, Any]:
    """Steady load; after 2 s `fault` for `seconds`; 2 s more. The answers in flight at any moment of the
    fault, those of the 2 s after it, and how soon after Redis was back a request was forwarded again."""
    stop = asyncio.Event()
    answers: list[Answer] = []
    load = asyncio.create_task(steady_load(url, clients, tag, stop, answers))
    await asyncio.sleep(2.0)
    began = time.monotonic()
    await asyncio.to_thread(redis.begin, fault)
    await asyncio.sleep(seconds)
    ended = time.monotonic()
    await asyncio.to_thread(redis.end, fault)
    back = time.monotonic()
    await asyncio.sleep(2.0)
    stop.set()
    await load
    before = [a for a in answers if began - 1.5 <= a[0] and a[0] + a[1] <= began]
    during = [a for a in answers if a[0] < ended and a[0] + a[1] > began]
    after = [a for a in answers if ended <= a[0] < ended + 2.0]
    forwarded_again = min((a[0] for a in answers if a[0] >= back and a[2] == 0), default=None)
    slowest = max(during, key=lambda a: a[1], default=(began, 0.0, 0, ""))
    # Refusals that waited for Redis to time out although they were sent once the first wave had failed
    # (the breaker open): a request let through as the breaker's probe into a Redis still down.
    probes = [a for a in answers if began + 0.3 <= a[0] < ended and a[2] == 490010 and "circuit" not in a[3]]

    def figures(group: list[Answer]) -> dict[str, float]:
        took = [a[1] * 1000 for a in group]
        return {
            "n": len(group),
            "forwarded": sum(1 for a in group if a[2] == 0),
            "unavailable": sum(1 for a in group if a[2] == 490010),
            "other": sum(1 for a in group if a[2] not in (0, 490010)),
            "p50": percentile(took, 0.5),
            "p99": percentile(took, 0.99),
            "max": max(took, default=0.0),
        }

    return {
        "fault": fault,
        "before": figures(before),
        "during": figures(during),
        "after": figures(after),
        "slowest_at": (slowest[0] - began) * 1000,
        "slowest_code": slowest[2],
        "probes": len(probes),
        "probe_max": max((a[1] * 1000 for a in probes), default=0.0),
        "recovered": (forwarded_again - back) * 1000 if forwarded_again is not None else None,
        "restart": (back - ended) * 1000,
    }


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


PART = 30  # seconds of each soak part


def soak(seconds: int, connections: int, guards: dict[str, tuple[int, Path]], script: Any) -> None:
    """wrk at `connections` for `seconds` against each guard in 30 s parts: RSS, pauses, full collections."""
    part = min(PART, seconds)
    for name, (port, probe) in guards.items():
        print(f"\nSoak: {name}, wrk -c{connections} for {seconds} s, per 30 s: RSS MiB / longest collection "
              "ms (CPU ms) / full collections (most objects walked) / longest loop lag ms")  # fmt: skip
        line = [f"start {rss_at(probe, time.time()):.1f}"]
        done = 0
        while done < seconds:
            start = time.time()
            figures = run_wrk(f"http://127.0.0.1:{port}", script(), connections, min(part, seconds - done))
            end = time.time()
            done += part
            time.sleep(1.3)
            events = probe_events(probe, start, end)
            line.append(
                f"{done}s {rss_at(probe, time.time()):.1f} / {events['gc_max']:.1f} "
                f"({events['gc_cpu_max']:.1f}) / {events['gen2']} ({events['gen2_objects']}) / "
                f"{events['lag_max']:.0f} "
                f"({figures['rps']:.0f} req/s)"
            )
        time.sleep(5.0)
        line.append(f"5 s at rest {rss_at(probe, time.time()):.1f}")
        print("  " + "\n  ".join(line))


def faults(redis: RedisProcess, guards: dict[str, tuple[int, Path]], clients: int, seconds: float) -> None:
    print(
        f"\nRedis faults under steady load ({clients} clients, each request from a fresh account), "
        f"each fault {seconds:g} s: answers in flight during the fault and in the 2 s after it "
        "(forwarded / counters unavailable / other; ms)"
    )
    print(
        f"{'target':12} {'fault':8} | {'before: p99':>11} {'max':>6} | {'during: n':>9} {'fwd':>5} "
        f"{'unav':>5} {'oth':>4} {'p50':>6} {'p99':>6} {'max':>6} {'(at ms, code)':>14} | {'after: n':>8} "
        f"{'fwd':>5} {'unav':>5} {'p99':>6} {'max':>6} | {'forwarded again after':>21} | "
        f"{'asked Redis after it opened (max ms)':>36}"
    )
    worst: dict[str, float] = {}
    for name, (port, _) in guards.items():
        for fault in ("sigstop", "sigkill", "restart"):
            found = asyncio.run(
                redis_fault(f"http://127.0.0.1:{port}", redis, fault, clients, seconds, f"{name}-{fault}")
            )
            b, d, a = found["before"], found["during"], found["after"]
            back = f"{found['recovered']:.0f} ms" if found["recovered"] is not None else "never"
            print(
                f"{name:12} {fault:8} | {b['p99']:11.1f} {b['max']:6.1f} | {d['n']:9d} {d['forwarded']:5d} "
                f"{d['unavailable']:5d} {d['other']:4d} {d['p50']:6.1f} {d['p99']:6.1f} {d['max']:6.1f} "
                f"{found['slowest_at']:7.0f}, {found['slowest_code']:6d} | "
                f"{a['n']:8d} {a['forwarded']:5d} {a['unavailable']:5d} {a['p99']:6.1f} {a['max']:6.1f} | "
                f"{back:>21} | {found['probes']:>27d} ({found['probe_max']:5.1f})"
            )
            worst[name] = max(worst.get(name, 0.0), d["max"])
            time.sleep(2.0)
    for name, ms in worst.items():
        print(f"{name}: slowest answer during a Redis fault {ms:.1f} ms (goal ≤ 150 ms)")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", default="1,16,256")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--variants", default="guard", help="comma-separated: guard, before, no-freeze (default guard)"
    )
    parser.add_argument("--soak", type=int, default=0, help="seconds of wrk per variant, watching RSS")
    parser.add_argument("--redis-faults", action="store_true", help="freeze, kill, restart Redis under load")
    parser.add_argument("--fault-load", type=int, default=16, help="clients during the Redis faults")
    parser.add_argument("--skip-wrk", action="store_true", help="no wrk runs (warm-up only)")
    parser.add_argument("--fault-seconds", type=float, default=1.5)
    parser.add_argument(
        "--no-sockets", action="store_true", help="skip timing how soon lingering sockets are closed (~75 s)"
    )
    args = parser.parse_args()
    for tool in ("wrk", "redis-server"):
        if shutil.which(tool) is None:
            print(f"bench/faults.py: {tool} is not installed", file=sys.stderr)
            return 2
    levels = [int(c) for c in args.connections.split(",")]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not variants or set(variants) - {"guard", "before", "no-freeze"}:
        print("bench/faults.py: --variants takes guard, before, no-freeze", file=sys.stderr)
        return 2

    tmp = Path(tempfile.mkdtemp(prefix="siyu-faults-"))
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Any] = []
    redis: RedisProcess | None = None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GUARD_", "SIYU_"))}
    env["PYTHONPATH"] = str(ROOT)
    load_before = os.getloadavg()
    try:
        stub_port, pass_port, redis_port = free_port(), free_port(), free_port()
        redis = RedisProcess(redis_port, tmp)
        redis.start()
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
        guards: dict[str, tuple[int, Path]] = {}
        for db, name in enumerate(variants):
            port = free_port()
            probe = tmp / f"probe{db}.jsonl"
            log = open(tmp / f"guard{db}.log", "wb")  # noqa: SIM115 - closed in `finally`
            logs.append(log)
            procs.append(
                subprocess.Popen(
                    [sys.executable, str(ROOT / "bench" / "probe_serve.py"), "serve", "--port", str(port),
                     "--upstream", stub, "--redis", f"redis://127.0.0.1:{redis_port}/{db}"],
                    env={**env, "GUARD_RELOAD_INTERVAL": "0", "SIYU_PROBE_FILE": str(probe),
                         "SIYU_PROBE_GC": name},
                    stderr=log,
                )
            )  # fmt: skip
            guards[name] = (port, probe)
        for port in [stub_port, pass_port, *(p for p, _ in guards.values())]:
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
        time.sleep(1.3)  # the probe samples RSS every second
        rss_start = {name: rss_at(probe, time.time()) for name, (_, probe) in guards.items()}
        rows: list[dict[str, Any]] = []
        for round_no in range(1, 0 if args.skip_wrk else max(1, args.rounds) + 1):
            for connections in levels:
                for name, port in targets.items():
                    before = decisions(port) if name in guards else None
                    start = time.time()
                    figures = run_wrk(f"http://127.0.0.1:{port}", script(), connections, args.duration)
                    end = time.time()
                    row: dict[str, Any] = {"round": round_no, "target": name, "conn": connections, **figures}
                    if before is not None:
                        time.sleep(1.3)  # the probe writes its events every 0.25 s, RSS every second
                        after = decisions(port)
                        row.update(probe_events(guards[name][1], start, end))
                        row["rss"] = rss_at(guards[name][1], time.time())
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
            f"{'non2xx':>6} | {'gc max ms':>9} {'(cpu)':>6} {'gen2 n':>6} {'gen2 max':>8} {'(cpu)':>6} "
            f"{'objects':>7} {'lag max ms':>10} {'unavail':>8} {'RSS MiB':>7}"
        )
        print(header)
        for row in rows:
            seen = (
                f"{row['gc_max']:9.2f} {row['gc_cpu_max']:6.2f} {row['gen2']:6d} {row['gen2_max']:8.2f} "
                f"{row['gen2_cpu']:6.2f} {row['gen2_objects']:7d} {row['lag_max']:10.2f} "
                f"{row['unavailable_share']:8.2%} {row['rss']:7.1f}"
                if "gc_max" in row
                else ""
            )
            print(
                f"{row['conn']:4d} {row['target']:18} {row['rps']:7.0f} {row['p50']:8.2f} {row['p99']:8.2f} "
                f"{row['max']:8.2f} {int(row['non2xx']):6d} | {seen}"
            )
        print()
        for name in guards:
            print(f"{name}: RSS {rss_start[name]:.1f} MiB after start-up and warm-up")
        if args.soak:
            soak(args.soak, max(levels), guards, script)
        if args.redis_faults:
            assert redis is not None
            faults(redis, guards, args.fault_load, args.fault_seconds)
        if not args.no_sockets:
            name, (port, _) = next(iter(guards.items()))
            print(f"\nLingering sockets against {name} (default timeouts): seconds until closed")
            for kind, seconds in close_times(port, within=120.0).items():
                shown = f"{seconds:6.1f} s" if seconds is not None else "still open after 120 s"
                print(f"  {kind:30} {shown}")
        print()
        for name in guards:
            mine = [r for r in rows if r["target"] == name]
            if not mine:
                continue
            print(
                f"{name}: longest collector pause {max(r['gc_max'] for r in mine):.2f} ms "
                f"({max(r['gc_cpu_max'] for r in mine):.2f} ms of CPU), longest loop lag "
                f"{max(r['lag_max'] for r in mine):.2f} ms, 'counters unavailable' answers "
                f"{int(sum(r['unavailable'] for r in mine))} (goal 0)"
            )
        return 0
    finally:
        if redis is not None:
            redis.stop()
        stop_all(procs)
        for handle in logs:
            handle.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
