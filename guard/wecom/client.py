"""A small WeCom API client of the guard's own: `gettoken` and the chat intercept rule calls.

The secret goes only into the `gettoken` query; it is never logged, printed or put into an error. A call
answered with a token error (40001 invalid, 40014 invalid, 42001 expired) fetches a new token and is
tried once more.
"""

from __future__ import annotations

from typing import Any

import aiohttp

TOKEN_ERRORS = frozenset({40001, 40014, 42001})
PATH = "/cgi-bin/externalcontact/"


class WeComError(Exception):
    """WeCom answered `errcode` != 0, or could not be reached (errcode -1). Never carries the secret."""

    def __init__(self, call: str, errcode: int, errmsg: str) -> None:
        self.call = call
        self.errcode = errcode
        self.errmsg = errmsg
        super().__init__(f"{call}: errcode {errcode}: {errmsg}")


class WeComClient:
    def __init__(
        self,
        base_url: str,
        corpid: str,
        secret: str,
        *,
        session: aiohttp.ClientSession,
        timeout: float = 30.0,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._corpid = corpid
        self._secret = secret
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._token: str | None = None
        self.token_fetches = 0

    def __repr__(self) -> str:  # no secret, no token
        return f"WeComClient({self._base!r}, corpid={self._corpid!r})"

    async def _request(
        self, call: str, method: str, path: str, params: dict[str, str], body: Any
    ) -> dict[str, Any]:
        try:
            async with self._session.request(
                method, self._base + path, params=params, json=body, timeout=self._timeout
            ) as resp:
                if resp.status >= 400:
                    raise WeComError(call, -1, f"HTTP {resp.status}")
                data = await resp.json(content_type=None)
        except WeComError:
            raise
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            # str(exc) of an aiohttp error may hold the URL, and the gettoken URL holds the secret.
            raise WeComError(call, -1, f"cannot reach WeCom ({type(exc).__name__})") from None
        if not isinstance(data, dict):
            raise WeComError(call, -1, "answer is not a JSON object")
        return data

    async def token(self, *, fresh: bool = False) -> str:
        if self._token is None or fresh:
            params = {"corpid": self._corpid, "corpsecret": self._secret}
            data = await self._request("gettoken", "GET", "/cgi-bin/gettoken", params, None)
            self.token_fetches += 1
            code = int(data.get("errcode") or 0)
            token = data.get("access_token")
            if code != 0 or not isinstance(token, str) or not token:
                raise WeComError("gettoken", code or -1, str(data.get("errmsg") or "no access_token"))
            self._token = token
        return self._token

    async def call(self, name: str, body: Any = None, *, method: str = "POST") -> dict[str, Any]:
        """`externalcontact/<name>`; a token error refetches the token and tries once more."""
        for attempt in (0, 1):
            token = await self.token(fresh=attempt == 1)
            data = await self._request(name, method, PATH + name, {"access_token": token}, body)
            code = int(data.get("errcode") or 0)
            if code in TOKEN_ERRORS and attempt == 0:
                continue
            if code != 0:
                raise WeComError(name, code, str(data.get("errmsg") or ""))
            return data
        raise AssertionError("unreachable")  # pragma: no cover

    async def list_rules(self) -> list[dict[str, Any]]:
        """`get_intercept_rule_list` (GET): `rule_list` of {rule_id, rule_name, create_time}."""
        data = await self.call("get_intercept_rule_list", method="GET")
        rules = data.get("rule_list") or []
        return [r for r in rules if isinstance(r, dict)]

    async def get_rule(self, rule_id: str) -> dict[str, Any]:
        data = await self.call("get_intercept_rule", {"rule_id": rule_id})
        rule = data.get("rule")
        if not isinstance(rule, dict):
            raise WeComError("get_intercept_rule", -1, "answer has no rule")
        return rule

    async def add_rule(self, body: dict[str, Any]) -> str:
        data = await self.call("add_intercept_rule", body)
        return str(data.get("rule_id", ""))

    async def update_rule(self, body: dict[str, Any]) -> None:
        await self.call("update_intercept_rule", body)

    async def delete_rule(self, rule_id: str) -> None:
        await self.call("del_intercept_rule", {"rule_id": rule_id})
