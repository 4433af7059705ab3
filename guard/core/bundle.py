"""What one rules reload swaps: the content rules, the limits table, the accounts registry, the route
profiles and the attachment policy, built together from one rules directory and replaced as one value.

A reload builds the complete new bundle off the event loop and swaps it in one assignment; if any file
is wrong the old bundle stays and `last_error` says why (file and reason). Requests in flight keep the
bundle they started with.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import rules
from guard.core.profiles import ProfileSet, load_profiles
from rules import RuleSet, load_rules
from rules.accounts import AccountRegistry, load_accounts
from rules.attachments import AttachmentPolicy, load_attachment_policy
from rules.limits import RECOVERING, LimitRuleSpec, LimitTable, TierPlacement, load_limits
from rules.store import RuleStore, directory_hash

log = logging.getLogger("guard.bundle")

DEFAULT_RULES_DIR = Path(rules.__file__).parent / "default"


@dataclass(frozen=True, slots=True)
class Bundle:
    ruleset: RuleSet
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
        entry = self.registry.accounts.get(account)
        if entry is None:  # unlisted (a new account): no AccountInfo made for it, ~1 µs a request
            return self.limits.tier_for(None, today, recovering_since)
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


def build_bundle(directory: Path | None) -> Bundle:
    """Everything from `directory`; files it lacks fall back to the shipped defaults."""
    source = directory if directory is not None else DEFAULT_RULES_DIR
    dirs = [source] if source == DEFAULT_RULES_DIR else [source, DEFAULT_RULES_DIR]
    limits = load_limits(source)
    return Bundle(
        ruleset=load_rules(source),
        limits=limits,
        registry=load_accounts(source, tiers=limits.tier_names),
        profiles=load_profiles(dirs),
        attachments=load_attachment_policy(source),
        version=directory_hash(source),
        directory=source,
    )


class BundleStore:
    """The guard's rules store: a `rules.RuleStore[Bundle]` over the rules directory (None = the shipped
    one), with what the app asks of it: a start-up `load_now()`, `reload()` answering True / False (and
    logging a failure), `changed()` for the file watch. Every reload rebuilds, even from unchanged files."""

    def __init__(
        self, directory: Path | None, builder: Callable[[Path | None], Bundle] = build_bundle
    ) -> None:
        self.directory = directory
        self.store: RuleStore[Bundle] = RuleStore(lambda _: builder(directory), self.watched(), load=False)

    @property
    def current(self) -> Bundle:
        return self.store.current

    @property
    def loaded(self) -> bool:
        return self.store.loaded

    @property
    def version(self) -> str:
        return self.store.version

    @property
    def loaded_at(self) -> float:
        return self.store.loaded_at

    @property
    def reloads(self) -> int:
        return self.store.reloads

    @property
    def last_error(self) -> str | None:
        return self.store.last_error

    @property
    def last_error_at(self) -> float | None:
        return self.store.last_error_at

    def watched(self) -> Path:
        return self.directory if self.directory is not None else DEFAULT_RULES_DIR

    def load_now(self) -> Bundle:
        """Synchronous first load at start-up: a broken rules directory stops the start with its error."""
        return self.store.load_now()

    async def reload(self) -> bool:
        """Build and swap: True once the new bundle is in place; False (old kept, see `last_error`)."""
        result = await self.store.reload(force=True)
        if not result.ok:
            log.error("rules reload failed, keeping version %s: %s", self.version, self.last_error)
        return result.ok

    async def changed(self) -> bool:
        """Has any file under the rules directory changed since the last (attempted) load?"""
        return await self.store.changed()
