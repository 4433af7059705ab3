"""Settings: defaults < TOML < GUARD_ env < flags; every error names the key and where it came from."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from guard.config.settings import Settings, SettingsError, enforce_loopback, load_settings
from guard.http.auth import Authenticator, hash_key


def test_zero_config_defaults() -> None:
    s = load_settings(env={})
    assert (s.host, s.port, s.workers) == ("127.0.0.1", 8080, 1)
    assert s.upstream == "https://qyapi.weixin.qq.com"
    assert s.redis_url is None and s.rules_dir is None
    assert s.body_limit == 1024 * 1024 and s.strict is True and s.redis_down == "refuse"
    assert s.timezone == "Asia/Shanghai"


def test_precedence_toml_env_flags(tmp_path: Path) -> None:
    config = tmp_path / "guard.toml"
    config.write_text(
        'port = 9000\nhost = "127.0.0.1"\nread_timeout = 5\nstrict = false\n'
        '[upstreams]\ngewe = "http://gewe.internal:2531"\n'
        '[redis_down_actions]\nmessage = "allow"\n'
        '[[keys]]\nname = "scrm"\nhash = "' + hash_key("k") + '"\naccounts = ["shop-*"]\nrole = "risk"\n',
        encoding="utf-8",
    )
    s = load_settings(
        config=config, env={"GUARD_PORT": "9100", "GUARD_BODY_LIMIT": "2048"}, flags={"port": 9200}
    )
    assert s.port == 9200 and s.body_limit == 2048 and s.read_timeout == 5.0 and s.strict is False
    assert s.upstream_for("gewe") == "http://gewe.internal:2531"
    assert s.upstream_for("wecom") == "https://qyapi.weixin.qq.com"
    assert s.failure_policy("message") == "allow" and s.failure_policy("broadcast") == "refuse"
    assert s.keys[0].accounts == ("shop-*",) and s.keys[0].role == "risk"
    s2 = load_settings(env={"GUARD_CONFIG": str(config), "GUARD_UPSTREAMS": "gewe=http://g2:1"})
    assert s2.port == 9000 and s2.upstream_for("gewe") == "http://g2:1"


@pytest.mark.parametrize(
    ("env", "key", "source"),
    [
        ({"GUARD_PORT": "eighty"}, "port", "GUARD_PORT"),
        ({"GUARD_PORT": "70000"}, "port", "GUARD_PORT"),
        ({"GUARD_UPSTREAM": "ftp://x"}, "upstream", "GUARD_UPSTREAM"),
        ({"GUARD_REDIS_URL": "localhost:6379"}, "redis_url", "GUARD_REDIS_URL"),
        ({"GUARD_STRICT": "maybe"}, "strict", "GUARD_STRICT"),
        ({"GUARD_TIMEZONE": "Mars/Olympus"}, "timezone", "GUARD_TIMEZONE"),
        ({"GUARD_REDIS_DOWN": "ignore"}, "redis_down", "GUARD_REDIS_DOWN"),
        ({"GUARD_BODY_LIMIT": "10"}, "body_limit", "GUARD_BODY_LIMIT"),
        ({"GUARD_PROT": "1"}, "prot", "GUARD_PROT"),
        ({"GUARD_RULES_DIR": "/nonexistent/rules"}, "rules_dir", "GUARD_RULES_DIR"),
        ({"GUARD_WORKERS": "2"}, "workers", "GUARD_WORKERS"),
    ],
)
def test_errors_name_the_key_and_source(env: dict[str, str], key: str, source: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(env=env)
    assert err.value.key == key and err.value.source == source
    assert f"setting '{key}'" in str(err.value)


def test_the_scanner_engine_variable_is_no_setting() -> None:
    """GUARD_SCAN_ENGINE picks the scanner's engine where rules compile (rules.engine): `guard serve` takes
    it in its environment like `guard rules check` does, and it is not mistaken for a setting."""
    assert load_settings(env={"GUARD_SCAN_ENGINE": "pyahocorasick", "GUARD_PORT": "9100"}).port == 9100
    with pytest.raises(SettingsError) as err:
        load_settings(env={"GUARD_SCAN_ENGIN": "daachorse"})
    assert err.value.key == "scan_engin"


def test_toml_errors_name_the_key(tmp_path: Path) -> None:
    config = tmp_path / "g.toml"
    config.write_text('[[keys]]\nhash = "plain-text-key"\n', encoding="utf-8")
    with pytest.raises(SettingsError) as err:
        load_settings(config=config, env={})
    assert err.value.key == "keys[0].hash"
    config.write_text('[[keys]]\nhash = "' + hash_key("k") + '"\nrole = "boss"\n', encoding="utf-8")
    with pytest.raises(SettingsError) as err:
        load_settings(config=config, env={})
    assert err.value.key == "keys[0].role"
    config.write_text("port = [", encoding="utf-8")
    with pytest.raises(SettingsError) as err:
        load_settings(config=config, env={})
    assert err.value.key == "config"


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(AttributeError):
        s.port = 1  # type: ignore[misc]


def test_no_keys_means_loopback_only() -> None:
    s, warning = enforce_loopback(Settings(host="0.0.0.0"))
    assert s.host == "127.0.0.1" and warning and "loopback" in warning
    s, warning = enforce_loopback(Settings(host="127.0.0.1"))
    assert s.host == "127.0.0.1" and warning and "no client keys" in warning
    keyed = Settings(host="0.0.0.0", keys=load_settings(env={}).keys)
    assert enforce_loopback(keyed)[0].host == "127.0.0.1"  # still no keys


def test_open_without_keys_is_explicit_and_says_so() -> None:
    settings = load_settings(env={"GUARD_HOST": "0.0.0.0", "GUARD_OPEN_WITHOUT_KEYS": "true"})
    s, warning = enforce_loopback(settings)
    assert s.host == "0.0.0.0" and warning and "anyone who reaches this port" in warning


def test_key_hashes_compare_and_globs(tmp_path: Path) -> None:
    config = tmp_path / "g.toml"
    config.write_text(
        f'[[keys]]\nname="a"\nhash="{hash_key("alpha")}"\naccounts=["shop-*", "hq-01"]\n'
        f'[[keys]]\nname="b"\nhash="{hash_key("beta")}"\nrole="admin"\n',
        encoding="utf-8",
    )
    s = load_settings(config=config, env={})
    auth = Authenticator(s.keys)
    alpha = auth.identify("alpha")
    assert alpha is not None and alpha.name == "a" and alpha.role == "staff"
    assert alpha.may_act_for("shop-7") and alpha.may_act_for("hq-01") and not alpha.may_act_for("hq-02")
    beta = auth.identify("beta")
    assert beta is not None and beta.has_role("risk") and beta.may_act_for("anything")
    assert auth.identify("gamma") is None and auth.identify("") is None and auth.identify(None) is None
    assert enforce_loopback(Settings(host="0.0.0.0", keys=s.keys)) == (
        Settings(host="0.0.0.0", keys=s.keys),
        None,
    )


def test_a_bad_risk_table_fails_at_load_naming_its_key(tmp_path: Path) -> None:
    config = tmp_path / "g.toml"
    config.write_text("[risk]\nno_such_setting = 1\n", encoding="utf-8")
    with pytest.raises(SettingsError) as err:
        load_settings(config=config, env={})
    assert err.value.key == "risk.no_such_setting"
    assert err.value.source and str(config) in err.value.source


def test_the_risk_table_is_read_once_into_typed_settings(tmp_path: Path) -> None:
    config = tmp_path / "g.toml"
    config.write_text(
        '[risk]\ncomplaints_per_day = 7\n[[risk.webhooks]]\nname = "desk"\nurl = "http://127.0.0.1:1/hook"\n',
        encoding="utf-8",
    )
    risk = load_settings(config=config, env={}).risk
    assert risk.complaints_per_day == 7 and risk.webhooks[0].name == "desk"
    assert Settings().risk.complaints_per_day == 3


@pytest.mark.parametrize("key", [f.name for f in fields(Settings)])
def test_every_setting_refuses_a_value_of_the_wrong_kind_naming_its_key(key: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(env={}, flags={key: object()})
    assert err.value.key.split(".")[0].split("[")[0] == key
