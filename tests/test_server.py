"""Servers: create_server/create_unix_server and the Server object, on both loops."""

from __future__ import annotations

import asyncio
import contextvars
import errno
import os
import socket
import sys
from collections.abc import Coroutine
from typing import Any

import pytest
from tests.support import LoopFactory, client_context, requires_test_certs, server_context
from tests.support import run_with_loop as run

import aloop

pytestmark = pytest.mark.usefixtures("no_fd_leak")


async def hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"hello")
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def fetch(port: int, host: str = "127.0.0.1") -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    return data


def test_server_lifecycle(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        server = await asyncio.start_server(hello, "127.0.0.1", 0, start_serving=False)
        out: list[Any] = [server.is_serving(), server.get_loop() is loop]
        port = server.sockets[0].getsockname()[1]
        await server.start_serving()
        out.append(server.is_serving())
        out.append(await fetch(port))
        server.close()
        out.append(server.is_serving())
        out.append(server.sockets)
        await server.wait_closed()
        try:
            await fetch(port)
        except ConnectionRefusedError:
            out.append("refused")
        return out

    assert run(loop_factory, main) == [False, True, True, b"hello", False, (), "refused"]


def test_serve_forever_until_cancelled_and_async_with(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        server = await asyncio.start_server(hello, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        out: list[Any] = []
        async with server:
            task = asyncio.ensure_future(server.serve_forever())
            await asyncio.sleep(0)
            with pytest.raises(RuntimeError, match="already being awaited"):
                await server.serve_forever()
            out.append(await fetch(port))
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            out.append(server.is_serving())
        with pytest.raises(RuntimeError, match="is closed"):
            await server.serve_forever()
        return out

    assert run(loop_factory, main) == [b"hello", False]


def test_several_hosts_and_reuse_port(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        hosts = ["127.0.0.1", "::1"] if socket.has_ipv6 else ["127.0.0.1"]
        server = await asyncio.start_server(hello, hosts, 0, reuse_port=True)
        families = sorted(s.family for s in server.sockets)
        port = server.sockets[0].getsockname()[1]
        second = None
        if len(hosts) == 1:
            port_for = port
        else:
            server.close()
            await server.wait_closed()
            server = await asyncio.start_server(hello, hosts, port, reuse_port=True)
            port_for = port
        second = await asyncio.start_server(hello, "127.0.0.1", port_for, reuse_port=True)
        results = [await fetch(port_for, h) for h in hosts]
        for s in (server, second):
            s.close()
            await s.wait_closed()
        return [len(families) == len(hosts), results]

    hosts_count = 2 if socket.has_ipv6 else 1
    assert run(loop_factory, main) == [True, [b"hello"] * hosts_count]


def test_address_in_use_message(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> tuple[int | None, bool]:
        server = await asyncio.start_server(hello, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            await asyncio.start_server(hello, "127.0.0.1", port, reuse_address=False)
        except OSError as exc:
            return exc.errno, str(exc).startswith(
                f"[Errno {errno.EADDRINUSE}] error while attempting to bind on address "
                f"('127.0.0.1', {port}): "
            )
        finally:
            server.close()
            await server.wait_closed()
        return None, False

    assert run(loop_factory, main) == (errno.EADDRINUSE, True)


def test_create_server_from_socket_and_errors(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = await loop.create_server(asyncio.Protocol, sock=sock)
        out: list[Any] = [server.sockets[0].getsockname() == sock.getsockname()]
        server.close()
        await server.wait_closed()
        out.append(sock.fileno())  # the server closed it
        for kwargs in (
            {},
            {"host": "127.0.0.1", "port": 0, "sock": socket.socket()},
            {"host": "127.0.0.1", "port": 0, "ssl_handshake_timeout": 1.0},
        ):
            try:
                await loop.create_server(asyncio.Protocol, **kwargs)
            except ValueError as exc:
                out.append(str(exc))
            finally:
                if "sock" in kwargs:
                    kwargs["sock"].close()
        with pytest.raises(TypeError, match="ssl argument must be an SSLContext or None"):
            await loop.create_server(asyncio.Protocol, "127.0.0.1", 0, ssl=True)  # type: ignore[arg-type]
        return out

    assert run(loop_factory, main) == [
        True,
        -1,
        "Neither host/port nor sock were specified",
        "host/port and sock can not be specified at the same time",
        "ssl_handshake_timeout is only meaningful with ssl",
    ]


def test_unix_server_replaces_a_stale_socket_file(loop_factory: LoopFactory, tmp_path: Any) -> None:
    path = str(tmp_path / "srv.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()

    async def main(loop: asyncio.AbstractEventLoop) -> bytes:
        server = await asyncio.start_unix_server(hello, path)
        async with server:
            reader, writer = await asyncio.open_unix_connection(path)
            data = await reader.read()
            writer.close()
            await writer.wait_closed()
        return data

    assert run(loop_factory, main) == b"hello"
    # 3.13 removes the socket file when the server closes; earlier versions leave it.
    assert os.path.exists(path) == (sys.version_info < (3, 13))


def test_wait_closed_waits_for_connections_on_312_and_later(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> list[str]:
        events: list[str] = []
        release = asyncio.Event()

        async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await release.wait()
            writer.close()
            await writer.wait_closed()
            events.append("handler done")

        server = await asyncio.start_server(slow, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(0.01)
        server.close()

        async def closer() -> None:
            await server.wait_closed()
            events.append("wait_closed returned")

        task = asyncio.ensure_future(closer())
        await asyncio.sleep(0.01)
        release.set()
        await reader.read()
        writer.close()
        await writer.wait_closed()
        await task
        return events

    result = run(loop_factory, main)
    if sys.version_info >= (3, 12):
        assert result == ["handler done", "wait_closed returned"]
    else:
        assert result[0] == "wait_closed returned"


def test_close_clients_and_abort_clients() -> None:
    # Server.close_clients/abort_clients are 3.13 API; aloop's Server has them on
    # every version, so this runs on aloop only (the stdlib's lacks them before 3.13).
    async def main() -> list[Any]:
        lost: list[Any] = []

        class P(asyncio.Protocol):
            def connection_lost(self, exc: BaseException | None) -> None:
                lost.append(exc)

        server = await asyncio.get_running_loop().create_server(P, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        clients = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        while len(server._clients) < 3:  # type: ignore[attr-defined]
            await asyncio.sleep(0.001)
        server.close()
        server.close_clients()  # type: ignore[attr-defined]
        await server.wait_closed()
        for _, writer in clients:
            writer.close()
            await writer.wait_closed()
        return lost

    assert aloop.run(main()) == [None, None, None]


# gh-123720 (3.13.15, 3.14.7): cancelling serve_forever() closes the connections too.
CANCEL_CLOSES_CLIENTS = sys.version_info >= (
    (3, 13, 15) if sys.version_info < (3, 14) else (3, 14, 7)
)


def test_cancelled_serve_forever_and_a_client_that_never_sends(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        made: asyncio.Future[asyncio.BaseTransport] = loop.create_future()
        lost: asyncio.Future[BaseException | None] = loop.create_future()

        class Quiet(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                made.set_result(transport)

            def connection_lost(self, exc: BaseException | None) -> None:
                lost.set_result(exc)

        server = await loop.create_server(Quiet, "127.0.0.1", 0)
        task = asyncio.ensure_future(server.serve_forever())
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        transport = await made
        task.cancel()
        for _ in range(5):  # the cancellation runs in the serve_forever task
            await asyncio.sleep(0)
        out: list[Any] = [transport.is_closing(), server.is_serving()]
        if transport.is_closing():
            out.append(await reader.read())  # EOF: the server closed its side
        writer.close()  # older versions wait for the client to go
        await writer.wait_closed()
        with pytest.raises(asyncio.CancelledError):
            await task
        out.append(await lost)
        return out

    expected: list[Any] = [CANCEL_CLOSES_CLIENTS, False]
    if CANCEL_CLOSES_CLIENTS:
        expected.append(b"")
    assert run(loop_factory, main) == [*expected, None]


# -- each connection's own context (3.15, gh-140947) ---------------------------------------------

# 3.15 runs a stream connection's callbacks in a context of its own: a copy of
# the server's (made where create_server was called) or, for a client, of the
# caller's. Before, each callback ran in a copy of whatever context registered
# it, so a task that resumed reading or wrote lent its variables to them.
PER_CONNECTION_CONTEXT = sys.version_info >= (3, 15)

# The variables the scenarios set; a callback's record lists those it sees.
SCOPE = contextvars.ContextVar[str]("ctx_scope")
FACTORY = contextvars.ContextVar[int]("ctx_factory")
MADE = contextvars.ContextVar[str]("ctx_made")
RESUMER = contextvars.ContextVar[str]("ctx_resumer")
WRITER = contextvars.ContextVar[str]("ctx_writer")
# Far more than the small socket buffers below hold: the writer callback runs.
FLOOD = 4 * 1024 * 1024
SMALL_BUFFER = 64 * 1024

Contexts = dict[str, list[tuple[str, ...]]]


class ContextLog:
    """Which of the ``ctx_`` variables each callback saw (each distinct view once)."""

    def __init__(self) -> None:
        self.calls: dict[str, set[tuple[str, ...]]] = {}

    def note(self, where: str) -> None:
        view = sorted(
            f"{var.name[4:]}={value}"
            for var, value in contextvars.copy_context().items()
            if var.name.startswith("ctx_")
        )
        self.calls.setdefault(where, set()).add(tuple(view))

    def result(self) -> Contexts:
        return {where: sorted(views) for where, views in sorted(self.calls.items())}


def small_buffers(transport: Any) -> None:
    """No kernel autotuning: a flood of writes must wait for the writer callback."""
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)


TLS_OR_NOT = [
    pytest.param(False, id="tcp"),
    pytest.param(True, id="tls", marks=requires_test_certs),
]


def tls_contexts(tls: bool) -> tuple[Any, Any]:
    if not tls:
        return None, None
    return server_context(), client_context()


class Logged(asyncio.Protocol):
    """Logs each callback's view; tasks it starts resume reading, or flood and close."""

    def __init__(self, log: ContextLog, lost: asyncio.Future[None]) -> None:
        log.note("factory")
        FACTORY.set(FACTORY.get(0) + 1)
        self.log = log
        self.lost = lost
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: Any) -> None:
        self.log.note("connection_made")
        MADE.set("yes")
        self.transport = transport
        small_buffers(transport)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def resume(self, reply: bytes) -> None:
        RESUMER.set("yes")
        self.transport.resume_reading()
        self.transport.write(reply)

    async def flood(self, flooded: asyncio.Event) -> None:
        WRITER.set("yes")
        self.transport.set_write_buffer_limits(high=SMALL_BUFFER)
        self.transport.write(b"x" * FLOOD)
        self.transport.close()
        flooded.set()

    def pause_writing(self) -> None:
        self.log.note("pause_writing")

    def resume_writing(self) -> None:
        self.log.note("resume_writing")

    def eof_received(self) -> None:
        self.log.note("eof_received")

    def connection_lost(self, exc: BaseException | None) -> None:
        self.log.note("connection_lost")
        self.lost.set_result(None)


async def server_contexts(tls: bool) -> Contexts:
    """Two connections in turn: a task resumes reading, another floods and closes."""
    loop = asyncio.get_running_loop()
    log = ContextLog()
    server_ssl, client_ssl = tls_contexts(tls)
    flooded = asyncio.Event()
    lost: list[asyncio.Future[None]] = []

    class Served(Logged):
        def data_received(self, data: bytes) -> None:
            self.log.note(f"data_received {data.decode()}")
            if data == b"first":
                self.transport.pause_reading()
                self.spawn(self.resume(b"ok"))
            else:
                self.spawn(self.flood(flooded))

    def factory() -> Served:
        lost.append(loop.create_future())
        return Served(log, lost[-1])

    SCOPE.set("creator")
    server = await loop.create_server(factory, "127.0.0.1", 0, ssl=server_ssl, start_serving=False)
    SCOPE.set("starter")
    await server.start_serving()
    SCOPE.set("after")
    async with server:
        for _ in range(2):
            flooded.clear()
            reader, writer = await asyncio.open_connection(
                *server.sockets[0].getsockname()[:2],
                ssl=client_ssl,
                server_hostname="" if tls else None,
            )
            small_buffers(writer)
            writer.write(b"first")
            assert await reader.readexactly(2) == b"ok"
            writer.write(b"second")  # only once reading was resumed
            await flooded.wait()
            assert len(await reader.read()) == FLOOD
            writer.close()
            await writer.wait_closed()
            await lost[-1]
    return log.result()


async def client_contexts(tls: bool) -> Contexts:
    """A create_connection client: a task resumes reading, another floods and closes."""
    loop = asyncio.get_running_loop()
    log = ContextLog()
    server_ssl, client_ssl = tls_contexts(tls)
    flooded = asyncio.Event()
    lost: asyncio.Future[None] = loop.create_future()
    received: asyncio.Future[int] = loop.create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        small_buffers(writer)
        writer.write(b"one")
        assert await reader.readexactly(2) == b"go"
        await flooded.wait()
        size = len(await reader.read())
        writer.close()
        await writer.wait_closed()
        received.set_result(size)

    class Client(Logged):
        def data_received(self, data: bytes) -> None:
            self.log.note(f"data_received {data.decode()}")
            self.transport.pause_reading()
            self.spawn(self.resume(b"go"))
            self.spawn(self.flood(flooded))

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ssl)
    async with server:
        SCOPE.set("caller")
        await loop.create_connection(
            lambda: Client(log, lost),
            *server.sockets[0].getsockname()[:2],
            ssl=client_ssl,
            server_hostname="" if tls else None,
        )
        SCOPE.set("after")
        await lost
        assert await received == FLOOD
    return log.result()


def view(*names: str) -> list[tuple[str, ...]]:
    return [tuple(sorted(names))]


@pytest.mark.parametrize("tls", TLS_OR_NOT)
def test_server_connection_callbacks_run_in_their_own_context(
    loop_factory: LoopFactory, tls: bool
) -> None:
    # 3.15: a copy of the context create_server was called in, one per
    # connection, whoever starts the server or resumes and writes. Before: the
    # context that started serving, then the registering task's; the protocol
    # factory runs in a copy of its own per connection on every version.
    scope = "scope=creator" if PER_CONNECTION_CONTEXT else "scope=starter"
    made = view("factory=1", "made=yes", scope)
    expected: Contexts = {
        "factory": view(scope),
        "connection_made": view("factory=1", scope),
        "data_received first": made,
        "data_received second": made,
        "connection_lost": made,
    }
    if tls:
        # The TLS layer calls the protocol from the raw transport's callbacks.
        expected["eof_received"] = made
    elif PER_CONNECTION_CONTEXT:
        expected["pause_writing"] = view("factory=1", "made=yes", scope, "writer=yes")
        expected["resume_writing"] = made
    else:
        flooder = view("factory=1", "resumer=yes", scope, "writer=yes")
        expected["data_received first"] = view("factory=1", scope)
        expected["data_received second"] = view("factory=1", "resumer=yes", scope)
        expected["pause_writing"] = expected["resume_writing"] = flooder
        expected["connection_lost"] = flooder
    assert run(loop_factory, lambda _loop: server_contexts(tls)) == expected


@pytest.mark.parametrize("tls", TLS_OR_NOT)
def test_client_connection_callbacks_run_in_their_own_context(
    loop_factory: LoopFactory, tls: bool
) -> None:
    # 3.15: a copy of the caller's context taken before the protocol factory
    # runs, shared by all the connection's callbacks. Before: each callback saw
    # the context that registered it.
    factory = () if PER_CONNECTION_CONTEXT else ("factory=1",)
    made = view(*factory, "made=yes", "scope=caller")
    expected: Contexts = {
        "factory": view("scope=caller"),
        "connection_made": view(*factory, "scope=caller"),
        "data_received one": made,
        "connection_lost": made,
    }
    if tls:
        expected["eof_received"] = made
    elif PER_CONNECTION_CONTEXT:
        expected["pause_writing"] = view("made=yes", "scope=caller", "writer=yes")
        expected["resume_writing"] = made
    else:
        flooder = view("factory=1", "scope=caller", "writer=yes")
        expected["data_received one"] = view("factory=1", "scope=caller")
        expected["pause_writing"] = expected["resume_writing"] = flooder
        expected["connection_lost"] = flooder
    assert run(loop_factory, lambda _loop: client_contexts(tls)) == expected
