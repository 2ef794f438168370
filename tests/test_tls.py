"""TLS on both loops: ssl= connections and servers, start_tls, extra info, clean shutdown."""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

import pytest
from test.test_asyncio import utils as test_utils
from tests.conftest import LoopFactory
from tests.conftest import run_with_loop as run

pytestmark = pytest.mark.usefixtures("no_fd_leak")


def server_context() -> ssl.SSLContext:
    return test_utils.simple_server_sslcontext()  # type: ignore[no-any-return]


def client_context() -> ssl.SSLContext:
    return test_utils.simple_client_sslcontext()  # type: ignore[no-any-return]


async def upper_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data.upper())
        await writer.drain()
    writer.close()
    await writer.wait_closed()


def test_tls_streams_round_trip(loop_factory: LoopFactory) -> None:
    payload = b"abcdefgh" * 100_000

    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        server = await asyncio.start_server(upper_echo, "127.0.0.1", 0, ssl=server_context())
        async with server:
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_context(), server_hostname=""
            )
            out: list[Any] = [
                writer.get_extra_info("sslcontext") is not None,
                isinstance(writer.get_extra_info("ssl_object"), ssl.SSLObject),
                writer.get_extra_info("cipher") is not None,
                writer.get_extra_info("peername")[0],
                writer.can_write_eof(),
            ]
            writer.write(payload)
            await writer.drain()
            received = await reader.readexactly(len(payload))
            out.append(received == payload.upper())
            writer.close()
            await writer.wait_closed()
            return out

    assert run(loop_factory, main) == [True, True, True, "127.0.0.1", False, True]


def test_no_plaintext_leaves_a_tls_transport(loop_factory: LoopFactory) -> None:
    secret = b"this must never be seen on the wire"

    async def main(loop: asyncio.AbstractEventLoop) -> tuple[bool, bool]:
        wire = bytearray()
        done = loop.create_future()

        async def sniffer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # A plain TCP peer: records the raw bytes, then does TLS on top with start_tls.
            wire.extend(await reader.read(65536))  # the ClientHello
            done.set_result(None)
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(sniffer, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            client_task = asyncio.ensure_future(
                asyncio.open_connection("127.0.0.1", port, ssl=client_context(), server_hostname="")
            )
            await done
            with pytest.raises((ConnectionError, ssl.SSLError)):
                await client_task
        return secret not in wire, wire[:1] == b"\x16"  # a TLS handshake record

    assert run(loop_factory, main) == (True, True)


def test_start_tls_upgrades_both_sides(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> list[bytes]:
        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            assert await reader.readline() == b"STARTTLS\n"
            writer.write(b"GO\n")
            await writer.drain()
            await writer.start_tls(server_context())
            line = await reader.readline()
            writer.write(line.upper())
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(on_client, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"STARTTLS\n")
            go = await reader.readline()
            await writer.start_tls(client_context(), server_hostname="")
            writer.write(b"secret line\n")
            answer = await reader.readline()
            writer.close()
            await writer.wait_closed()
            return [go, answer]

    assert run(loop_factory, main) == [b"GO\n", b"SECRET LINE\n"]


def test_tls_argument_errors(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> list[str]:
        out = []
        for call in (
            lambda: loop.create_connection(asyncio.Protocol, ssl=client_context()),
            lambda: loop.create_server(asyncio.Protocol, "127.0.0.1", 0, ssl_shutdown_timeout=1),
            lambda: loop.create_unix_connection(asyncio.Protocol, "/nonexistent", ssl=True),
        ):
            try:
                await call()
            except ValueError as exc:
                out.append(str(exc))
        a, b = socket.socketpair()
        transport, proto = await loop.connect_accepted_socket(asyncio.Protocol, a)
        try:
            await loop.start_tls(transport, proto, "not a context")  # type: ignore[arg-type]
        except TypeError as exc:
            out.append(str(exc).split(",")[0])
        transport.close()
        b.close()
        await asyncio.sleep(0)
        return out

    assert run(loop_factory, main) == [
        "You must set server_hostname when using ssl without a host",
        "ssl_shutdown_timeout is only meaningful with ssl",
        "you have to pass server_hostname when using ssl",
        "sslcontext is expected to be an instance of ssl.SSLContext",
    ]


def test_failed_handshake_leaves_server_serving(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> tuple[bool, bytes]:
        server = await asyncio.start_server(upper_echo, "127.0.0.1", 0, ssl=server_context())
        async with server:
            port = server.sockets[0].getsockname()[1]
            strict = ssl.create_default_context()  # does not trust the test certificate
            failed = False
            try:
                await asyncio.open_connection(
                    "127.0.0.1", port, ssl=strict, server_hostname="localhost"
                )
            except (ssl.SSLError, ConnectionError):
                failed = True
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_context(), server_hostname=""
            )
            writer.write(b"ok")
            data = await reader.readexactly(2)
            writer.close()
            await writer.wait_closed()
            return failed, data

    assert run(loop_factory, main) == (True, b"OK")
