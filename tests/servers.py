"""Real servers for the tests: redis-server processes on free loopback ports.

No fakes: every test that counts talks to a real Redis (or to the in-memory backend, which is the
product's own embedded default).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
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


def stop_all(procs: list[subprocess.Popen[bytes]], timeout: float = 10.0) -> None:
    """Terminate processes, the last started first; kill any still running after `timeout` seconds."""
    for proc in reversed(procs):
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()


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


class ReplicatedCluster(RedisCluster):
    """A real Redis Cluster that can fail over: `masters` masters with `replicas` replicas each, every node
    with an append-only file synced on every write, a short `node_timeout` (ms) so that a master that stops
    answering is failed over within seconds, and `cluster-replica-validity-factor 0` so that a replica of a
    busy master is never too stale to be promoted.

    `start()` only launches the processes and joins them (`redis-cli --cluster create`); the caller waits
    for `problems()` to come back empty — every node `cluster_state:ok` and knowing every other node, every
    replica attached to its master and in sync — with its own `eventually` / `wait_until`, since startup
    takes as long as the machine needs. The other helpers read the live topology: which master serves a
    key's slot, its replicas, and stopping, freezing or starting one node.
    """

    def __init__(self, masters: int = 3, replicas: int = 1, node_timeout: int = 1000) -> None:
        super().__init__(masters=masters * (1 + replicas))
        self.masters = masters
        self.replicas = replicas
        for node in self.nodes:
            node.extra += [
                "--cluster-node-timeout", str(node_timeout),
                "--cluster-replica-validity-factor", "0",
                "--appendonly", "yes",
                "--appendfsync", "always",
            ]  # fmt: skip

    def start(self, timeout: float = 60.0) -> ReplicatedCluster:
        try:
            for node in self.nodes:
                node.start()
            addresses = [f"127.0.0.1:{port}" for port in self.ports]
            replicas = ["--cluster-replicas", str(self.replicas)]
            subprocess.run(
                ["redis-cli", "--cluster", "create", *addresses, *replicas, "--cluster-yes"],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=True,
            )
        except BaseException:
            self.cleanup()
            raise
        return self

    def node(self, port: int) -> RedisServer:
        return next(node for node in self.nodes if node.port == port)

    def topology(self, via: int | None = None) -> list[dict[str, str]]:
        """`CLUSTER NODES` as seen from node `via` (default: the first running node), one dict a node:
        id, port, role (master / slave), master (its master's id or "-"), flags, link."""
        if via is None:
            via = next(node.port for node in self.nodes if node.proc is not None)
        rows = []
        for line in self._cli(via, "cluster", "nodes", timeout=5.0).splitlines():
            fields = line.split()
            if len(fields) < 8:
                continue
            flags = fields[2].split(",")
            rows.append({
                "id": fields[0],
                "port": fields[1].split("@")[0].rsplit(":", 1)[1],
                "role": "master" if "master" in flags else "slave",
                "master": fields[3],
                "flags": fields[2],
                "link": fields[7],
            })  # fmt: skip
        return rows

    def master_of(self, key: str, via: int | None = None) -> int:
        """The port of the master serving `key`'s slot, as node `via` sees the Cluster."""
        if via is None:
            via = next(node.port for node in self.nodes if node.proc is not None)
        slot = int(self._cli(via, "cluster", "keyslot", key, timeout=5.0).strip())
        for line in self._cli(via, "cluster", "nodes", timeout=5.0).splitlines():
            fields = line.split()
            if len(fields) < 9 or "master" not in fields[2].split(","):
                continue
            for served in fields[8:]:
                if served.startswith("["):
                    continue  # a slot being migrated or imported
                first, _, last = served.partition("-")
                if int(first) <= slot <= int(last or first):
                    return int(fields[1].split("@")[0].rsplit(":", 1)[1])
        raise RuntimeError(f"no master serves slot {slot} (seen from {via})")

    def replicas_of(self, port: int) -> list[int]:
        """Ports of the replicas attached to the master on `port`."""
        rows = self.topology()
        master = next(row["id"] for row in rows if row["port"] == str(port))
        return [int(row["port"]) for row in rows if row["master"] == master and "fail" not in row["flags"]]

    def problems(self) -> list[str]:
        """What keeps the Cluster from being ready to fail over; empty when it is ready."""
        found: list[str] = []
        running = [node.port for node in self.nodes if node.proc is not None]
        for port in running:
            try:
                info = self._cli(port, "cluster", "info", timeout=5.0)
                replication = self._cli(port, "info", "replication", timeout=5.0)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                found.append(f"{port}: {exc}")
                continue
            if "cluster_state:ok" not in info:
                found.append(f"{port}: cluster_state not ok")
            if f"cluster_known_nodes:{len(self.nodes)}" not in info:
                found.append(f"{port}: does not know every node yet")
            if "role:slave" in replication and (
                "master_link_status:up" not in replication or "master_sync_in_progress:0" not in replication
            ):
                found.append(f"{port}: replica not in sync")
            if "role:master" in replication:
                expected = self.replicas if len(running) == len(self.nodes) else 0
                connected = int(replication.split("connected_slaves:", 1)[1].split()[0])
                if connected < expected:
                    found.append(f"{port}: {connected} of {expected} replicas attached")
        return found

    def introduce(self) -> None:
        """Every running node told of every other (`CLUSTER MEET`; a no-op for nodes it knows). A node drops a
        handshake that does not complete within the node timeout and does not try it again: on a starved
        machine (two busy loops beside the tests) a node can stay a stranger to another for good, and the
        Cluster then never gets ready (seen once: `does not know every node yet` for 60 s)."""
        running = [node.port for node in self.nodes if node.proc is not None]
        for port in running:
            for other in running:
                if other != port:
                    with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                        self._cli(port, "cluster", "meet", "127.0.0.1", str(other), timeout=5.0)

    def ready(self) -> bool:
        return not self.problems()

    def kill(self, port: int) -> None:
        """SIGKILL the node on `port` (its append-only file stays for a later `revive`)."""
        node = self.node(port)
        assert node.proc is not None
        node.proc.kill()
        node.proc.wait(timeout=10)
        node.proc = None

    def revive(self, port: int) -> None:
        """Start the node on `port` again, with its directory (append-only file and cluster state file)."""
        self.node(port).start()

    def freeze(self, port: int) -> None:
        """SIGSTOP the node on `port`: its sockets stay open, it answers nothing (a hung server)."""
        proc = self.node(port).proc
        assert proc is not None
        os.kill(proc.pid, signal.SIGSTOP)

    def thaw(self, port: int) -> None:
        proc = self.node(port).proc
        if proc is not None:
            os.kill(proc.pid, signal.SIGCONT)

    def cleanup(self) -> None:
        for node in self.nodes:
            self.thaw(node.port)  # a stopped process would not stop on SIGTERM
        super().cleanup()
