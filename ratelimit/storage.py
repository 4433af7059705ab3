"""The storage interface: what a counter backend must do, as plain data in and out.

The limiter turns rules and charges into a plan (keys, limits, costs, expiries); a storage executes
the plan atomically. `RedisStorage` runs it as one Lua script; `MemoryStorage` runs the same steps in
Python. Both share this module's key layout and record format, so their semantics cannot drift.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple, Protocol

# Bits of the crossed-thresholds mask returned by the scripts (order of types.THRESHOLDS).
WARN, LIMIT, ALERT_OVER = 1, 2, 4

STATUS_DONE, STATUS_FROZEN, STATUS_DUPLICATE = 0, 1, 2
# The hit script ran after the deadline it was given (RedisStorage): it did nothing at all.
STATUS_LATE = 3


def account_tag(account: str) -> str:
    # One hash tag per account: every key of an account lands in one Redis Cluster slot, so one
    # script can touch them all. Braces would end the tag early: escape them (injectively).
    escaped = account.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")
    return "{acct:" + escaped + "}"


def counter_key(account: str, rule_name: str, window: str, window_end: int) -> str:
    return account_tag(account) + counter_suffix(rule_name, window, window_end)


def counter_suffix(rule_name: str, window: str, window_end: int) -> str:
    """A counter key less its account tag: the same for every account (the limiter builds it once a
    window)."""
    return f":q:{rule_name}:{window}:{window_end}"


def frozen_key(account: str) -> str:
    return f"{account_tag(account)}:frozen"


def recent_key(account: str, owner: str) -> str:
    # The account's last hit tokens of one guard process (`owner`: its tokens' prefix; hit.lua), to settle
    # a hit whose answer it lost (settle.lua). Per process, so that only its own hits push a token out.
    return f"{account_tag(account)}:recent:{owner}"


def request_key(account: str, request_id: str | None, day_end: int) -> str:
    return _request_key(account_tag(account), request_id, day_end)


def _request_key(tag: str, request_id: str | None, day_end: int) -> str:
    # The day is part of the key: a request id is unique within a calendar day, whatever the clock.
    # Client-chosen ids (an Idempotency-Key header) can be long: long ones are stored by their hash.
    rid = request_id or ""
    if len(rid) > 64:
        rid = "sha256:" + hashlib.sha256(rid.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{tag}:req:{day_end}:{rid}"


def hit_keys(account: str, request_id: str | None, day_end: int, owner: str) -> tuple[str, str, str]:
    """`frozen_key`, `request_key` and `recent_key` of one hit, the account's tag escaped once."""
    tag = account_tag(account)
    return tag + ":frozen", _request_key(tag, request_id, day_end), f"{tag}:recent:{owner}"


class PlanItem(NamedTuple):
    """One counter of a hit, less its key (`HitPlan.keys`): the same for every account, so the limiter
    reuses one tuple of items for all the hits of the same rules within one second."""

    limit: int
    warn_at: int  # -1: none
    alert_over: int  # -1: none
    enforce: bool
    cost: int
    ttl: int  # seconds, set when the key is created


class HitPlan(NamedTuple):
    account: str
    keys: tuple[str, ...]  # the counter of each item
    items: tuple[PlanItem, ...]
    dry_run: bool
    request_id: str | None
    day_end: int
    request_ttl: int
    # What a retry needs to rebuild the answer (rule names, windows, limits…); stored verbatim with
    # the numbers under the request key. Empty when there is no request id.
    descriptor: str
    now: float


class RawRule(NamedTuple):
    used: int
    attempts: int
    crossed: int  # mask of WARN | LIMIT | ALERT_OVER
    allowed: bool


class RawHit(NamedTuple):
    status: int  # STATUS_*
    allowed: bool
    rules: tuple[RawRule, ...] = ()
    # For STATUS_DUPLICATE: the stored descriptor and numbers of the first hit.
    descriptor: str = ""
    numbers: str = ""


class RefundItem(NamedTuple):
    key: str
    cost: int
    # What to take back from the counter's attempts too (a hit the platform asked to retry was no try).
    attempts: int = 0


class RefundPlan(NamedTuple):
    account: str
    items: tuple[RefundItem, ...]
    request_id: str | None
    day_end: int
    now: float


class ReadPlan(NamedTuple):
    account: str
    keys: tuple[str, ...]
    now: float


class RawRead(NamedTuple):
    frozen: bool
    counts: tuple[tuple[int, int], ...]  # (used, attempts) per key


def encode_numbers(allowed: bool, rules: tuple[RawRule, ...]) -> str:
    parts = [str(int(allowed))]
    for r in rules:
        parts += [str(r.used), str(r.attempts), str(r.crossed), str(int(r.allowed))]
    return ",".join(parts)


def decode_numbers(numbers: str) -> tuple[bool, tuple[RawRule, ...]]:
    values = [int(v) for v in numbers.split(",")]
    rules = tuple(
        RawRule(values[i], values[i + 1], values[i + 2], bool(values[i + 3]))
        for i in range(1, len(values), 4)
    )
    return bool(values[0]), rules


class Storage(Protocol):
    """A counter backend. Every method is atomic with respect to one account."""

    name: str

    async def hit(self, plan: HitPlan) -> RawHit: ...

    async def refund(self, plan: RefundPlan) -> bool: ...

    async def read(self, plan: ReadPlan) -> RawRead: ...

    async def set_frozen(self, account: str, frozen: bool) -> None: ...

    async def ping(self) -> bool: ...

    async def aclose(self) -> None: ...
