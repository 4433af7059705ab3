"""Operations: /healthz, /readyz, /metrics, and the audit line (one per decision, personal data masked)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import structlog
from support import RunningGuard, StubUpstream, running_guard

from guard.config.settings import Settings
from guard.observe.masking import mask

WECOM = "/cgi-bin/externalcontact/add_msg_template"
PHONE = "13812345678"


async def get(guard: RunningGuard, path: str) -> tuple[int, str]:
    async with guard.session.get(guard.url + path) as resp:
        return resp.status, await resp.text()


async def test_health_ready_metrics(guard: RunningGuard) -> None:
    assert await get(guard, "/healthz") == (200, '{"status": "ok"}')
    status, text = await get(guard, "/readyz")
    assert status == 200 and json.loads(text)["ready"] is True and json.loads(text)["counters"] == "memory"
    await guard.post(WECOM, {"sender": "m1", "external_userid": ["wm1"], "text": {"content": "稳赚不赔"}})
    await guard.post(WECOM, {"sender": "m1", "external_userid": ["wm1"], "text": {"content": "新品"}})
    status, text = await get(guard, "/metrics")
    assert status == 200
    assert 'guard_decisions_total{action="broadcast",result="refuse",rule="content:finance"} 1' in text
    assert 'guard_decisions_total{action="broadcast",result="allow",rule=""} 1' in text
    assert "guard_decision_seconds_bucket" in text and 'le="+Inf"} 2' in text
    assert "guard_rules_info{version=" in text
    assert "guard_upstream_errors_total" in text and "guard_redis_errors_total" in text


async def test_readyz_with_redis(stub: StubUpstream, redis_url: str) -> None:
    async with running_guard(
        Settings(upstream=stub.url, upstreams={"gewe": stub.url}, reload_interval=0, redis_url=redis_url)
    ) as guard:
        status, text = await get(guard, "/readyz")
        assert status == 200 and json.loads(text)["redis"] is True


async def test_audit_line_masks_personal_data(guard: RunningGuard) -> None:
    body = {
        "sender": "m2",
        "external_userid": ["wmCustomerSecret01"],
        "text": {"content": f"稳赚不赔，加我电话 {PHONE}"},
    }
    with structlog.testing.capture_logs() as logs:
        await guard.post(WECOM, body)
        await guard.post(WECOM, {**body, "text": {"content": f"新品到店，电话 {PHONE}"}})
    decisions = [entry for entry in logs if entry.get("event") == "decision"]
    assert len(decisions) == 2
    assert decisions[0]["decision"] == "refuse" and decisions[0]["rule"] == "content:finance"
    assert decisions[1]["disposition"] == "forwarded"
    dumped = json.dumps(logs, ensure_ascii=False, default=str)
    assert PHONE not in dumped
    assert "wmCustomerSecret01" not in dumped
    assert "稳赚不赔，" not in dumped and "新品到店" not in dumped


def test_mask() -> None:
    assert PHONE not in mask(f"call {PHONE} now")
    assert "138" not in mask("138 1234 5678")
    assert "wxid_abcdef123" not in mask("wxid_abcdef123")
    assert "abcdef" not in mask("my id wxid_abcdef123 ok")
    assert mask("ab") == "**"


async def test_check_api_reads_chunked_and_compressed_bodies(guard: RunningGuard) -> None:
    import gzip

    raw = json.dumps({"kind": "message", "account": "c1", "text": "好" * 3_000 + "稳赚不赔"}).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(raw), 1000):
            yield raw[i : i + 1000]

    status, _, data = await guard.post("/v1/check", chunks())  # type: ignore[arg-type]
    assert status == 200 and data["decision"] == "refuse"
    status, _, data = await guard.post("/v1/check", gzip.compress(raw), headers={"Content-Encoding": "gzip"})
    assert status == 200 and data["decision"] == "refuse"
    status, _, data = await guard.post("/v1/check", b'{"kind": "message", "kind": "moment", "account": "c1"}')
    assert status == 400 and data["code"] == 490005
    status, _, data = await guard.post("/v1/check", b'{"kind": "message"}')
    assert status == 400 and data["code"] == 490014
