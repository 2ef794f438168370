"""loop.sendfile and loop.sock_sendfile on both loops: bytes, file positions, errors."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from tests.conftest import LoopFactory
from tests.conftest import run_with_loop as run

pytestmark = pytest.mark.usefixtures("no_fd_leak")

DATA = bytes(range(256)) * 4000  # ~1 MiB


async def drain_reader(reader: asyncio.StreamReader) -> bytes:
    return await reader.read()


def test_transport_sendfile_with_offset_and_count(loop_factory: LoopFactory, tmp_path: Any) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)

    async def main(loop: asyncio.AbstractEventLoop) -> tuple[int, int, bool, int, bool]:
        received: asyncio.Future[bytes] = loop.create_future()

        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            received.set_result(await reader.read())
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(on_client, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        with open(path, "rb") as f:
            writer.write(b"head")
            sent = await loop.sendfile(writer.transport, f, 1000, 500_000)
            position = f.tell()
            writer.write(b"tail")
            sent_all = await loop.sendfile(writer.transport, f)  # offset 0: the whole file
        writer.write_eof()
        data = await received
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        expected = b"head" + DATA[1000:501_000] + b"tail" + DATA
        return sent, position, data == expected, sent_all, True

    assert run(loop_factory, main) == (500_000, 501_000, True, len(DATA), True)


def test_sock_sendfile_and_its_argument_errors(loop_factory: LoopFactory, tmp_path: Any) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)

    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        out: list[Any] = []
        with a, b, open(path, "rb") as f, open(path) as text:
            received = bytearray()

            async def reader() -> None:
                while len(received) < 300_000:
                    received.extend(await loop.sock_recv(b, 65536))

            task = asyncio.ensure_future(reader())
            out.append(await loop.sock_sendfile(a, f, 0, 300_000))
            await task
            out.append(bytes(received) == DATA[:300_000])
            out.append(f.tell())
            for args, exc_type in (
                ((a, text), ValueError),
                ((a, f, -1), ValueError),
                ((a, f, 0, 0), ValueError),
                ((a, f, "x"), TypeError),
            ):
                try:
                    await loop.sock_sendfile(*args)
                except exc_type as exc:
                    out.append(str(exc))
        return out

    assert run(loop_factory, main) == [
        300_000,
        True,
        300_000,
        "file should be opened in binary mode",
        "offset must be a non-negative integer (got -1)",
        "count must be a positive integer (got 0)",
        "offset must be a non-negative integer (got 'x')",
    ]


def test_sendfile_on_a_closing_transport(loop_factory: LoopFactory, tmp_path: Any) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)

    async def main(loop: asyncio.AbstractEventLoop) -> str:
        a, b = socket.socketpair()
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, a)
        peer, _ = await loop.connect_accepted_socket(asyncio.Protocol, b)
        transport.close()
        try:
            with open(path, "rb") as f:
                await loop.sendfile(transport, f)
        except RuntimeError as exc:
            return str(exc)
        finally:
            peer.close()
            await asyncio.sleep(0.01)
        return ""

    assert run(loop_factory, main) == "Transport is closing"
