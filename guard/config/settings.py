"""The guard's settings: read once from defaults < TOML file < `GUARD_…` environment < command-line flags,
validated, and frozen. Every error names the key and where its value came from.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from guard.config.errors import SettingsError
from guard.config.risk import RiskSettings, parse_risk_settings

Role = Literal["staff", "risk", "admin"]
ROLES: tuple[str, ...] = ("staff", "risk", "admin")
FailurePolicy = Literal["refuse", "allow"]
DEFAULT_UPSTREAM = "https://qyapi.weixin.qq.com"

__all__ = [
    "DEFAULT_UPSTREAM",
    "FLAG_NAMES",
    "ClientKey",
    "Settings",
    "SettingsError",
    "enforce_loopback",
    "flag_name",
    "load_settings",
]


@dataclass(frozen=True, slots=True)
class ClientKey:
    """One client key: stored as a hash (`sha256:<hex>`), never in clear; the accounts it may act for
    (exact ids or globs such as `sales-*`) and its role."""

    name: str
    hash: str
    accounts: tuple[str, ...] = ("*",)
    role: Role = "staff"


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    # None: the shipped rules (rules/default).
    rules_dir: Path | None = None
    # The WeCom upstream (the `wecom` profile's). Every other profile forwards only to its own: the one
    # `upstreams` names for it, or the `upstream` of its profile file; with none it refuses (490018).
    upstream: str = DEFAULT_UPSTREAM
    upstreams: Mapping[str, str] = field(default_factory=dict)
    # None: in-memory counters (one process only).
    redis_url: str | None = None
    # None: detect (a `redis+cluster://` URL or `cluster = true`).
    redis_cluster: bool | None = None
    # Seconds Redis may take to answer a counter command, counted from when the command is written (not
    # from when a request asked for it): past it Redis counts as down for that call.
    redis_timeout: float = 0.1
    # Counter calls in flight to Redis at once, per process; the others wait in line, each at most
    # `redis_queue_timeout` seconds (the guard being busy is not Redis being down).
    redis_max_in_flight: int = 64
    redis_queue_timeout: float = 5.0
    connect_timeout: float = 3.0
    read_timeout: float = 30.0
    body_limit: int = 1024 * 1024
    # The guard's own server side (guard.http.connections): seconds a new connection may take to send its
    # first request's header block; seconds an idle kept-alive connection stays open (also bounds the
    # header block of a later request); seconds a request body may take to arrive after its header block.
    header_timeout: float = 10.0
    keepalive_timeout: float = 75.0
    body_timeout: float = 60.0
    # Connections that have not yet sent a request with a valid client key (with no keys configured: no
    # complete request): past this many the oldest is closed. 0 = a quarter of the open-file limit
    # (RLIMIT_NOFILE), between 16 and 1024.
    max_unauthenticated: int = 0
    # A write request to a path no profile knows: refused (strict) or forwarded with an audit line.
    strict: bool = True
    # What a guarded action gets while the counters (Redis) are unreachable; per action name overrides.
    redis_down: FailurePolicy = "refuse"
    redis_down_actions: Mapping[str, FailurePolicy] = field(default_factory=dict)
    timezone: str = "Asia/Shanghai"
    # Seconds between two looks at the rules directory (0 = no file watch).
    reload_interval: float = 2.0
    keys: tuple[ClientKey, ...] = ()
    # Listen beyond loopback although no client keys are configured: only for a container whose port is
    # published on the host's loopback alone (docker-compose.yml); anyone who reaches the port may act.
    open_without_keys: bool = False
    # Answer the guard's own errors on a platform's path with their HTTP status (401, 403, 413, 502, …)
    # instead of 200 in the platform's error format (as WeCom and GeWe answer theirs, so SDKs read them).
    http_error_status: bool = False
    key_header: str = "X-Guard-Key"
    key_param: str = "guard_key"
    log_level: str = "info"
    # Longest an observer (alerts, reports) may take for one decision before it is skipped.
    observer_timeout: float = 0.25
    # Set on the child processes of `--workers N`.
    reuse_port: bool = False
    # The risk side's settings (alerts, webhooks, complaints, reports): the `[risk]` table.
    risk: RiskSettings = field(default_factory=RiskSettings)
    # The corp's credentials for `guard intercept sync` (WeCom's own chat intercept rules, at `upstream`).
    # The secret is never logged or printed (kept out of repr).
    wecom_corpid: str | None = None
    wecom_secret: str | None = field(default=None, repr=False)

    def upstream_for(self, profile: str) -> str | None:
        """The upstream a profile forwards to (None: none is configured; the profile's own file may name
        one). A request is never sent to another platform's upstream."""
        found = self.upstreams.get(profile)
        if found is None and profile == "wecom":
            return self.upstream
        return found

    def failure_policy(self, action_name: str) -> FailurePolicy:
        base = action_name.split(".", 1)[0]
        return self.redis_down_actions.get(action_name, self.redis_down_actions.get(base, self.redis_down))

    @property
    def loopback_only(self) -> bool:
        return not self.keys

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


_FIELDS = {f.name for f in fields(Settings)}
# Keys that cannot come from the environment as plain strings (tables).
_TABLE_KEYS = {"upstreams", "redis_down_actions", "keys", "risk"}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _as_bool(key: str, value: object, source: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.strip().lower()
        if low in {"1", "true", "yes", "on"}:
            return True
        if low in {"0", "false", "no", "off"}:
            return False
    raise SettingsError(key, f"must be true or false, got {value!r}", source)


def _as_int(key: str, value: object, source: str, low: int, high: int) -> int:
    try:
        if isinstance(value, bool | float) or not isinstance(value, int | str):
            raise ValueError
        number = int(value)
    except (TypeError, ValueError):
        raise SettingsError(key, f"must be an integer, got {value!r}", source) from None
    if not low <= number <= high:
        raise SettingsError(key, f"must be between {low} and {high}, got {number}", source)
    return number


def _as_float(key: str, value: object, source: str, low: float, high: float) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise SettingsError(key, f"must be a number, got {value!r}", source) from None
    if not low <= number <= high:
        raise SettingsError(key, f"must be between {low} and {high}, got {number}", source)
    return number


def _as_url(key: str, value: object, source: str, schemes: tuple[str, ...]) -> str:
    if not isinstance(value, str) or not value:
        raise SettingsError(key, f"must be a URL, got {value!r}", source)
    parts = urlsplit(value)
    if parts.scheme == "unix" and "unix" in schemes:
        # unix:///path/redis.sock has no host: the socket's path is the URL's.
        if not parts.path:
            raise SettingsError(key, f"must be unix:///path/to/redis.sock, got {value!r}", source)
        return value
    if parts.scheme not in schemes or not parts.netloc:
        raise SettingsError(key, f"must be a {' or '.join(schemes)} URL with a host, got {value!r}", source)
    return value.rstrip("/") if parts.scheme.startswith("http") else value


def _as_policy(key: str, value: object, source: str) -> FailurePolicy:
    if value == "refuse":
        return "refuse"
    if value == "allow":
        return "allow"
    raise SettingsError(key, f"must be 'refuse' or 'allow', got {value!r}", source)


def _as_mapping(key: str, value: object, source: str) -> dict[str, str]:
    """A table, or from the environment `name=value,name=value`."""
    if isinstance(value, str):
        out: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in value.split(","))):
            name, sep, item = part.partition("=")
            if not sep or not name.strip():
                raise SettingsError(
                    key, f"expected name=value pairs separated by commas, got {part!r}", source
                )
            out[name.strip()] = item.strip()
        return out
    if isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        return dict(value)
    raise SettingsError(key, f'must be a table of name = "value", got {value!r}', source)


def _as_keys(value: object, source: str) -> tuple[ClientKey, ...]:
    if not isinstance(value, list):
        raise SettingsError("keys", "must be an array of tables ([[keys]])", source)
    out: list[ClientKey] = []
    for i, item in enumerate(value):
        key = f"keys[{i}]"
        if not isinstance(item, Mapping):
            raise SettingsError(key, "must be a table with hash, accounts, role", source)
        unknown = set(item) - {"name", "hash", "accounts", "role"}
        if unknown:
            raise SettingsError(f"{key}.{sorted(unknown)[0]}", "unknown field", source)
        digest = item.get("hash")
        if not isinstance(digest, str) or not digest.startswith("sha256:") or len(digest) != 7 + 64:
            raise SettingsError(
                f"{key}.hash",
                "must be 'sha256:' and 64 hex digits (make one with: guard hash-key KEY)",
                source,
            )
        try:
            bytes.fromhex(digest[7:])
        except ValueError:
            raise SettingsError(f"{key}.hash", "is not hexadecimal", source) from None
        accounts = item.get("accounts", ["*"])
        if isinstance(accounts, str):
            accounts = [accounts]
        if not isinstance(accounts, list) or not all(isinstance(a, str) and a for a in accounts):
            raise SettingsError(f"{key}.accounts", "must be a list of account ids or globs", source)
        role = item.get("role", "staff")
        if role not in ROLES:
            raise SettingsError(f"{key}.role", f"must be one of {', '.join(ROLES)}, got {role!r}", source)
        name = item.get("name", f"key{i}")
        if not isinstance(name, str):
            raise SettingsError(f"{key}.name", "must be a string", source)
        out.append(ClientKey(name=name, hash=digest.lower(), accounts=tuple(accounts), role=role))
    return tuple(out)


def _as_host(key: str, value: object, source: str) -> str:
    if not isinstance(value, str) or not value:
        raise SettingsError(key, "must be a host name or address", source)
    return value


def _as_dir(key: str, value: object, source: str) -> Path | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str | Path):
        raise SettingsError(key, "must be a directory path", source)
    path = Path(value).expanduser()
    if not path.is_dir():
        raise SettingsError(key, f"is not a directory: {path}", source)
    return path


def _as_upstreams(key: str, value: object, source: str) -> dict[str, str]:
    table = _as_mapping(key, value, source)
    return {k: _as_url(f"{key}.{k}", v, source, ("http", "https")) for k, v in table.items()}


def _as_redis_url(key: str, value: object, source: str) -> str | None:
    if value in (None, ""):
        return None
    return _as_url(key, value, source, ("redis", "rediss", "unix", "redis+cluster"))


def _as_cluster(key: str, value: object, source: str) -> bool | None:
    return None if value in (None, "", "auto") else _as_bool(key, value, source)


def _as_policies(key: str, value: object, source: str) -> dict[str, FailurePolicy]:
    table = _as_mapping(key, value, source)
    return {k: _as_policy(f"{key}.{k}", v, source) for k, v in table.items()}


def _as_timezone(key: str, value: object, source: str) -> str:
    if not isinstance(value, str):
        raise SettingsError(key, "must be an IANA time zone name", source)
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(key, f"unknown IANA time zone {value!r}", source) from None
    return value


def _as_name(key: str, value: object, source: str) -> str:
    if not isinstance(value, str) or not value or any(c in value for c in " \t\r\n:=&"):
        raise SettingsError(key, f"must be a plain name, got {value!r}", source)
    return value


def _as_risk(key: str, value: object, source: str) -> RiskSettings:
    if not isinstance(value, Mapping):
        raise SettingsError(key, "must be a table ([risk])", source)
    return parse_risk_settings(value, source)


def _as_log_level(key: str, value: object, source: str) -> str:
    if value not in {"debug", "info", "warning", "error"}:
        raise SettingsError(key, f"must be debug, info, warning or error, got {value!r}", source)
    return str(value)


def _as_opt_text(key: str, value: object, source: str) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or any(c.isspace() for c in value):
        raise SettingsError(key, "must be a single word without spaces", source)  # never echo a secret
    return value


def _int_in(low: int, high: int) -> Callable[[str, object, str], int]:
    return lambda key, value, source: _as_int(key, value, source, low, high)


def _float_in(low: float, high: float) -> Callable[[str, object, str], float]:
    return lambda key, value, source: _as_float(key, value, source, low, high)


# How each setting's raw value (TOML, an environment string or a flag) becomes its typed value.
_COERCE: dict[str, Callable[[str, object, str], object]] = {
    "host": _as_host,
    "port": _int_in(0, 65535),
    "workers": _int_in(1, 256),
    "rules_dir": _as_dir,
    "upstream": lambda key, value, source: _as_url(key, value, source, ("http", "https")),
    "upstreams": _as_upstreams,
    "redis_url": _as_redis_url,
    "redis_cluster": _as_cluster,
    "strict": _as_bool,
    "reuse_port": _as_bool,
    "open_without_keys": _as_bool,
    "http_error_status": _as_bool,
    "redis_timeout": _float_in(0.001, 60.0),
    "redis_max_in_flight": _int_in(1, 100_000),
    "redis_queue_timeout": _float_in(0.001, 3600.0),
    "connect_timeout": _float_in(0.001, 3600.0),
    "read_timeout": _float_in(0.001, 3600.0),
    "observer_timeout": _float_in(0.001, 60.0),
    "reload_interval": _float_in(0.0, 86400.0),
    "body_limit": _int_in(1024, 256 * 1024 * 1024),
    "header_timeout": _float_in(0.1, 3600.0),
    "keepalive_timeout": _float_in(0.1, 86400.0),
    "body_timeout": _float_in(0.1, 86400.0),
    "max_unauthenticated": _int_in(0, 1_000_000),
    "redis_down": _as_policy,
    "redis_down_actions": _as_policies,
    "timezone": _as_timezone,
    "keys": lambda key, value, source: _as_keys(value, source),
    "key_header": _as_name,
    "key_param": _as_name,
    "risk": _as_risk,
    "log_level": _as_log_level,
    "wecom_corpid": _as_opt_text,
    "wecom_secret": _as_opt_text,
}


def _coerce(key: str, value: object, source: str) -> object:
    """Turn one raw value (TOML, env string or flag) into the typed value of `key`."""
    coerce = _COERCE.get(key)
    if coerce is None:
        raise SettingsError(key, "unknown setting", source)
    return coerce(key, value, source)


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise SettingsError("config", f"cannot read {path}: {exc.strerror or exc}", str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError("config", f"{path}: {exc}", str(path)) from None
    return data


# The command-line flag of a setting, as `guard serve` spells it (an error names the flag as typed).
FLAG_NAMES: dict[str, str] = {"rules_dir": "--rules", "redis_url": "--redis"}


def flag_name(key: str) -> str:
    return FLAG_NAMES.get(key, f"--{key.replace('_', '-')}")


# `GUARD_…` variables that are not settings: the file to read, and the scanner's engine (read by
# rules.engine wherever rules are compiled — `guard serve`, `guard rules check`, `guard scan` alike).
_NOT_SETTINGS = frozenset({"GUARD_CONFIG", "GUARD_SCAN_ENGINE"})


def load_settings(
    *,
    config: Path | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, object] | None = None,
) -> Settings:
    """Defaults < TOML `config` (else the file `GUARD_CONFIG` names) < `GUARD_<KEY>` variables of `env`
    (default: the process environment) < `flags` (None values are ignored)."""
    raw: dict[str, tuple[object, str]] = {}
    if env is None:
        env = os.environ
    if config is None and env.get("GUARD_CONFIG"):
        config = Path(env["GUARD_CONFIG"])
        if not config.is_file():
            raise SettingsError("config", f"no such file: {config}", "GUARD_CONFIG")
    if config is not None:
        for key, value in read_toml(config).items():
            if key not in _FIELDS or key == "reuse_port":
                raise SettingsError(key, "unknown setting", str(config))
            raw[key] = (value, str(config))
    for name, value in env.items():
        if not name.startswith("GUARD_") or name in _NOT_SETTINGS:
            continue
        key = name[len("GUARD_") :].lower()
        if key in ("keys", "risk"):
            raise SettingsError(key, "is configured in the TOML file only", name)
        if key not in _FIELDS:
            raise SettingsError(key, "unknown setting", name)
        raw[key] = (value, name)
    for key, value in (flags or {}).items():
        if value is None:
            continue
        if key not in _FIELDS:
            raise SettingsError(key, "unknown setting", flag_name(key))
        raw[key] = (value, flag_name(key))
    values = {key: _coerce(key, value, source) for key, (value, source) in raw.items()}
    settings = Settings(**values)  # type: ignore[arg-type]
    if settings.redis_url and settings.redis_url.startswith("redis+cluster://"):
        settings = replace(
            settings, redis_url="redis://" + settings.redis_url[len("redis+cluster://") :], redis_cluster=True
        )
    if settings.workers > 1 and not settings.redis_url:
        raise SettingsError(
            "workers",
            f"{settings.workers} worker processes need shared counters: set redis_url (--redis URL)",
            raw["workers"][1],
        )
    return settings


def enforce_loopback(settings: Settings) -> tuple[Settings, str | None]:
    """With no client keys the guard must not be reachable from other machines: bind loopback, say why."""
    if settings.keys:
        return settings, None
    if settings.open_without_keys and not _is_loopback(settings.host):
        return settings, (
            f"no client keys configured and open_without_keys is set: listening on {settings.host}; "
            "anyone who reaches this port may send through the guard"
        )
    if _is_loopback(settings.host):
        return settings, f"no client keys configured: listening on loopback {settings.host} only"
    return (
        replace(settings, host="127.0.0.1"),
        f"no client keys configured: refusing to listen on {settings.host}; "
        "listening on loopback 127.0.0.1 only "
        "(configure [[keys]] to accept other hosts)",
    )
