"""Per-account quota engine: atomic counters over calendar windows (mechanism only).

Knows nothing of files, tiers or what an action means: callers pass rules (anything shaped like
`LimitRule`) and costs; the limiter checks and charges them in one storage round trip.
"""

from ratelimit.breaker import CircuitBreaker
from ratelimit.clients import RedisTarget, connect, probe, resolve
from ratelimit.limiter import Limiter
from ratelimit.memory import MemoryStorage
from ratelimit.redis import RedisStorage, Script, StorageEvents
from ratelimit.storage import Storage
from ratelimit.types import (
    MODES,
    THRESHOLDS,
    WINDOWS,
    Charge,
    HitResult,
    LimitRule,
    Mode,
    Rule,
    RuleOutcome,
    StorageUnavailable,
    Threshold,
    Window,
)

__all__ = [
    "MODES",
    "THRESHOLDS",
    "WINDOWS",
    "Charge",
    "CircuitBreaker",
    "HitResult",
    "LimitRule",
    "Limiter",
    "MemoryStorage",
    "Mode",
    "RedisStorage",
    "RedisTarget",
    "Rule",
    "RuleOutcome",
    "Script",
    "Storage",
    "StorageEvents",
    "StorageUnavailable",
    "Threshold",
    "Window",
    "connect",
    "probe",
    "resolve",
]
