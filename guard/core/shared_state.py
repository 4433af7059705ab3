"""Names of what guard processes share in Redis besides the counters, so the writer and the readers (another
command, another instance) agree on them."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

# The outcome of the last `guard intercept sync` (JSON), shown by every instance in /v1/rules and on the
# dashboard.
INTERCEPT_LAST_SYNC = "siyu-guard:intercept:last-sync"


def sync_summary(report: Mapping[str, Any], at: float | None = None) -> dict[str, Any]:
    """What `/v1/rules` shows of a sync report: when, counts of what it did, and whether it all went in."""
    counts = {
        key: len(report.get(key) or ())
        for key in ("created", "updated", "deleted", "unchanged", "errors", "hand_made", "left_out")
    }
    return {"at": time.time() if at is None else at, "ok": counts["errors"] == 0, **counts}


def encode_summary(summary: Mapping[str, Any]) -> str:
    return json.dumps(summary, ensure_ascii=False, separators=(",", ":"))


def decode_summary(raw: bytes | str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


async def read_last_sync(client: Any) -> dict[str, Any] | None:
    """The last sync's summary from the shared Redis (`client`: a redis-py client, or None without Redis);
    None when there is none or Redis does not answer (the caller's page still shows everything else)."""
    if client is None:
        return None
    try:
        return decode_summary(await client.get(INTERCEPT_LAST_SYNC))
    except Exception:
        return None
