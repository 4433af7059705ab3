"""The guard's own connections (guard.http.connections, `guard serve`): idle sockets, half-sent and trickled
header blocks, idle kept-alive connections and dripping bodies are closed; hundreds of sockets without a
client key cannot starve a keyed client, even under `ulimit -n 256`.

Real `guard serve` processes with short timeouts set through their GUARD_* settings. Each close is waited
for under a generous deadline; how long it took is never asserted.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path

import aiohttp
from servers import free_port
from support import DEADLINE, StubUpstream, eventually, wait_ready

from guard.http.auth import hash_key

KEY = "sockets-staff-key"
BROADCAST = "/cgi-bin/externalcontact/add_msg_template?access_token=T"
BROADCAST_BODY = {
    "chat_type": "single", "external_userid": ["wmSock01"], "sender": "wx_sock_1",
    "text": {"content": "新品"},
}  # fmt: skip
BODY = json.dumps(BROADCAST_BODY, ensure_ascii=False).encode()


@asynccontextmanager
async def served(
    tmp_path: Path, upstream: str, settings: dict[str, str], ulimit: int | None = None
) -> AsyncIterator[int]:
    """A `guard serve` process with one staff key and the given GUARD_* settings: its port."""
    config = tmp_path / "guard.toml"
    config.write_text(f'[[keys]]\nname = "scrm"\nhash = "{hash_key(KEY)}"\n', encoding="utf-8")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUARD_")}
    env.update({f"GUARD_{k.upper()}": v for k, v in settings.items()})
    env["GUARD_RELOAD_INTERVAL"] = "0"
    argv = [
        sys.executable, "-m", "guard", "serve", "--config", str(config), "--upstream", upstream,
        "--port", str(port),
    ]  # fmt: skip
    if ulimit is not None:
        # As the fault probe ran it: the guard's process may hold `ulimit` file descriptors.
        argv = ["bash", "-c", f"ulimit -n {ulimit} && exec {shlex.join(argv)}"]
    log = tmp_path / f"guard-{port}.log"
    with log.open("wb") as out:
        proc = await asyncio.to_thread(subprocess.Popen, argv, env=env, stdout=subprocess.DEVNULL, stderr=out)
        try:
            await asyncio.to_thread(wait_ready, f"http://127.0.0.1:{port}", proc, [log])
            yield port
        finally:
            proc.terminate()
            await asyncio.to_thread(proc.wait, 15)


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed `sock` (end of stream or reset), without blocking. Whatever answer
    bytes were pending are read and dropped."""
    while select.select([sock], [], [], 0)[0]:
        try:
            if not sock.recv(65536):
                return True
        except OSError:
            return True
    return False


def trickle_until_closed(sock: socket.socket, pieces: list[bytes]) -> bool:
    """Send `pieces` one every 0.2 s, as a slowloris client does, until the server closes the socket;
    False when every piece went out and the socket is still open."""
    for piece in pieces:
        if closed_by_server(sock):
            return True
        try:
            sock.sendall(piece)
        except OSError:
            return True
        time.sleep(0.2)
    return closed_by_server(sock)


async def test_idle_half_sent_trickled_kept_alive_and_dripping_sockets_are_closed(
    tmp_path: Path, stub: StubUpstream
) -> None:
    timeouts = {"header_timeout": "1", "keepalive_timeout": "1.5", "body_timeout": "1.5"}
    async with served(tmp_path, stub.url, timeouts) as port:
        idle = connect(port)
        half = connect(port)
        half.sendall(b"POST " + BROADCAST.encode() + b" HTTP/1.1\r\nHost: guard\r\nX-Guard-Key: ")
        kept = connect(port)
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: guard\r\n\r\n")
        dripping = connect(port)
        head = (
            f"POST {BROADCAST} HTTP/1.1\r\nHost: guard\r\nX-Guard-Key: {KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
        ).encode()
        dripping.sendall(head + BODY[:10])
        sockets = {"idle": idle, "half-sent header": half, "idle keep-alive": kept, "dripping body": dripping}
        with closing(idle), closing(half), closing(kept), closing(dripping):
            for name, sock in sockets.items():
                await eventually(lambda sock=sock: closed_by_server(sock), what=f"the {name} socket closed")
            # A slowloris client keeps sending header lines, never the blank line that ends them: the
            # header deadline holds all the same (at most 25 s of trickle before this test gives up).
            with closing(connect(port)) as slow:
                lines = [b"GET /healthz HTTP/1.1\r\n"] + [b"X-Slow-%d: 1\r\n" % i for i in range(125)]
                assert await asyncio.to_thread(trickle_until_closed, slow, lines), "slowloris still open"
        # The dripping broadcast was never forwarded; a whole one still is.
        assert stub.count() == 0
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"http://127.0.0.1:{port}{BROADCAST}",
                data=BODY,
                headers={"X-Guard-Key": KEY, "Content-Type": "application/json"},
            ) as resp,
        ):
            assert resp.status == 200 and (await resp.json())["errcode"] == 0
        assert stub.count() == 1


async def test_a_keyed_client_is_served_while_hundreds_of_sockets_without_a_key_are_open(
    tmp_path: Path, stub: StubUpstream
) -> None:
    # The fault: under `ulimit -n 256`, 300 idle sockets from a client that never sends a key used up
    # the guard's descriptors and every normal request failed. The header timeout is long here, so only
    # the cap on unauthenticated connections (a quarter of the limit: 64) can free them.
    async with served(tmp_path, stub.url, {"header_timeout": "600"}, ulimit=256) as port:
        keyless = [connect(port) for _ in range(300)]
        # Some of them have even sent a request without a key (answered 490008, then kept alive).
        for sock in keyless[-20:]:
            sock.sendall(b"GET /cgi-bin/user/get?userid=u HTTP/1.1\r\nHost: guard\r\n\r\n")
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
                for i in range(10):
                    body = BODY.replace(b"wx_sock_1", f"wx_sock_keyed_{i}".encode())
                    async with session.post(
                        f"http://127.0.0.1:{port}{BROADCAST}",
                        data=body,
                        headers={"X-Guard-Key": KEY, "Content-Type": "application/json"},
                    ) as resp:
                        assert resp.status == 200 and (await resp.json())["errcode"] == 0
            assert stub.count() == 10

            # The guard closed the oldest keyless sockets to stay under its cap.
            def closed() -> int:
                return sum(closed_by_server(sock) for sock in keyless)

            await eventually(lambda: closed() >= 300 - 64, what="the keyless sockets over the cap closed")
        finally:
            for sock in keyless:
                sock.close()
