"""loop.sendfile and loop.sock_sendfile on both loops: bytes, file positions, errors."""

from __future__ import annotations

import asyncio
import io
import socket
import sys
from typing import Any

import pytest
from tests.support import LoopFactory
from tests.support import run_with_loop as run

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


# asyncio 3.14.6+ (gh-150107) always leaves the file at offset + bytes sent and
# always seeks to offset first; earlier versions moved the file only after
# sending something and seeked first only for a non-zero offset.
SEEK_ALWAYS = sys.version_info >= (3, 14, 6)
PRESET = 123  # where the file stands before each call


async def sendfile_on_transport(
    loop: asyncio.AbstractEventLoop, file: Any, offset: int
) -> tuple[int, int, bytes]:
    """``loop.sendfile`` over a socket transport: (sent, file.tell(), received)."""
    a, b = socket.socketpair()
    transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, a)
    reader = asyncio.StreamReader()
    peer, _ = await loop.connect_accepted_socket(lambda: asyncio.StreamReaderProtocol(reader), b)
    received_task = asyncio.ensure_future(reader.read())  # flow control: read meanwhile
    file.seek(PRESET)
    sent = await loop.sendfile(transport, file, offset)
    position = file.tell()
    transport.close()
    received = await received_task
    peer.close()
    return sent, position, received


async def sock_sendfile_on_socket(
    loop: asyncio.AbstractEventLoop, file: Any, offset: int
) -> tuple[int, int, bytes]:
    """``loop.sock_sendfile`` on a socket: (sent, file.tell(), received)."""
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    with a, b:
        received = bytearray()

        async def read_all() -> None:
            while chunk := await loop.sock_recv(b, 65536):
                received.extend(chunk)

        task = asyncio.ensure_future(read_all())
        file.seek(PRESET)
        sent = await loop.sock_sendfile(a, file, offset)
        position = file.tell()
        a.shutdown(socket.SHUT_WR)
        await task
    return sent, position, bytes(received)


@pytest.mark.parametrize("through", ["transport", "socket"])
def test_file_position_after_sendfile(
    loop_factory: LoopFactory, tmp_path: Any, through: str
) -> None:
    """Where each of the native and fallback paths leaves the file, per version."""
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    send = sendfile_on_transport if through == "transport" else sock_sendfile_on_socket

    async def main(loop: asyncio.AbstractEventLoop) -> list[tuple[int, int, bool]]:
        out = []
        with open(path, "rb") as f:
            # The native path, with nothing left to send after the offset.
            sent, position, received = await send(loop, f, len(DATA))
            out.append((sent, position, received == b""))
        # The fallback (no fileno), from offset 0 with the file moved away.
        sent, position, received = await send(loop, io.BytesIO(DATA), 0)
        out.append((sent, position, received == DATA[len(DATA) - sent :]))
        return out

    size = len(DATA)
    if SEEK_ALWAYS:
        expected = [(0, size, True), (size, size, True)]
    else:
        expected = [(0, PRESET, True), (size - PRESET, size - PRESET, True)]
    assert run(loop_factory, main) == expected
