"""Calendar windows in a timezone: which window an instant falls in, and when it ends.

A day is the calendar day in the configured IANA zone (never the process TZ, never 24 h from the
first hit); hours and minutes are the local wall-clock hour and minute. A window is identified by its
end (epoch seconds), which makes keys exact across zones and lets a refund find the window of the
original hit after the window has rolled over.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from ratelimit.types import Window

# Keys outlive their window by this much so a process whose clock lags a little still finds them.
EXPIRY_GRACE_SECONDS = 60


class Span(NamedTuple):
    start: int
    end: int  # exclusive; also the window's id

    def ttl(self, now: float) -> int:
        """Seconds a key of this window must live when written at `now` (always >= 1)."""
        return max(1, math.ceil(self.end - now)) + EXPIRY_GRACE_SECONDS


def span(window: Window, now: float, tz: ZoneInfo) -> Span:
    local = datetime.fromtimestamp(now, tz)
    if window == "day":
        midnight = datetime.combine(local.date(), datetime.min.time(), tzinfo=tz)
        next_midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), tzinfo=tz)
        return Span(int(midnight.timestamp()), int(next_midnight.timestamp()))
    size = 3600 if window == "hour" else 60
    offset = local.utcoffset()
    # Local hours and minutes are epoch-aligned once shifted by the zone's current offset; this also
    # keeps windows exactly `size` long across a DST change.
    shift = int(offset.total_seconds()) if offset is not None else 0
    start = math.floor(now) - (math.floor(now) + shift) % size
    return Span(start, start + size)
