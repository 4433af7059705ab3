"""Reading the UTF-8 line files of a rules directory (word lists, allow list, tests.txt, policy)."""

from __future__ import annotations

from pathlib import Path

from rules.errors import RuleError


def read_lines(path: Path) -> tuple[list[tuple[int, str]], list[RuleError]]:
    """(line number, text) of every line of a UTF-8 file; a line that is not UTF-8 is an error."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return [], [RuleError.at(path, 0, f"cannot read file: {exc.strerror or exc}")]
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        whole = data.decode("utf-8")
    except UnicodeDecodeError:
        pass  # find the bad lines one by one below
    else:
        return list(enumerate((line.rstrip("\r") for line in whole.split("\n")), start=1)), []
    lines: list[tuple[int, str]] = []
    errors: list[RuleError] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            errors.append(
                RuleError.at(
                    path, number, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
                )
            )
            continue
        lines.append((number, text.rstrip("\r")))
    return lines, errors
