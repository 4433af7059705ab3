"""A healthy Redis is never reported down under a burst (issue 10, "Hold under fire"): 1,000 concurrent active
adds for one new account (limit 5 a day) through `guard serve --workers 2` and `--workers 4`, on one Redis
and on the 3-master Cluster, with the default Redis timeout (0.1 s), in both `redis_down` modes.

Exactly the limit is admitted and forwarded, Redis counted exactly that, and no answer says the counters
were unavailable (no 490010, nothing let through uncounted) — the burst waits in line for Redis instead of
failing. Answer times are printed, never asserted.
"""

from __future__ import annotations

import collections
from pathlib import Path

import pytest
from guard_fleet import GEWE_ADD, add_body, burst, counted, guard_fleet, summary
from servers import RedisServer
from support import stub_upstream

LIMIT = 5  # a new account's active adds a day (shipped limits)
BURST = 1000


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["refuse", "allow"])
@pytest.mark.parametrize("workers", [2, 4])
@pytest.mark.parametrize("backend", ["single", pytest.param("cluster", marks=pytest.mark.cluster)])
async def test_a_burst_admits_exactly_the_limit_and_never_calls_redis_down(
    backend: str,
    workers: int,
    mode: str,
    redis_server: RedisServer,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    cluster = backend == "cluster"
    # The session's servers; an account of this test's own, so nothing needs flushing.
    url = request.getfixturevalue("redis_cluster") if cluster else redis_server.url
    account = f"wx-burst-{backend}-{workers}-{mode}"
    async with (
        stub_upstream() as stub,
        guard_fleet(
            url, stub.url, tmp_path / "guard.log", workers=workers, env={"GUARD_REDIS_DOWN": mode}
        ) as guard,
    ):
        answers = await burst(guard, add_body(account), BURST)
        by_code = collections.Counter(a.code for a in answers)
        charged = await counted(url, account, cluster=cluster)
        summary(f"{backend} × {workers} workers, redis_down={mode}", answers, {"charged": charged})

        assert by_code == {200: LIMIT, 490003: BURST - LIMIT}, by_code  # never 490010
        assert not [a for a in answers if a.rule == "quota:unavailable"]
        assert stub.count(GEWE_ADD) == LIMIT
        assert charged == LIMIT
