"""What one rules reload swaps: the content rules, the limits table, the accounts registry, the route
profiles and the attachment policy, built together from one rules directory and replaced as one value.

A reload builds the complete new bundle off the event loop and swaps it in one assignment; if any file
is wrong the old bundle stays and `last_error` says why (file and reason). Requests in flight keep the
bundle they started with.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import rules
from guard.core.profiles import ProfileSet, load_profiles
from rules.accounts import AccountRegistry, load_accounts
from rules.attachments import AttachmentPolicy, load_attachment_policy
from rules.limits import RECOVERING, LimitRuleSpec, LimitTable, TierPlacement, load_limits

log = logging.getLogger("guard.bundle")

DEFAULT_RULES_DIR = Path(rules.__file__).parent / "default"


@dataclass(frozen=True, slots=True)
class Bundle:
    ruleset: Any
    limits: LimitTable
    registry: AccountRegistry
    profiles: ProfileSet
    attachments: AttachmentPolicy
    version: str
    directory: Path
    # (action, tier, recovering stage day) → rules; the limits table never changes within one bundle.
    _rules_cache: dict[tuple[str, str, int | None], tuple[LimitRuleSpec, ...]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def placement(self, account: str, today: date, recovering_since: date | None) -> TierPlacement:
        """The tier of `account` today; a recovery started at run time (`recovering_since`) wins over the
        registry's."""
        entry = self.registry.get(account)
        return self.limits.tier_for(
            entry.registered, today, recovering_since or entry.recovering_since, tier=entry.tier
        )

    def limit_rules(
        self, account: str, action_name: str, today: date, recovering_since: date | None
    ) -> tuple[LimitRuleSpec, ...]:
        """The limit rules that `action_name` of `account` is charged under today."""
        placement = self.placement(account, today, recovering_since)
        days = placement.days if placement.tier == RECOVERING else None
        key = (action_name, placement.tier, days)
        found = self._rules_cache.get(key)
        if found is None:
            found = self._rules_cache[key] = self.limits.rules_for(
                action_name, placement.tier, days_in_tier=days
            )
        return found

    def tier(self, account: str, today: date, recovering_since: date | None) -> str:
        return self.placement(account, today, recovering_since).tier


def _load_content(directory: Path) -> Any:
    # The content engine's loader; imported late so the guard's other parts import without it.
    import importlib

    return importlib.import_module("rules").load_rules(directory)


def tree_signature(directory: Path) -> str:
    """A cheap fingerprint of every file under `directory` (path, size, mtime): what the watcher polls."""
    h = hashlib.sha256()
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def tree_hash(directories: list[Path]) -> str:
    """The content hash of every file under `directories`: the bundle's version."""
    h = hashlib.sha256()
    for directory in directories:
        for root, dirs, files in os.walk(directory):
            dirs.sort()
            for name in sorted(files):
                path = Path(root, name)
                try:
                    data = path.read_bytes()
                except OSError:
                    continue
                h.update(str(path.relative_to(directory)).encode() + b"\0")
                h.update(hashlib.sha256(data).digest())
    return h.hexdigest()[:16]


def build_bundle(directory: Path | None) -> Bundle:
    """Everything from `directory`; files it lacks fall back to the shipped defaults."""
    source = directory if directory is not None else DEFAULT_RULES_DIR
    dirs = [source] if source == DEFAULT_RULES_DIR else [source, DEFAULT_RULES_DIR]
    limits = load_limits(source)
    return Bundle(
        ruleset=_load_content(source),
        limits=limits,
        registry=load_accounts(source, tiers=limits.tier_names),
        profiles=load_profiles(dirs),
        attachments=load_attachment_policy(source),
        version=tree_hash([source]),
        directory=source,
    )


class BundleStore:
    """Holds the current bundle; `reload()` builds a new one off the loop and swaps it, or keeps the old."""

    def __init__(
        self, directory: Path | None, builder: Callable[[Path | None], Bundle] = build_bundle
    ) -> None:
        self.directory = directory
        self._builder = builder
        self._current: Bundle | None = None
        self._lock = asyncio.Lock()
        self.loaded_at: float = 0.0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.reloads = 0
        self._signature = ""

    @property
    def current(self) -> Bundle:
        if self._current is None:
            raise RuntimeError("rules not loaded")
        return self._current

    @property
    def loaded(self) -> bool:
        return self._current is not None

    @property
    def version(self) -> str:
        return self._current.version if self._current is not None else ""

    def watched(self) -> Path:
        return self.directory if self.directory is not None else DEFAULT_RULES_DIR

    def load_now(self) -> Bundle:
        """Synchronous first load at start-up: a broken rules directory stops the start with its error."""
        self._signature = tree_signature(self.watched())
        bundle = self._builder(self.directory)
        self._current = bundle
        self.loaded_at = time.time()
        return bundle

    async def reload(self) -> bool:
        """Build and swap: True once the new bundle is in place; False (old kept, see `last_error`)."""
        async with self._lock:
            signature = await asyncio.to_thread(tree_signature, self.watched())
            try:
                bundle = await asyncio.to_thread(self._builder, self.directory)
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.last_error_at = time.time()
                self._signature = signature
                log.error("rules reload failed, keeping version %s: %s", self.version, self.last_error)
                return False
            self._current = bundle
            self._signature = signature
            self.loaded_at = time.time()
            self.last_error = None
            self.last_error_at = None
            self.reloads += 1
            return True

    async def changed(self) -> bool:
        """Has any file under the rules directory changed since the last (attempted) load?"""
        return await asyncio.to_thread(tree_signature, self.watched()) != self._signature
