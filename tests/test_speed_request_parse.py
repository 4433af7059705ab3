"""The request side's shortcuts (issue 13) answer what the long way answers:

- `wecom.plain_broadcast` / `wecom.plain_content`, the one-pass reading of a 群发 body in the usual shape,
  give the Actions (texts, attachments, account, recipients) of `broadcast_long_way` / `content_long_way`,
  or step aside (None) so that the long way reads the body and names what is wrong — on the usual shapes,
  every field replaced by every wrong type, and random bodies;
- `Profile.match` of a profile with exact rules only (WeCom's) finds the first matching rule in order;
- `guard.http.body.read_body` takes what has arrived without a wait and awaits the rest: the same bytes as
  reading the body in one `readexactly`, whether it arrived whole, in pieces or cut short.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
from typing import Any

import pytest
from aiohttp import streams
from aiohttp.test_utils import make_mocked_request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guard.core.body import BodyError
from guard.core.profiles.model import PathRule, Profile, RequestInfo, Route
from guard.core.profiles.wecom import (
    ATTACHMENTS,
    broadcast_long_way,
    content_long_way,
    parse_add_msg_template,
    parse_moment_task,
    parse_welcome,
    plain_broadcast,
    plain_content,
)
from guard.core.profiles.wecom import PROFILE as WECOM
from guard.http.body import read_body

BENCH_BODY: dict[str, Any] = {
    "chat_type": "single",
    "external_userid": ["wmBenchCustomer0001", "wmBenchCustomer0002"],
    "sender": "bench-1-2-3",
    "text": {"content": "双十一新品到店（甲乙号丙号），欢迎来门店试穿，会员享受积分兑换礼品"},
    "attachments": [
        {
            "msgtype": "link",
            "link": {
                "title": "秋冬新品甲乙",
                "desc": "门店同款甲乙",
                "url": "https://shop.example.com/new/1/2/3",
            },
        }
    ],
}

# One attachment of every kind, every field of its shape present.
FULL_ATTACHMENTS: list[dict[str, Any]] = [
    {"msgtype": kind, kind: {key: f"{kind}-{key}" for key in shape}} for kind, shape in ATTACHMENTS.items()
]

WRONG_VALUES: list[Any] = [None, "", " ", "x", 0, 1, 2, -1, 1.5, True, False, [], ["a"], [1], {}, {"a": 1}]

INFOS = [
    RequestInfo("POST", "/cgi-bin/externalcontact/add_msg_template", {}),
    RequestInfo("POST", "/cgi-bin/externalcontact/add_msg_template", {}, "hdr-account", "req-1"),
]


def outcome(parse: Any, body: dict[str, Any], info: RequestInfo) -> tuple[Any, ...]:
    """What a parser makes of `body`: its Actions, or the refusal (code, detail, where)."""
    try:
        return ("actions", parse(copy.deepcopy(body), info))
    except BodyError as exc:
        return ("refused", exc.code, exc.detail, exc.where)


def same_as_long_way(body: dict[str, Any]) -> None:
    for info in INFOS:
        long = outcome(broadcast_long_way, body, info)
        assert outcome(parse_add_msg_template, body, info) == long, body
        plain = plain_broadcast(copy.deepcopy(body), info)
        if plain is not None:
            assert ("actions", plain) == long, body
    for allow_old_shape in (True, False):
        try:
            long_content: Any = content_long_way(copy.deepcopy(body), allow_old_shape=allow_old_shape)
        except BodyError as exc:
            long_content = exc
        plain_c = plain_content(copy.deepcopy(body))
        if plain_c is not None:
            assert plain_c == long_content, body


def usual_bodies() -> list[dict[str, Any]]:
    """The benchmark's body and its well-formed variants (the ones the shortcut is for)."""
    bodies: list[dict[str, Any]] = [copy.deepcopy(BENCH_BODY)]
    for chat_type, lists in itertools.product(
        (None, "", "single", "group"),
        (
            {"external_userid": ["a", "b", "a"]},
            {"chat_id_list": ["c1", "c2"]},
            {"external_userid": ["a"], "chat_id_list": ["c1", "c2", "c3"]},
            {"external_userid": [], "chat_id_list": ["c1"]},
        ),
    ):
        body = {k: v for k, v in BENCH_BODY.items() if k not in ("chat_type", "external_userid")}
        if chat_type is not None:
            body["chat_type"] = chat_type
        bodies.append({**body, **lists})
    for n in range(10):
        bodies.append({**BENCH_BODY, "attachments": (FULL_ATTACHMENTS * 2)[:n]})
    bodies.append({**BENCH_BODY, "text": {"content": ""}})
    bodies.append({**BENCH_BODY, "text": {}})
    bodies.append({k: v for k, v in BENCH_BODY.items() if k != "text"})
    bodies.append({k: v for k, v in BENCH_BODY.items() if k != "attachments"})
    bodies.append({**BENCH_BODY, "sender": "  padded-sender  "})
    bodies.append({**BENCH_BODY, "allow_select": True, "tag_filter": {"group_list": []}})
    bodies.append({**BENCH_BODY, "unknown_field": [1, {"x": None}]})
    bodies.append(
        {**BENCH_BODY, "attachments": [{"msgtype": "link", "link": {"title": "", "desc": None, "url": "u"}}]}
    )
    bodies.append(
        {
            **BENCH_BODY,
            "attachments": [
                {
                    "msgtype": "miniprogram",
                    "miniprogram": {"title": "t", "appid": "wx1", "page": "p1", "pagepath": "p2"},
                }
            ],
        }
    )
    return bodies


def test_the_usual_bodies_take_the_shortcut_and_read_as_the_long_way() -> None:
    for body in usual_bodies():
        same_as_long_way(body)
        for info in INFOS:
            if outcome(broadcast_long_way, body, info)[0] == "actions":
                assert plain_broadcast(copy.deepcopy(body), info) is not None, body
        assert plain_content(copy.deepcopy(body)) is not None, body
    # ... all but the single-chat ones (chat_type absent, "" or "single") that list groups only: no
    # recipient, which the long way refuses.
    taken = [plain_broadcast(copy.deepcopy(body), INFOS[0]) is not None for body in usual_bodies()]
    assert taken.count(False) == 6


def test_the_benchmark_body_reads_as_before() -> None:
    (action,) = parse_add_msg_template(copy.deepcopy(BENCH_BODY), INFOS[1])
    assert action.kind == "broadcast" and action.account == "bench-1-2-3" and action.recipients == 2
    assert action.request_id == "req-1" and action.profile == "wecom"
    assert [(t.where, t.text) for t in action.texts] == [
        ("text.content", BENCH_BODY["text"]["content"]),
        ("attachments[0].link.title", "秋冬新品甲乙"),
        ("attachments[0].link.desc", "门店同款甲乙"),
    ]
    (attachment,) = action.attachments
    assert (attachment.kind, attachment.where, attachment.url) == (
        "link",
        "attachments[0].link",
        "https://shop.example.com/new/1/2/3",
    )


def places(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place (a path of keys and indexes) inside a JSON value."""
    found = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += places(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += places(item, (*path, i))
    return found


def replaced(body: Any, path: tuple[Any, ...], value: Any) -> Any:
    body = copy.deepcopy(body)
    target = body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return body


def test_every_field_of_every_wrong_type_reads_as_the_long_way() -> None:
    """Each place of the usual bodies replaced by each wrong value (or removed): the shortcut either reads
    it exactly as the long way or leaves it to the long way, which refuses it with the same words."""
    seeds = [
        copy.deepcopy(BENCH_BODY),
        {**BENCH_BODY, "attachments": FULL_ATTACHMENTS},
        {**BENCH_BODY, "chat_type": "group", "chat_id_list": ["c1"], "allow_select": False, "tag_filter": {}},
    ]
    checked = 0
    for seed in seeds:
        for path in places(seed):
            for value in WRONG_VALUES:
                same_as_long_way(replaced(seed, path, value))
                checked += 1
            parent = replaced(seed, path, None)
            target = parent
            for step in path[:-1]:
                target = target[step]
            if isinstance(target, dict):
                del target[path[-1]]
                same_as_long_way(parent)
        for key in ("link", "miniprogram", "image", "chat_type", "sender", "external_userid"):
            for value in [*WRONG_VALUES, {"title": "t", "url": "u"}]:
                same_as_long_way({**seed, key: value})
    for bad in (
        [{"msgtype": "voice", "voice": {"media_id": "m"}}],
        [{"msgtype": "link"}],
        [{"link": {"title": "t"}}],
        [{"msgtype": "link", "link": {"title": "t"}}, "not an object"],
        [{"msgtype": "image", "image": {"media_id": "m"}}] * 10,
    ):
        same_as_long_way({**BENCH_BODY, "attachments": bad})
    assert checked > 500


def test_other_routes_through_wecom_content_read_as_before() -> None:
    """send_welcome_msg and add_moment_task read their content through the same shortcut."""
    info = INFOS[1]
    for body in usual_bodies():
        welcome = {k: v for k, v in body.items() if k in ("text", "attachments")}
        (action,) = parse_welcome({**welcome, "welcome_code": "w"}, info)
        texts, attachments = content_long_way(welcome, allow_old_shape=True)
        assert (list(action.texts), list(action.attachments)) == (texts, attachments)
        moment = {**welcome, "visible_range": {"sender_list": {"user_list": ["u1"]}}}
        (action,) = parse_moment_task(moment, info)
        texts, attachments = content_long_way(welcome, allow_old_shape=False)
        assert (list(action.texts), list(action.attachments)) == (texts, attachments)


FIELDS = [
    "chat_type", "external_userid", "chat_id_list", "sender", "text", "content", "attachments", "msgtype",
    "link", "title", "desc", "url", "picurl", "media_id", "miniprogram", "appid", "page", "pagepath",
    "image", "video", "file", "allow_select", "tag_filter", "pic_url", "thumb_media_id", "pic_media_id",
    "single", "group",
]  # fmt: skip
scalars = (
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=False) | st.sampled_from(FIELDS)
)
json_values = st.recursive(
    scalars | st.text(max_size=4),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(FIELDS), children, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=8))
def test_random_bodies_read_as_the_long_way(body: dict[str, Any]) -> None:
    same_as_long_way(body)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_changes_to_the_usual_body_read_as_the_long_way(data: st.DataObject) -> None:
    body = copy.deepcopy(data.draw(st.sampled_from(usual_bodies())))
    for _ in range(data.draw(st.integers(1, 3))):
        spots = places(body)
        path = data.draw(st.sampled_from(spots))
        body = replaced(body, path, data.draw(json_values))
    same_as_long_way(body)


# ---- read_body: what has arrived, then the rest ----


class _Protocol:
    connected = True

    def pause_reading(self, **_: Any) -> None: ...

    def resume_reading(self, **_: Any) -> None: ...


async def _read(pieces: list[bytes], length: int, *, eof: bool, delay: bool) -> bytes | str:
    """read_body of a request declaring `length` whose body arrives as `pieces` (the first at once, the
    others later when `delay`), then ends when `eof`."""
    loop = asyncio.get_running_loop()
    stream = streams.StreamReader(_Protocol(), 2**16, loop=loop)  # type: ignore[arg-type]
    request = make_mocked_request(
        "POST", "/cgi-bin/x", headers={"Content-Length": str(length)}, payload=stream, loop=loop
    )

    async def feed(rest: list[bytes]) -> None:
        for piece in rest:
            await asyncio.sleep(0)
            stream.feed_data(piece)
        if eof:
            stream.feed_eof()

    if pieces:
        stream.feed_data(pieces[0])
    if delay:
        feeder = asyncio.ensure_future(feed(pieces[1:]))
    else:
        for piece in pieces[1:]:
            stream.feed_data(piece)
        if eof:
            stream.feed_eof()
    try:
        return await asyncio.wait_for(read_body(request, 1 << 20), 2)
    except TimeoutError:
        return "waiting"
    finally:
        if delay:
            await feeder


@pytest.mark.parametrize("delay", [False, True])
async def test_read_body_takes_what_arrived_and_awaits_the_rest(delay: bool) -> None:
    body = json.dumps(BENCH_BODY, ensure_ascii=False).encode()
    for cut in (len(body), 1, 7, len(body) // 2, len(body) - 1):
        pieces = [body[:cut], body[cut:]] if cut < len(body) else [body]
        assert await _read(pieces, len(body), eof=True, delay=delay) == body
        assert (
            await _read([body[i : i + 5] for i in range(0, len(body), 5)], len(body), eof=True, delay=delay)
            == body
        )
    # More than declared: exactly the declared length is the body.
    assert await _read([body + b"tail"], len(body), eof=True, delay=delay) == body
    # Cut short: what arrived (the parser then refuses it), as before.
    assert await _read([body[:10]], len(body), eof=True, delay=delay) == body[:10]
    assert await _read([body[:10], body[10:20]], len(body), eof=True, delay=delay) == body[:20]
    assert await _read([], len(body), eof=True, delay=delay) == b""
    assert await _read([], 0, eof=True, delay=delay) == b""


async def test_read_body_over_the_limit_is_refused() -> None:
    loop = asyncio.get_running_loop()
    stream = streams.StreamReader(_Protocol(), 2**16, loop=loop)  # type: ignore[arg-type]
    request = make_mocked_request("POST", "/x", headers={"Content-Length": "11"}, payload=stream, loop=loop)
    with pytest.raises(BodyError) as refused:
        await read_body(request, 10)
    assert refused.value.detail == "Content-Length 11 is over the limit of 10 bytes"


# ---- Profile.match of a profile with exact rules only ----


def test_exact_only_profile_matches_as_the_linear_scan() -> None:
    """The shortcut for a profile without suffix or glob rules: the first exact rule in catalogue order
    whose methods allow the request, as trying every rule in turn finds."""
    routes = [Route(f"r{i}", None) for i in range(4)]
    profile = Profile(
        name="exact",
        answer=WECOM.answer,
        rules=(
            PathRule(frozenset({"POST"}), "/A/b", "exact", routes[0]),
            PathRule(frozenset(), "/a/c", "exact", routes[1]),
            PathRule(frozenset({"GET", "POST"}), "/a/b", "exact", routes[2]),
            PathRule(frozenset(), "/a/b", "exact", routes[3]),
        ),
        owns=lambda p: True,
    )
    for method, path in itertools.product(
        ("POST", "GET", "PUT", "HEAD"), ("/a/b", "/a/c", "/a", "/a/b/c", "")
    ):
        linear = next((rule.route for rule in profile.rules if rule.matches(method, path)), None)
        assert profile.match(method, path) == linear
    assert profile.match("POST", "/a/b") is routes[0]
    assert profile.match("GET", "/a/b") is routes[2]
    assert profile.match("PUT", "/a/b") is routes[3]
    for rule in WECOM.rules:
        for method in ("POST", "GET"):
            linear = next((r.route for r in WECOM.rules if r.matches(method, rule.key)), None)
            assert WECOM.match(method, rule.key) == linear
