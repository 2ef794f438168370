"""The low-level socket API and DNS, on both loops: same results, same errors, no leaks."""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
from typing import Any

import pytest
from tests.support import LoopFactory, both
from tests.support import run_with_loop as run

import aloop

pytestmark = pytest.mark.usefixtures("no_fd_leak")


def nonblocking_pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


def test_sendall_and_recv_move_every_byte_in_order(loop_factory: LoopFactory) -> None:
    payload = bytes(range(256)) * 8192  # 2 MiB: more than the socket buffers hold

    async def main(loop: asyncio.AbstractEventLoop) -> bytes:
        a, b = nonblocking_pair()
        with a, b:
            received = bytearray()

            async def reader() -> None:
                while len(received) < len(payload):
                    chunk = await loop.sock_recv(b, 65536)
                    assert chunk
                    received.extend(chunk)

            task = asyncio.ensure_future(reader())
            await loop.sock_sendall(a, payload)
            await task
            return bytes(received)

    assert run(loop_factory, main) == payload


def test_recv_into_and_recvfrom_into(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> tuple[Any, ...]:
        a, b = nonblocking_pair()
        with a, b:
            buf = bytearray(10)
            loop.call_soon(a.send, b"hello")
            n = await loop.sock_recv_into(b, buf)
            u1 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            with u1, u2:
                u1.setblocking(False)
                u2.setblocking(False)
                u1.bind(("127.0.0.1", 0))
                u2.bind(("127.0.0.1", 0))
                sent = await loop.sock_sendto(u2, b"datagram", u1.getsockname())
                data, addr = await loop.sock_recvfrom(u1, 100)
                await loop.sock_sendto(u2, b"again", u1.getsockname())
                dbuf = bytearray(3)
                nbytes, addr2 = await loop.sock_recvfrom_into(u1, dbuf)
                return (
                    n,
                    bytes(buf[:n]),
                    sent,
                    data,
                    addr == u2.getsockname(),
                    nbytes,
                    bytes(dbuf),
                    addr2 == u2.getsockname(),
                )

    assert run(loop_factory, main) == (5, b"hello", 8, b"datagram", True, 3, b"aga", True)


def test_accept_and_connect_over_tcp_and_unix(loop_factory: LoopFactory, tmp_path: Any) -> None:
    async def exchange(loop: asyncio.AbstractEventLoop, family: int, address: Any) -> bytes:
        listener = socket.socket(family, socket.SOCK_STREAM)
        client = socket.socket(family, socket.SOCK_STREAM)
        with listener, client:
            listener.bind(address)
            listener.listen()
            listener.setblocking(False)
            client.setblocking(False)
            accepted = asyncio.ensure_future(loop.sock_accept(listener))
            await loop.sock_connect(client, listener.getsockname())
            conn, _ = await accepted
            with conn:
                assert conn.gettimeout() == 0  # accepted sockets are non-blocking
                await loop.sock_sendall(client, b"ping")
                return await loop.sock_recv(conn, 10)

    async def main(loop: asyncio.AbstractEventLoop) -> list[bytes]:
        return [
            await exchange(loop, socket.AF_INET, ("127.0.0.1", 0)),
            await exchange(loop, socket.AF_UNIX, str(tmp_path / "s.sock")),
        ]

    assert run(loop_factory, main) == [b"ping", b"ping"]


def test_connect_refused_raises_connection_refused(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> type[BaseException]:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]  # bound, never listening
            with socket.socket() as client:
                client.setblocking(False)
                try:
                    await loop.sock_connect(client, ("127.0.0.1", port))
                except OSError as exc:
                    return type(exc)
        return type(None)

    assert run(loop_factory, main) is ConnectionRefusedError


def test_cancelled_recv_and_accept_leave_no_reader(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> list[bool]:
        a, b = nonblocking_pair()
        listener = socket.socket()
        with a, b, listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            listener.setblocking(False)
            results = []
            for fut in (
                asyncio.ensure_future(loop.sock_recv(b, 10)),
                asyncio.ensure_future(loop.sock_accept(listener)),
            ):
                await asyncio.sleep(0)
                fut.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await fut
            results.append(loop.remove_reader(b.fileno()))
            results.append(loop.remove_reader(listener.fileno()))
            # The sockets still work afterwards.
            await loop.sock_sendall(a, b"x")
            results.append(await loop.sock_recv(b, 10) == b"x")
            return results

    assert run(loop_factory, main) == [False, False, True]


class _Swappable(socket.socket):
    """A socket whose methods an instance attribute can replace, as a mock's can."""


def test_a_waiting_operation_looks_its_method_up_on_each_try(loop_factory: LoopFactory) -> None:
    """A method replaced while ``sock_recv`` waits is the one retried, as on asyncio."""

    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        a, b = nonblocking_pair()
        with a, b, _Swappable(fileno=b.detach()) as swappable:
            calls = []

            def recv(n: int) -> bytes:
                calls.append(n)
                return socket.socket.recv(swappable, n)

            receiving = asyncio.ensure_future(loop.sock_recv(swappable, 10))
            await asyncio.sleep(0)  # waiting now: nothing to read yet
            swappable.recv = recv  # type: ignore[method-assign]
            await loop.sock_sendall(a, b"ping")
            return [await receiving, calls]

    assert run(loop_factory, main) == [b"ping", [10]]


def test_blocking_socket_is_refused_in_debug_mode(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> list[str]:
        loop.set_debug(True)
        a, b = socket.socketpair()
        messages = []
        with a, b:
            for call in (
                lambda: loop.sock_recv(a, 1),
                lambda: loop.sock_sendall(a, b"x"),
                lambda: loop.sock_recv_into(a, bytearray(1)),
            ):
                try:
                    await call()
                except ValueError as exc:
                    messages.append(str(exc))
        loop.set_debug(False)
        return messages

    assert run(loop_factory, main) == ["the socket must be non-blocking"] * 3


def test_ssl_socket_is_refused(loop_factory: LoopFactory) -> None:
    ssl = pytest.importorskip("ssl")

    async def main(loop: asyncio.AbstractEventLoop) -> str:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        with context.wrap_socket(socket.socket(), do_handshake_on_connect=False) as sock:
            try:
                await loop.sock_recv(sock, 1)
            except TypeError as exc:
                return str(exc)
        return ""

    assert run(loop_factory, main) == "Socket cannot be of type SSLSocket"


def test_socket_owned_by_a_transport_is_refused(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> str:
        a, b = socket.socketpair()
        with b:
            transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, a)
            try:
                await loop.sock_recv(a, 1)
            except RuntimeError as exc:
                return str(exc).split(" is used by transport")[0]
            finally:
                transport.close()
                await asyncio.sleep(0)
        return ""

    assert run(loop_factory, main).startswith("File descriptor")


def test_add_reader_and_writer_on_a_transports_fd_are_refused() -> None:
    """add_/remove_reader/writer on an open transport's fd raise; once it closed, they work."""

    async def main(loop: asyncio.AbstractEventLoop) -> list[str]:
        a, b = socket.socketpair()
        seen = []
        with b:
            transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, a)
            fd = a.fileno()
            calls: list[Any] = [
                lambda: loop.add_reader(fd, print),
                lambda: loop.add_writer(a, print),
                lambda: loop.remove_reader(fd),
                lambda: loop.remove_writer(a),
            ]
            for call in calls:
                try:
                    call()
                    seen.append("allowed")
                except RuntimeError as exc:
                    shown = str(exc).replace(repr(transport), "T").replace(repr(a), "S")
                    seen.append(shown.replace(f" {fd} ", " N "))
            transport.pause_reading()  # still open: still refused
            try:
                loop.add_reader(fd, print)
            except RuntimeError:
                seen.append("refused while paused")
            transport.close()
            # A closing transport no longer owns the fd.
            loop.add_reader(fd, print)
            seen.append(f"after close: {loop.remove_reader(fd)}")
            await asyncio.sleep(0)
        return seen

    got = both(main, run)
    assert got[:2] == [
        "File descriptor N is used by transport T",
        "File descriptor S is used by transport T",
    ]
    assert got[4:] == ["refused while paused", "after close: True"]


# -- DNS --------------------------------------------------------------------------------


def test_getaddrinfo_and_getnameinfo_match(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> tuple[Any, ...]:
        return (
            await loop.getaddrinfo("127.0.0.1", 80),
            await loop.getaddrinfo("::1", "443", type=socket.SOCK_STREAM),
            await loop.getaddrinfo("localhost", 80, family=socket.AF_INET),
            await loop.getnameinfo(("127.0.0.1", 80), socket.NI_NUMERICHOST),
        )

    expected = (
        socket.getaddrinfo("127.0.0.1", 80),
        socket.getaddrinfo("::1", "443", type=socket.SOCK_STREAM),
        socket.getaddrinfo("localhost", 80, family=socket.AF_INET),
        socket.getnameinfo(("127.0.0.1", 80), socket.NI_NUMERICHOST),
    )
    assert run(loop_factory, main) == expected


def test_getaddrinfo_errors_are_the_resolvers(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> type[BaseException]:
        try:
            await loop.getaddrinfo("127.0.0.1", 80, family=socket.AF_INET6)
        except OSError as exc:
            return type(exc)
        return type(None)

    assert run(loop_factory, main) is socket.gaierror


class _RefusingExecutor(concurrent.futures.ThreadPoolExecutor):
    def submit(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("numeric hosts must not go to the executor")


def test_numeric_hosts_never_leave_the_loop_thread() -> None:
    loop = aloop.new_event_loop()
    executor = _RefusingExecutor()
    loop.set_default_executor(executor)

    async def main() -> None:
        assert await loop.getaddrinfo("127.0.0.1", 8080, type=socket.SOCK_STREAM)
        assert await loop.getaddrinfo("::1", None)
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        transport.close()
        server.close()
        await server.wait_closed()

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
        executor.shutdown()


def test_empty_resolution_is_an_oserror(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> str:
        async def nothing(*args: Any, **kwargs: Any) -> list[Any]:
            return []

        loop.getaddrinfo = nothing  # type: ignore[method-assign]
        try:
            await loop.create_connection(asyncio.Protocol, "example.invalid", 80)
        except OSError as exc:
            return str(exc)
        return ""

    assert run(loop_factory, main) == "getaddrinfo() returned empty list"


def test_connection_failure_without_any_oserror_is_a_timeout() -> None:
    """asyncio 3.14's rule when a connection race ends with no OSError recorded."""
    from aloop._transports.connect import _failure

    for all_errors in (False, True):
        exc = _failure([], all_errors)
        assert (type(exc), str(exc)) == (TimeoutError, "create_connection failed")
    refused = ConnectionRefusedError(111, "refused")
    assert _failure([refused], False) is refused
