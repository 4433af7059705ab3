"""The WeCom endpoint catalogue is complete: every API path the installed wechatpy WeCom client can call is
classified (guarded write, read or plain write) by the `wecom` profile, so a new SDK endpoint fails the suite
until it is; every catalogue write that carries customer-facing content is guarded."""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from guard.core.bundle import build_bundle
from guard.core.profiles import ProfileSet
from guard.core.profiles import wecom as catalogue

PROFILES: ProfileSet = build_bundle(None).profiles
BASE = "https://qyapi.weixin.qq.com/cgi-bin/"
# Method calls that send a request: the API classes' `self._get/_post(path)`, the client's own
# `get/post/_request/_fetch_access_token(url)` and its requests session `self._http.get/post/request`.
SENDERS = frozenset({"_get", "_post", "get", "post", "_request", "_fetch_access_token", "request"})
RECEIVERS = frozenset({"self", "self._client", "self._http", "client", "client._http"})


def _wechatpy_wecom_sources() -> list[Path]:
    """The installed WeCom client's source: `wechatpy.work` (2.x) and / or `wechatpy.enterprise` (1.x)."""
    spec = importlib.util.find_spec("wechatpy")
    assert spec is not None and spec.submodule_search_locations, "wechatpy is a test dependency"
    root = Path(next(iter(spec.submodule_search_locations)))
    files = [
        p for name in ("work", "enterprise") if (root / name).is_dir() for p in (root / name).rglob("*.py")
    ]
    assert files, f"no WeCom client under {root}"
    return sorted(files)


def _strings(node: ast.expr, scope: ast.AST, unresolved: list[str]) -> Iterator[str]:
    """The string values an argument can take: a constant, both arms of `a if c else b`, or a local name
    assigned such values in the same function; anything else is reported as unresolved."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.IfExp):
        yield from _strings(node.body, scope, unresolved)
        yield from _strings(node.orelse, scope, unresolved)
    elif isinstance(node, ast.Name):
        values = [
            stmt.value
            for stmt in ast.walk(scope)
            if isinstance(stmt, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == node.id for t in stmt.targets)
        ]
        if not values:
            unresolved.append(ast.unparse(node))
        for value in values:
            yield from _strings(value, scope, unresolved)
    else:
        unresolved.append(ast.unparse(node))


def sdk_calls() -> tuple[set[tuple[str, str]], list[str]]:
    """(method, path under /cgi-bin/) of every request the client's source can send, and the arguments
    that could not be read as a path (each names its file and line)."""
    calls: set[tuple[str, str]] = set()
    unresolved: list[str] = []
    for file in _wechatpy_wecom_sources():
        tree = ast.parse(file.read_text(encoding="utf-8"))
        functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        for function in functions:
            for node in ast.walk(function):
                # Absolute URLs of the API (downloads built as strings, the token fetch): GET.
                if (
                    isinstance(node, ast.Constant)
                    and isinstance(node.value, str)
                    and node.value.startswith(BASE)
                ):
                    calls.add(("GET", node.value[len(BASE) :].split("?", 1)[0]))
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                    continue
                if node.func.attr not in SENDERS or ast.unparse(node.func.value) not in RECEIVERS:
                    continue
                url = [kw.value for kw in node.keywords if kw.arg in ("url", "url_or_endpoint")]
                args = node.args[:1] or url
                if node.func.attr in ("_request", "request") and not url:
                    args = node.args[1:2]  # request(method, url)
                method = "GET" if node.func.attr in ("_get", "get", "_fetch_access_token") else "POST"
                here: list[str] = []
                for arg in args:
                    for value in _strings(arg, function, here):
                        path = value[len(BASE) :] if value.startswith(BASE) else value
                        if not path.startswith(("http://", "https://")):
                            calls.add((method, path.split("?", 1)[0]))
                unresolved += [f"{file.name}:{node.lineno}: {text}" for text in here]
    return calls, unresolved


def test_every_path_the_sdk_can_call_is_classified() -> None:
    calls, unresolved = sdk_calls()
    assert len(calls) >= 80, f"the walk found only {len(calls)} calls: {sorted(calls)}"
    assert not unresolved, f"SDK calls whose path the walk cannot read (teach _strings): {unresolved}"
    unclassified = []
    for method, path in sorted(calls):
        matched = PROFILES.match(method, f"/cgi-bin/{path}")
        if matched is None or matched[0].name != "wecom":
            unclassified.append(f"{method} /cgi-bin/{path}")
    assert not unclassified, (
        f"wechatpy can call these WeCom endpoints, which guard/core/profiles/wecom.py does not classify "
        f"(add each to WRITES, READS or PLAIN_WRITES): {unclassified}"
    )


# Every customer-facing write of the catalogue (text, attachments or both reach a customer or are kept to be
# shown to them): each must be guarded. Adding a guarded write means adding it here, on purpose.
GUARDED = (
    "externalcontact/add_msg_template",
    "crm/add_msg_template",
    "externalcontact/send_welcome_msg",
    "externalcontact/add_moment_task",
    "externalcontact/group_welcome_template/add",
    "externalcontact/group_welcome_template/edit",
    "externalcontact/add_contact_way",
    "externalcontact/update_contact_way",
    "externalcontact/transfer_customer",
    "externalcontact/groupchat/add_join_way",
    "externalcontact/groupchat/update_join_way",
    "externalcontact/add_product_album",
    "externalcontact/update_product_album",
    "externalcontact/message/send",
    "kf/send_msg",
    "kf/send_msg_on_event",
    "kf/knowledge/add_intent",
    "kf/knowledge/mod_intent",
    "kf/account/add",
    "kf/account/update",
    "kf/customer/upgrade_service",
    "message/send",
    "message/update_template_card",
    "linkedcorp/message/send",
    "appchat/send",
    "user/create",
    "user/update",
    "chat/send",
    "material/add_mpnews",
    "material/update_news",
)


@pytest.mark.parametrize("path", GUARDED)
def test_customer_facing_writes_are_guarded(path: str) -> None:
    matched = PROFILES.match("POST", f"/cgi-bin/{path}")
    assert matched is not None and matched[0].name == "wecom", path
    assert matched[1].guarded and not matched[1].plain_write, path


def test_the_catalogue_is_consistent() -> None:
    guarded = [w.path for w in catalogue.WRITES]
    assert sorted(guarded) == sorted(GUARDED), "a guarded write was added or removed: update GUARDED"
    every = guarded + list(catalogue.READS) + list(catalogue.PLAIN_WRITES)
    assert len(every) == len(set(every)), sorted({p for p in every if every.count(p) > 1})
    for path in every:
        assert path == path.strip("/").lower() and "?" not in path and "//" not in path, path
    for path in catalogue.READS:
        route = PROFILES.match("POST", f"/cgi-bin/{path}")
        assert route is not None and not route[1].guarded and not route[1].plain_write, path
    for path in catalogue.PLAIN_WRITES:
        route = PROFILES.match("POST", f"/cgi-bin/{path}")
        assert route is not None and route[1].plain_write, path
    # Names the intercept-rule planner and the README rely on.
    assert "externalcontact/add_intercept_rule" in catalogue.PLAIN_WRITES
    assert {"wecom-welcome", "wecom-appchat", "wecom-kf"} <= set(catalogue.SHARED_BUCKETS)
