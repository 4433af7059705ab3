"""The account directory: the static registry of the rules directory (`accounts.toml`) plus the dynamic
overrides the risk manager sets while the guard runs (freeze / unfreeze, start of a 养号 recovery).

Overrides are shared by every guard process: with Redis they live in one hash and every change is
announced on a pub/sub channel so each process refreshes its local copy at once (and re-reads it every
few seconds in case a message was missed); without Redis they live in this process. A freeze is also
written into the quota engine (`Limiter.freeze`), whose check-and-hit script refuses a frozen account in
the same round trip: that makes a freeze authoritative across processes even before the local copies
catch up.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

from guard.core.pubsub import follow_channel
from ratelimit import Limiter
from rules.accounts import AccountInfo as RegistryEntry
from rules.limits import ACTIONS as ACTION_NAMES
from rules.limits import LimitRuleSpec

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

    from guard.core.bundle import Bundle

log = logging.getLogger("guard.accounts")

OVERRIDES_KEY = "siyu-guard:accounts:overrides"
CHANGED_CHANNEL = "siyu-guard:accounts:changed"


@dataclass(frozen=True, slots=True)
class Override:
    frozen: bool | None = None
    frozen_by: str | None = None
    frozen_at: float | None = None
    frozen_reason: str | None = None
    recovering_since: date | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "frozen": self.frozen,
                "frozen_by": self.frozen_by,
                "frozen_at": self.frozen_at,
                "frozen_reason": self.frozen_reason,
                "recovering_since": self.recovering_since.isoformat() if self.recovering_since else None,
            }
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> Override:
        data = json.loads(raw)
        since = data.get("recovering_since")
        return cls(
            frozen=data.get("frozen"),
            frozen_by=data.get("frozen_by"),
            frozen_at=data.get("frozen_at"),
            frozen_reason=data.get("frozen_reason"),
            recovering_since=date.fromisoformat(since) if since else None,
        )


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """What the guard knows about one account on one day."""

    account: str
    tier: str
    staff: str | None
    matrix: str | None
    frozen: bool
    frozen_by: str | None
    registered: date | None
    recovering_since: date | None
    # action name (add_friend.active, broadcast, …) → the limit rules that apply today.
    rules: Mapping[str, tuple[LimitRuleSpec, ...]] = field(default_factory=dict)


class AccountDirectory:
    """Static registry + shared overrides. The registry and the limits table are read from the current
    rules bundle on every call, so a rules reload is seen at once."""

    def __init__(
        self,
        *,
        bundle: Callable[[], Bundle],
        limiter: Limiter,
        redis: Redis | RedisCluster | None = None,
        refresh_interval: float = 5.0,
    ) -> None:
        self._bundle = bundle
        self._limiter = limiter
        self._redis = redis
        self._refresh_interval = refresh_interval
        self._overrides: dict[str, Override] = {}

    # ---- lifecycle (called from the app's cleanup_ctx) -------------------------------------------------

    async def start(self) -> None:
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self.refresh()

    async def run_sync(self) -> None:
        """Keep the local copy of the overrides fresh: re-read them on every change announced on pub/sub,
        on (re)subscription, and at least every `refresh_interval` seconds."""
        if self._redis is None:
            return

        async def refresh(_message: object) -> None:
            await self.refresh()

        await follow_channel(
            self._redis, CHANGED_CHANNEL, refresh, idle=self._refresh_interval, what="account overrides sync"
        )

    async def refresh(self) -> None:
        if self._redis is None:
            return
        raw = await self._redis.hgetall(OVERRIDES_KEY)
        fresh: dict[str, Override] = {}
        for key, value in raw.items():
            name = key.decode() if isinstance(key, bytes) else str(key)
            try:
                fresh[name] = Override.from_json(value)
            except (ValueError, TypeError):
                log.warning("ignoring a malformed account override for %s", name)
        self._overrides = fresh

    # ---- reads --------------------------------------------------------------------------------------

    def _entry(self, account: str) -> RegistryEntry:
        return self._bundle().registry.get(account)

    def _listed(self, account: str) -> RegistryEntry | None:
        """The registry's entry of `account`, None when it does not list it. The per-request reads below
        use this: `registry.get` makes a new unlisted entry for every other account (~1 µs, four to six
        reads a request)."""
        return self._bundle().registry.accounts.get(account)

    def static_frozen(self, account: str) -> bool:
        entry = self._listed(account)
        return entry is not None and entry.frozen

    def is_frozen_local(self, account: str) -> bool:
        """Frozen per the registry or this process's copy of the overrides (no I/O)."""
        override = self._overrides.get(account)
        if override is not None and override.frozen is not None:
            return override.frozen
        return self.static_frozen(account)

    def override(self, account: str) -> Override | None:
        return self._overrides.get(account)

    def frozen_overrides(self) -> list[str]:
        """The accounts this process's copy of the overrides holds frozen (registered or not), sorted."""
        return sorted(name for name, o in self._overrides.items() if o.frozen)

    def recovering_since(self, account: str) -> date | None:
        override = self._overrides.get(account)
        if override is not None and override.recovering_since is not None:
            return override.recovering_since
        entry = self._listed(account)
        return entry.recovering_since if entry is not None else None

    def staff_of(self, account: str) -> str | None:
        entry = self._listed(account)
        return entry.staff if entry is not None else None

    def matrix_of(self, account: str) -> str | None:
        entry = self._listed(account)
        return entry.matrix if entry is not None else None

    def matrix_members(self, name: str) -> list[str]:
        return list(self._bundle().registry.matrix_members(name))

    def tier_of(self, account: str, today: date) -> str:
        return self._bundle().tier(account, today, self.recovering_since(account))

    def rules_for(self, account: str, action_name: str, today: date) -> tuple[LimitRuleSpec, ...]:
        return self._bundle().limit_rules(account, action_name, today, self.recovering_since(account))

    async def is_frozen(self, account: str) -> bool:
        """Authoritative: asks the quota engine (shared across processes) when the local copy says no."""
        if self.is_frozen_local(account):
            return True
        return bool(await self._limiter.is_frozen(account))

    async def info(self, account: str, today: date) -> AccountInfo:
        entry = self._entry(account)
        override = self._overrides.get(account)
        actions = ACTION_NAMES
        return AccountInfo(
            account=account,
            tier=self.tier_of(account, today),
            staff=self.staff_of(account),
            matrix=self.matrix_of(account),
            frozen=await self.is_frozen(account),
            frozen_by=override.frozen_by if override else None,
            registered=entry.registered,
            recovering_since=self.recovering_since(account),
            rules={name: self.rules_for(account, name, today) for name in actions},
        )

    # ---- writes -------------------------------------------------------------------------------------

    async def _write(self, account: str, override: Override) -> None:
        self._overrides[account] = override
        if self._redis is not None:
            await self._redis.hset(OVERRIDES_KEY, account, override.to_json())
            await self._redis.publish(CHANGED_CHANNEL, account)

    def _current(self, account: str) -> Override:
        return self._overrides.get(account) or Override()

    async def freeze(self, account: str, *, by: str = "", reason: str = "") -> None:
        await self._limiter.freeze(account)
        current = self._current(account)
        await self._write(
            account,
            Override(
                frozen=True,
                frozen_by=by or None,
                frozen_at=time.time(),
                frozen_reason=reason or None,
                recovering_since=current.recovering_since,
            ),
        )

    async def unfreeze(self, account: str, *, by: str = "") -> None:
        await self._limiter.unfreeze(account)
        current = self._current(account)
        await self._write(
            account,
            Override(frozen=False, frozen_by=by or None, recovering_since=current.recovering_since),
        )

    async def recover(self, account: str, day: date) -> None:
        """Start the 养号 `recovering` tier for `account` from `day`."""
        current = self._current(account)
        await self._write(
            account,
            Override(
                frozen=current.frozen,
                frozen_by=current.frozen_by,
                frozen_at=current.frozen_at,
                frozen_reason=current.frozen_reason,
                recovering_since=day,
            ),
        )
