"""`guard scan` and `guard rules check`, through `guard.cli.main` and as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from guard.cli import main


def run_guard(args: list[str], stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "guard", *args], input=stdin, capture_output=True, timeout=60, check=False
    )


def test_scan_block(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "稳 赚 不 赔，加我微信"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out == {
        "action": "block",
        "matches": [
            {"category": "finance", "term": "稳赚不赔", "start": 0, "end": 7, "text": "稳 赚 不 赔"},
            {"category": "diversion", "term": "加我微信", "start": 8, "end": 12, "text": "加我微信"},
        ],
    }


def test_scan_warn_and_allow(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "电话 138 1234 5678"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["action"] == "warn"
    assert out["matches"] == [
        {"category": "contact", "term": "phone", "start": 3, "end": 16, "text": "138 1234 5678"}
    ]
    assert main(["scan", "欢迎新朋友入群"]) == 0
    assert json.loads(capsys.readouterr().out) == {"action": "allow", "matches": []}


def test_scan_empty_text_is_allowed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", ""]) == 0
    assert json.loads(capsys.readouterr().out) == {"action": "allow", "matches": []}


def test_scan_with_rules_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "words").mkdir()
    (tmp_path / "words" / "mine.txt").write_text("特价\n", encoding="utf-8")
    assert main(["scan", "--rules", str(tmp_path), "今日特价"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["matches"] == [{"category": "mine", "term": "特价", "start": 2, "end": 4, "text": "特价"}]


def test_scan_with_broken_rules_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "--rules", str(tmp_path), "x"]) == 2
    assert "missing words/ directory" in capsys.readouterr().err


def test_scan_stdin_utf8() -> None:
    proc = run_guard(["scan", "-"], stdin="你好\n投\u200b资\n".encode())
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    assert out["matches"] == [
        {"category": "finance", "term": "投资", "start": 3, "end": 6, "text": "投\u200b资"}
    ]
    no_arg = run_guard(["scan"], stdin="早上好".encode())
    assert no_arg.returncode == 0
    assert json.loads(no_arg.stdout)["action"] == "allow"


@pytest.mark.parametrize("data", [b"\xff\xfe", "投资".encode("gb18030"), b"ok \xe6\x8a"])
def test_scan_stdin_not_utf8_is_an_error(data: bytes) -> None:
    proc = run_guard(["scan", "-"], stdin=data)
    assert proc.returncode == 2
    assert proc.stdout == b""
    assert b"not valid UTF-8" in proc.stderr


def test_scan_argv_not_utf8_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "abc\udcff"]) == 2  # how Python hands over undecodable argv bytes
    assert "not valid UTF-8" in capsys.readouterr().err


def test_rules_check_default_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK ")
    assert "finance" in out and "version " in out


def test_rules_check_shipped_dir_as_process() -> None:
    proc = run_guard(["rules", "check", "rules/default"])
    assert proc.returncode == 0, proc.stderr
    assert b"OK rules/default" in proc.stdout


def test_rules_check_broken_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "words").mkdir()
    (tmp_path / "words" / "a.txt").write_bytes(b"\xe6\x8a\x95\xe8\xb5\x84\n\xff\n")
    (tmp_path / "words" / "b.txt").write_text("好\n！！\n", encoding="utf-8")
    (tmp_path / "policy.toml").write_text('[categories.a]\naction = "nuke"\n', encoding="utf-8")
    assert main(["rules", "check", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert lines[0] == f"{tmp_path / 'words' / 'a.txt'}:2: not valid UTF-8 (byte 0xff at column 1)"
    assert lines[1].startswith(f"{tmp_path / 'words' / 'b.txt'}:2: term '！！' normalizes to nothing")
    assert lines[2].startswith(f"{tmp_path / 'policy.toml'}:2: unknown action 'nuke'")
    assert len(lines) == 3


def test_rules_check_missing_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", str(tmp_path / "nope")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_rules_needs_a_subcommand() -> None:
    with pytest.raises(SystemExit) as info:
        main(["rules"])
    assert info.value.code == 2


def test_scan_argv_lone_surrogate_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "投资\ud800"]) == 2
    assert "not valid UTF-8" in capsys.readouterr().err
