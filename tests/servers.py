"""Real servers for the tests: redis-server processes on free loopback ports.

No fakes: every test that counts talks to a real Redis (or to the in-memory backend, which is the
product's own embedded default).
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class RedisServer:
    """One redis-server process; can be stopped and started again on the same port."""

    def __init__(self, port: int | None = None, extra: list[str] | None = None) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError(
                "redis-server is not installed: run the README's test command (bash tests/run.sh)"
            )
        self.port = port or free_port()
        self.extra = extra or []
        self.dir = Path(tempfile.mkdtemp(prefix=f"siyu-redis-{self.port}-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [
            "redis-server",
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.dir),
            *self.extra,
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def free_cluster_port() -> int:
    """A free port for a cluster node: its bus port (port + 10000) must be free too, and Redis wants the
    port <= 55535. Both are drawn below the usual ephemeral range so outgoing connections do not take them."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(15000, 22000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


class RedisCluster:
    """A real Redis Cluster: `masters` redis-server processes in cluster mode on free ports, no replicas.

    Built with `redis-cli --cluster create … --cluster-yes`; `start()` returns once every node reports
    `cluster_state:ok`. `url` points at the first node (redis-py's cluster client discovers the rest).
    """

    def __init__(self, masters: int = 3) -> None:
        if shutil.which("redis-cli") is None:
            raise RuntimeError("redis-cli is not installed: run the README's test command: bash tests/run.sh")
        cluster_mode = ["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"]
        self.nodes = [RedisServer(port=free_cluster_port(), extra=list(cluster_mode)) for _ in range(masters)]
        for node in self.nodes:
            # Each node keeps its cluster state file in its own temporary directory.
            node.extra += ["--cluster-config-file", str(node.dir / "nodes.conf")]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def _cli(self, port: int, *args: str, timeout: float = 30.0) -> str:
        done = subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli {' '.join(args)} failed: {done.stdout}{done.stderr}")
        return done.stdout

    def start(self, timeout: float = 30.0) -> RedisCluster:
        try:
            for node in self.nodes:
                node.start()
            addresses = [f"127.0.0.1:{port}" for port in self.ports]
            subprocess.run(
                ["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=True,
            )
            deadline = time.monotonic() + timeout
            while True:
                states = [self._cli(port, "cluster", "info") for port in self.ports]
                if all("cluster_state:ok" in state for state in states):
                    return self
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cluster on ports {self.ports} not ok after {timeout}s")
                time.sleep(0.05)
        except BaseException:
            self.cleanup()
            raise

    def flush(self) -> None:
        for port in self.ports:
            self._cli(port, "flushall")

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()
