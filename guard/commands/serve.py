"""`guard serve`: run the guard proxy.

Zero configuration works: shipped rules, in-memory counters, upstream https://qyapi.weixin.qq.com,
listening on 127.0.0.1:8080. `--workers N` starts N processes sharing the port (SO_REUSEPORT); with more
than one the counters must be shared, so a Redis URL is required.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

log = logging.getLogger("guard.serve")
# The "guard listening on …" line is printed whatever log_level says (its logger keeps level info).
listening_log = logging.getLogger("guard.serve.listening")
# At most this many problems of a broken rules directory are printed at start; `guard rules check` has all.
MAX_RULE_PROBLEMS = 20
# Warnings of the start said once the port is open, next to the listening line (a start that fails says
# only why it failed).
_after_listening: list[str] = []


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "serve",
        help="run the guard proxy",
        description="Run the guard proxy. Settings: flags > GUARD_* environment > --config TOML > defaults.",
    )
    p.add_argument("--config", type=Path, help="TOML settings file (also GUARD_CONFIG)")
    p.add_argument("--rules", dest="rules_dir", help="rules directory (default: the shipped rules)")
    p.add_argument("--upstream", help="upstream base URL (default https://qyapi.weixin.qq.com)")
    p.add_argument("--redis", dest="redis_url", help="Redis URL for shared counters (default: in memory)")
    p.add_argument("--host", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default 8080)")
    p.add_argument("--workers", type=int, help="worker processes sharing the port (needs --redis when > 1)")
    # The old spelling of `guard hash-key KEY`, kept working.
    p.add_argument("--hash-key", metavar="KEY", help=argparse.SUPPRESS)
    p.set_defaults(run=run)


def _flags(args: argparse.Namespace) -> dict[str, object]:
    return {
        "rules_dir": args.rules_dir,
        "upstream": args.upstream,
        "redis_url": args.redis_url,
        "host": args.host,
        "port": args.port,
        "workers": args.workers,
    }


def run(args: argparse.Namespace) -> int:
    from guard.commands.hash_key import print_hash
    from guard.config.settings import SettingsError, load_settings

    if args.hash_key:
        return print_hash(args.hash_key)
    try:
        settings = load_settings(config=args.config, env=os.environ, flags=_flags(args))
    except SettingsError as exc:
        print(f"guard serve: {exc}", file=sys.stderr)
        return 2
    if settings.workers > 1:
        return _supervise(settings.workers, sys.argv[1:] if _invoked_as_cli() else _argv_of(args))
    return serve(settings)


def _invoked_as_cli() -> bool:
    return len(sys.argv) > 1 and "serve" in sys.argv[1:]


def _argv_of(args: argparse.Namespace) -> list[str]:
    argv = ["serve"]
    for flag, value in (
        ("--config", args.config),
        ("--rules", args.rules_dir),
        ("--upstream", args.upstream),
        ("--redis", args.redis_url),
        ("--host", args.host),
        ("--port", args.port),
    ):
        if value is not None:
            argv += [flag, str(value)]
    return argv


def _supervise(workers: int, argv: list[str]) -> int:
    """Start `workers` copies of this command as single-worker processes that share the port."""
    # The children get the same arguments minus `--workers N` (and GUARD_WORKERS=1).
    cleaned: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--workers":
            skip = True
            continue
        if arg.startswith("--workers="):
            continue
        cleaned.append(arg)
    child_argv = cleaned
    # /metrics of any worker answers for all of them: prometheus-client's multiprocess mode, in a fresh
    # private directory (mode 0700) made before the workers start and removed at exit (guard.observe.metrics).
    metrics_dir = tempfile.mkdtemp(prefix="guard-metrics-")
    try:
        return _run_workers(workers, child_argv, metrics_dir)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _run_workers(workers: int, child_argv: list[str], metrics_dir: str) -> int:
    from prometheus_client.multiprocess import mark_process_dead

    env = dict(os.environ, GUARD_REUSE_PORT="true", GUARD_WORKERS="1", PROMETHEUS_MULTIPROC_DIR=metrics_dir)
    procs = [subprocess.Popen([sys.executable, "-m", "guard", *child_argv], env=env) for _ in range(workers)]

    def forward(signum: int, _frame: object) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    rc = 0
    for proc in procs:
        while True:
            try:
                code = proc.wait()
                break
            except KeyboardInterrupt:
                continue
        rc = rc or code
        # Its live gauges no longer count (its counters do).
        mark_process_dead(proc.pid, metrics_dir)  # type: ignore[no-untyped-call]
        # One worker gone: stop the others rather than serve at reduced capacity unnoticed.
        forward(signal.SIGTERM, None)
    return rc


def serve(settings: Any) -> int:
    from guard.app import create_app
    from guard.config.settings import enforce_loopback
    from guard.observe.audit import configure_logging
    from rules import RulesInvalid

    configure_logging(settings.log_level)
    settings, loopback_warning = enforce_loopback(settings)
    if loopback_warning:
        _after_listening.append(loopback_warning)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        app = create_app(settings, freeze=True)
    except RulesInvalid as exc:
        print(
            rules_problems(settings.rules_dir, all_problems(settings.rules_dir, exc.errors)), file=sys.stderr
        )
        return 2
    except Exception as exc:
        print(f"guard serve: cannot load the rules: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_serve(app, settings))


def all_problems(rules_dir: Path | None, raised: list[Any]) -> list[Any]:
    """What `guard rules check DIR` finds (every file, not only the part that failed first), then the
    problems the load raised that the check does not list (failing tests.txt lines)."""
    from guard.commands.rules_check import validate_profiles
    from rules import DEFAULT_DIR
    from rules.check import check_rules_dir

    try:
        found = list(check_rules_dir(rules_dir or DEFAULT_DIR, extra=[validate_profiles]))
    except Exception:
        found = []
    return found + [error for error in raised if error not in found]


def rules_problems(rules_dir: Path | None, errors: list[Any]) -> str:
    """Every problem of a rules directory that stops the start (the first MAX_RULE_PROBLEMS and the
    count of the rest), one `file:line: reason` a line, and the command that checks the directory."""
    where = str(rules_dir) if rules_dir is not None else "the shipped rules"
    count = len(errors)
    lines = [f"guard serve: cannot load the rules: {count} problem{'s' if count != 1 else ''} in {where}"]
    lines += [f"  {error.display()}" for error in errors[:MAX_RULE_PROBLEMS]]
    if count > MAX_RULE_PROBLEMS:
        lines.append(f"  … and {count - MAX_RULE_PROBLEMS} more")
    lines.append(
        f"check the directory with: guard rules check {rules_dir if rules_dir is not None else ''}".rstrip()
    )
    return "\n".join(lines)


async def _serve(app: web.Application, settings: Any) -> int:
    from guard.app import FullCollections, freeze_heap
    from guard.http.connections import ConnectionGuard, unauthenticated_cap
    from guard.http.keys import AUTH, REDIS
    from guard.observe.persistence import redis_persistence

    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        # aiohttp's own timer: an idle kept-alive connection (or one still waiting for the whole header
        # block of its next request) is closed this long after the previous answer.
        keepalive_timeout=settings.keepalive_timeout,
    )
    await runner.setup()
    connections = ConnectionGuard(
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
        max_unauthenticated=unauthenticated_cap(settings.max_unauthenticated),
        authenticates=carries_client_key(app[AUTH], settings),
    )
    assert runner.server is not None
    connections.install(runner.server)
    # Start-up is over (rules, clients, sessions): freeze it all before the first request (see freeze_heap),
    # and from now on run full collections only when they are cheap or due (FullCollections).
    freeze_heap(full=True)
    full_collections = FullCollections()
    full_collections.start()
    site = web.TCPSite(
        runner, settings.host, settings.port, reuse_port=settings.reuse_port or None, backlog=1024
    )
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        await full_collections.stop()
        print(listen_error(settings.host, settings.port, exc), file=sys.stderr)
        return 2
    listening_log.setLevel(logging.INFO)
    listening_log.info(
        "guard listening on http://%s:%s (rules %s, counters %s, upstream %s)",
        settings.host,
        settings.port,
        settings.rules_dir or "shipped",
        "redis" if settings.redis_url else "memory",
        settings.upstream,
    )
    while _after_listening:
        log.warning("%s", _after_listening.pop(0))
    persistence = await redis_persistence(app[REDIS])
    if persistence["warning"]:
        log.warning("%s", persistence["warning"])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await full_collections.stop()
    return 0


def listen_error(host: str, port: int, exc: OSError) -> str:
    """One or two lines: the address that could not be opened, and what to do."""
    address = f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"guard serve: cannot listen on {address}: the address is already in use\n"
            "stop the process that holds it (another guard?) or choose another port: --port N or GUARD_PORT"
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return (
            f"guard serve: cannot listen on {address}: permission denied\n"
            "ports below 1024 need privileges; choose a port of 1024 or more: --port N or GUARD_PORT"
        )
    if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
        return (
            f"guard serve: cannot listen on {address}: no such address on this machine "
            f"({exc.strerror or exc})\n"
            "use an address of this machine, 127.0.0.1 or 0.0.0.0: --host H or GUARD_HOST"
        )
    return f"guard serve: cannot listen on {address}: {exc.strerror or exc}"


def carries_client_key(auth: Any, settings: Any) -> Callable[[web.BaseRequest], bool]:
    """Whether a request (its header block parsed) carries a valid client key, wherever the auth layer
    looks for one: header, query parameter, bearer token, or the `/k/<key>` first path segment. With no
    keys configured any complete request does."""
    from guard.http.auth import presented_key
    from guard.http.proxy import split_key_prefix

    if auth.open:
        return lambda request: True

    def authenticates(request: web.BaseRequest) -> bool:
        key = presented_key(request, settings).value  # type: ignore[arg-type]
        if key is None:
            key = split_key_prefix(request.rel_url.raw_path)[0]
        return auth.identify(key) is not None

    return authenticates
