"""anyio on its asyncio backend, on the stdlib loop and on aloop.

Sockets closed by one task while another is blocked receiving or sending on
them (anyio then unregisters the *closed* socket object from the loop),
subprocesses and worker threads. Each program runs through ``anyio.run`` with
``backend_options={"loop_factory": ...}``, over real sockets and processes.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from tests.support import LoopFactory

anyio = pytest.importorskip("anyio", reason="anyio is a dev dependency (scripts/env.sh)")
from anyio.abc import ByteStream, UNIXDatagramPacketType  # noqa: E402
from anyio.streams.buffered import BufferedByteReceiveStream  # noqa: E402

pytestmark = pytest.mark.usefixtures("no_fd_leak")

T = TypeVar("T")


def run(loop_factory: LoopFactory, main: Callable[[], Awaitable[T]]) -> T:
    """``anyio.run(main)`` on the asyncio backend with this loop; 30 s bound on a hang."""

    async def guarded() -> T:
        with anyio.fail_after(30):
            return await main()

    options = {"loop_factory": loop_factory}
    return anyio.run(guarded, backend="asyncio", backend_options=options)  # type: ignore[no-any-return]


class LoopErrors:
    """What reaches the loop's exception handler (errors no task saw)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        asyncio.get_running_loop().set_exception_handler(self.handler)

    def handler(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.seen.append(f"{context['message']}: {context.get('exception')!r}")


async def blocked_then_closed(
    operation: Callable[[], Awaitable[object]], close: Callable[[], Awaitable[None]]
) -> str:
    """Start ``operation``, let it block, close its socket from this task: what it raised."""
    outcome = "returned"

    async def blocked() -> None:
        nonlocal outcome
        try:
            await operation()
        except Exception as exc:
            outcome = type(exc).__name__

    async with anyio.create_task_group() as tg:
        tg.start_soon(blocked)
        await anyio.wait_all_tasks_blocked()
        await close()
    return outcome


async def fresh_socket_works() -> bool:
    """A new socket (likely on the fd number just freed) is watched and read normally.

    False if its readiness is not reported within 5 s (a hang: it is immediate).
    """
    a, b = socket.socketpair()
    with a, b:
        a.setblocking(False)
        with anyio.move_on_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(anyio.wait_readable, a)
                await anyio.wait_all_tasks_blocked()
                b.send(b"x")
            return a.recv(1) == b"x"
    return False


async def fill(stream: ByteStream) -> None:
    """Send until the peer, which does not read, makes the send block."""
    chunk = b"x" * 65536
    while True:
        await stream.send(chunk)


async def tcp_receive() -> str:
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        (tcp,) = listener.listeners
        port = tcp.extra(anyio.abc.SocketAttribute.local_port)
        client = await anyio.connect_tcp("127.0.0.1", port)
        server_side = await accept(tcp)
        outcome = await blocked_then_closed(client.receive, client.aclose)
        await server_side.aclose()
    return outcome


async def accept(listener: Any) -> Any:
    """The next connection a listener accepts."""
    accepted: list[Any] = []

    async def one() -> None:
        accepted.append(await listener.accept())

    async with anyio.create_task_group() as tg:
        tg.start_soon(one)
    return accepted[0]


async def unix_stream(tmp: Path, sending: bool) -> str:
    async with await anyio.create_unix_listener(tmp / "stream.sock") as listener:
        client = await anyio.connect_unix(tmp / "stream.sock")
        server_side = await accept(listener)
        operation = (lambda: fill(client)) if sending else client.receive
        outcome = await blocked_then_closed(operation, client.aclose)
        await server_side.aclose()
    return outcome


async def udp_receive() -> str:
    sock = await anyio.create_udp_socket(local_host="127.0.0.1")
    return await blocked_then_closed(sock.receive, sock.aclose)


async def unix_datagram_receive(tmp: Path) -> str:
    sock = await anyio.create_unix_datagram_socket(local_path=tmp / "dgram.sock")
    return await blocked_then_closed(sock.receive, sock.aclose)


async def connected_unix_datagram_send(tmp: Path) -> str:
    peer = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    with peer:
        peer.bind(str(tmp / "peer.sock"))
        sock = await anyio.create_connected_unix_datagram_socket(tmp / "peer.sock")

        async def flood() -> None:
            while True:  # the peer never reads: its queue fills, send blocks
                await sock.send(b"x" * 1024)

        return await blocked_then_closed(flood, sock.aclose)


async def cancelled_receive_then_close(tmp: Path) -> str:
    """A receive cancelled by its scope (the socket still open), then the socket closed."""
    async with await anyio.create_unix_listener(tmp / "cancel.sock") as listener:
        client = await anyio.connect_unix(tmp / "cancel.sock")
        server_side = await accept(listener)
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.receive)
                await anyio.wait_all_tasks_blocked()
                scope.cancel()
        await client.aclose()
        await server_side.aclose()
    return "cancelled" if scope.cancelled_caught else "not cancelled"


SCENARIOS: dict[str, Callable[[Path], Awaitable[str]]] = {
    "tcp-receive": lambda tmp: tcp_receive(),
    "udp-receive": lambda tmp: udp_receive(),
    "unix-stream-receive": lambda tmp: unix_stream(tmp, sending=False),
    "unix-stream-send": lambda tmp: unix_stream(tmp, sending=True),
    "unix-datagram-receive": unix_datagram_receive,
    "connected-unix-datagram-send": connected_unix_datagram_send,
    "cancelled-receive-then-close": cancelled_receive_then_close,
}
EXPECTED = {name: "ClosedResourceError" for name in SCENARIOS}
EXPECTED["cancelled-receive-then-close"] = "cancelled"
# Transport-based sockets (anyio's TCP streams and UDP sockets) close through
# the transport; the raw-socket ones call remove_reader/remove_writer with the
# socket object after closing it.
RAW_SOCKET = {
    "unix-stream-receive",
    "unix-stream-send",
    "unix-datagram-receive",
    "connected-unix-datagram-send",
}


def close_during_io(loop_factory: LoopFactory, name: str) -> list[Any]:
    tmp = Path(tempfile.mkdtemp(prefix="aloop-anyio-"))

    async def main() -> list[Any]:
        errors = LoopErrors()
        outcome = await SCENARIOS[name](tmp)
        await anyio.sleep(0.01)  # let callbacks scheduled by the close run
        return [outcome, errors.seen, await fresh_socket_works()]

    try:
        return run(loop_factory, main)
    finally:
        for path in tmp.iterdir():
            path.unlink()
        tmp.rmdir()


@pytest.mark.parametrize("name", sorted(set(SCENARIOS) - RAW_SOCKET))
def test_close_during_io(loop_factory: LoopFactory, name: str) -> None:
    """One task closes a socket another is blocked on: the blocked one sees it closed."""
    assert close_during_io(loop_factory, name) == [EXPECTED[name], [], True]


@pytest.mark.parametrize("name", sorted(RAW_SOCKET))
def test_close_raw_socket_during_io(loop_factory: LoopFactory, name: str) -> None:
    """As above for anyio's raw-socket classes: no error reaches the loop's handler,
    and the next socket (often on the same fd number) is watched normally."""
    assert close_during_io(loop_factory, name) == [EXPECTED[name], [], True]


CHILD = (
    "import sys\nfor line in sys.stdin:\n    print(line.strip().upper(), flush=True)\nsys.exit(3)"
)


def test_run_process(loop_factory: LoopFactory) -> None:
    async def main() -> list[Any]:
        done = await anyio.run_process([sys.executable, "-c", "print('out'); exit(0)"])
        failed = await anyio.run_process(
            [sys.executable, "-c", "import sys; sys.stderr.write('err'); exit(5)"], check=False
        )
        try:
            await anyio.run_process([sys.executable, "-c", "exit(7)"])
            raised = None
        except Exception as exc:
            raised = (type(exc).__name__, getattr(exc, "returncode", None))
        piped = await anyio.run_process([sys.executable, "-c", CHILD], input=b"a\nb\n", check=False)
        return [
            (done.returncode, done.stdout),
            (failed.returncode, failed.stderr),
            raised,
            (piped.returncode, piped.stdout.split()),
        ]

    assert run(loop_factory, main) == [
        (0, b"out\n"),
        (5, b"err"),
        ("CalledProcessError", 7),
        (3, [b"A", b"B"]),
    ]


def test_open_process(loop_factory: LoopFactory) -> None:
    """A conversation over pipes, line by line, then the exit status; and a kill."""

    async def main() -> list[Any]:
        replies = []
        async with await anyio.open_process([sys.executable, "-c", CHILD]) as process:
            assert process.stdin is not None and process.stdout is not None
            lines = BufferedByteReceiveStream(process.stdout)
            for word in (b"one", b"two", b"three"):
                await process.stdin.send(word + b"\n")
                replies.append(await lines.receive_until(b"\n", 100))
            await process.stdin.aclose()
            status = await process.wait()
        async with await anyio.open_process([sys.executable, "-c", "input()"]) as sleeper:
            sleeper.kill()
            killed = await sleeper.wait()
        return [replies, status, killed]

    assert run(loop_factory, main) == [[b"ONE", b"TWO", b"THREE"], 3, -9]


def test_to_thread(loop_factory: LoopFactory) -> None:
    """Worker threads: results, exceptions, calls back into the loop, a capacity limit."""

    async def main() -> list[Any]:
        loop_thread = threading.get_ident()
        other = await anyio.to_thread.run_sync(threading.get_ident)
        try:
            await anyio.to_thread.run_sync(int, "not a number")
            error = None
        except ValueError as exc:
            error = str(exc)

        def worker(i: int) -> int:
            # Back on the loop's thread, from the worker.
            on_loop = anyio.from_thread.run_sync(threading.get_ident) == loop_thread
            return i * 10 if on_loop else -1

        limiter = anyio.CapacityLimiter(2)
        results: dict[int, int] = {}

        async def job(i: int) -> None:
            results[i] = await anyio.to_thread.run_sync(worker, i, limiter=limiter)

        async with anyio.create_task_group() as tg:
            for i in range(6):
                tg.start_soon(job, i)
        return [other != loop_thread, error, [results[i] for i in range(6)]]

    assert run(loop_factory, main) == [
        True,
        "invalid literal for int() with base 10: 'not a number'",
        [0, 10, 20, 30, 40, 50],
    ]


def test_unix_datagram_exchange(loop_factory: LoopFactory) -> None:
    """The raw-socket datagram classes in ordinary use (no close during I/O)."""

    async def main() -> list[Any]:
        with tempfile.TemporaryDirectory() as tmp:
            server = await anyio.create_unix_datagram_socket(local_path=os.path.join(tmp, "s"))
            client = await anyio.create_connected_unix_datagram_socket(
                os.path.join(tmp, "s"), local_path=os.path.join(tmp, "c")
            )
            async with server, client:
                await client.send(b"hello")
                packet: UNIXDatagramPacketType = await server.receive()
                await server.send((packet[0].upper(), packet[1]))
                reply = await client.receive()
        return [packet[0], reply]

    assert run(loop_factory, main) == [b"hello", b"HELLO"]
