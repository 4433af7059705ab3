"""Per-stage CPU cost of a guarded request (a benchmark, not a test): where the guard's microseconds go.

Runs the guard in THIS process exactly as `guard serve` runs it (`create_app(settings, freeze=True)`,
`guard.commands.serve._serve`: the same runner, connection guard, heap freeze, uvloop, default log level
with the audit lines going to a file on fd 2) against a stub upstream and a real `redis-server`, and
sends it `wrk` load from outside (wrk's own CPU is not counted): clean WeCom broadcasts, each from a fresh
account, the load of bench/proxy.py. Two passes per connection count:

  1. plain: the process's CPU time (`time.process_time`) over the wrk run ÷ requests answered — what a
     request really costs, with no instrumentation;
  2. timed: timing hooks wrapped (by this script, at run time: nothing in the product changes) around
     each stage function; each hook charges the calling thread's CPU clock (`time.thread_time_ns`) to the
     innermost stage running, so nested stages are counted once (exclusive time). An `async` stage is
     charged for each of its steps between two awaits, never for the time it waits. What no hook covers
     (the event loop, transports, timers, the collector) is the "unattributed" row, the rest of the
     process's CPU.

The table gives µs of CPU per request and the share of the process total (the plain run's), for one
connection (sequential requests) and for `--connections` concurrent ones. The hooks' own cost is measured
(an empty hook pair, nested like the real ones) and taken out of each stage (× the pairs it ran); what is
left of an async stage's wrapper is small and lands in the stages. `--profile N` adds cProfile's top N
functions by own time over one more concurrent run.

    python3 bench/stages.py [--duration 5] [--connections 16] [--upstream URL --redis URL]

Without `--upstream` / `--redis` it starts its own stub upstream and redis-server. Needs `wrk`.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# `--tree DIR`: the guard of another source tree (before / after comparisons), ahead of this one.
_TREE = next((sys.argv[i + 1] for i, a in enumerate(sys.argv[:-1]) if a == "--tree"), None)
sys.path.insert(0, str(ROOT))
if _TREE is not None:
    sys.path.insert(0, str(Path(_TREE).resolve()))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
from servers import free_port, stop_all, wait_for_port  # noqa: E402

# A hook reads this clock at each stage boundary: the thread's own CPU clock, so that a stage whose
# write wakes another process (an answer to wrk, a command to Redis) is not charged for the time the OS
# gives the core to that process meanwhile (with the wall clock, on a loaded 2-core machine, "forward
# glue, relay" read 270 µs where its CPU was 85). A read costs ~0.65 µs here (a system call); the hooks'
# cost is measured and shown on its own row. `--wall-clock` reads perf_counter_ns (~0.05 µs) instead.
CLOCK = time.thread_time_ns

# ---- exclusive CPU attribution -------------------------------------------------------------------------

TOTALS: defaultdict[str, int] = defaultdict(int)
PAIRS: defaultdict[str, int] = defaultdict(int)  # hook pairs (enter + leave) run per stage
HOOKS = [0]  # hook pairs run in all
_STACK: list[list[Any]] = []  # [stage, started] of the stages running, innermost last


def _enter(stage: str) -> None:
    now = CLOCK()
    if _STACK:
        top = _STACK[-1]
        TOTALS[top[0]] += now - top[1]
    _STACK.append([stage, now])


def _leave() -> None:
    now = CLOCK()
    stage, started = _STACK.pop()
    TOTALS[stage] += now - started
    PAIRS[stage] += 1
    HOOKS[0] += 1
    if _STACK:
        _STACK[-1][1] = now


class _Timed:
    """Drives a coroutine, charging each of its steps (send to yield) to `stage`."""

    __slots__ = ("coro", "stage")

    def __init__(self, coro: Any, stage: str) -> None:
        self.coro = coro
        self.stage = stage

    def __await__(self) -> Generator[Any, Any, Any]:
        inner = self.coro.__await__()
        value: Any = None
        error: BaseException | None = None
        while True:
            _enter(self.stage)
            try:
                step = inner.throw(error) if error is not None else inner.send(value)
            except StopIteration as stop:
                _leave()
                return stop.value
            except BaseException:
                _leave()
                raise
            _leave()
            try:
                value, error = (yield step), None
            except BaseException as exc:  # cancellation, GeneratorExit: handed to the coroutine
                value, error = None, exc


# The hooks stay installed for the whole run and are switched on and off: off, a wrapper calls straight
# through (a sync one, and an async one returns the coroutine itself), so a "plain" run pays one extra
# Python call per stage and nothing else.
ON = [False]
# Functions that must stay coroutine functions (a route handler; a task's coroutine).
ALWAYS_ASYNC = {"handle", "start"}


def timed(owner: Any, name: str, stage: str) -> None:
    """Replace `owner.name` (a module function or a class's method) with a timed wrapper."""
    original = getattr(owner, name)
    wrapper: Callable[..., Any]
    if asyncio.iscoroutinefunction(original) and name in ALWAYS_ASYNC:

        async def run_coroutine(*args: Any, **kwargs: Any) -> Any:
            if not ON[0]:
                return await original(*args, **kwargs)
            return await _Timed(original(*args, **kwargs), stage)

        wrapper = run_coroutine
    elif asyncio.iscoroutinefunction(original):

        def run_async(*args: Any, **kwargs: Any) -> Any:
            if not ON[0]:
                return original(*args, **kwargs)
            return _Timed(original(*args, **kwargs), stage)

        wrapper = run_async
    else:

        def run(*args: Any, **kwargs: Any) -> Any:
            if not ON[0]:
                return original(*args, **kwargs)
            _enter(stage)
            try:
                return original(*args, **kwargs)
            finally:
                _leave()

        wrapper = run
    setattr(owner, name, functools.wraps(original)(wrapper))


def install_hooks() -> list[tuple[str, str]]:
    """The stages, in request order: (stage, what it covers). Must run before the app is created."""
    import aiohttp.client_proto
    import aiohttp.web_protocol
    from aiohttp import web

    import guard.core.body
    import guard.http.body
    import guard.http.notify
    import guard.http.proxy
    from guard.core.checks import AttachmentCheck, ContentCheck, FrozenCheck, QuotaCheck
    from guard.core.pipeline import Pipeline
    from guard.http.auth import Authenticator, Client
    from guard.http.connections import ConnectionGuard
    from guard.observe.audit import AuditLog
    from guard.observe.metrics import Counter, Histogram
    from guard.risk.observer import RiskObserver
    from ratelimit.connection import PipelinedConnection
    from ratelimit.limiter import Limiter
    from ratelimit.redis import RedisStorage

    proxy = guard.http.proxy
    stages = [
        ("aiohttp server: receive, parse request", aiohttp.web_protocol.RequestHandler, "data_received",
         "socket data in, HTTP parser (C), the request object"),
        ("aiohttp server: request loop, answer write", aiohttp.web_protocol.RequestHandler, "start",
         "per-connection task: makes the request, runs the handler, writes the answer"),
        ("connection guard (timeouts)", ConnectionGuard, "_request", "header / body timers per request"),
        ("handler glue", proxy, "handle", "proxy.handle itself: settings, dispatch"),
        ("route match, key", proxy, "call_of", "key prefix, presented key, profile route match"),
        ("auth", Authenticator, "identify", "key hash lookup"),
        ("auth: account permitted", Client, "may_act_for", "client may act for the account"),
        ("guarded glue", proxy, "guarded", "proxy.guarded itself"),
        ("read body", guard.http.body, "read_body", "the body off the wire, size limit"),
        ("strict JSON: content type", guard.http.body, "check_content_type", ""),
        ("strict JSON: encodings", guard.http.body, "decode_content", "Content-Encoding layers"),
        ("strict JSON: UTF-8 + parse", guard.http.body, "parse_json", "duplicate keys, constants"),
        ("profile parse", proxy, "read_actions", "RequestInfo + the route's parser → Actions"),
        ("pipeline glue", Pipeline, "decide", "Pipeline.decide itself: context, verdict lists, Decision"),
        ("check: frozen", FrozenCheck, "__call__", ""),
        ("check: content (scan)", ContentCheck, "__call__", "RuleSet.scan of every text"),
        ("check: attachments", AttachmentCheck, "__call__", ""),
        ("check: quota (verdict)", QuotaCheck, "hit", "QuotaCheck.hit itself"),
        ("check: quota charges", QuotaCheck, "charges", "limit rules of the action"),
        ("quota: limiter plan", Limiter, "hit", "Limiter.hit itself: spans, keys, plan, result"),
        ("Redis call: storage", RedisStorage, "hit", "RedisStorage.hit: gate, breaker, timeout, encode"),
        ("Redis call: connection write", PipelinedConnection, "execute", "pack_command, queue, write"),
        ("Redis call: reply parse", PipelinedConnection, "data_received", "hiredis reader, futures"),
        ("forward glue, relay", proxy, "forward_allowed", "answer inspect, refund check, headers, Response"),
        ("answer write (aiohttp)", web.StreamResponse, "prepare", "status line, headers, body to the socket"),
        ("answer write (aiohttp)", web.Response, "write_eof", "the body to the socket"),
        # The relayed answer written straight through aiohttp's writer, where the tree does that.
        *(
            [("answer write (aiohttp)", proxy, "send_answer", "status line, headers, body to the socket")]
            if hasattr(proxy, "send_answer")
            else []
        ),
        *forward_stages(proxy),
        ("relay: answer decode", proxy, "inspect_answer", "Content-Encoding of the answer"),
        ("relay: headers", proxy, "end_to_end_headers", "hop-by-hop filter of the answer's headers"),
        ("record decisions (glue)", proxy, "record_decisions", "DecisionRecord, staff"),
        ("audit line (structlog)", AuditLog, "decision", "fields, JSON, write"),
        ("metrics: counters", Counter, "inc", "prometheus-client"),
        ("metrics: histogram", Histogram, "observe", "prometheus-client"),
        ("observers: hand-off", guard.http.notify, "notify_decision", "queue put of each observer"),
        ("risk observer: spool", RiskObserver, "_spool_batch", "worker: tally, alerts (off the request)"),
        ("risk observer: flush", RiskObserver, "flush", "flusher: alerts + report counts to Redis"),
    ]  # fmt: skip
    for stage, owner, name, _ in stages:
        timed(owner, name, stage)
    gc.callbacks.append(_collection)
    rows = {stage: covers for stage, _, _, covers in reversed(stages)}  # one row per stage, first "covers"
    return [(stage, rows[stage]) for stage in dict.fromkeys(stage for stage, _, _, _ in stages)] + [
        ("garbage collector", "collections, charged to no stage (gc.callbacks)")
    ]


def forward_stages(proxy: Any) -> list[tuple[str, Any, str, str]]:
    """The forward's rows: the lean client (guard.http.upstream) where the tree has it, else aiohttp's."""
    import aiohttp.client_proto

    aiohttp_receive = (
        "forward: client receive", aiohttp.client_proto.ResponseHandler, "data_received",
        "the answer off the wire, HTTP parser (C)",
    )  # fmt: skip
    try:
        from guard.http.upstream import UpstreamConnection, UpstreamPool, request_head
    except ImportError:  # a tree from before the lean client
        return [
            ("forward: aiohttp client", proxy, "forward", "URL, headers, pool, request write, answer read"),
            aiohttp_receive,
        ]
    return [
        ("forward: lean client", proxy, "forward", "target, headers, pool, request write, answer wait"),
        ("forward: lean client", UpstreamPool, "request", ""),
        ("forward: lean client: request bytes", sys.modules[request_head.__module__], "request_head",
         "request line, headers, Content-Length joined and encoded"),
        ("forward: client receive", UpstreamConnection, "data_received",
         "the answer off the wire, llhttp (httptools), headers, body"),
        aiohttp_receive,
    ]  # fmt: skip


def _collection(phase: str, info: dict[str, int]) -> None:
    """A collection interrupts whatever stage runs: its time is its own row."""
    if not ON[0]:
        return
    if phase == "start":
        _enter("garbage collector")
    elif _STACK and _STACK[-1][0] == "garbage collector":
        _leave()


def hook_cost_ns() -> float:
    """CPU of one empty hook pair (enter + leave), nested under a parent like the real ones."""
    n = 20_000
    _enter("calibrate")
    start = CLOCK()
    for _ in range(n):
        _enter("calibrate-inner")
        _leave()
    cost = (CLOCK() - start) / n
    _leave()
    HOOKS[0] -= n + 1
    for table in (TOTALS, PAIRS):
        table.pop("calibrate", None)
        table.pop("calibrate-inner", None)
    return cost


# ---- the load ------------------------------------------------------------------------------------------


def wrk_script(tmp: Path, run_id: int) -> Path:
    from proxy import PATH, WRK_SCRIPT

    path = tmp / f"stages{run_id}.lua"
    path.write_text(WRK_SCRIPT.replace("__PATH__", PATH).replace("RUN_ID", str(900_000 + run_id)))
    return path


async def run_wrk(url: str, script: Path, connections: int, duration: float) -> dict[str, float]:
    proc = await asyncio.create_subprocess_exec(
        "wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{int(duration)}s", "--latency", "-s",
        str(script), url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    text = out.decode()
    if os.environ.get("STAGES_DEBUG"):
        print(text)
    total = re.search(r"(\d+) requests in", text)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    p50 = re.search(r"\s50%\s+([\d.]+)(us|ms|s)", text)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    return {
        "p50": float(p50.group(1)) * scale[p50.group(2)] if p50 else 0.0,
        "requests": float(total.group(1)) if total else 0.0,
        "rps": float(rps.group(1)) if rps else 0.0,
        "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
    }


async def measure(url: str, tmp: Path, connections: int, duration: float, runs: list[int]) -> dict[str, Any]:
    """One wrk run; the process's CPU and the stage totals it added."""
    runs[0] += 1
    script = wrk_script(tmp, runs[0])
    TOTALS.clear()
    PAIRS.clear()
    HOOKS[0] = 0
    cpu0 = time.process_time_ns()
    result = await run_wrk(url, script, connections, duration)
    cpu = time.process_time_ns() - cpu0
    # The risk worker lingers 20 ms before spooling; let it finish what this run sent (its CPU counts).
    await asyncio.sleep(0.3)
    cpu = time.process_time_ns() - cpu0
    return {**result, "cpu_ns": cpu, "stages": dict(TOTALS), "pairs": dict(PAIRS), "hooks": HOOKS[0]}


def print_table(
    title: str, plain: dict[str, Any], hooked: dict[str, Any], stages: list[tuple[str, str]], hook_ns: float
) -> None:
    """Every row from the timed run: each stage less its hooks' measured cost (pairs run × the cost of an
    empty pair), that cost on its own row, the rest of the process's CPU, the total. The plain run's
    total (hooks off) is what a request costs without the instrumentation."""
    n = max(hooked["requests"], 1.0)
    total = hooked["cpu_ns"] / n / 1000
    plain_total = plain["cpu_ns"] / max(plain["requests"], 1.0) / 1000
    hooks = hooked["hooks"] * hook_ns / n / 1000
    print(f"\n{title}")
    print(
        f"  plain run (hooks off): {plain['rps']:,.0f} req/s, p50 {plain['p50']:.3f} ms, "
        f"{plain_total:.0f} µs CPU/request.  Timed run: {hooked['rps']:,.0f} req/s, "
        f"{total:.0f} µs CPU/request"
    )
    print(f"  {'stage':44} {'µs/req':>8} {'share':>7}  covers")
    attributed = 0.0
    for stage, covers in stages:
        raw = hooked["stages"].get(stage, 0) - hooked["pairs"].get(stage, 0) * hook_ns
        us = max(raw, 0.0) / n / 1000
        attributed += us
        print(f"  {stage:44} {us:8.1f} {us / total:7.1%}  {covers}")
    pairs = hooked["hooks"] / n
    print(
        f"  {'the hooks themselves':44} {hooks:8.1f} {hooks / total:7.1%}  "
        f"{pairs:.0f} pairs × {hook_ns:.0f} ns"
    )
    rest = total - attributed - hooks
    print(f"  {'the rest (event loop, transports, ...)':44} {rest:8.1f} {rest / total:7.1%}")
    print(f"  {'total (process CPU, timed run)':44} {total:8.1f} {1:7.1%}")
    if plain["non2xx"] or hooked["non2xx"]:
        print("  WARNING: non-2xx answers; the figures do not measure the allowed path only")


async def drive(args: argparse.Namespace, settings: Any, stages: list[tuple[str, str]], tmp: Path) -> None:
    from guard.app import create_app
    from guard.commands.serve import _serve

    app = create_app(settings, freeze=True)
    server = asyncio.create_task(_serve(app, settings))
    url = f"http://127.0.0.1:{settings.port}"
    await asyncio.to_thread(wait_for_port, settings.port, 20.0)
    runs = [0]
    hook_ns = hook_cost_ns()
    await measure(url, tmp, args.connections, 2, runs)  # warm-up: connections, scripts, code paths
    print(
        "\nPer-stage CPU of a guarded request (clean WeCom broadcast, fresh account: every check, one "
        "EVALSHA, forwarded, audit line, metrics, risk observers). µs of CPU per request; share of the "
        "process total."
    )
    for connections in (1, args.connections):
        ON[0] = False
        plain = await measure(url, tmp, connections, args.duration, runs)
        ON[0] = True
        hooked = await measure(url, tmp, connections, args.duration, runs)
        ON[0] = False
        print_table(
            f"{connections} connection{'s' if connections > 1 else ''} ({args.duration:g} s of wrk each)",
            plain, hooked, stages, hook_ns,
        )  # fmt: skip
    if args.profile:
        # Where inside the stages: cProfile over one more concurrent run (hooks off), by own time.
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        profiled = await measure(url, tmp, args.connections, args.duration, runs)
        profiler.disable()
        n = max(profiled["requests"], 1.0)
        rows = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
        top = sorted(rows.items(), key=lambda item: item[1][2], reverse=True)[: args.profile]
        print(f"\ncProfile, {args.connections} connections: own time per request (µs; profiler overhead in)")
        for (file, line, func), (_, calls, own, cumulative, _) in top:
            where = f"{Path(file).name}:{line} {func}"
            per = f"{own / n * 1e6:8.1f} own {cumulative / n * 1e6:8.1f} cum {calls / n:6.1f} calls"
            print(f"  {per}  {where}")
    os.kill(os.getpid(), signal.SIGTERM)
    await server


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--upstream", help="a running stub upstream (else one is started)")
    parser.add_argument("--redis", help="a running redis-server's URL (else one is started)")
    parser.add_argument("--tree", metavar="DIR", help="import the guard from this source tree")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="also the top N of cProfile")
    parser.add_argument("--wall-clock", action="store_true", help="hooks read perf_counter_ns")
    args = parser.parse_args()
    if args.wall_clock:
        global CLOCK
        CLOCK = time.perf_counter_ns
    if shutil.which("wrk") is None:
        print("bench/stages.py: wrk is not installed", file=sys.stderr)
        return 2
    from proxy import STUB

    tmp = Path(tempfile.mkdtemp(prefix="siyu-stages-"))
    procs: list[subprocess.Popen[bytes]] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUARD_")}
    env["PYTHONPATH"] = str(ROOT)
    if args.tree:
        import guard

        print(f"guard imported from {Path(guard.__file__).parent.parent}")
    try:
        if args.redis is None:
            redis_port = free_port()
            procs.append(
                subprocess.Popen(
                    ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", "no", "--dir", str(tmp)],
                    stdout=subprocess.DEVNULL,
                )
            )  # fmt: skip
            wait_for_port(redis_port, timeout=20.0)
            args.redis = f"redis://127.0.0.1:{redis_port}/2"
        if args.upstream is None:
            stub_port = free_port()
            (tmp / "stub.py").write_text(STUB)
            procs.append(subprocess.Popen([sys.executable, str(tmp / "stub.py"), str(stub_port)], env=env))
            wait_for_port(stub_port, timeout=20.0)
            args.upstream = f"http://127.0.0.1:{stub_port}"
        stages = install_hooks()
        # The guard as `guard serve` runs it: default log level, audit lines on fd 2, here a file.
        log = os.open(tmp / "guard.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        saved_stderr = os.dup(2)
        os.dup2(log, 2)
        try:
            from guard.config.settings import Settings
            from guard.observe.audit import configure_logging

            settings = Settings(
                upstream=args.upstream, redis_url=args.redis, reload_interval=0, port=free_port()
            )
            configure_logging(settings.log_level)
            import uvloop

            uvloop.run(drive(args, settings, stages, tmp))
        finally:
            os.dup2(saved_stderr, 2)
        audit_lines = (tmp / "guard.log").read_bytes().count(b'"event": "decision"')
        print(f"\naudit lines written by the in-process guard: {audit_lines:,}")
        return 0
    finally:
        stop_all(procs)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
