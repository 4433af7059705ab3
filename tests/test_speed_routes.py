"""Route matching through the profiles' index (issue 13) answers what trying every rule in order answers,
and `normalize_path`'s shortcut for a plain path gives what the full resolution gives."""

from __future__ import annotations

import itertools
from pathlib import Path

from guard.core.profiles import Profile, Route, load_profiles
from guard.core.profiles.model import PathRule, normalize_path, resolve_path
from guard.core.profiles.wecom import PROFILE as WECOM
from tests.support import rules_copy

CUSTOM = """\
name = "acme"
format = "json"

[answer]
code_field = "code"
message_field = "message"
ok_values = [0]

[[routes]]
method = "POST"
path = "/acme/*/friends/apply"
kind = "add_friend"
direction = "active"
account = "robot.wxid"
texts = ["greeting"]

[[routes]]
path = "/acme/*/mass/send"
kind = "broadcast"
account = "robot.wxid"
texts = ["content"]
recipients = "targets"
"""
METHODS = ("POST", "GET", "PUT", "DELETE")


def linear(profile: Profile, method: str, path: str) -> Route | None:
    """`Profile.match` as it was: every rule in order, the first that matches."""
    return next((rule.route for rule in profile.rules if rule.matches(method, path)), None)


def paths_of(profile: Profile) -> set[str]:
    """Every rule's own path and spellings around it: prefixes, tails, longer paths, neighbours."""
    found: set[str] = {"/", "", "/acme/v1/friends/apply", "/acme/x/mass/send", "/nothing/here", "/cgi-bin/"}
    for rule in profile.rules:
        key = rule.key.replace("*", "v1")
        segments = key.strip("/").split("/")
        found |= {key, "/" + key.lstrip("/"), key + "/more", "/v2/api/" + key.lstrip("/"), "/x" + key}
        found |= {"/" + "/".join(segments[i:]) for i in range(len(segments))}
        found |= {"/" + "/".join(segments[:i]) for i in range(1, len(segments))}
    return found


def test_indexed_match_equals_the_linear_scan(tmp_path: Path) -> None:
    rules = rules_copy(tmp_path)
    (rules / "profiles").mkdir(exist_ok=True)
    (rules / "profiles" / "acme.toml").write_text(CUSTOM, encoding="utf-8")
    profiles = load_profiles([rules])
    assert {p.name for p in profiles.profiles} >= {"acme", "wecom", "gewe"}
    paths = set().union(*(paths_of(p) for p in profiles.profiles))
    compared = 0
    for profile, path, method in itertools.product(profiles.profiles, sorted(paths), METHODS):
        path = normalize_path(path)
        assert profile.match(method, path) == linear(profile, method, path), (profile.name, method, path)
        compared += 1
    assert compared > 10_000
    # The set answers the first profile's route, as before.
    for path, method in itertools.product(sorted(paths), METHODS):
        expected = next(
            ((p, r) for p in profiles.profiles if (r := linear(p, method, normalize_path(path))) is not None),
            None,
        )
        assert profiles.match(method, path) == expected


def test_the_first_rule_in_order_wins_across_kinds() -> None:
    first, second, third = (Route(f"r{i}", None) for i in range(3))
    profile = Profile(
        name="mixed",
        answer=WECOM.answer,
        rules=(
            PathRule(frozenset({"GET"}), "/a/b/c", "exact", first),
            PathRule(frozenset(), "*/c", "glob", second),
            PathRule(frozenset(), "b/c", "suffix", third),
            PathRule(frozenset(), "/a/b/c", "exact", first),
        ),
        owns=lambda p: True,
    )
    for method, path in itertools.product(METHODS, ("/a/b/c", "/x/b/c", "/b/c", "/c", "/a/b")):
        assert profile.match(method, path) == linear(profile, method, path)
    assert profile.match("GET", "/a/b/c") is first
    assert profile.match("POST", "/a/b/c") is second
    assert profile.match("POST", "/b/c") is second  # the glob comes before the suffix rule


def test_normalize_path_shortcut_equals_the_full_resolution() -> None:
    parts = ["", "/", "//", "a", "A", ".", "..", "...", ".well-known", "b;x=1", ";", "c.d", "%2e%2e", "é"]
    checked = 0
    for n in range(1, 5):
        for combo in itertools.product(parts, repeat=n):
            for lead in ("", "/"):
                path = lead + "/".join(combo)
                assert normalize_path(path) == resolve_path(path), path
                checked += 1
    assert checked > 10_000
    assert normalize_path("/cgi-bin/Message/Send") == "/cgi-bin/message/send"
