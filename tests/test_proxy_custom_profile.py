"""A custom route profile from the rules directory: Action extraction by field paths, its own answer format,
upstream refusal detection; a broken profile file is reported with its name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import rules_copy, running_guard, stub_upstream

from guard.config.settings import Settings
from guard.core.bundle import build_bundle
from guard.core.profiles import ProfileError, RequestInfo
from guard.http.keys import ACCOUNTS, LIMITER, PIPELINE

PROFILE = """
name = "acme"
format = "json"

[answer]
code_field = "code"
message_field = "message"
ok_values = [0]
status = 200

[[routes]]
method = "POST"
path = "/acme/*/friends/apply"
kind = "add_friend"
account = "robot.wxid"
direction_field = "mode"
direction_map = { "1" = "active", "2" = "passive" }
texts = ["greeting", "cards[].title"]
links = ["cards[].url"]

[[routes]]
path = "/acme/*/mass/send"
kind = "broadcast"
account = "robot.wxid"
texts = ["content"]
recipients = "targets"
"""


def apply(mode: int = 1, greeting: str = "您好，我是小王", **extra: object) -> dict[str, object]:
    return {"robot": {"wxid": "acme-robot-1"}, "mode": mode, "greeting": greeting, **extra}


async def test_custom_profile_end_to_end(tmp_path: Path) -> None:
    rules = rules_copy(tmp_path)
    (rules / "profiles").mkdir(exist_ok=True)
    (rules / "profiles" / "acme.toml").write_text(PROFILE, encoding="utf-8")
    async with (
        stub_upstream() as stub,
        running_guard(
            Settings(upstream=stub.url, upstreams={"acme": stub.url}, rules_dir=rules, reload_interval=0)
        ) as guard,
    ):
        stub.answers["/acme/v1/friends/apply"] = ("json", 200, b'{"code": 0, "message": "ok"}')
        status, headers, data = await guard.post("/acme/v1/friends/apply", apply())
        assert data == {"code": 0, "message": "ok"} and headers["X-Guard-Decision"] == "allow"

        bad = apply(cards=[{"title": "稳赚不赔的理财", "url": "https://shop.example.com"}])
        status, headers, data = await guard.post("/acme/v1/friends/apply", bad)
        assert status == 200 and data["code"] == 490001 and "稳赚不赔" in data["message"]
        assert data["guard"]["details"]["matches"][0]["where"] == "cards[0].title"

        status, _, data = await guard.post("/acme/v1/friends/apply", apply(mode=9))
        assert status == 200 and data["code"] == 490005 and "mode" in data["message"]
        status, _, data = await guard.post("/acme/v1/friends/apply", {"mode": 1, "greeting": "hi"})
        assert data["code"] == 490014

        # The upstream's own refusal (code != 0) refunds the charge.
        stub.answers["/acme/v1/friends/apply"] = ("json", 200, b'{"code": 7, "message": "robot offline"}')
        status, _, data = await guard.post("/acme/v1/friends/apply", apply(mode=2))
        assert data["code"] == 7
        today = guard.app[PIPELINE].today()
        passive = guard.app[ACCOUNTS].rules_for("acme-robot-1", "add_friend.passive", today)
        assert (await guard.app[LIMITER].usage("acme-robot-1", passive))[0].used == 0
        active = guard.app[ACCOUNTS].rules_for("acme-robot-1", "add_friend.active", today)
        assert (await guard.app[LIMITER].usage("acme-robot-1", active))[0].used == 1

        targets = [f"c{i}" for i in range(3)]
        body = {"robot": {"wxid": "acme-robot-1"}, "content": "新品上市", "targets": targets}
        status, _, data = await guard.post("/acme/v2/mass/send", body)
        assert stub.count("/acme/v2/mass/send") == 1
        assert stub.seen[-1].body == json.dumps(body, ensure_ascii=False).encode()
        recipients = guard.app[ACCOUNTS].rules_for("acme-robot-1", "broadcast.recipients", today)
        assert (await guard.app[LIMITER].usage("acme-robot-1", recipients))[0].used == 3


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('name = "x"\n[[routes]]\npath = "/a"\nkind = "nope"\naccount = "a"\n', "kind"),
        ('name = "x"\n[[routes]]\npath = "a"\nkind = "message"\naccount = "a"\n', "path"),
        ('name = "x"\n[[routes]]\npath = "/a"\nkind = "add_friend"\naccount = "a"\n', "direction"),
        ('name = "x"\nformat = "xml"\n[[routes]]\npath = "/a"\nkind = "message"\naccount = "a"\n', "format"),
        ('name = "x"\n[[routes]]\npath = "/a"\nkind = "message"\naccount = "a"\ncolour = 1\n', "colour"),
        ('name = "x"\n[[routes]]\npath = "/a"\nkind = "message"\n', "account"),
        ('name = "x"\n', "routes"),
        ("name = [", "Invalid"),
    ],
)
def test_broken_profile_names_file_and_reason(tmp_path: Path, text: str, reason: str) -> None:
    rules = rules_copy(tmp_path)
    (rules / "profiles").mkdir(exist_ok=True)
    (rules / "profiles" / "bad.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ProfileError) as err:
        build_bundle(rules)
    assert "bad.toml" in str(err.value) and reason in str(err.value)


def test_wecom_add_msg_template_every_field(tmp_path: Path) -> None:
    bundle = build_bundle(None)
    matched = bundle.profiles.match("POST", "/cgi-bin/externalcontact/add_msg_template")
    assert matched is not None and matched[1].parse is not None
    body = {
        "chat_type": "group",
        "chat_id_list": ["wr1", "wr2"],
        "sender": "s1",
        "text": {"content": "正文"},
        "attachments": [
            {
                "msgtype": "link",
                "link": {"title": "标题", "desc": "描述", "url": "https://a.example", "picurl": "p"},
            },
            {"msgtype": "miniprogram", "miniprogram": {"title": "小程序", "appid": "wxA", "page": "pg"}},
        ],
        "link": {"title": "旧标题", "desc": "旧描述", "url": "https://b.example"},
        "miniprogram": {"title": "旧小程序", "appid": "wxB", "page": "pg2"},
        "image": {"media_id": "M", "pic_url": "https://c.example/1.png"},
    }
    (action,) = matched[1].parse(body, RequestInfo("POST", "/", {}))
    assert action.kind == "broadcast" and action.account == "s1" and action.recipients == 2
    assert [t.where for t in action.texts] == [
        "text.content",
        "attachments[0].link.title",
        "attachments[0].link.desc",
        "attachments[1].miniprogram.title",
        "link.title",
        "link.desc",
        "miniprogram.title",
    ]
    assert [(a.kind, a.url or a.appid) for a in action.attachments] == [
        ("link", "https://a.example"),
        ("miniprogram", "wxA"),
        ("link", "https://b.example"),
        ("miniprogram", "wxB"),
        ("image", "https://c.example/1.png"),
    ]
