"""A generic hot-reload primitive: build the new value completely off the event loop, then swap it.

`RuleStore[T]` holds the live value built by `builder(path)`. `await store.reload()` runs the builder in a
worker thread (`asyncio.to_thread`), and only when it succeeds replaces `.current` (one attribute assignment,
so readers see either the old or the new value, never a mix). When the builder raises, the old value stays
live and the error is returned and kept in `.last_error` / `.last_error_at`. The store is not tied to
`RuleSet`: the guard uses it with a builder that loads a whole bundle (rules, limits, accounts, profiles).

`.version` is a content hash of the files behind the value (`directory_hash` by default), so a reload that
finds nothing changed can be skipped, and two processes with the same files report the same version.
`await store.changed()` compares a cheap fingerprint of the directory (`directory_signature`: names, sizes
and modification times, no file contents) with the one taken at the last load or reload attempt: what a
poller asks every few seconds before it reloads.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from rules.errors import RulesInvalid

T = TypeVar("T")

VERSION_CHARS = 16


def content_hash(paths: Iterable[str | Path], *, root: str | Path | None = None) -> str:
    """A hash of the names (relative to `root` when given) and bytes of the given files, order-independent.

    Files outside `root` are named by their base name only, so the hash does not depend on where the
    package is installed.

    A missing or unreadable file contributes its name and a marker, so removing a file changes the hash.
    """
    base = Path(root) if root is not None else None
    digest = hashlib.sha256()
    items: list[tuple[str, Path]] = []
    for p in paths:
        path = Path(p)
        if base is not None and path.is_relative_to(base):
            name = path.relative_to(base).as_posix()
        else:  # a fallback file from elsewhere (e.g. the shipped policy): its name, not where it is installed
            name = "@" + path.name
        items.append((name, path))
    for name, path in sorted(items):
        digest.update(name.encode("utf-8", "surrogateescape") + b"\0")
        try:
            data = path.read_bytes()
        except OSError:
            digest.update(b"\xffmissing\0")
            continue
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()[:VERSION_CHARS]


def directory_files(directory: str | Path) -> list[Path]:
    """Every regular file under `directory`, hidden files and editor backups (`name~`) excluded."""
    root = Path(directory)
    return [
        p
        for p in root.rglob("*")
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
        and not p.name.endswith("~")
    ]


def directory_hash(directory: str | Path) -> str:
    """`content_hash` of the `directory_files` of `directory`."""
    return content_hash(directory_files(directory), root=directory)


def directory_signature(directory: str | Path) -> str:
    """A cheap fingerprint of the `directory_files` of `directory` (name, size, modification time; no
    contents): it changes when a file is written, added or removed. Compare it within one process only."""
    root = Path(directory)
    digest = hashlib.sha256()
    for path in sorted(directory_files(root)):
        try:
            st = path.stat()
        except OSError:  # removed since it was listed
            continue
        name = path.relative_to(root).as_posix()
        digest.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What a reload did. `changed` is False when the files were unchanged (or the reload failed)."""

    ok: bool
    version: str
    error: str | None = None
    changed: bool = False
    errors: tuple[str, ...] = ()


def describe(exc: BaseException) -> tuple[str, tuple[str, ...]]:
    """A one-line reason for a failed build (`RulesInvalid: words/x.txt:3: ...`), and every
    `file:line: reason` when the builder said them."""
    lines = tuple(str(e) for e in exc.errors) if isinstance(exc, RulesInvalid) else ()
    return f"{type(exc).__name__}: {exc}", lines


class RuleStore(Generic[T]):
    """The live value built from a path; reloads swap it atomically or keep the old one."""

    _current: T  # set by the first successful load

    def __init__(
        self,
        builder: Callable[[Path], T],
        path: str | Path,
        *,
        version_of: Callable[[Path], str] = directory_hash,
        signature_of: Callable[[Path], str] = directory_signature,
        clock: Callable[[], float] = time.time,
        load: bool = True,
    ) -> None:
        """Build the first value now, in this thread; a broken path raises (startup should fail loudly).

        With `load=False` nothing is built until `load_now()`: until then `.loaded` is False, `.current`
        raises and `.version` is "".
        """
        self.builder = builder
        self.path = Path(path)
        self._version_of = version_of
        self._signature_of = signature_of
        self._clock = clock
        self._loaded = False
        self._version = ""
        self._signature = ""
        self._loaded_at = 0.0
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._lock: asyncio.Lock | None = None
        self.reloads = 0  # successful reloads after the first load
        self.failures = 0
        if load:
            self.load_now()

    @property
    def current(self) -> T:
        if not self._loaded:
            raise RuntimeError("rules not loaded")
        return self._current

    @property
    def loaded(self) -> bool:
        return self._loaded

    @property
    def version(self) -> str:
        return self._version

    @property
    def loaded_at(self) -> float:
        return self._loaded_at

    @property
    def last_error(self) -> str | None:
        """Why the last reload failed; None after a successful one."""
        return self._last_error

    @property
    def last_error_at(self) -> float | None:
        """When the last reload failed (epoch seconds); None after a successful one."""
        return self._last_error_at

    def load_now(self) -> T:
        """Build now, in this thread, and swap; a broken path raises and keeps what was there."""
        self._signature = self._signature_of(self.path)
        version, value = self._build()
        self._swap(version, value)
        return value

    def _build(self) -> tuple[str, T]:
        version = self._version_of(self.path)
        return version, self.builder(self.path)

    def _swap(self, version: str, value: T) -> bool:
        """Put a new value in place; True when its version differs from the one before."""
        changed = version != self._version
        self._current, self._version, self._loaded_at = value, version, self._clock()
        self._loaded = True
        self._last_error, self._last_error_at = None, None
        return changed

    async def reload(self, *, force: bool = False) -> ReloadResult:
        """Rebuild from the path in a worker thread and swap; on any error keep the old value.

        Unless `force`d, a reload whose content hash equals the current version keeps the value as it is.
        """
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            try:
                # Taken before the build: a file written during the build shows as changed next time.
                self._signature = await asyncio.to_thread(self._signature_of, self.path)
                if not force:
                    version = await asyncio.to_thread(self._version_of, self.path)
                    if version == self._version:
                        self._last_error, self._last_error_at = None, None
                        return ReloadResult(ok=True, version=version, changed=False)
                version, value = await asyncio.to_thread(self._build)
            except Exception as exc:  # a broken file or an unreadable directory: keep what we have
                return self._failed(exc)
            changed = self._swap(version, value)
            self.reloads += 1
            return ReloadResult(ok=True, version=version, changed=changed)

    async def changed(self) -> bool:
        """Has any file under the path changed since the last load or reload attempt (by its signature)?"""
        return await asyncio.to_thread(self._signature_of, self.path) != self._signature

    def _failed(self, exc: BaseException) -> ReloadResult:
        reason, lines = describe(exc)
        self._last_error, self._last_error_at = reason, self._clock()
        self.failures += 1
        return ReloadResult(ok=False, version=self._version, error=reason, errors=lines)

    async def watch(self, interval: float, stop: asyncio.Event) -> None:
        """Reload whenever the content hash changes, every `interval` seconds, until `stop` is set.

        Run it as a task owned by the caller (e.g. an aiohttp cleanup context) and set `stop` to end it.
        """
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except TimeoutError:
                await self.reload()
