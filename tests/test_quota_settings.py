"""The counters' Redis settings: `redis_timeout`, `redis_max_in_flight`, `redis_queue_timeout` are read like
every setting (errors name the key and where the value came from) and reach the counter storage."""

from __future__ import annotations

from pathlib import Path

import pytest

from guard.app import counter_storage
from guard.config.settings import Settings, SettingsError, load_settings
from ratelimit import RedisStorage


def test_defaults_and_where_they_go() -> None:
    settings = Settings()
    assert (settings.redis_timeout, settings.redis_max_in_flight, settings.redis_queue_timeout) == (
        0.1,
        64,
        5.0,
    )
    storage = counter_storage(
        load_settings(
            env={
                "GUARD_REDIS_URL": "redis://127.0.0.1:1/0",
                "GUARD_REDIS_MAX_IN_FLIGHT": "16",
                "GUARD_REDIS_QUEUE_TIMEOUT": "2.5",
                "GUARD_REDIS_TIMEOUT": "0.05",
            }
        ),
        cluster=False,
    )
    assert isinstance(storage, RedisStorage)
    assert (storage.timeout, storage.max_connections, storage.queue_timeout) == (0.05, 16, 2.5)


@pytest.mark.parametrize(
    ("env", "key", "says"),
    [
        ({"GUARD_REDIS_MAX_IN_FLIGHT": "0"}, "redis_max_in_flight", "between 1 and"),
        ({"GUARD_REDIS_MAX_IN_FLIGHT": "many"}, "redis_max_in_flight", "must be an integer"),
        ({"GUARD_REDIS_QUEUE_TIMEOUT": "0"}, "redis_queue_timeout", "between 0.001 and"),
        ({"GUARD_REDIS_QUEUE_TIMEOUT": "soon"}, "redis_queue_timeout", "must be a number"),
    ],
)
def test_errors_name_the_key_and_the_source(env: dict[str, str], key: str, says: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(env=env)
    assert err.value.key == key
    text = str(err.value)
    assert f"setting '{key}'" in text and f"GUARD_{key.upper()}" in text and says in text


def test_from_the_toml_file(tmp_path: Path) -> None:
    config = tmp_path / "guard.toml"
    config.write_text("redis_max_in_flight = 8\nredis_queue_timeout = 1.5\n", encoding="utf-8")
    settings = load_settings(config=config, env={})
    assert (settings.redis_max_in_flight, settings.redis_queue_timeout) == (8, 1.5)
    config.write_text('redis_queue_timeout = "later"\n', encoding="utf-8")
    with pytest.raises(SettingsError) as err:
        load_settings(config=config, env={})
    assert err.value.key == "redis_queue_timeout" and str(config) in str(err.value)
