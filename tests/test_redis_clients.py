"""The one Redis client factory (`ratelimit.clients`) and the one way Lua runs (`ratelimit.Script`), against
real servers: a redis-server over TCP, over a Unix socket and over TLS, and the 3-master Cluster."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as ClusterClient
from redis.exceptions import ConnectionError as RedisConnectionError
from servers import RedisCluster, RedisServer, free_port

from ratelimit import Charge, Limiter, RedisStorage, RedisTarget, Rule, Script, connect, probe, resolve
from ratelimit.connection import ConnectionSpec, PipelinedConnection

TIMEOUTS: dict[str, Any] = {"socket_timeout": 5.0, "socket_connect_timeout": 5.0}

# One key, so it runs on a Cluster too; answers the new value and the key it was given.
INCR = Script("incr_echo", "return {redis.call('INCRBY', KEYS[1], ARGV[1]), KEYS[1]}")


@pytest.fixture(scope="module")
def unix_redis() -> Iterator[tuple[RedisServer, str]]:
    """A redis-server that also listens on a Unix socket in its own directory."""
    server = RedisServer()
    socket = server.dir / "redis.sock"
    server.extra += ["--unixsocket", str(socket), "--unixsocketperm", "700"]
    server.start()
    try:
        yield server, f"unix://{socket}?db=0"
    finally:
        server.cleanup()


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server with a TLS port (a self-signed CA and a server certificate for 127.0.0.1)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    certs = tmp_path_factory.mktemp("tls")
    ca_key, ca, key, csr, cert = (
        certs / n for n in ("ca.key", "ca.crt", "redis.key", "redis.csr", "redis.crt")
    )
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
             "-keyout", str(ca_key), "-out", str(ca))  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", str(key), "-out", str(csr))  # fmt: skip
    ext = certs / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n", encoding="ascii")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
             "-days", "2", "-extfile", str(ext), "-out", str(cert))  # fmt: skip
    tls_port = free_port()
    server = RedisServer(
        extra=[
            "--tls-port", str(tls_port),
            "--tls-cert-file", str(cert),
            "--tls-key-file", str(key),
            "--tls-ca-cert-file", str(ca),
            "--tls-auth-clients", "no",
        ]
    )  # fmt: skip
    try:
        server.start()
    except RuntimeError:
        server.cleanup()
        pytest.skip("this redis-server was built without TLS")
    try:
        yield f"rediss://127.0.0.1:{tls_port}/0?ssl_ca_certs={ca}"
    finally:
        server.cleanup()


async def _round_trip(client: aioredis.Redis | ClusterClient, *keys: str) -> None:
    for n, key in enumerate(keys):
        await client.set(key, f"value-{n}")
    for n, key in enumerate(keys):
        assert await client.get(key) == f"value-{n}".encode()


async def _known_single_node(url: str) -> RedisTarget:
    target = await resolve(RedisTarget.from_url(url), **TIMEOUTS)
    assert target == RedisTarget(url, cluster=False)
    return target


# ---- the target -----------------------------------------------------------------------------------


def test_a_target_checks_its_url_and_hides_the_password() -> None:
    with pytest.raises(ValueError, match="redis://"):
        RedisTarget.from_url("http://127.0.0.1:6379")
    with pytest.raises(ValueError, match="Unix socket"):
        RedisTarget.from_url("unix:///tmp/redis.sock", cluster=True)
    with pytest.raises(ValueError, match="not known"):
        connect(RedisTarget.from_url("redis://127.0.0.1:6379/0"))
    target = RedisTarget.from_url("rediss://user:s3cret@example.test:6380/1", cluster=True)
    assert target.tls and not target.unix
    assert "s3cret" not in repr(target) and "example.test:6380" in repr(target)
    assert RedisTarget.from_url("unix:///tmp/redis.sock").unix


async def test_resolve_keeps_a_known_answer_without_asking() -> None:
    # Nothing listens on port 1: a known target is returned as it is, an unknown one needs the server.
    known = RedisTarget.from_url("redis://127.0.0.1:1/0", cluster=True)
    assert await resolve(known, **TIMEOUTS) is known
    with pytest.raises(RedisConnectionError):
        await probe(
            RedisTarget.from_url("redis://127.0.0.1:1/0"), socket_timeout=1.0, socket_connect_timeout=1.0
        )


# ---- the factory against real servers ---------------------------------------------------------------


async def test_single_node_over_tcp(redis_url: str) -> None:
    target = await _known_single_node(redis_url)
    client = connect(target, **TIMEOUTS)
    try:
        assert type(client) is aioredis.Redis
        await _round_trip(client, "tcp:a", "tcp:b")
    finally:
        await client.aclose()


async def test_single_node_over_a_unix_socket(unix_redis: tuple[RedisServer, str]) -> None:
    _, url = unix_redis
    target = await _known_single_node(url)
    client = connect(target, **TIMEOUTS)
    try:
        assert type(client) is aioredis.Redis
        await _round_trip(client, "unix:a", "unix:b")
        assert str((await client.client_info())["addr"]).startswith("/")  # really over the socket
    finally:
        await client.aclose()


async def test_single_node_over_tls(tls_redis: str) -> None:
    target = await _known_single_node(tls_redis)
    assert target.tls
    client = connect(target, **TIMEOUTS)
    try:
        assert type(client) is aioredis.Redis
        await _round_trip(client, "tls:a", "tls:b")
    finally:
        await client.aclose()


@pytest.mark.cluster
async def test_cluster(redis_cluster: str) -> None:
    target = await resolve(RedisTarget.from_url(redis_cluster), **TIMEOUTS)
    assert target.cluster is True
    client = connect(target, **TIMEOUTS)
    try:
        assert isinstance(client, ClusterClient)
        # Keys in many slots: every master answers some of them.
        await _round_trip(client, *(f"cluster:{n}" for n in range(30)))
    finally:
        await client.aclose()


@pytest.mark.parametrize("where", ["unix", "tls"])
async def test_counters_over_urls_the_pipelined_connection_does_not_speak(
    where: str, request: pytest.FixtureRequest
) -> None:
    """A Unix socket or TLS: RedisStorage asks (cluster=None), then counts through a redis-py client."""
    url = (
        request.getfixturevalue("unix_redis")[1] if where == "unix" else request.getfixturevalue("tls_redis")
    )
    assert ConnectionSpec.from_url(url) is None
    storage = RedisStorage.from_url(url, timeout=5.0)
    limiter = Limiter(storage)
    try:
        rule = Rule("message", "day", 2)
        results = [(await limiter.hit(f"acct-{where}", [Charge(rule)])).allowed for _ in range(3)]
        assert results == [True, True, False]
        assert storage.cluster is False
    finally:
        await limiter.aclose()


# ---- Script: by SHA, loaded again after SCRIPT FLUSH ------------------------------------------------


def test_a_script_from_a_file_or_a_package(tmp_path: Path) -> None:
    path = tmp_path / "incr_echo.lua"
    path.write_text(INCR.source, encoding="utf-8")
    from_file = Script.from_path(path)
    assert (from_file.name, from_file.sha) == ("incr_echo", INCR.sha)
    hit = Script.packaged("ratelimit", "hit")
    assert hit.name == "hit" and len(hit.sha) == 40 and "KEYS" in hit.source
    assert Script.packaged("guard.risk", "alerts_publish").source.startswith("--")


async def test_a_script_survives_script_flush_on_a_single_node(redis_url: str) -> None:
    client = connect(await _known_single_node(redis_url), **TIMEOUTS)
    spec = ConnectionSpec.from_url(redis_url)
    assert spec is not None
    pipelined = await PipelinedConnection.open(spec)
    try:
        await client.script_flush()
        assert await INCR(client, ["s:n"], [2]) == [2, b"s:n"]  # NOSCRIPT, loaded, run
        assert await client.script_exists(INCR.sha) == [True]
        assert await INCR(pipelined, ["s:n"], [3]) == [5, b"s:n"]  # by SHA
        for runner, expected in ((client, 6), (pipelined, 7)):
            await client.script_flush()
            assert await client.script_exists(INCR.sha) == [False]
            assert await INCR(runner, ["s:n"], [1]) == [expected, b"s:n"]
            assert await client.script_exists(INCR.sha) == [True]
    finally:
        await pipelined.aclose()
        await client.aclose()


@pytest.mark.cluster
async def test_a_script_survives_script_flush_on_the_cluster(
    redis_cluster: str, redis_cluster_server: RedisCluster
) -> None:
    client = connect(await resolve(RedisTarget.from_url(redis_cluster), **TIMEOUTS), **TIMEOUTS)
    nodes = [aioredis.Redis(host="127.0.0.1", port=port, **TIMEOUTS) for port in redis_cluster_server.ports]
    keys = [f"{{slot-{n}}}:n" for n in range(30)]  # spread over every master

    async def loaded() -> list[bool]:
        return [(await node.script_exists(INCR.sha))[0] for node in nodes]

    try:
        assert isinstance(client, ClusterClient)
        for expected in (1, 2):
            for node in nodes:
                await node.script_flush()
            assert await loaded() == [False] * len(nodes)
            for key in keys:
                assert await INCR(client, [key], [1]) == [expected, key.encode()]
            assert await loaded() == [True] * len(nodes)
    finally:
        for node in nodes:
            await node.aclose()
        await client.aclose()


@pytest.mark.parametrize("kind", ["single", pytest.param("cluster", marks=pytest.mark.cluster)])
async def test_counter_scripts_come_back_after_script_flush(
    kind: str, redis_server: RedisServer, request: pytest.FixtureRequest
) -> None:
    """The counters' own scripts (ratelimit/lua), given a known target, after SCRIPT FLUSH on every node."""
    url = redis_server.url if kind == "single" else request.getfixturevalue("redis_cluster")
    target = RedisTarget.from_url(url, cluster=kind == "cluster")
    limiter = Limiter(RedisStorage(target, timeout=5.0))
    flusher = connect(target, **TIMEOUTS)
    account = f"acct-flush-{kind}-{uuid.uuid4().hex[:8]}"
    rule = Rule("broadcast", "day", 3)
    try:
        assert (await limiter.hit(account, [Charge(rule)])).allowed
        await flusher.script_flush()  # on a Cluster: every master
        assert (await limiter.hit(account, [Charge(rule)])).allowed
        assert (await limiter.hit(account, [Charge(rule)])).allowed
        assert not (await limiter.hit(account, [Charge(rule)])).allowed
    finally:
        await flusher.aclose()
        await limiter.aclose()
