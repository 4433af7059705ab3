"""A generic hot-reload primitive: build the new value completely off the event loop, then swap it.

`RuleStore[T]` holds the live value built by `builder(path)`. `await store.reload()` runs the builder in a
worker thread (`asyncio.to_thread`), and only when it succeeds replaces `.current` (one attribute assignment,
so readers see either the old or the new value, never a mix). When the builder raises, the old value stays
live and the error is returned and kept in `.last_error`. The store is not tied to `RuleSet`: the guard uses
it with a builder that loads a whole bundle (rules, limits, accounts, profiles).

`.version` is a content hash of the files behind the value (`directory_hash` by default), so a reload that
finds nothing changed can be skipped, and two processes with the same files report the same version.
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


def directory_hash(directory: str | Path) -> str:
    """`content_hash` of every regular file under `directory` (hidden files and editor backups excluded)."""
    root = Path(directory)
    files = [
        p
        for p in root.rglob("*")
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
        and not p.name.endswith("~")
    ]
    return content_hash(files, root=root)


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What a reload did. `changed` is False when the files were unchanged (or the reload failed)."""

    ok: bool
    version: str
    error: str | None = None
    changed: bool = False
    errors: tuple[str, ...] = ()


def describe(exc: BaseException) -> tuple[str, tuple[str, ...]]:
    """A one-line reason for a failed build, and every `file:line: reason` when the builder said them."""
    if isinstance(exc, RulesInvalid):
        lines = tuple(str(e) for e in exc.errors)
        return str(exc), lines
    return f"{type(exc).__name__}: {exc}", ()


class RuleStore(Generic[T]):
    """The live value built from a path; reloads swap it atomically or keep the old one."""

    def __init__(
        self,
        builder: Callable[[Path], T],
        path: str | Path,
        *,
        version_of: Callable[[Path], str] = directory_hash,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Build the first value now, in this thread; a broken path raises (startup should fail loudly)."""
        self.builder = builder
        self.path = Path(path)
        self._version_of = version_of
        self._clock = clock
        version = version_of(self.path)
        self._current: T = builder(self.path)
        self._version = version
        self._loaded_at = clock()
        self._last_error: str | None = None
        self._last_errors: tuple[str, ...] = ()
        self._lock: asyncio.Lock | None = None
        self.reloads = 0
        self.failures = 0

    @property
    def current(self) -> T:
        return self._current

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
    def last_errors(self) -> tuple[str, ...]:
        return self._last_errors

    def _build(self) -> tuple[str, T]:
        version = self._version_of(self.path)
        return version, self.builder(self.path)

    async def reload(self, *, force: bool = False) -> ReloadResult:
        """Rebuild from the path in a worker thread and swap; on any error keep the old value."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if not force:
                try:
                    version = await asyncio.to_thread(self._version_of, self.path)
                except Exception as exc:  # an unreadable directory: keep what we have
                    return self._failed(exc)
                if version == self._version:
                    self._last_error, self._last_errors = None, ()
                    return ReloadResult(ok=True, version=version, changed=False)
            try:
                version, value = await asyncio.to_thread(self._build)
            except Exception as exc:
                return self._failed(exc)
            self._current = value
            changed = version != self._version
            self._version = version
            self._loaded_at = self._clock()
            self._last_error, self._last_errors = None, ()
            self.reloads += 1
            return ReloadResult(ok=True, version=version, changed=changed)

    def reload_sync(self) -> ReloadResult:
        """The same as `reload(force=True)` for code without an event loop (CLI, tests)."""
        try:
            version, value = self._build()
        except Exception as exc:
            return self._failed(exc)
        changed = version != self._version
        self._current, self._version, self._loaded_at = value, version, self._clock()
        self._last_error, self._last_errors = None, ()
        self.reloads += 1
        return ReloadResult(ok=True, version=version, changed=changed)

    def _failed(self, exc: BaseException) -> ReloadResult:
        reason, lines = describe(exc)
        self._last_error, self._last_errors = reason, lines
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
