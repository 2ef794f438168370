"""aiohttp as users run it, on the stdlib loop and on aloop: static files, client, pipelining.

Each test runs one program on both loops (the ``loop_factory`` fixture) over
real loopback sockets and checks what it saw.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
from pathlib import Path
from typing import Any

import pytest
from tests.support import LoopFactory, run_with_loop

aiohttp = pytest.importorskip("aiohttp", reason="aiohttp is a dev dependency (scripts/env.sh)")
web = pytest.importorskip("aiohttp.web")
web_fileresponse = pytest.importorskip("aiohttp.web_fileresponse")

pytestmark = pytest.mark.usefixtures("no_fd_leak")

FILE_SIZE = 5 * 1024 * 1024 + 12345  # several MiB, not a multiple of any page or chunk
PIPELINED = 20


def content(size: int) -> bytes:
    """Bytes that differ at every offset, so a shifted or repeated chunk shows."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:size])


@pytest.fixture(scope="module")
def static_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("static")
    (root / "big.bin").write_bytes(content(FILE_SIZE))
    (root / "small.txt").write_text("small file\n")
    return root


async def start(app: Any) -> tuple[Any, int]:
    """Serve ``app`` on a free loopback port: its runner and the port."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


def test_static_files_through_sendfile(loop_factory: LoopFactory, static_dir: Path) -> None:
    """``web.static`` serves files with ``loop.sendfile``: whole files, ranges, in parallel."""
    assert not web_fileresponse.NOSENDFILE, "AIOHTTP_NOSENDFILE is set: no loop.sendfile"
    expected = content(FILE_SIZE)

    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        app = web.Application()
        app.add_routes([web.static("/static", static_dir)])
        runner, port = await start(app)
        base = f"http://127.0.0.1:{port}/static"
        try:
            async with aiohttp.ClientSession(auto_decompress=False) as session:
                async with session.get(f"{base}/big.bin") as r:
                    whole = (r.status, r.headers["Content-Length"], await r.read() == expected)
                async with session.get(f"{base}/small.txt") as r:
                    small = (r.status, await r.text())
                headers = {"Range": "bytes=1000-3000999"}
                async with session.get(f"{base}/big.bin", headers=headers) as r:
                    ranged = (r.status, await r.read() == expected[1000:3001000])

                async def fetch() -> bool:
                    async with session.get(f"{base}/big.bin") as r:
                        return bool(await r.read() == expected)

                parallel = await asyncio.gather(*(fetch() for _ in range(4)))
                async with session.get(f"{base}/missing.bin") as r:
                    missing = r.status
        finally:
            await runner.cleanup()
        return [whole, small, ranged, parallel, missing]

    assert run_with_loop(loop_factory, main) == [
        (200, str(FILE_SIZE), True),
        (200, "small file\n"),
        (206, True),
        [True] * 4,
        404,
    ]


def counting_app(queued: list[int]) -> Any:
    """``/n/<i>`` answers ``i``; each handler notes how many requests wait behind it."""

    async def number(request: Any) -> Any:
        # What aiohttp has parsed but not yet handled on this connection.
        queued.append(len(request.protocol._messages))
        return web.Response(text=request.match_info["i"])

    app = web.Application()
    app.add_routes([web.get("/n/{i}", number)])
    return app


def request(i: int, last: bool = False) -> bytes:
    close = "Connection: close\r\n" if last else ""
    return f"GET /n/{i} HTTP/1.1\r\nHost: localhost\r\n{close}\r\n".encode()


def bodies(raw: bytes) -> list[str]:
    """The bodies of a stream of HTTP/1.1 responses with Content-Length, in order."""
    out = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        assert lines[0] == "HTTP/1.1 200 OK", lines[0]
        fields = dict(line.split(": ", 1) for line in lines[1:])
        length = int(fields["Content-Length"])
        out.append(rest[:length].decode())
        raw = rest[length:]
    return out


async def pipeline(loop: asyncio.AbstractEventLoop, port: int) -> list[str]:
    """On a raw socket: one request and its answer, then PIPELINED requests in one send."""
    with socket.socket() as sock:
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        await loop.sock_sendall(sock, request(0))
        raw = b""
        while not raw.endswith(b"\r\n\r\n0"):  # the first response, whose body is "0"
            raw += await loop.sock_recv(sock, 65536)
        burst = b"".join(request(i, i == PIPELINED) for i in range(1, PIPELINED + 1))
        await loop.sock_sendall(sock, burst)
        while chunk := await loop.sock_recv(sock, 65536):  # the server closes after the last
            raw += chunk
    return bodies(raw)


def run_pipeline(loop_factory: LoopFactory) -> tuple[list[str], list[int]]:
    queued: list[int] = []

    async def main(loop: asyncio.AbstractEventLoop) -> list[str]:
        runner, port = await start(counting_app(queued))
        try:
            return await pipeline(loop, port)
        finally:
            await runner.cleanup()

    return run_with_loop(loop_factory, main), queued


def test_pipelined_requests_answered_in_order(loop_factory: LoopFactory) -> None:
    got, queued = run_pipeline(loop_factory)
    assert got == [str(i) for i in range(PIPELINED + 1)]
    assert len(queued) == PIPELINED + 1


def test_pipelined_burst_arrives_in_one_read(loop_factory: LoopFactory) -> None:
    """Requests sent in one send reach aiohttp in one ``data_received``, as on asyncio.

    When the burst's first request is handled, the other PIPELINED - 1 are
    already parsed and queued behind it (aiohttp's queue, pinned version).
    The request before the burst had a small answer: what is read next must
    not be sized from it.
    """
    _, queued = run_pipeline(loop_factory)
    assert queued[1] == PIPELINED - 1, queued
