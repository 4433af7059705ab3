"""Every example in the README that shows a command and what it prints is run the way a user runs it, and
what it really prints is compared with what the README shows (issue 11: every example output real).

The README marks each such example with an HTML comment right before its fenced blocks,
`<!-- example: NAME -->` (or `<!-- example: NAME exit=N -->` for a command that exits N): the command
block, then, directly after it, the output block. The quick tour's examples (`tour-…`) run in README order
against one real `python3 -m guard serve` process in front of the README's own stand-in upstream; the
others run through bash from the checkout, with `guard` being `python -m guard`. Only what differs from
one run to the next is normalised, on both sides alike: dates and times, stream ids, epoch seconds, the
rules version hash (see `normalise`).

The `guard scan` example is compared by tests/test_start.py (test_readme_scan_example_is_the_real_output),
which also runs the stand-in upstream's snippet with GET and POST; a test here checks that no other
command shown with its output escapes both.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from servers import free_port
from support import wait_ready, wait_until

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
# The documents whose examples are run: the README and the pages it links under docs/.
DOCUMENTS = (README, *sorted((ROOT / "docs").glob("*.md")))
# Covered by tests/test_start.py: its command is not followed directly by its output.
SCAN_EXAMPLE = re.compile(r"^guard scan '[^'\n]+'$")


@dataclass(frozen=True)
class Block:
    lang: str
    text: str


@dataclass(frozen=True)
class Example:
    name: str
    exit: int
    blocks: tuple[Block, ...]

    @property
    def command(self) -> str:
        return self.blocks[0].text

    @property
    def output(self) -> str:
        assert len(self.blocks) == 2, f"README example {self.name}: a command block and its output block"
        return self.blocks[1].text


MARKER = re.compile(r"^<!-- example: ([\w-]+)(?: exit=(\d+))? -->\n", re.MULTILINE)
FENCE = re.compile(r"\s*^```(\w*)\n(.*?)\n```$", re.MULTILINE | re.DOTALL)


def fenced_blocks(text: str, pos: int) -> list[tuple[Block, int]]:
    """The fenced blocks that follow `pos` with nothing but blank lines between them, each with its end."""
    found = []
    while (m := FENCE.match(text, pos)) is not None:
        found.append((Block(m.group(1), m.group(2)), m.end()))
        pos = m.end()
    return found


def examples(document: Path = README) -> list[Example]:
    text = document.read_text(encoding="utf-8")
    found = []
    for m in MARKER.finditer(text):
        blocks = tuple(b for b, _ in fenced_blocks(text, m.end()))
        assert blocks, f"{document.name} example {m.group(1)}: no code block after its marker"
        found.append(Example(m.group(1), int(m.group(2) or 0), blocks))
    names = [e.name for e in found]
    assert len(names) == len(set(names)), f"{document.name} example names repeat: {names}"
    return found


# ---- what may differ between runs ----

VOLATILE = (
    # alert and stream ids, times, epoch seconds in JSON
    (re.compile(r'("(?:at|id|last_id|resets_at|timestamp)": ?)("[^"]*"|-?[\d.]+)'), r"\1<volatile>"),
    (re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}(?::\d{2}:\d{2}(?:\.\d+)?Z?)?"), "<time>"),
    (re.compile(r"\d{4}-\d{2}-\d{2}"), "<date>"),
    (re.compile(r"(?<![\d-])\d{2}-\d{2}(?= \d{2}:\d{2})"), "<date>"),
    (re.compile(r'"\d{10}"'), '"<epoch>"'),
    (re.compile(r"^version [0-9a-f]{16}$", re.MULTILINE), "version <hash>"),
)


def normalise(text: str) -> str:
    text = "\n".join(line.rstrip() for line in text.strip("\n").splitlines())
    for pattern, replacement in VOLATILE:
        text = pattern.sub(replacement, text)
    return text


def assert_shows(example: Example, real: str) -> None:
    assert normalise(real) == normalise(example.output), (
        f"README example {example.name!r} shows something else than the command prints; it prints:\n{real}"
    )


# ---- running commands as a user does ----


def user_env(**extra: str) -> dict[str, str]:
    """A user's shell: no GUARD_* variable; the checkout importable whether or not it is installed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GUARD_", "PROMETHEUS_"))}
    # A plain install has pyahocorasick only; the test extras add daachorse (tests/conftest.py).
    env["GUARD_SCAN_ENGINE"] = os.environ.get("GUARD_SCAN_ENGINE", "pyahocorasick")
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def shell(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`command` through bash, with `guard` the checkout's `python -m guard` and `python3` this Python."""
    prelude = f'guard() {{ "{sys.executable}" -m guard "$@"; }}\npython3() {{ "{sys.executable}" "$@"; }}\n'
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", prelude + command],
        cwd=cwd,
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def command_line(text: str) -> list[str]:
    return shlex.split(text.replace("\\\n", " "))


JSON_TOOL = ["python3", "-m", "json.tool", "--no-ensure-ascii"]


def curl(command: str) -> str:
    """What `curl` prints for the README's curl commands (the flags they use: -i -s -H -d -X, and a pipe
    into `python3 -m json.tool --no-ensure-ascii`); any other flag fails the test."""
    words = command_line(command)
    pipe: list[str] = []
    if "|" in words:
        at = words.index("|")
        words, pipe = words[:at], words[at + 1 :]
        assert pipe == JSON_TOOL, pipe
    assert words[0] == "curl", words
    include = False
    method: str | None = None
    headers: dict[str, str] = {}
    data: bytes | None = None
    url = ""
    rest = iter(words[1:])
    for word in rest:
        if word == "-i":
            include = True
        elif word == "-s":
            pass
        elif word == "-H":
            name, _, value = next(rest).partition(":")
            headers[name.strip()] = value.strip()
        elif word == "-d":
            data = next(rest).encode("utf-8")
        elif word == "-X":
            method = next(rest)
        else:
            assert not word.startswith("-"), f"curl flag {word} is not understood by this test"
            url = word
    if data is not None:
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    body: bytes
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            status, reason, answer, body = resp.status, resp.reason, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        status, reason, answer, body = err.code, err.reason, err.headers, err.read()
    text: str = body.decode("utf-8")
    if pipe:
        text = json.dumps(json.loads(text), indent=4, ensure_ascii=False)
    if not include:
        return text
    head = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in answer.items())]
    return "\n".join(head) + "\n\n" + text


def assert_curl_shows(example: Example, real: str) -> None:
    """For `curl -i` the README shows the status line, the headers that matter and the body: each header it
    shows must be in the answer with that value; the status line and body are compared whole. Anything
    else is compared whole."""
    if not example.command.startswith("curl") or "-i" not in command_line(example.command):
        assert_shows(example, real)
        return
    shown_head, _, shown_body = example.output.partition("\n\n")
    real_head, _, real_body = real.partition("\n\n")
    status, *shown_headers = shown_head.splitlines()
    real_status, *real_headers = real_head.splitlines()
    assert status == real_status, f"README example {example.name!r}: the answer was\n{real}"
    for line in shown_headers:
        assert line in real_headers, f"README example {example.name!r}: no {line!r} in the answer\n{real}"
    assert normalise(real_body) == normalise(shown_body), (
        f"README example {example.name!r} shows another body; the guard answered:\n{real_body}"
    )


# ---- the examples outside the tour ----


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_command_with_output_is_an_example(document: Path) -> None:
    """A shell command block directly followed by another block shows its output: it must be marked (so
    that this file runs it), or be the README's `guard scan` example that tests/test_start.py compares."""
    text = document.read_text(encoding="utf-8")
    marked = {m.end() for m in MARKER.finditer(text)}
    pos = 0
    unmarked = []
    while (start := text.find("```", pos)) != -1:
        line_start = text.rfind("\n", 0, start) + 1
        blocks = fenced_blocks(text, line_start)
        if not blocks:
            pos = start + 3
            continue
        first = blocks[0][0]
        if (
            first.lang == "sh"
            and len(blocks) > 1
            and line_start not in marked
            and not (document == README and SCAN_EXAMPLE.match(first.text))
        ):
            unmarked.append(first.text)
        pos = blocks[-1][1]
    assert not unmarked, f"{document.name}: commands shown with an output, not marked as examples: {unmarked}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_examples_outside_the_tour_print_what_they_show(document: Path) -> None:
    others = [e for e in examples(document) if not e.name.startswith("tour-")]
    if document == README:
        assert {e.name for e in others} >= {"rules-check", "scan-stdin"}, [e.name for e in others]
    for example in others:
        result = shell(example.command, ROOT)
        assert result.returncode == example.exit, (example.name, result.returncode, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        assert_shows(example, result.stdout)


# ---- the quick tour ----


@dataclass
class Tour:
    cwd: Path
    guard_port: int
    upstream_port: int
    procs: list[subprocess.Popen[bytes]]

    def local(self, text: str) -> str:
        """The tour's ports (8080 for the guard, 9000 for the stand-in) made free ones of this test."""
        return text.replace("127.0.0.1:8080", f"127.0.0.1:{self.guard_port}").replace(
            "127.0.0.1:9000", f"127.0.0.1:{self.upstream_port}"
        )

    def background(self, command: str, log: Path, **env: str) -> subprocess.Popen[bytes]:
        words = command_line(self.local(command))
        assert words[0] == "python3" and words[-1] == "&", words
        argv = [sys.executable, *words[1:-1]]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv, cwd=self.cwd, env=user_env(**env), stdout=out, stderr=subprocess.STDOUT
            )
        self.procs.append(proc)
        return proc


@contextlib.contextmanager
def tour(tmp_path: Path) -> Iterator[Tour]:
    running = Tour(tmp_path, free_port(), free_port(), [])
    try:
        yield running
    finally:
        for proc in running.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in running.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def get(url: str, key: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"X-Guard-Key": key} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, resp.read().decode("utf-8")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8")


def read_until_shown(example: Example, run: Callable[[], str], *, reads: bool) -> str:
    """What `run` prints. A read (nothing sent, nothing charged) is asked again until it shows what the
    README shows, or the deadline passes: alerts and report figures are written just after the answer that
    caused them, and a user reads them seconds later. A write is sent once."""
    seen = [run()]

    def shown() -> bool:
        if shows(example, seen[-1]):
            return True
        seen.append(run())
        return False

    if reads:
        with contextlib.suppress(AssertionError):
            wait_until(shown, what=f"README example {example.name}")
    return seen[-1]


def shows(example: Example, real: str) -> bool:
    try:
        assert_curl_shows(example, real)
    except AssertionError:
        return False
    return True


@pytest.mark.slow
def test_quick_tour_as_written(tmp_path: Path) -> None:
    steps = [e for e in examples() if e.name.startswith("tour-")]
    names = [s.name for s in steps]
    # A keyed tour that ends on the dashboard.
    assert names[-1] == "tour-dashboard" and "tour-config" in names, names
    with tour(tmp_path) as t:
        for step in steps:
            run_step(t, step, steps)


def run_step(t: Tour, step: Example, steps: list[Example]) -> None:
    command = step.command
    if step.blocks[0].lang == "toml":
        # "Save this as `guard.toml`": the file the serve command names.
        assert "Save this as `guard.toml`" in README.read_text(encoding="utf-8")
        (t.cwd / "guard.toml").write_text(command + "\n", encoding="utf-8")
    elif command.startswith("python3 -c"):
        t.background(command.replace("port=9000", f"port={t.upstream_port}"), t.cwd / "stand-in.log")
        url = f"http://127.0.0.1:{t.upstream_port}/cgi-bin/user/get"
        wait_until(lambda: answers(url), what="the stand-in upstream answering")
    elif command.startswith("python3 -m guard serve"):
        log = t.cwd / "guard.log"
        # The README's guard listens on the default port 8080; this one on a free port.
        proc = t.background(command, log, GUARD_PORT=str(t.guard_port))
        wait_ready(f"http://127.0.0.1:{t.guard_port}", proc, [log])
        shown = json.loads(step.output)
        lines = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
        line = next((x for x in lines if x.get("logger") == shown["logger"]), None)
        assert line is not None, log.read_text()
        real, expected = json.dumps(line, ensure_ascii=False), t.local(json.dumps(shown, ensure_ascii=False))
        assert normalise(real) == normalise(expected), real
    elif command.startswith("curl"):
        example = Example(step.name, step.exit, (step.blocks[0], Block("", t.local(step.output))))
        real = read_until_shown(example, lambda: curl(t.local(command)), reads=" -d " not in command)
        assert_curl_shows(example, real)
    elif command.startswith("guard "):
        # `guard hash-key`, and `guard report`: a read, whose figures follow the answers just after.
        def run() -> str:
            result = shell(t.local(command), t.cwd)
            assert result.returncode == step.exit, (step.name, result.returncode, result.stderr)
            return result.stdout

        assert_shows(step, read_until_shown(step, run, reads=True))
    elif step.name == "tour-dashboard":
        check_dashboard(t, command, README.read_text(encoding="utf-8"), steps)
    else:
        raise AssertionError(f"README example {step.name}: this test does not know how to run it")


def check_dashboard(t: Tour, url: str, readme: str, steps: list[Example]) -> None:
    """The page opens at the URL shown; the risk key the README says to enter opens its data (the page
    sends it with every call), a staff key does not; a refusal sent as the README suggests makes a new
    block alert, which the open page shows live (the browser side: tests/test_dashboard_browser.py)."""
    status, page = get(t.local(url.strip()))
    assert status == 200 and 'id="key"' in page, page[:300]
    entered = re.search(r"enter `([^`]+)`", readme)
    assert entered is not None
    key = entered.group(1)
    base = f"http://127.0.0.1:{t.guard_port}"
    assert get(base + "/v1/risk/overview", key)[0] == 200
    by_name = {s.name: s for s in steps}
    staff_key = re.search(r"X-Guard-Key: ([\w-]+)", by_name["tour-refused"].command)
    assert staff_key is not None
    assert get(base + "/v1/risk/overview", staff_key.group(1))[0] == 403
    status, before = get(base + "/v1/alerts", key)
    assert status == 200
    other = re.search(r'Send step 6 again with another account \(`"sender":"([\w-]+)"`\)', readme)
    assert other is not None
    refused = by_name["tour-refused"].command.replace('"sender":"lisi"', f'"sender":"{other.group(1)}"')
    assert other.group(1) in refused
    assert '"errcode":490001' in curl(t.local(refused))
    known = len(json.loads(before)["alerts"])

    def new_alerts() -> list[tuple[str, str]]:
        alerts = json.loads(get(base + "/v1/alerts", key)[1])["alerts"][known:]
        return [(a["level"], a["account"]) for a in alerts]

    assert wait_until(new_alerts, what="the new block alert") == [("block", other.group(1))]
