"""`guard rules check` covers every file of a rules directory: words, policy, limits, accounts,
attachments and custom route profiles, each problem as `file:line: reason`."""

from __future__ import annotations

from pathlib import Path

import pytest

from guard.cli import main


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


SHIPPED_LIMITS = (Path(__file__).parent.parent / "rules" / "default" / "limits.toml").read_text("utf-8")


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"attachments.toml": '[link]\nallow = "x"\n'}, "attachments.toml:2: link.allow must be a list"),
        ({"attachments.toml": "[link]\nrequire_https = maybe\n"}, "attachments.toml:2: TOML syntax"),
        ({"attachments.toml": "[kinds]\n\nhologram = true\n"}, "attachments.toml:3: unknown attachment kind"),
        ({"limits.toml": SHIPPED_LIMITS.replace("broadcast = { day = 1 }", "broadcast = { day = -1 }")},
         "limits.toml:"),
        ({"accounts.toml": '[accounts."wx1"]\ntier = "legendary"\n'}, "accounts.toml:2:"),
        ({"profiles/acme.toml": "name = = 1\n"}, "profiles/acme.toml:1:"),
        ({"profiles/acme.toml": 'name = "acme"\nno_such_key = 1\n'}, "profiles/acme.toml:0: unknown key"),
    ],
)  # fmt: skip
def test_every_file_of_the_directory_is_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], files: dict[str, str], expected: str
) -> None:
    write(tmp_path, {"words/finance.txt": "投资\n", **files})
    assert main(["rules", "check", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert expected in err, err
    assert all(line.count(":") >= 2 for line in err.splitlines())


def test_a_directory_with_only_words_is_complete(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Files it lacks (limits, accounts, attachments, profiles, policy) fall back to the shipped ones.
    write(tmp_path, {"words/finance.txt": "投资\n"})
    assert main(["rules", "check", str(tmp_path)]) == 0
    assert "OK" in capsys.readouterr().out


def test_failing_tests_of_the_directory_are_printed_per_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(
        tmp_path,
        {
            "words/finance.txt": "投资\n",
            "tests.txt": "# own tests\nblock finance: 投 资\nallow: 投资理财\nwarn: 你好\nblock: 投资\n",
        },
    )
    assert main(["rules", "check", str(tmp_path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert [line.removeprefix(str(tmp_path) + "/") for line in lines] == [
        'tests.txt:3: expected allow, got block [finance 投资 "投资" 0-2] for "投资理财"',
        'tests.txt:4: expected warn, got allow for "你好"',
    ]


def test_a_malformed_tests_line_is_a_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, {"words/finance.txt": "投资\n", "tests.txt": "block finance: 投资\nblocks: 投资\n"})
    assert main(["rules", "check", str(tmp_path)]) == 2
    assert "tests.txt:2: unknown action 'blocks'" in capsys.readouterr().err


def test_the_shipped_rules_pass_their_own_tests(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check"]) == 0
    assert "OK" in capsys.readouterr().out


@pytest.mark.parametrize("custom", [True, False], ids=["directory", "shipped"])
async def test_one_rules_version_everywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], custom: bool
) -> None:
    """`guard rules check DIR` prints the version a guard serving DIR shows in GET /v1/rules, in
    guard_rules_info{version} (and on the dashboard, which reads /v1/rules): the directory's hash."""
    from prometheus_client.parser import text_string_to_metric_families
    from support import rules_copy, running_guard, stub_upstream

    from guard.config.settings import Settings

    rules_dir = rules_copy(tmp_path, accounts='[accounts."wx1"]\ntier = "new"\n') if custom else None
    assert main(["rules", "check", *([str(rules_dir)] if rules_dir else [])]) == 0
    printed = capsys.readouterr().out.splitlines()
    (checked,) = [line.split()[1] for line in printed if line.startswith("version ")]
    (engine,) = [line.split()[1] for line in printed if line.startswith("engine ")]
    async with (
        stub_upstream() as stub,
        running_guard(Settings(upstream=stub.url, reload_interval=0, rules_dir=rules_dir)) as guard,
    ):
        async with guard.session.get(guard.url + "/v1/rules") as resp:
            status = await resp.json()
        async with guard.session.get(guard.url + "/metrics") as resp:
            metrics = await resp.text()
    (info,) = [
        sample.labels["version"]
        for family in text_string_to_metric_families(metrics)
        if family.name == "guard_rules_info"
        for sample in family.samples
    ]
    assert checked == status["version"] == info
    assert engine == status["engine"] == "pyahocorasick"  # the suite's engine (tests/conftest.py)
    assert "content_version" not in status
