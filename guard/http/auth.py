"""Client keys: who is calling, which accounts they may act for, and their role.

Keys are configured as SHA-256 hashes (`sha256:<hex>`), never in clear. A presented key is hashed and
compared with every configured hash in constant time (`hmac.compare_digest`, no early exit), so timing
tells nothing about which key nearly matched. With no keys configured every caller is an anonymous
`admin` — the guard then listens on loopback only (settings.enforce_loopback).
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from guard.config.settings import ClientKey

ROLE_RANK = {"staff": 0, "risk": 1, "admin": 2}


def hash_key(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Client:
    name: str
    role: str
    accounts: tuple[str, ...]

    def may_act_for(self, account: str) -> bool:
        return any(fnmatch.fnmatchcase(account, pattern) for pattern in self.accounts)

    def has_role(self, role: str) -> bool:
        return ROLE_RANK.get(self.role, -1) >= ROLE_RANK[role]


ANONYMOUS = Client(name="local", role="admin", accounts=("*",))


class Authenticator:
    def __init__(self, keys: Sequence[ClientKey]) -> None:
        self.keys = tuple(keys)
        self._digests = [bytes.fromhex(k.hash[len("sha256:") :]) for k in self.keys]

    @property
    def open(self) -> bool:
        """No keys configured: every (loopback) caller is trusted."""
        return not self.keys

    def identify(self, presented: str | None) -> Client | None:
        """The client a presented key belongs to, or None (no key, unknown key)."""
        if self.open:
            return ANONYMOUS
        if not presented:
            return None
        digest = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest()
        found: ClientKey | None = None
        for key, expected in zip(self.keys, self._digests, strict=True):
            # No early exit: every configured hash is compared every time.
            if hmac.compare_digest(digest, expected) and found is None:
                found = key
        if found is None:
            return None
        return Client(name=found.name, role=found.role, accounts=found.accounts)
