"""The one error type of configuration: a setting that is wrong, named with where its value came from."""

from __future__ import annotations


class SettingsError(ValueError):
    """A setting is wrong: `key` names it, `source` says where the value came from."""

    def __init__(self, key: str, reason: str, source: str = "") -> None:
        self.key = key
        self.reason = reason
        self.source = source
        where = f" (from {source})" if source else ""
        super().__init__(f"setting '{key}'{where}: {reason}")
