"""Properties of the guarded request path, over random input (hypothesis):

1. Any bytes, any JSON shape through the strict body parser (`guard.core.body.parse_json`) and through every
   guarded route of the built-in WeCom and GeWe profiles (`ProfileSet.match(...).parse`): nothing but a
   `BodyError` ever escapes — a request the guard cannot read is refused, never a crash.
2. A blocked term inserted anywhere in a text field — JSON-escaped (\\uXXXX) or not, split by characters the
   normalizer removes (zero-width ones, any number; spaces and punctuation, at most the gap cap between two
   letters) — is never forwarded: a real guard in front of a stand-in upstream refuses it, and the upstream
   sees nothing.

Example counts are bounded so that the file runs in seconds; no example is timed.
"""

from __future__ import annotations

import contextlib
import json
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import RunningGuard, StubUpstream

from guard.core.body import BodyError, parse_json
from guard.core.bundle import build_bundle
from guard.core.profiles import ProfileSet, RequestInfo
from guard.core.types import Action

PROFILES: ProfileSet = build_bundle(None).profiles


def guarded_paths() -> list[str]:
    """One request path for every guarded route of the built-in profiles."""
    paths: list[str] = []
    for profile in PROFILES.profiles:
        for rule in profile.rules:
            if not rule.route.guarded:
                continue
            if rule.kind == "exact":
                paths.append(rule.pattern)
            elif rule.kind == "suffix":
                paths.append("/gewe/v2/api/" + rule.pattern)
            else:
                paths.append(rule.pattern.replace("*", "x"))
    return paths


PATHS = guarded_paths()

# Field names the catalogues read, so that random bodies reach deep into the parsers.
FIELDS = [
    "chat_type", "external_userid", "chat_id_list", "sender", "text", "content", "attachments", "msgtype",
    "link", "title", "desc", "url", "picurl", "media_id", "miniprogram", "appid", "page", "pagepath",
    "image", "video", "file", "visible_range", "sender_list", "user_list", "department_list", "touser",
    "toparty", "agentid", "chatid", "news", "articles", "mpnews", "markdown", "textcard", "template_card",
    "open_kfid", "msgmenu", "list", "welcome_code", "conclusions", "appId", "toWxid", "ats", "option",
    "scene", "v3", "v4", "linkUrl", "linkInfo", "description", "miniAppId", "displayName", "nickName",
    "fileName", "appmsg", "thumbUrl", "userid", "state", "config_id", "handover_userid", "takeover_userid",
    "transfer_success_msg", "notice", "name", "signature", "main_title", "sub_title_text",
    "horizontal_content_list",
]  # fmt: skip

scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12)
keys = st.sampled_from(FIELDS) | st.text(max_size=6)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=6),
    max_leaves=40,
)
bodies = st.dictionaries(keys, json_values, max_size=8)


def parse_route(path: str, body: dict[str, Any], account: str | None) -> list[Action]:
    matched = PROFILES.match("POST", path)
    assert matched is not None and matched[1].parse is not None, path
    info = RequestInfo(method="POST", path=path, query={}, account_header=account)
    return matched[1].parse(body, info)


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_the_body_parser_raises_nothing_but_body_error(raw: bytes) -> None:
    with contextlib.suppress(BodyError):
        parse_json(raw)


@settings(max_examples=300, deadline=None)
@given(
    path=st.sampled_from(PATHS),
    body=bodies,
    account=st.none() | st.text(max_size=8),
    cut=st.integers(0, 400),
    junk=st.binary(max_size=3),
)
def test_random_shapes_through_every_guarded_route_raise_nothing_but_body_error(
    path: str, body: dict[str, Any], account: str | None, cut: int, junk: bytes
) -> None:
    raw = json.dumps(body, ensure_ascii=bool(cut % 2)).encode()
    # The body as sent, and the same with a few bytes spliced in somewhere.
    for data in (raw, raw[:cut] + junk + raw[cut:]):
        try:
            parsed = parse_json(data)
            if isinstance(parsed, dict):  # the proxy refuses any other top-level value first
                actions = parse_route(path, parsed, account)
                assert all(isinstance(action, Action) for action in actions)
        except BodyError:
            pass


def test_deep_nesting_raises_nothing_but_body_error() -> None:
    for depth in (200, 900, 5000):
        raw = (
            '{"msgtype":"text","agentid":1,"text":{"content":' + "[" * depth + '"x"' + "]" * depth + "}}"
        ).encode()
        with contextlib.suppress(BodyError):
            parse_route("/cgi-bin/message/send", parse_json(raw), None)


# ---- a blocked term is never forwarded ----

TERM = "稳赚不赔"
INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad"  # deleted, never counted against the gap cap
VISIBLE = " ·-*/_~，。、！…　"  # deleted, at most MAX_GAP of them between two letters of a term
MAX_GAP = 3  # the shipped policy's [scan] max_gap
BENIGN = "新品到店欢迎来门店试穿会员享受积分兑换礼品今天明天好的 ，。！0123456789abcXYZ"


@st.composite
def disguised_terms(draw: st.DrawFn) -> str:
    """The term with noise between its letters that the normalizer removes."""
    out = TERM[0]
    for letter in TERM[1:]:
        visible = draw(st.text(alphabet=VISIBLE, max_size=MAX_GAP))
        invisible = draw(st.text(alphabet=INVISIBLE, max_size=4))
        mixed = list(visible + invisible)
        draw(st.randoms(use_true_random=False)).shuffle(mixed)
        out += "".join(mixed) + letter
    return out


def json_string(text: str, escape: random.Random) -> str:
    """`text` as a JSON string literal with a random part of its characters written as \\uXXXX."""
    parts = []
    for char in text:
        if escape.random() < 0.5 or char in '"\\' or ord(char) < 0x20:
            parts.append("".join(f"\\u{unit:04x}" for unit in _utf16(char)))
        else:
            parts.append(char)
    return '"' + "".join(parts) + '"'


def _utf16(char: str) -> list[int]:
    data = char.encode("utf-16-be")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


# (path, JSON body with the text field as the placeholder TEXT)
CARRIERS = [
    (
        "/cgi-bin/externalcontact/add_msg_template?access_token=T",
        '{"chat_type":"single","external_userid":["wmProp01"],"sender":"wx_prop","text":{"content":TEXT}}',
    ),
    (
        "/cgi-bin/externalcontact/add_msg_template?access_token=T",
        '{"chat_type":"single","external_userid":["wmProp01"],"sender":"wx_prop","text":{"content":"新品"},'
        '"attachments":[{"msgtype":"link","link":{"title":"秋冬","desc":TEXT,"url":"https://shop.example.com/"}}]}',
    ),
    (
        "/cgi-bin/externalcontact/add_msg_template?access_token=T",
        '{"chat_type":"single","external_userid":["wmProp01"],"sender":"wx_prop",'
        '"attachments":[{"msgtype":"miniprogram","miniprogram":{"title":TEXT,"appid":"wx1","page":"p"}}]}',
    ),
    (
        "/cgi-bin/message/send?access_token=T",
        '{"touser":"u1","msgtype":"text","agentid":1,"text":{"content":TEXT}}',
    ),
    ("/gewe/v2/api/message/postText", '{"appId":"wx_prop_app","toWxid":"wxid_c1","content":TEXT}'),
    (
        "/gewe/v2/api/contacts/addContacts",
        '{"appId":"wx_prop_app","scene":3,"option":2,"v3":"v3","v4":"v4","content":TEXT}',
    ),
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    carrier=st.sampled_from(CARRIERS),
    before=st.text(alphabet=BENIGN, max_size=20),
    term=disguised_terms(),
    after=st.text(alphabet=BENIGN, max_size=20),
    escape=st.randoms(use_true_random=False),
)
async def test_a_blocked_term_is_never_forwarded(
    guard: RunningGuard,
    stub: StubUpstream,
    carrier: tuple[str, str],
    before: str,
    term: str,
    after: str,
    escape: random.Random,
) -> None:
    path, template = carrier
    text = before + term + after
    body = template.replace("TEXT", json_string(text, escape)).encode()
    assert json.loads(body)  # what the client sends is valid JSON carrying exactly `text`
    forwarded = stub.count()
    status, _, answer = await guard.post(path, body)
    assert status == 200
    code = answer.get("errcode", answer.get("ret"))
    assert code == 490001, (text, answer)
    assert stub.count() == forwarded
