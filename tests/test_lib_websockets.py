"""websockets as users run it, on the stdlib loop and on aloop.

Ping/pong, broadcast, backpressure, reconnection and server shutdown, with the
new asyncio API (``websockets.asyncio``) and the legacy server where the
installed version still ships it. Each program runs on both loops over real
loopback sockets.

Some tests count loop iterations (``await asyncio.sleep(0)``) until a peer in
the same process has seen what was written: the stdlib loop polls for I/O on
every iteration, so a write is read by the peer in the next one and its answer
in the one after. websockets' own tests and code rely on that.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import socket
import warnings
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, cast

import pytest
from tests.support import LoopFactory, run_guarded

websockets = pytest.importorskip("websockets", reason="websockets is a dev dependency")
from websockets.asyncio.client import ClientConnection, connect  # noqa: E402
from websockets.asyncio.server import ServerConnection, broadcast, serve  # noqa: E402
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK  # noqa: E402

pytestmark = pytest.mark.usefixtures("no_fd_leak")

# Each iteration check repeats: one late poll (the process descheduled) must not
# make the aloop run pass by chance.
REPEAT = 5


async def iterations_until(done: Callable[[], bool], limit: int = 50) -> int:
    """How many loop iterations pass before ``done()`` holds (``limit`` if never)."""
    for n in range(limit):
        if done():
            return n
        await asyncio.sleep(0)
    return limit


async def after_poll() -> None:
    """A timed wait: both loops block in their poll, so what follows starts right after one."""
    await asyncio.sleep(0.001)


def queued(ws: ClientConnection) -> bool:
    """Whether a received message waits in the connection's queue."""
    return bool(ws.recv_messages.frames)


class Hub:
    """A server whose handler keeps its connections and echoes what it receives."""

    def __init__(self) -> None:
        self.connections: list[ServerConnection] = []
        self.joined = asyncio.Event()

    async def handler(self, ws: ServerConnection) -> None:
        self.connections.append(ws)
        self.joined.set()
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                await ws.send(message)

    async def wait_for(self, count: int) -> list[ServerConnection]:
        while len(self.connections) < count:
            self.joined.clear()
            await self.joined.wait()
        return self.connections


def uri(server: Any) -> str:
    return f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"


def test_ping_pong(loop_factory: LoopFactory) -> None:
    """Pings both ways are answered; a keepalive client measures a latency by itself."""

    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        hub = Hub()
        async with serve(hub.handler, "127.0.0.1", 0, ping_interval=None) as server:
            async with connect(uri(server), ping_interval=None) as ws:
                (peer,) = await hub.wait_for(1)
                latencies = [
                    await asyncio.wait_for(await ws.ping(b"from client"), 10),
                    await asyncio.wait_for(await peer.ping("from server"), 10),
                ]
                await ws.send("still open")
                echoed = await ws.recv()
            async with connect(uri(server), ping_interval=0.02) as keepalive:
                while keepalive.latency == 0:  # until its first ping is answered
                    await asyncio.sleep(0.01)
        return [[type(x).__name__ for x in latencies], echoed, ws.close_code, peer.close_code]

    assert run_guarded(loop_factory, main) == [["float", "float"], "still open", 1000, 1000]


def test_pong_arrives_three_iterations_after_ping(loop_factory: LoopFactory) -> None:
    """The peer reads a ping in the next iteration; its pong is read in the one after.

    ``iterations_until`` checks before the callbacks of the iteration it wakes
    in, hence 3. Five pings each way, each sent right after a timed wait.
    """

    async def main(loop: asyncio.AbstractEventLoop) -> list[int]:
        hub = Hub()
        counts = []
        async with serve(hub.handler, "127.0.0.1", 0, ping_interval=None) as server:
            async with connect(uri(server), ping_interval=None) as ws:
                (peer,) = await hub.wait_for(1)
                for pinger in [ws, peer] * REPEAT:
                    await after_poll()
                    pong = await pinger.ping()
                    assert isinstance(pong, asyncio.Future)
                    counts.append(await iterations_until(pong.done))
        return counts

    assert run_guarded(loop_factory, main) == [3] * 2 * REPEAT


def test_broadcast(loop_factory: LoopFactory) -> None:
    """``broadcast`` reaches every client, in order; a closed client is skipped."""
    clients = 5

    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        hub = Hub()
        async with serve(hub.handler, "127.0.0.1", 0) as server:
            async with contextlib.AsyncExitStack() as stack:
                conns = [
                    await stack.enter_async_context(connect(uri(server))) for _ in range(clients)
                ]
                peers = await hub.wait_for(clients)
                await conns[-1].close()
                await peers[-1].wait_closed()
                for i in range(3):
                    broadcast(peers, f"news {i}")
                broadcast(peers, b"\x00\xff")
                got = [[await ws.recv() for _ in range(4)] for ws in conns[:-1]]
        return [got, [peer.state.name for peer in peers]]

    got, states = run_guarded(loop_factory, main)
    assert got == [["news 0", "news 1", "news 2", b"\x00\xff"]] * (clients - 1)
    assert states == ["CLOSED"] * clients


def test_broadcast_seen_two_iterations_later(loop_factory: LoopFactory) -> None:
    """Every client has a broadcast message queued two iterations after it is sent."""
    clients = 3

    async def main(loop: asyncio.AbstractEventLoop) -> list[int]:
        hub = Hub()
        counts = []
        async with serve(hub.handler, "127.0.0.1", 0) as server:
            async with contextlib.AsyncExitStack() as stack:
                conns = [
                    await stack.enter_async_context(connect(uri(server))) for _ in range(clients)
                ]
                peers = await hub.wait_for(clients)
                for i in range(REPEAT):
                    await after_poll()
                    broadcast(peers, f"news {i}")
                    counts.append(await iterations_until(lambda: all(queued(ws) for ws in conns)))
                    assert [await ws.recv() for ws in conns] == [f"news {i}"] * clients
        return counts

    assert run_guarded(loop_factory, main) == [2] * REPEAT


MESSAGE = 64 * 1024
MESSAGES = 400  # 25 MiB: more than loopback's socket buffers hold


def payload(i: int) -> bytes:
    return i.to_bytes(4, "big") * (MESSAGE // 4)


async def wait_for_condition(done: Callable[[], bool], what: str) -> None:
    """Poll ``done()`` for up to 10 s (a bound, not a timing assertion)."""
    deadline = asyncio.get_running_loop().time() + 10
    while asyncio.get_running_loop().time() < deadline:
        if done():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"never: {what}")


def test_backpressure(loop_factory: LoopFactory) -> None:
    """A client that stops reading: its transport stops reading, then the server's send blocks.

    Messages beyond ``max_queue`` pause the client's transport; the server's
    sends then fill the socket buffers and its write buffer, and ``send``
    waits. When the client reads again, every message arrives, in order, and
    the server's sender finishes.
    """

    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        hub = Hub()
        async with serve(hub.handler, "127.0.0.1", 0, ping_interval=None) as server:
            async with connect(
                uri(server), ping_interval=None, max_queue=4, max_size=None, compression=None
            ) as ws:
                (peer,) = await hub.wait_for(1)
                for i in range(6):
                    await peer.send(f"small {i}")
                await wait_for_condition(lambda: not ws.transport.is_reading(), "client paused")
                sent = 0

                async def sender() -> None:
                    nonlocal sent
                    for i in range(MESSAGES):
                        await peer.send(payload(i))
                        sent += 1

                task = asyncio.ensure_future(sender())
                transport = peer.transport
                await wait_for_condition(
                    lambda: transport.get_write_buffer_size() > 2**15, "server send blocked"
                )
                blocked = [sent < MESSAGES, task.done(), ws.transport.is_reading()]
                small = [await ws.recv() for _ in range(6)]
                received = [await ws.recv() for _ in range(MESSAGES)]
                await task
                in_order = received == [payload(i) for i in range(MESSAGES)]
                reading = ws.transport.is_reading()
        return [blocked, small, in_order, reading]

    assert run_guarded(loop_factory, main, timeout=60) == [
        [True, False, False],
        [f"small {i}" for i in range(6)],
        True,
        True,
    ]


def test_reader_pauses_two_iterations_after_its_buffer_fills(loop_factory: LoopFactory) -> None:
    """Frames beyond ``max_queue`` pause the reading transport two iterations later."""

    async def main(loop: asyncio.AbstractEventLoop) -> list[int]:
        hub = Hub()
        counts = []
        async with serve(hub.handler, "127.0.0.1", 0, ping_interval=None) as server:
            async with connect(uri(server), ping_interval=None, max_queue=1) as ws:
                (peer,) = await hub.wait_for(1)
                for i in range(REPEAT):
                    await after_poll()
                    broadcast([peer], f"first {i}")  # written at once, no yield to the loop
                    broadcast([peer], f"second {i}")
                    counts.append(await iterations_until(lambda: not ws.transport.is_reading()))
                    assert [await ws.recv(), await ws.recv()] == [f"first {i}", f"second {i}"]
                    await wait_for_condition(ws.transport.is_reading, "client resumed")
        return counts

    assert run_guarded(loop_factory, main) == [2] * REPEAT


def no_delays() -> Generator[float, None, None]:
    """Reconnect at once, every time."""
    while True:
        yield 0.0


def test_reconnect(loop_factory: LoopFactory) -> None:
    """``async for ws in connect(...)`` retries a timed-out, a dropped and a 503 handshake."""

    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        attempts = 0
        release = asyncio.Event()

        async def process_request(connection: ServerConnection, request: Any) -> Any:
            nonlocal attempts
            attempts += 1
            if attempts == 1:
                await release.wait()  # never answered: the client's open_timeout fires
            elif attempts == 2:
                connection.transport.close()  # dropped during the handshake
            elif attempts == 3:
                return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "busy\n")
            return None

        hub = Hub()
        async with serve(hub.handler, "127.0.0.1", 0, process_request=process_request) as server:
            retries = connect(uri(server), open_timeout=0.2, reconnect_delays=no_delays)
            attempts_iter = cast("AsyncGenerator[ClientConnection, None]", aiter(retries))
            async with contextlib.aclosing(attempts_iter) as connections:
                async for ws in connections:
                    await ws.send("made it")
                    reply = await ws.recv()
                    await ws.close()
                    break
            release.set()
        return [attempts, reply, ws.close_code]

    assert run_guarded(loop_factory, main) == [4, "made it", 1000]


class CountingSocket(socket.socket):
    """A socket that counts the bytes its own recv/send moved (instrumentation)."""

    received = 0
    sent = 0

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data = super().recv(bufsize, flags)
        self.received += len(data)
        return data

    def send(self, data: Any, flags: int = 0) -> int:
        n = super().send(data, flags)
        self.sent += n
        return n


def test_client_on_a_socket_subclass(loop_factory: LoopFactory) -> None:
    """``connect(sock=...)`` with a socket class that overrides recv/send: they are used."""

    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        hub = Hub()
        async with serve(hub.handler, "127.0.0.1", 0) as server:
            sock = CountingSocket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            await loop.sock_connect(sock, server.sockets[0].getsockname())
            async with connect("ws://127.0.0.1/", sock=sock) as ws:
                await ws.send("through the subclass")
                reply = await ws.recv()
        return [reply, sock.sent > 0, sock.received > 0]

    assert run_guarded(loop_factory, main) == ["through the subclass", True, True]


def test_server_shutdown_during_connection(loop_factory: LoopFactory) -> None:
    """``Server.close()`` while a handler runs: both sides see 1001 (going away)."""

    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        hub = Hub()
        server = await serve(hub.handler, "127.0.0.1", 0)
        async with connect(uri(server)) as ws:
            (peer,) = await hub.wait_for(1)
            await ws.send("hello")
            await ws.recv()
            server.close()
            try:
                await ws.recv()
                error = None
            except ConnectionClosed as exc:
                error = type(exc).__name__
            await server.wait_closed()
        return [error, ws.close_code, peer.close_code]

    assert run_guarded(loop_factory, main) == [ConnectionClosedOK.__name__, 1001, 1001]


def legacy_api() -> tuple[Any, Any]:
    """websockets.legacy's server and client modules (deprecated), or skip."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import websockets.legacy.client as legacy_client
            import websockets.legacy.server as legacy_server
        except ImportError:
            pytest.skip(f"websockets {websockets.__version__} no longer ships websockets.legacy")
    return legacy_server, legacy_client


def test_legacy_server_shutdown_during_connection(loop_factory: LoopFactory) -> None:
    """The legacy server shut down while a handler runs: 1001 on both sides.

    The server side's close code is set by the time the client has seen the
    close, as on the stdlib loop.
    """
    legacy_server, legacy_client = legacy_api()

    async def once() -> list[Any]:
        handled: list[Any] = []

        async def handler(ws: Any) -> None:
            handled.append(ws)
            with contextlib.suppress(ConnectionClosed):
                async for message in ws:
                    await ws.send(message)

        server = await legacy_server.serve(handler, "127.0.0.1", 0)
        async with legacy_client.connect(uri(server)) as ws:
            await ws.send("hello")
            await ws.recv()
            server.close()
            try:
                await ws.recv()
                error = None
            except ConnectionClosed as exc:
                error = type(exc).__name__
            seen = [error, ws.close_code, handled[0].close_code]
        await server.wait_closed()
        return [*seen, handled[0].close_code]

    async def main(loop: asyncio.AbstractEventLoop) -> list[list[Any]]:
        return [await once() for _ in range(REPEAT)]  # a late wake-up must not pass by chance

    expected = [ConnectionClosedOK.__name__, 1001, 1001, 1001]
    assert run_guarded(loop_factory, main) == [expected] * REPEAT
