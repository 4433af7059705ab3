"""Starting the guard the way a user does (issue 11, "operable on day one"): the real `python3 -m guard`
in a subprocess, every documented way to configure it (flags, `--config`, `GUARD_CONFIG`, `GUARD_*`
variables), the Dockerfile's and docker-compose.yml's exact command line and environment against a wheel
built from the checkout, and what a failed start prints: an exit code and a few lines, never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from servers import RedisServer, free_port
from support import wait_until

from guard.http.auth import hash_key

ROOT = Path(__file__).resolve().parent.parent
KEY = "day-one-secret"
CHECK_BODY = {"kind": "message", "account": "wx_shop_01", "text": "你好", "dry_run": True}
LISTENING = re.compile(r"guard listening on http://([^:\s]+):(\d+)")


# ---- running `guard` ----


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a user's shell: this one without any GUARD_* variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUARD_")}
    env.update(extra or {})
    return env


def guard_cli(
    *args: str, env: Mapping[str, str] | None = None, stdin: str | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "guard", *args],
        env=clean_env(env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tempfile.gettempdir(),
    )


def assert_short_error(result: subprocess.CompletedProcess[str], *, lines: int = 3) -> list[str]:
    """Exit 2, no traceback, at most `lines` lines on stderr; returns them."""
    out = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert 1 <= len(out) <= lines, result.stderr
    return out


@dataclass
class Serving:
    proc: subprocess.Popen[bytes]
    url: str
    host: str
    port: int
    log: Path

    def stderr(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@contextlib.contextmanager
def serving(
    argv: Sequence[str], env: Mapping[str, str], tmp: Path, *, cwd: Path | None = None
) -> Iterator[Serving]:
    """Start `argv` (a `guard serve` command line) in its own process group, wait for its listening line,
    and stop the whole group (a supervisor and its workers) at the end."""
    log = tmp / f"serve-{time.monotonic_ns()}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd or tmp,
            start_new_session=True,
        )
    try:
        found: list[re.Match[str]] = []

        def listening() -> bool:
            match = LISTENING.search(log.read_text(encoding="utf-8", errors="replace"))
            if match:
                found.append(match)
                return True
            if proc.poll() is not None:
                raise AssertionError(f"guard exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            return False

        wait_until(listening, within=60.0, interval=0.05, what="the 'guard listening on' line")
        host, port = found[0].group(1), int(found[0].group(2))
        yield Serving(proc, f"http://127.0.0.1:{port}", host, port, log)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # workers left behind by a supervisor that died first


def guard_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "guard", *args]


def http(
    method: str, url: str, body: Any = None, headers: Mapping[str, str] | None = None
) -> tuple[int, Any]:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


def check_status(url: str, key: str | None = None) -> int:
    return http("POST", url + "/v1/check", CHECK_BODY, {"X-Guard-Key": key} if key else {})[0]


def wait_ready(url: str) -> None:
    wait_until(lambda: http("GET", url + "/readyz")[0] == 200, within=30.0, what=f"{url}/readyz 200")


def keyed_config(tmp: Path, port: int | None = None, **extra: str) -> Path:
    lines = [f"port = {port}"] if port is not None else []
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    lines += ["[[keys]]", 'name = "scrm"', f'hash = "{hash_key(KEY)}"', 'accounts = ["*"]', 'role = "admin"']
    lines += ["[[keys]]", 'name = "staff"', f'hash = "{hash_key("staff-key")}"', 'role = "staff"']
    path = tmp / "guard.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ---- every documented way to start ----


def test_zero_config_and_flags(tmp_path: Path) -> None:
    port = free_port()
    argv = guard_argv("serve", "--host", "127.0.0.1", "--port", str(port), "--upstream", "http://127.0.0.1:9")
    with serving(argv, clean_env(), tmp_path) as guard:
        assert (guard.host, guard.port) == ("127.0.0.1", port)
        assert "upstream http://127.0.0.1:9" in guard.stderr()
        assert http("GET", guard.url + "/healthz")[0] == 200
        assert check_status(guard.url) == 200  # no keys: loopback only, open


def test_config_flag_takes_effect(tmp_path: Path) -> None:
    port = free_port()
    config = keyed_config(tmp_path, port)
    with serving(guard_argv("serve", "--config", str(config)), clean_env(), tmp_path) as guard:
        assert guard.port == port
        assert check_status(guard.url) == 401
        assert check_status(guard.url, KEY) == 200


def test_guard_config_variable_takes_effect(tmp_path: Path) -> None:
    port = free_port()
    config = keyed_config(tmp_path, port)
    with serving(guard_argv("serve"), clean_env({"GUARD_CONFIG": str(config)}), tmp_path) as guard:
        assert guard.port == port
        assert check_status(guard.url) == 401
        assert check_status(guard.url, KEY) == 200


def test_layers_file_then_environment_then_flags(tmp_path: Path) -> None:
    config = keyed_config(tmp_path, free_port(), upstream="http://127.0.0.1:1")
    env_port, flag_port = free_port(), free_port()
    env = clean_env(
        {"GUARD_CONFIG": str(config), "GUARD_PORT": str(env_port), "GUARD_UPSTREAM": "http://127.0.0.1:2"}
    )
    with serving(guard_argv("serve"), env, tmp_path) as guard:
        assert guard.port == env_port
        assert "upstream http://127.0.0.1:2" in guard.stderr()
    with serving(guard_argv("serve", "--port", str(flag_port)), env, tmp_path) as guard:
        assert guard.port == flag_port
        assert check_status(guard.url) == 401  # the file's keys still apply


def test_environment_variables_alone(tmp_path: Path) -> None:
    port = free_port()
    env = clean_env({"GUARD_HOST": "127.0.0.1", "GUARD_PORT": str(port), "GUARD_LOG_LEVEL": "warning"})
    with serving(guard_argv("serve"), env, tmp_path) as guard:
        # log_level = warning still prints where the guard listens.
        assert guard.port == port
        assert '"level": "info"' in guard.stderr()  # only the listening line is below warning


def test_missing_config_file_is_named() -> None:
    missing = "/nonexistent/guard.toml"
    (line,) = assert_short_error(guard_cli("serve", env={"GUARD_CONFIG": missing}), lines=1)
    assert missing in line and "GUARD_CONFIG" in line
    (line,) = assert_short_error(guard_cli("serve", "--config", missing), lines=1)
    assert missing in line


# ---- what a failed start prints ----


def test_port_in_use_is_one_clear_error() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        lines = assert_short_error(guard_cli("serve", "--port", str(port)), lines=2)
    assert f"127.0.0.1:{port}" in lines[0] and "already in use" in lines[0]
    assert "--port" in lines[-1]


def test_errors_name_the_flag_as_typed() -> None:
    (line,) = assert_short_error(guard_cli("serve", "--rules", "/nope"), lines=1)
    assert "(from --rules)" in line and "/nope" in line
    (line,) = assert_short_error(guard_cli("serve", "--redis", "foo://x"), lines=1)
    assert "(from --redis)" in line
    (line,) = assert_short_error(guard_cli("serve", "--port", "80", "--workers", "2"), lines=1)
    assert "(from --workers)" in line and "--redis URL" in line


def test_unix_socket_and_tls_redis_urls_are_accepted(tmp_path: Path) -> None:
    from guard.config.settings import load_settings

    assert load_settings(env={}, flags={"redis_url": "rediss://h:6380/0"}).redis_url == "rediss://h:6380/0"
    sock_dir = Path(tempfile.mkdtemp(prefix="gs-"))
    sock = sock_dir / "redis.sock"
    server = RedisServer(extra=["--unixsocket", str(sock), "--unixsocketperm", "700"]).start()
    try:
        argv = guard_argv("serve", "--port", str(free_port()), "--redis", f"unix://{sock}")
        with serving(argv, clean_env(), tmp_path) as guard:
            assert "counters redis" in guard.stderr()
            wait_ready(guard.url)  # /readyz asks Redis, over the socket
    finally:
        server.cleanup()
    (line,) = assert_short_error(guard_cli("serve", "--redis", "unix://"), lines=1)
    assert "unix:///path/to/redis.sock" in line


def write(root: Path, name: str, content: str | bytes) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")


def test_broken_rules_list_every_problem_and_point_to_the_check(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    write(rules, "words/finance.txt", "投资\n")
    write(rules, "policy.toml", "x = \n")  # syntax
    write(rules, "accounts.toml", "[accounts.wx_a]\nregistered = 2026-13-01\n")  # an impossible date
    write(rules, "limits.toml", "[tiers]\nnew = 0 # 新\n".encode("gb18030"))  # the whole file
    lines = assert_short_error(guard_cli("serve", "--rules", str(rules), "--port", str(free_port())), lines=8)
    text = "\n".join(lines)
    assert "3 problems" in lines[0], text
    assert f"{rules / 'policy.toml'}:1: TOML syntax" in text
    assert (
        f"{rules / 'accounts.toml'}:2: TOML syntax: 2026-13-01 is not a valid date (month must be in 1..12)"
        in text
    )
    assert f"{rules / 'limits.toml'}: not UTF-8" in text
    assert ":0:" not in text and "more problem" not in text
    assert lines[-1] == f"check the directory with: guard rules check {rules}"
    # The check itself names the same problems (as `file:line: reason`, its documented format).
    check = guard_cli("rules", "check", str(rules))
    assert (
        check.returncode == 2
        and "accounts.toml:2: TOML syntax: 2026-13-01 is not a valid date" in check.stderr
    )


def test_unreachable_redis_is_one_line_then_quiet(tmp_path: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with serving(
        guard_argv("serve", "--port", str(free_port()), "--redis", dead), clean_env(), tmp_path
    ) as guard:
        time.sleep(4.0)  # four retries of the old loop, for two channels: eight lines then
        pubsub = [line for line in guard.stderr().splitlines() if '"guard.pubsub"' in line]
        assert len(pubsub) == 1, pubsub
        assert "Redis pub/sub unreachable" in pubsub[0] and "retrying quietly" in pubsub[0]
        assert http("GET", guard.url + "/healthz")[0] == 200


# ---- hash-key ----


def test_hash_key_command() -> None:
    expected = hash_key(KEY)
    assert guard_cli("hash-key", KEY).stdout == expected + "\n"
    assert guard_cli("hash-key", "-", stdin=KEY + "\n").stdout == expected + "\n"
    assert guard_cli("hash-key", stdin=KEY + "\n").stdout == expected + "\n"
    assert guard_cli("serve", "--hash-key", KEY).stdout == expected + "\n"  # the old spelling
    (line,) = assert_short_error(guard_cli("hash-key", stdin=""), lines=1)
    assert "empty" in line
    assert "hash-key" in guard_cli("--help").stdout


def test_a_bad_key_hash_points_to_the_command(tmp_path: Path) -> None:
    config = tmp_path / "guard.toml"
    config.write_text('[[keys]]\nhash = "abc"\n', encoding="utf-8")
    (line,) = assert_short_error(guard_cli("serve", "--config", str(config)), lines=1)
    assert "guard hash-key KEY" in line


# ---- report and /v1/check ----


def test_report_url_without_key_says_to_pass_one(tmp_path: Path) -> None:
    config = keyed_config(tmp_path, free_port())
    with serving(guard_argv("serve", "--config", str(config)), clean_env(), tmp_path) as guard:
        (line,) = assert_short_error(guard_cli("report", "--url", guard.url), lines=1)
        assert "pass --key KEY" in line and "{" not in line
        (line,) = assert_short_error(guard_cli("report", "--url", guard.url, "--key", "wrong"), lines=1)
        assert "check --key" in line
        (line,) = assert_short_error(guard_cli("report", "--url", guard.url, "--key", "staff-key"), lines=1)
        assert "risk or admin role" in line
        ok = guard_cli("report", "--url", guard.url, "--key", KEY, "--format", "json")
        assert ok.returncode == 0, ok.stderr


def test_check_errors_do_not_speak_of_forwarding(tmp_path: Path) -> None:
    with serving(guard_argv("serve", "--port", str(free_port())), clean_env(), tmp_path) as guard:
        for body in (
            b"{not json",
            {"kind": "message", "text": "x"},
            {"kind": "broadcast", "account": "a", "recipients": 0},
        ):
            status, answer = http("POST", guard.url + "/v1/check", body)
            assert status >= 400, answer
            assert "forward" not in answer["message"] and "转发" not in answer["message"], answer
            assert "nothing was checked" in answer["message"] and "未作检查" in answer["message"], answer


# ---- the Dockerfile and docker-compose.yml, against a wheel built from the checkout ----


def dockerfile() -> dict[str, Any]:
    """The final stage's ENV, ENTRYPOINT, CMD and HEALTHCHECK command, the build stage's COPY sources, and
    the `docker run` lines of the header comment (their `-e NAME=VALUE` options)."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    runs = [
        line.split("docker run", 1)[1]
        for line in re.sub(r"\\\n#\s*", " ", text).splitlines()
        if line.startswith("#") and "docker run" in line
    ]
    instructions = [
        line
        for line in re.sub(r"\\\n", " ", text).splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    stages: list[list[str]] = []
    for line in instructions:
        if line.startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    env: dict[str, str] = {}
    out: dict[str, Any] = {"env": env, "copies": []}
    for line in stages[-1]:
        word, _, rest = line.partition(" ")
        if word == "ENV":
            env.update(part.split("=", 1) for part in shlex.split(rest))  # type: ignore[arg-type]
        elif word in ("ENTRYPOINT", "CMD"):
            out[word] = json.loads(rest)
        elif word == "HEALTHCHECK":
            out["HEALTHCHECK"] = json.loads(rest.split(" CMD ", 1)[1])
    for line in stages[0]:
        if line.startswith("COPY "):
            out["copies"] += shlex.split(line)[1:-1]
    out["runs"] = [dict(part.split("=", 1) for part in re.findall(r"-e (\S+=\S+)", run)) for run in runs]
    return out


def compose_guard() -> dict[str, Any]:
    """The guard service of docker-compose.yml: its command, its environment, and the environment lines
    shipped commented out (`# GUARD_CONFIG: …`), which the file's header says to uncomment."""
    lines = (ROOT / "docker-compose.yml").read_text(encoding="utf-8").splitlines()
    start = lines.index("  guard:")
    block: list[str] = []
    for line in lines[start + 1 :]:
        if line.strip() and not line.startswith("    ") and not line.lstrip().startswith("#"):
            break
        block.append(line)
    command = next(json.loads(line.split(":", 1)[1]) for line in block if line.startswith("    command:"))
    env: dict[str, str] = {}
    commented: dict[str, str] = {}
    at = block.index("    environment:")
    for line in block[at + 1 :]:
        match = re.match(r"^      (#\s*)?([A-Z][A-Z0-9_]*):\s*(.*)$", line)
        if match is None:
            if line.startswith("    ") and not line.startswith("      "):
                break
            continue
        value = match.group(3).strip().strip('"')
        (commented if match.group(1) else env)[match.group(2)] = value
    header = "\n".join(line for line in lines if line.startswith("#"))
    hash_command = re.search(r"docker compose run --rm guard ([^'\n]*)'([^']*)'", header)
    return {"command": command, "env": env, "commented": commented, "hash_command": hash_command}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ directory of a fresh venv holding the wheel built from what the Dockerfile copies."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in dockerfile()["copies"]:
        source = ROOT / name
        if source.is_dir():
            subprocess.run(["cp", "-r", str(source), str(src / name)], check=True, timeout=60)
        else:
            (src / name).write_bytes(source.read_bytes())
    for junk in src.rglob("__pycache__"):
        subprocess.run(["rm", "-rf", str(junk)], check=True)
    quiet = {"capture_output": True, "text": True, "timeout": 600}
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-w", str(tmp / "wheels")], **quiet
    )  # type: ignore[call-overload]
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    venv = tmp / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=300
    )
    wheels = sorted((tmp / "wheels").glob("*.whl"))
    install = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "--no-index", *map(str, wheels)],
        **quiet,
    )  # type: ignore[call-overload]
    assert install.returncode == 0, install.stderr[-2000:]
    where = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import guard, rules, ratelimit; print(guard.__file__, rules.__file__, ratelimit.__file__)",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp,
        timeout=60,
    )
    assert all(str(venv) in path for path in where.stdout.split()), where.stdout  # not the checkout
    return venv / "bin"


def container_env(bin_dir: Path, *layers: Mapping[str, str]) -> dict[str, str]:
    """The Dockerfile's ENV and the given layers over a minimal environment whose PATH finds the venv's
    `guard` first (the image has it on PATH)."""
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(bin_dir.parent), "LANG": "C.UTF-8"}
    for layer in layers:
        env.update(layer)
    return env


def entrypoint(bin_dir: Path, docker: Mapping[str, Any], cmd: Sequence[str]) -> list[str]:
    first, *rest = docker["ENTRYPOINT"]
    return [str(bin_dir / first), *rest, *cmd]


@pytest.mark.slow
def test_dockerfile_runs_as_documented(installed: Path, tmp_path: Path) -> None:
    docker = dockerfile()
    assert docker["ENTRYPOINT"] == ["guard"] and docker["CMD"] == ["serve"]
    open_run, keyed_run = docker["runs"]
    # docker run -p 127.0.0.1:8080:8080 -e GUARD_OPEN_WITHOUT_KEYS=true siyu-guard
    port = free_port()
    env = container_env(installed, docker["env"], open_run, {"GUARD_PORT": str(port)})
    with serving(entrypoint(installed, docker, docker["CMD"]), env, tmp_path) as guard:
        assert (guard.host, guard.port) == ("0.0.0.0", port)
        assert check_status(guard.url) == 200
        program, *args = docker["HEALTHCHECK"]
        health = subprocess.run([str(installed / program), *args], env=env, timeout=30)
        assert health.returncode == 0
    # docker run -v $PWD/guard.toml:/etc/siyu-guard/guard.toml:ro -e GUARD_CONFIG=/etc/siyu-guard/guard.toml
    assert keyed_run["GUARD_CONFIG"] == "/etc/siyu-guard/guard.toml"
    port = free_port()
    config = keyed_config(tmp_path)
    env = container_env(
        installed, docker["env"], keyed_run, {"GUARD_CONFIG": str(config), "GUARD_PORT": str(port)}
    )
    with serving(entrypoint(installed, docker, docker["CMD"]), env, tmp_path) as guard:
        assert (guard.host, guard.port) == ("0.0.0.0", port)
        assert check_status(guard.url) == 401
        assert check_status(guard.url, KEY) == 200


@pytest.mark.slow
def test_compose_service_runs_as_shipped_and_keyed(
    installed: Path, tmp_path: Path, redis_server: RedisServer
) -> None:
    docker, compose = dockerfile(), compose_guard()
    assert compose["env"]["GUARD_REDIS_URL"].startswith("redis://redis:")
    ours = {"GUARD_PORT": str(free_port()), "GUARD_REDIS_URL": redis_server.url}
    argv = entrypoint(installed, docker, compose["command"])
    # As shipped: no keys, open inside the container (its port is published on the host's loopback).
    with serving(argv, container_env(installed, docker["env"], compose["env"], ours), tmp_path) as guard:
        assert guard.host == "0.0.0.0"
        wait_ready(guard.url)
        assert check_status(guard.url) == 200
    # Keyed, as the header says: a guard.toml with [[keys]] (its hash from the documented command),
    # GUARD_CONFIG uncommented, GUARD_OPEN_WITHOUT_KEYS dropped.
    hash_command = compose["hash_command"]
    assert hash_command is not None, "docker-compose.yml no longer says how to hash a key"
    hashed = subprocess.run(
        entrypoint(installed, docker, [*shlex.split(hash_command.group(1)), KEY]),
        env=container_env(installed, docker["env"]),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert hashed.returncode == 0 and hashed.stdout.strip() == hash_key(KEY), hashed.stderr
    config = tmp_path / "guard.toml"
    config.write_text(
        f'[[keys]]\nname = "scrm"\nhash = "{hashed.stdout.strip()}"\naccounts = ["*"]\nrole = "admin"\n',
        encoding="utf-8",
    )
    assert compose["commented"]["GUARD_CONFIG"] == "/etc/siyu-guard/guard.toml"
    keyed = {k: v for k, v in compose["env"].items() if k != "GUARD_OPEN_WITHOUT_KEYS"}
    keyed["GUARD_CONFIG"] = str(config)
    ours["GUARD_PORT"] = str(free_port())
    with serving(argv, container_env(installed, docker["env"], keyed, ours), tmp_path) as guard:
        assert guard.host == "0.0.0.0"
        wait_ready(guard.url)
        assert check_status(guard.url) == 401
        assert check_status(guard.url, KEY) == 200


# ---- the README's first steps, as written ----


def readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_scan_example_is_the_real_output() -> None:
    text = readme()
    command = re.search(r"^guard scan ('[^'\n]+')$", text, re.MULTILINE)
    shown = re.search(r"`guard scan` prints one JSON object.*?```json\n(.*?)\n```", text, re.DOTALL)
    assert command is not None and shown is not None
    result = guard_cli("scan", *shlex.split(command.group(1)))
    assert result.returncode == 1
    assert json.loads(result.stdout) == json.loads(shown.group(1))


def test_readme_stand_in_upstream_answers_every_method(tmp_path: Path) -> None:
    snippet = re.search(
        r"^(python3 -c 'from aiohttp import web\n.*?)' &$", readme(), re.DOTALL | re.MULTILINE
    )
    assert snippet is not None
    port = free_port()
    code = shlex.split(snippet.group(1) + "'")[2].replace("port=9000", f"port={port}")
    with (tmp_path / "stand-in.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/cgi-bin/user/get?access_token=T"
        wait_until(lambda: _answers(url), within=30.0, what="the stand-in answering")
        for method in ("GET", "POST"):
            assert http(method, url, {} if method == "POST" else None) == (
                200,
                {"errcode": 0, "errmsg": "ok", "msgid": "m1"},
            )
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _answers(url: str) -> bool:
    try:
        return http("GET", url)[0] == 200
    except OSError:
        return False
