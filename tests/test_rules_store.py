"""The hot-reload primitive: build off the event loop, swap atomically, keep the old value on error."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from support import eventually

from rules import RuleSet, RulesInvalid, RuleStore, content_hash, directory_hash, load_rules
from rules.store import directory_signature


def write_words(root: Path, body: str | bytes) -> None:
    (root / "words").mkdir(parents=True, exist_ok=True)
    path = root / "words" / "x.txt"
    if isinstance(body, bytes):
        path.write_bytes(body)
    else:
        path.write_text(body, encoding="utf-8")


async def test_reload_swaps_new_rules_and_version(tmp_path: Path) -> None:
    write_words(tmp_path, "投资\n")
    store: RuleStore[RuleSet] = RuleStore(load_rules, tmp_path)
    old = store.current
    old_version = store.version
    assert store.current.scan("赌博").action == "allow"
    write_words(tmp_path, "投资\n赌博\n")
    result = await store.reload()
    assert result.ok and result.changed and result.error is None
    assert result.version == store.version != old_version
    assert store.current is not old
    assert store.current.scan("赌博").action == "block"
    assert old.scan("赌博").action == "allow"  # a reader holding the old value keeps a consistent one


async def test_reload_keeps_old_rules_on_error(tmp_path: Path) -> None:
    write_words(tmp_path, "投资\n")
    store: RuleStore[RuleSet] = RuleStore(load_rules, tmp_path)
    good, good_version, loaded_at = store.current, store.version, store.loaded_at
    write_words(tmp_path, b"\xff\xfe\n")
    result = await store.reload()
    assert not result.ok
    assert result.version == good_version
    assert result.error is not None and result.error.startswith("RulesInvalid: ")
    assert "x.txt:1: not valid UTF-8" in result.error
    assert result.errors and result.errors[0].endswith("not valid UTF-8 (byte 0xff at column 1)")
    assert store.current is good
    assert store.version == good_version
    assert store.loaded_at == loaded_at
    assert store.last_error == result.error and store.last_error_at is not None
    assert store.reloads == 0 and store.failures == 1
    assert store.current.scan("投资").action == "block"
    # fixed again: the next reload succeeds and clears the error
    write_words(tmp_path, "投资\n黄片\n")
    again = await store.reload()
    assert again.ok and store.last_error is None and store.last_error_at is None
    assert store.reloads == 1
    assert store.current.scan("黄片").action == "block"


async def test_reload_of_unchanged_files_is_skipped_unless_forced(tmp_path: Path) -> None:
    write_words(tmp_path, "投资\n")
    builds: list[int] = []

    def builder(path: Path) -> RuleSet:
        builds.append(threading.get_ident())
        return load_rules(path)

    store: RuleStore[RuleSet] = RuleStore(builder, tmp_path)
    first = store.current
    result = await store.reload()
    assert result.ok and not result.changed
    assert store.current is first and len(builds) == 1
    forced = await store.reload(force=True)
    assert forced.ok and store.current is not first
    assert builds[1] != threading.get_ident()  # built in a worker thread, off the event loop


async def test_store_is_generic_and_survives_any_builder_error(tmp_path: Path) -> None:
    (tmp_path / "n.txt").write_text("1")

    def build_number(path: Path) -> int:
        return int((path / "n.txt").read_text())

    store: RuleStore[int] = RuleStore(build_number, tmp_path)
    assert store.current == 1
    (tmp_path / "n.txt").write_text("two")
    result = await store.reload()
    assert not result.ok and result.error is not None and result.error.startswith("ValueError")
    assert store.current == 1
    (tmp_path / "n.txt").write_text("3")
    assert (await store.reload()).ok
    assert store.current == 3


async def test_concurrent_reloads_are_serialized(tmp_path: Path) -> None:
    write_words(tmp_path, "投资\n")
    store: RuleStore[RuleSet] = RuleStore(load_rules, tmp_path)
    write_words(tmp_path, "投资\n赌博\n")
    results = await asyncio.gather(*(store.reload() for _ in range(5)))
    assert all(r.ok for r in results)
    assert sum(r.changed for r in results) == 1


async def test_watch_picks_up_changes_and_stops(tmp_path: Path) -> None:
    write_words(tmp_path, "投资\n")
    store: RuleStore[RuleSet] = RuleStore(load_rules, tmp_path)
    stop = asyncio.Event()
    task = asyncio.create_task(store.watch(0.01, stop))
    write_words(tmp_path, "投资\n赌博\n")
    try:
        await eventually(
            lambda: store.current.scan("赌博").action == "block", what="the changed words in force"
        )
    finally:
        stop.set()
        await task


def test_initial_build_failure_raises(tmp_path: Path) -> None:
    with pytest.raises(RulesInvalid):
        RuleStore(load_rules, tmp_path)


def test_a_store_can_be_loaded_later(tmp_path: Path) -> None:
    store: RuleStore[RuleSet] = RuleStore(load_rules, tmp_path, load=False, clock=lambda: 42.0)
    assert not store.loaded and store.version == "" and store.loaded_at == 0.0
    with pytest.raises(RuntimeError, match="not loaded"):
        store.current  # noqa: B018
    with pytest.raises(RulesInvalid):
        store.load_now()
    assert not store.loaded
    write_words(tmp_path, "投资\n")
    rules = store.load_now()
    assert store.loaded and store.current is rules and rules.scan("投资").action == "block"
    assert store.version == directory_hash(tmp_path) and store.loaded_at == 42.0
    assert store.reloads == 0  # the first load is not a reload


async def test_changed_follows_the_files_since_the_last_attempt(tmp_path: Path) -> None:
    write_words(tmp_path, "投资\n")
    store: RuleStore[RuleSet] = RuleStore(load_rules, tmp_path)
    assert not await store.changed()
    (tmp_path / "words" / ".x.txt.swp").write_text("editor state")  # hidden: not a rules file
    assert not await store.changed()
    write_words(tmp_path, b"\xff\n")
    assert await store.changed()
    assert not (await store.reload()).ok
    assert not await store.changed()  # a failed attempt is not retried until the files change again
    write_words(tmp_path, "投资\n赌博\n")
    assert await store.changed()
    assert (await store.reload()).ok and not await store.changed()


def test_hashes(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("1")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("2")
    h = directory_hash(tmp_path)
    assert h == content_hash([tmp_path / "sub" / "b.txt", tmp_path / "a.txt"], root=tmp_path)
    (tmp_path / ".hidden").write_text("x")
    assert directory_hash(tmp_path) == h
    (tmp_path / "sub" / "b.txt").write_text("3")
    assert directory_hash(tmp_path) != h
    assert content_hash([tmp_path / "missing"]) != content_hash([])


def test_signature_sees_size_time_and_names_but_not_hidden_files(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("1")
    first = directory_signature(tmp_path)
    assert directory_signature(tmp_path) == first
    (tmp_path / ".hidden").write_text("x")
    (tmp_path / "a.txt~").write_text("x")
    assert directory_signature(tmp_path) == first
    (tmp_path / "a.txt").write_text("12")
    assert directory_signature(tmp_path) != first
    second = directory_signature(tmp_path)
    (tmp_path / "b.txt").write_text("")
    assert directory_signature(tmp_path) != second


def test_store_version_can_follow_the_ruleset(tmp_path: Path) -> None:
    from rules import rules_version

    write_words(tmp_path, "投资\n")
    store: RuleStore[RuleSet] = RuleStore(load_rules, tmp_path, version_of=rules_version)
    assert store.version == store.current.version
