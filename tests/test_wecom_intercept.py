"""`guard intercept plan|sync`: the rules directory as WeCom's own chat intercept rules (敏感词规则).

The sync runs against a stand-in WeCom (an aiohttp server in the test) that enforces the documented
limits — rule_name 1-20 characters, at most 300 words of 1-32 characters, at most 100 rules per corp,
intercept_type 1/2, semantics 1/2/3 —, answers unknown rule ids and bad or expired tokens with errors,
holds rules made by hand, and records every call.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from servers import free_port
from support import running_guard

from guard.cli import main
from guard.config.settings import Settings
from guard.wecom.client import WeComClient, WeComError
from guard.wecom.intercept import diff, owned_name, plan_from
from rules import DEFAULT_DIR
from rules.check import InterceptConfig, check_rules_dir

CORPID = "ww-test-corp"
SECRET = "s3cr3t-never-printed"
INVALID_PARAM = 40058  # WeCom's "invalid parameter"
RULE_LIMIT = 701001  # the stand-in's code for "the corp has 100 rules already"
UNKNOWN_RULE = 701002  # the stand-in's code for an unknown rule_id


# ---- the stand-in WeCom ----


@dataclass
class StandIn:
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    token: str = ""
    tokens_issued: int = 0
    expired: bool = False
    next_id: int = 1
    url: str = ""

    def hand_made(self, name: str, words: list[str]) -> str:
        rule_id = self._new_id()
        self.rules[rule_id] = {
            "rule_id": rule_id,
            "rule_name": name,
            "word_list": words,
            "extra_rule": {"semantics_list": [3]},
            "intercept_type": 1,
            "applicable_range": {"department_list": [1]},
        }
        return rule_id

    def _new_id(self) -> str:
        rule_id = f"rule{self.next_id:04d}"
        self.next_id += 1
        return rule_id

    def writes(self) -> list[tuple[str, Any]]:
        return [
            (n, b)
            for n, b in self.calls
            if n in ("add_intercept_rule", "update_intercept_rule", "del_intercept_rule")
        ]

    def by_name(self) -> dict[str, dict[str, Any]]:
        return {r["rule_name"]: r for r in self.rules.values()}


def _err(code: int, msg: str) -> web.Response:
    return web.json_response({"errcode": code, "errmsg": msg})


def _bad_rule_fields(body: dict[str, Any], *, adding: bool) -> web.Response | None:
    name = body.get("rule_name")
    if (adding or name is not None) and (not isinstance(name, str) or not 1 <= len(name) <= 20):
        return _err(INVALID_PARAM, "invalid rule_name: 1~20 utf8 characters")
    words = body.get("word_list")
    if adding or words is not None:
        if not isinstance(words, list) or len(words) > 300:
            return _err(INVALID_PARAM, "invalid word_list: at most 300 words")
        if any(not isinstance(w, str) or not 1 <= len(w) <= 32 for w in words):
            return _err(INVALID_PARAM, "invalid word: 1~32 utf8 characters")
        if len(set(words)) != len(words):
            return _err(INVALID_PARAM, "duplicate word")
    semantics = body.get("semantics_list") if adding else (body.get("extra_rule") or {}).get("semantics_list")
    if semantics is not None and not set(semantics) <= {1, 2, 3}:
        return _err(INVALID_PARAM, "invalid semantics_list")
    itype = body.get("intercept_type")
    if (adding or itype is not None) and itype not in (1, 2):
        return _err(INVALID_PARAM, "invalid intercept_type")
    if adding:
        scope = body.get("applicable_range") or {}
        if not scope.get("user_list") and not scope.get("department_list"):
            return _err(INVALID_PARAM, "applicable_range: user_list and department_list both empty")
    return None


def make_app(state: StandIn) -> web.Application:
    async def gettoken(request: web.Request) -> web.Response:
        state.calls.append(("gettoken", {"corpid": request.query.get("corpid")}))
        if request.query.get("corpid") != CORPID or request.query.get("corpsecret") != SECRET:
            return _err(40001, "invalid credential")
        state.tokens_issued += 1
        state.token = f"token-{state.tokens_issued}"
        state.expired = False
        return web.json_response(
            {"errcode": 0, "errmsg": "ok", "access_token": state.token, "expires_in": 7200}
        )

    async def api(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body: dict[str, Any] = await request.json() if request.can_read_body else {}
        state.calls.append((name, body))
        token = request.query.get("access_token")
        if token != state.token:
            return _err(40014, "invalid access_token")
        if state.expired:
            return _err(42001, "access_token expired")
        if name == "get_intercept_rule_list":
            if request.method != "GET":
                return _err(43001, "require GET method")
            listed = [
                {"rule_id": r["rule_id"], "rule_name": r["rule_name"], "create_time": 1}
                for r in state.rules.values()
            ]
            return web.json_response({"errcode": 0, "errmsg": "ok", "rule_list": listed})
        if request.method != "POST":
            return _err(43002, "require POST method")
        if name in ("get_intercept_rule", "update_intercept_rule", "del_intercept_rule"):
            rule = state.rules.get(str(body.get("rule_id")))
            if rule is None:
                return _err(UNKNOWN_RULE, "invalid rule_id")
            if name == "get_intercept_rule":
                return web.json_response({"errcode": 0, "errmsg": "ok", "rule": rule})
            if name == "del_intercept_rule":
                del state.rules[rule["rule_id"]]
                return _err(0, "ok")
            bad = _bad_rule_fields(body, adding=False)
            if bad is not None:
                return bad
            for key in ("rule_name", "word_list", "intercept_type"):
                if key in body:
                    rule[key] = body[key]
            if "extra_rule" in body:
                rule["extra_rule"] = {"semantics_list": body["extra_rule"].get("semantics_list", [])}
            scope = rule["applicable_range"]
            for key, items in (body.get("add_applicable_range") or {}).items():
                scope[key] = [*scope.get(key, []), *items]
            for key, items in (body.get("remove_applicable_range") or {}).items():
                scope[key] = [x for x in scope.get(key, []) if x not in items]
            return _err(0, "ok")
        if name == "add_intercept_rule":
            bad = _bad_rule_fields(body, adding=True)
            if bad is not None:
                return bad
            if len(state.rules) >= 100:
                return _err(RULE_LIMIT, "the corp has 100 intercept rules already")
            rule_id = state._new_id()
            state.rules[rule_id] = {
                "rule_id": rule_id,
                "rule_name": body["rule_name"],
                "word_list": list(body["word_list"]),
                "extra_rule": {"semantics_list": list(body.get("semantics_list", []))},
                "intercept_type": body["intercept_type"],
                "applicable_range": json.loads(json.dumps(body["applicable_range"])),
            }
            return web.json_response({"errcode": 0, "errmsg": "ok", "rule_id": rule_id})
        return _err(404, "unknown api")

    app = web.Application()
    app.router.add_get("/cgi-bin/gettoken", gettoken)
    app.router.add_route("*", "/cgi-bin/externalcontact/{name}", api)
    return app


@pytest.fixture
async def wecom() -> AsyncIterator[StandIn]:
    state = StandIn()
    runner = web.AppRunner(make_app(state))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    state.url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()


@pytest.fixture
def creds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUARD_WECOM_CORPID", CORPID)
    monkeypatch.setenv("GUARD_WECOM_SECRET", SECRET)


def rules_copy(tmp_path: Path) -> Path:
    root = tmp_path / "rules"
    shutil.copytree(DEFAULT_DIR, root)
    return root


async def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any], str]:
    rc = await asyncio.to_thread(main, args)
    captured = capsys.readouterr()
    return rc, json.loads(captured.out) if captured.out.strip() else {}, captured.err


async def sync(
    state: StandIn, root: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, Any], str]:
    return await run_cli(["intercept", "sync", "--rules", str(root), "--upstream", state.url], capsys)


# ---- plan ----


def test_plan_of_the_shipped_rules(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["intercept", "plan"]) == 0
    out = json.loads(capsys.readouterr().out)
    rules = out["rules"]
    assert out["left_out"] == []
    names = [r["rule_name"] for r in rules]
    assert len(set(names)) == len(names) and all(
        1 <= len(n) <= 20 and owned_name("siyu-").match(n) for n in names
    )
    assert all(set(r) >= {"rule_name", "word_list", "intercept_type", "applicable_range"} for r in rules)
    assert all(len(r["word_list"]) <= 300 and all(1 <= len(w) <= 32 for w in r["word_list"]) for r in rules)
    # blocking categories first, as type 1; warning ones as type 2
    types = [r["intercept_type"] for r in rules]
    assert types == sorted(types) and set(types) == {1, 2}
    by_name = {r["rule_name"]: r for r in rules}
    assert by_name["siyu-finance-1"]["intercept_type"] == 1
    assert by_name["siyu-adlaw-1"]["intercept_type"] == 2
    # the contact detectors (phone, e-mail) once, on a warning rule like the contact category
    with_semantics = [r for r in rules if "semantics_list" in r]
    assert len(with_semantics) == 1 and with_semantics[0]["semantics_list"] == [1, 2]
    assert with_semantics[0]["intercept_type"] == 2
    # the whole company
    assert all(r["applicable_range"] == {"department_list": [1]} for r in rules)
    # every shipped term is there as written, and the variants a literal matcher would miss
    words = {w for r in rules for w in r["word_list"]}
    assert {"金融", "投资", "稳赚不赔", "加我微信", "bjl"} <= words
    assert {"投資", "穩賺不賠", "ｂｊｌ"} <= words
    assert len(words) == sum(len(r["word_list"]) for r in rules) == out["words"]


def _tmp_rules(tmp_path: Path, config: str, block: list[str], warn: list[str]) -> Path:
    root = tmp_path / "r"
    (root / "words").mkdir(parents=True)
    (root / "words" / "alpha.txt").write_text("\n".join(block) + "\n", encoding="utf-8")
    (root / "words" / "beta.txt").write_text("\n".join(warn) + "\n", encoding="utf-8")
    (root / "policy.toml").write_text(
        '[categories.alpha]\naction = "block"\n[categories.beta]\naction = "warn"\n'
        '[categories.contact]\naction = "warn"\ndetectors = ["phone", "email", "qq"]\n',
        encoding="utf-8",
    )
    (root / "intercept.toml").write_text(config, encoding="utf-8")
    return root


BLOCK_TERMS = [f"禁词{i:03d}" for i in range(400)]
WARN_TERMS = [f"提醒{i:02d}" for i in range(10)]


def test_plan_budget_blocking_terms_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _tmp_rules(tmp_path, "max_rules = 1\nvariants = []\n", BLOCK_TERMS, WARN_TERMS)
    assert main(["intercept", "plan", "--rules", str(root)]) == 1  # blocking terms left out
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert [r["rule_name"] for r in out["rules"]] == ["siyu-alpha-1"]
    assert out["rules"][0]["word_list"] == BLOCK_TERMS[:300]
    left = {(x["category"], x["term"]) for x in out["left_out"]}
    assert {("alpha", t) for t in BLOCK_TERMS[300:]} <= left
    assert {("beta", t) for t in WARN_TERMS} <= left
    assert ("contact", "phone, email") in left
    assert "over the rule budget (max_rules = 1)" in captured.err


def test_plan_budget_warn_left_out_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _tmp_rules(tmp_path, "max_rules = 2\nvariants = []\n", BLOCK_TERMS, WARN_TERMS)
    assert main(["intercept", "plan", "--rules", str(root)]) == 0  # only warning terms are left out
    out = json.loads(capsys.readouterr().out)
    assert [r["rule_name"] for r in out["rules"]] == ["siyu-alpha-1", "siyu-alpha-2"]
    assert [len(r["word_list"]) for r in out["rules"]] == [300, 100]
    assert {x["category"] for x in out["left_out"]} == {"beta", "contact"}


def test_plan_semantics_rule_of_its_own_and_variants_last(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _tmp_rules(
        tmp_path, 'max_rules = 3\nvariants = ["traditional", "spaced"]\nprefix = "g-"\n', ["投资"], []
    )
    (root / "words" / "beta.txt").unlink()
    assert main(["intercept", "plan", "--rules", str(root)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rules"] == [
        {
            "rule_name": "g-alpha-1",
            "word_list": ["投资", "投資", "投 资"],
            "intercept_type": 1,
            "applicable_range": {"department_list": [1]},
        },
        {
            "rule_name": "g-contact-1",
            "word_list": [],
            "semantics_list": [1, 2],
            "intercept_type": 2,
            "applicable_range": {"department_list": [1]},
        },
    ]


def test_plan_leaves_out_long_terms_and_honours_the_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    long_term = "这是一个非常非常长的敏感词组" * 3  # 42 characters
    config = 'users = ["zhangsan"]\ndepartments = [2, 3]\nvariants = []\n'
    root = _tmp_rules(tmp_path, config, ["赌博", long_term], ["私聊"])
    assert main(["intercept", "plan", "--rules", str(root)]) == 1
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["left_out"] == [
        {
            "category": "alpha",
            "term": long_term,
            "kind": "term",
            "reason": "longer than 32 characters (42), WeCom's limit for a word",
        }
    ]
    assert all(
        r["applicable_range"] == {"user_list": ["zhangsan"], "department_list": [2, 3]} for r in out["rules"]
    )
    assert "longer than 32 characters" in captured.err


def test_plan_bad_rules_dir_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _tmp_rules(tmp_path, "max_rules = 500\nsurprise = 1\n", ["赌博"], ["私聊"])
    assert main(["intercept", "plan", "--rules", str(root)]) == 2
    err = capsys.readouterr().err
    assert f"{root / 'intercept.toml'}:1: max_rules must be an integer from 1 to 100, got 500" in err
    assert f"{root / 'intercept.toml'}:2: unknown key 'surprise'" in err
    # and `guard rules check` reports the same
    assert [str(e) for e in check_rules_dir(root)] == [
        f"{root / 'intercept.toml'}:1: max_rules must be an integer from 1 to 100, got 500",
        f"{root / 'intercept.toml'}:2: unknown key 'surprise'",
    ]


def test_rule_names_fit_wecom() -> None:
    config = InterceptConfig(prefix="prefix1234", variants=())
    long_category = "a-very-long-category-name"
    plan = plan_from({long_category: ["词"]}, {long_category: "block"}, [], "warn", config)
    assert len(plan.rules[0]["rule_name"]) == 20
    assert owned_name("prefix1234").match(plan.rules[0]["rule_name"])


def test_diff_compares_words_as_sets() -> None:
    from guard.wecom.intercept import Existing

    want = {
        "rule_name": "siyu-a-1",
        "word_list": ["甲", "乙"],
        "intercept_type": 1,
        "applicable_range": {"department_list": [1]},
    }
    same = Existing("r1", "siyu-a-1", ("乙", "甲"), (), 1, (), (1,))
    assert diff([want], [same]).empty
    other = Existing("r1", "siyu-a-1", ("甲",), (), 1, ("lisi",), (1,))
    change = diff([want], [other])
    assert change.update == (
        {
            "rule_id": "r1",
            "rule_name": "siyu-a-1",
            "word_list": ["甲", "乙"],
            "remove_applicable_range": {"user_list": ["lisi"]},
        },
    )


# ---- the stand-in enforces what WeCom documents ----


async def test_stand_in_enforces_the_limits(wecom: StandIn) -> None:
    async with aiohttp.ClientSession() as session:
        client = WeComClient(wecom.url, CORPID, SECRET, session=session)
        ok = {"word_list": ["词"], "intercept_type": 1, "applicable_range": {"department_list": [1]}}
        cases = [
            {**ok, "rule_name": "x" * 21},
            {**ok, "rule_name": "r", "word_list": [f"w{i}" for i in range(301)]},
            {**ok, "rule_name": "r", "word_list": ["长" * 33]},
            {**ok, "rule_name": "r", "intercept_type": 3},
            {**ok, "rule_name": "r", "applicable_range": {}},
        ]
        for body in cases:
            with pytest.raises(WeComError) as err:
                await client.add_rule(body)
            assert err.value.errcode == INVALID_PARAM
        with pytest.raises(WeComError) as err:
            await client.get_rule("nope")
        assert err.value.errcode == UNKNOWN_RULE
        for i in range(100):
            wecom.hand_made(f"hand{i}", ["词"])
        with pytest.raises(WeComError) as err:
            await client.add_rule({**ok, "rule_name": "r"})
        assert err.value.errcode == RULE_LIMIT
        bad = WeComClient(wecom.url, CORPID, "wrong", session=session)
        with pytest.raises(WeComError) as err:
            await bad.list_rules()
        assert err.value.errcode == 40001 and SECRET not in str(err.value)


# ---- sync ----


async def test_sync_creates_then_writes_nothing(
    wecom: StandIn, creds: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hand = wecom.hand_made("门店手工规则", ["竞品", "差评"])
    lookalike = wecom.hand_made("siyu-notes", ["备注"])  # the prefix, but not a name the guard gives
    root = rules_copy(tmp_path)
    plan = json.loads(
        await asyncio.to_thread(
            lambda: (main(["intercept", "plan", "--rules", str(root)]), capsys.readouterr().out)[1]
        )
    )

    rc, out, err = await sync(wecom, root, capsys)
    assert rc == 0, err
    expected = [r["rule_name"] for r in plan["rules"]]
    assert out["created"] == expected
    assert out["updated"] == out["deleted"] == out["unchanged"] == out["errors"] == []
    assert out["hand_made"] == 2 and out["left_out"] == []
    stored = wecom.by_name()
    for body in plan["rules"]:
        rule = stored[body["rule_name"]]
        assert rule["word_list"] == body["word_list"]
        assert rule["intercept_type"] == body["intercept_type"]
        assert rule["extra_rule"]["semantics_list"] == body.get("semantics_list", [])
    assert (
        wecom.rules[hand]["word_list"] == ["竞品", "差评"]
        and wecom.rules[lookalike]["rule_name"] == "siyu-notes"
    )
    assert SECRET not in out.__repr__() + err

    wecom.calls.clear()
    rc, out, err = await sync(wecom, root, capsys)
    assert rc == 0, err
    assert out["unchanged"] == expected and out["created"] == out["updated"] == out["deleted"] == []
    assert wecom.writes() == []
    # the hand-made rules are listed, never read in detail
    read = {b["rule_id"] for n, b in wecom.calls if n == "get_intercept_rule"}
    assert hand not in read and lookalike not in read


async def test_sync_updates_only_the_changed_rule_and_deletes_a_removed_category(
    wecom: StandIn, creds: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hand = wecom.hand_made("门店手工规则", ["竞品"])
    root = rules_copy(tmp_path)
    assert (await sync(wecom, root, capsys))[0] == 0
    before = {name: dict(rule) for name, rule in wecom.by_name().items()}

    with (root / "words" / "medical.txt").open("a", encoding="utf-8") as fh:
        fh.write("灵丹妙药\n")
    wecom.calls.clear()
    rc, out, err = await sync(wecom, root, capsys)
    assert rc == 0, err
    assert out["updated"] == ["siyu-medical-1"] and out["created"] == out["deleted"] == []
    writes = wecom.writes()
    assert len(writes) == 1
    name, body = writes[0]
    assert name == "update_intercept_rule"
    assert set(body) == {"rule_id", "rule_name", "word_list"}
    assert body["rule_id"] == before["siyu-medical-1"]["rule_id"]
    assert "灵丹妙药" in body["word_list"] and "靈丹妙藥" in body["word_list"]
    assert "灵丹妙药" in wecom.by_name()["siyu-medical-1"]["word_list"]

    (root / "words" / "gambling.txt").unlink()
    wecom.calls.clear()
    rc, out, err = await sync(wecom, root, capsys)
    assert rc == 0, err
    assert out["deleted"] == ["siyu-gambling-1"] and out["created"] == out["updated"] == []
    assert [n for n, _ in wecom.writes()] == ["del_intercept_rule"]
    assert "siyu-gambling-1" not in wecom.by_name()
    assert wecom.rules[hand]["word_list"] == ["竞品"]


async def test_sync_refetches_an_expired_token_once(
    wecom: StandIn, creds: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = rules_copy(tmp_path)
    async with aiohttp.ClientSession() as session:
        client = WeComClient(wecom.url, CORPID, SECRET, session=session)
        assert await client.list_rules() == []
        wecom.expired = True  # the next call with this token answers 42001
        assert await client.list_rules() == []
        assert client.token_fetches == 2
        assert [n for n, _ in wecom.calls] == [
            "gettoken",
            "get_intercept_rule_list",
            "get_intercept_rule_list",
            "gettoken",
            "get_intercept_rule_list",
        ]
    wecom.expired = True
    rc, out, err = await sync(wecom, root, capsys)  # a new process: a fresh token, no retry needed
    assert rc == 0, err
    assert "siyu-finance-1" in out["created"] and wecom.tokens_issued == 3


async def test_sync_refuses_past_the_corp_limit_and_reports(
    wecom: StandIn, creds: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for i in range(97):
        wecom.hand_made(f"手工{i}", ["词"])
    root = rules_copy(tmp_path)
    rc, out, err = await sync(wecom, root, capsys)
    assert rc == 1
    assert len(out["created"]) == 3 and len(out["errors"]) == 4
    assert len(wecom.rules) == 100
    assert "WeCom allows 100 (97 made by hand)" in err


async def test_sync_without_credentials_or_with_a_wrong_secret(
    wecom: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GUARD_WECOM_CORPID", raising=False)
    monkeypatch.delenv("GUARD_WECOM_SECRET", raising=False)
    rc, out, err = await sync(wecom, rules_copy(tmp_path), capsys)
    assert rc == 2 and "GUARD_WECOM_SECRET" in err and out == {}
    monkeypatch.setenv("GUARD_WECOM_CORPID", CORPID)
    monkeypatch.setenv("GUARD_WECOM_SECRET", "wrong-secret-value")
    rc, out, err = await sync(wecom, tmp_path / "rules", capsys)
    assert rc == 2 and "nothing written" in err and "40001" in err
    assert "wrong-secret-value" not in err and wecom.writes() == []


async def test_sync_dry_run_writes_nothing(
    wecom: StandIn, creds: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = rules_copy(tmp_path)
    rc, out, err = await run_cli(
        ["intercept", "sync", "--dry-run", "--rules", str(root), "--upstream", wecom.url], capsys
    )
    assert rc == 0, err
    assert out["dry_run"] is True and "siyu-finance-1" in out["created"]
    assert wecom.writes() == [] and wecom.rules == {}


async def test_every_instance_shows_the_last_sync(
    wecom: StandIn,
    creds: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    redis_url: str,
) -> None:
    root = rules_copy(tmp_path)
    settings = Settings(upstream=wecom.url, reload_interval=0, redis_url=redis_url, rules_dir=root)
    async with running_guard(settings) as guard:
        async with guard.session.get(guard.url + "/v1/rules") as resp:
            assert (await resp.json())["intercept"] is None
        monkeypatch.setenv("GUARD_REDIS_URL", redis_url)
        rc, out, err = await sync(wecom, root, capsys)
        assert rc == 0, err
        async with guard.session.get(guard.url + "/v1/rules") as resp:
            shown = (await resp.json())["intercept"]
        assert shown["ok"] is True and shown["created"] == len(out["created"]) > 0
        assert shown["updated"] == shown["deleted"] == shown["errors"] == 0
        async with guard.session.get(guard.url + "/v1/risk/overview") as resp:
            assert (await resp.json())["rules"]["intercept"] == shown
        # A second sync that changes nothing is shown as such.
        rc, out, err = await sync(wecom, root, capsys)
        async with guard.session.get(guard.url + "/v1/rules") as resp:
            shown = (await resp.json())["intercept"]
        assert shown["created"] == 0 and shown["unchanged"] == len(out["unchanged"]) > 0
