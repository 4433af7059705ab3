"""Calendar windows in IANA zones: never the process TZ, exact across DST and odd offsets."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from ratelimit.windows import EXPIRY_GRACE_SECONDS, Span, span


def ts(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()  # type: ignore[misc]


SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_shanghai_day_runs_from_16_utc_to_16_utc() -> None:
    day = span("day", ts(2026, 11, 22, 15, 59, 59), SHANGHAI)
    assert day == Span(int(ts(2026, 11, 21, 16)), int(ts(2026, 11, 22, 16)))
    assert span("day", ts(2026, 11, 22, 16), SHANGHAI).start == int(ts(2026, 11, 22, 16))


def test_process_timezone_does_not_matter(monkeypatch: pytest.MonkeyPatch) -> None:
    now = ts(2026, 11, 22, 20, 0)
    expected = span("day", now, SHANGHAI)
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    try:
        assert span("day", now, SHANGHAI) == expected
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert "TZ" not in os.environ


def test_dst_days_are_23_and_25_hours() -> None:
    new_york = ZoneInfo("America/New_York")
    spring = span("day", ts(2026, 3, 8, 12), new_york)
    autumn = span("day", ts(2026, 11, 1, 12), new_york)
    assert spring.end - spring.start == 23 * 3600
    assert autumn.end - autumn.start == 25 * 3600


def test_hours_follow_local_wall_clock_in_half_hour_zones() -> None:
    kolkata = ZoneInfo("Asia/Kolkata")  # UTC+05:30
    hour = span("hour", ts(2026, 11, 22, 10, 45), kolkata)  # 16:15 local
    assert hour == Span(int(ts(2026, 11, 22, 10, 30)), int(ts(2026, 11, 22, 11, 30)))
    minute = span("minute", ts(2026, 11, 22, 10, 45, 59) + 0.5, kolkata)
    assert minute == Span(int(ts(2026, 11, 22, 10, 45)), int(ts(2026, 11, 22, 10, 46)))


def test_ttl_covers_the_rest_of_the_window_plus_grace() -> None:
    day = span("day", ts(2026, 11, 22, 15, 0), SHANGHAI)
    assert day.ttl(ts(2026, 11, 22, 15, 0)) == 3600 + EXPIRY_GRACE_SECONDS
    assert day.ttl(day.end - 0.2) == 1 + EXPIRY_GRACE_SECONDS
