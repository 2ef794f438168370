"""Datagram endpoints over UDP and Unix datagram sockets, on both loops."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from tests.support import LoopFactory
from tests.support import run_with_loop as run

pytestmark = pytest.mark.usefixtures("no_fd_leak")


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(data.upper(), addr)


class Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.errors: list[type[BaseException]] = []

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        self.errors.append(type(exc))

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost.set_result(None)


def test_udp_echo(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        server, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
        address = server.get_extra_info("sockname")
        client, proto = await loop.create_datagram_endpoint(Client, remote_addr=address)
        # 3.11's own datagram transport is no DatagramTransport subclass; aloop's always is.
        is_datagram = isinstance(client, asyncio.DatagramTransport)
        out: list[Any] = [is_datagram or type(loop).__module__.startswith("asyncio")]
        for message in (b"one", bytearray(b"two"), memoryview(b"x" * 60000)):
            client.sendto(message)
            out.append(len(await proto.received.get()))
        with pytest.raises(ValueError, match="Invalid address"):
            client.sendto(b"x", ("127.0.0.1", 1))
        with pytest.raises(TypeError, match="bytes-like object"):
            client.sendto("text")  # type: ignore[arg-type]
        out.append(client.get_write_buffer_size())
        client.close()
        await proto.lost
        server.close()
        await asyncio.sleep(0)
        return out

    assert run(loop_factory, main) == [True, 3, 3, 60000, 0]


def test_unix_datagrams(loop_factory: LoopFactory, tmp_path: Any) -> None:
    server_path = str(tmp_path / "server.sock")
    client_path = str(tmp_path / "client.sock")

    async def main(loop: asyncio.AbstractEventLoop) -> bytes:
        server, _ = await loop.create_datagram_endpoint(
            Echo, local_addr=server_path, family=socket.AF_UNIX
        )
        client, proto = await loop.create_datagram_endpoint(
            Client, local_addr=client_path, remote_addr=server_path, family=socket.AF_UNIX
        )
        client.sendto(b"unix")
        data = await proto.received.get()
        client.close()
        server.close()
        await proto.lost
        return data

    assert run(loop_factory, main) == b"UNIX"


def test_errors_and_options(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> list[str]:
        out = []
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for kwargs in (
            {},
            {"sock": sock, "local_addr": ("127.0.0.1", 0)},
            {"local_addr": "not a tuple"},
        ):
            try:
                await loop.create_datagram_endpoint(asyncio.DatagramProtocol, **kwargs)
            except (ValueError, TypeError) as exc:
                out.append(str(exc).split(" (")[0])
        sock.close()
        transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol,
            local_addr=("127.0.0.1", 0),
            reuse_port=True,
            allow_broadcast=True,
        )
        s = transport.get_extra_info("socket")
        out.append(str(s.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) != 0))
        transport.close()
        await asyncio.sleep(0)
        return out

    assert run(loop_factory, main) == [
        "unexpected address family",
        "socket modifier keyword arguments can not be used when sock is specified.",
        "2-tuple is expected",
        "True",
    ]


def test_send_to_closed_port_reports_error_received(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> list[type[BaseException]]:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            address = probe.getsockname()
        client, proto = await loop.create_datagram_endpoint(Client, remote_addr=address)
        client.sendto(b"anyone?")
        for _ in range(200):
            if proto.errors:
                break
            client.sendto(b"anyone?")
            await asyncio.sleep(0.005)
        client.close()
        await proto.lost
        return proto.errors[:1]

    assert run(loop_factory, main) == [ConnectionRefusedError]
