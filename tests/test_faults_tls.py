"""Faults on both loops: peers resetting TLS, data riding on the upgrade, flow control
under TLS, cancelling every awaitable API mid-flight, and fork() with a running loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from tests.support import (
    LoopFactory,
    client_context,
    pattern,
    requires_test_certs,
    server_context,
)
from tests.support import run_with_loop as run

import aloop

pytestmark = [pytest.mark.usefixtures("no_fd_leak"), requires_test_certs]

# Nothing here should take long; a hang fails the test after this many seconds.
DEADLINE = 20.0


def reset(sock: socket.socket) -> None:
    """Close ``sock`` with an RST rather than a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@contextlib.contextmanager
def tcp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected TCP pair (SO_LINGER needs TCP), both non-blocking, closed afterwards."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        a = socket.create_connection(listener.getsockname())
        b, _ = listener.accept()
    a.setblocking(False)
    b.setblocking(False)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def client_hello() -> tuple[ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO, bytes]:
    """A client TLS session in memory and its first flight."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_context().wrap_bio(inc, out)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return tls, inc, out, out.read()


class Recorder(asyncio.Protocol):
    """Keeps what arrives and counts connection_lost calls."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.data = bytearray()
        self.lost_calls: list[BaseException | None] = []
        self.lost: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.data += data

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost_calls.append(exc)
        if not self.lost.done():
            self.lost.set_result(exc)


async def settle(loop: asyncio.AbstractEventLoop) -> None:
    """Let callbacks already scheduled (connection_lost, closes) run."""
    for _ in range(20):
        await asyncio.sleep(0)


async def closed(sock: socket.socket) -> None:
    """Wait until a transport has closed ``sock``."""
    async with asyncio.timeout(DEADLINE):
        while sock.fileno() >= 0:
            await asyncio.sleep(0.001)


def error_name(exc: BaseException | None) -> str:
    """The family an exception belongs to: what a caller would catch."""
    if exc is None:
        return "None"
    for family in (ConnectionResetError, ssl.SSLError, ConnectionAbortedError, ConnectionError):
        if isinstance(exc, family):
            return family.__name__
    return type(exc).__name__


# -- 1. a peer resetting during the handshake, start_tls and shutdown ------------------------


def test_reset_during_client_handshake(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> tuple[str, int]:
        with socket.create_server(("127.0.0.1", 0)) as listener:
            listener.setblocking(False)
            protos: list[Recorder] = []

            def factory() -> Recorder:
                protos.append(Recorder())
                return protos[-1]

            connecting = asyncio.ensure_future(
                loop.create_connection(
                    factory, *listener.getsockname(), ssl=client_context(), server_hostname=""
                )
            )
            peer, _ = await asyncio.wait_for(loop.sock_accept(listener), DEADLINE)
            assert await asyncio.wait_for(loop.sock_recv(peer, 65536), DEADLINE)  # ClientHello
            reset(peer)
            try:
                await asyncio.wait_for(connecting, DEADLINE)
            except Exception as exc:
                await settle(loop)
                return error_name(exc), sum(len(p.lost_calls) for p in protos)
            raise AssertionError("the handshake succeeded against a reset")

    # The app protocol never saw connection_made, so it sees no connection_lost either.
    assert run(loop_factory, main) == ("ConnectionResetError", 0)


def test_reset_during_server_handshake(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> str:
        with tcp_pair() as (ours, peer):
            _tls, _inc, _out, hello = client_hello()
            await loop.sock_sendall(peer, hello)
            accepting = asyncio.ensure_future(
                loop.connect_accepted_socket(Recorder, ours, ssl=server_context())
            )
            assert await asyncio.wait_for(loop.sock_recv(peer, 65536), DEADLINE)  # ServerHello
            reset(peer)
            try:
                await asyncio.wait_for(accepting, DEADLINE)
            except Exception as exc:
                return error_name(exc)
            raise AssertionError("the handshake succeeded against a reset")

    assert run(loop_factory, main) == "ConnectionResetError"


@pytest.mark.parametrize("server_side", [False, True], ids=["client", "server"])
def test_reset_during_start_tls(loop_factory: LoopFactory, server_side: bool) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> tuple[str, int, bool]:
        with tcp_pair() as (ours, peer):
            transport, proto = await loop.connect_accepted_socket(Recorder, ours)
            if server_side:
                await loop.sock_sendall(peer, client_hello()[3])
            ctx = server_context() if server_side else client_context()
            upgrading = asyncio.ensure_future(
                loop.start_tls(transport, proto, ctx, server_side=server_side, server_hostname=None)
            )
            assert await asyncio.wait_for(loop.sock_recv(peer, 65536), DEADLINE)
            reset(peer)
            try:
                await asyncio.wait_for(upgrading, DEADLINE)
            except Exception as exc:
                await closed(ours)
                return error_name(exc), len(proto.lost_calls), transport.is_closing()
            raise AssertionError("start_tls succeeded against a reset")

    # start_tls closes the plain transport it failed to upgrade (and its socket); the
    # protocol, which start_tls had taken off it, is not told (it never saw the TLS one).
    assert run(loop_factory, main) == ("ConnectionResetError", 0, True)


@contextlib.asynccontextmanager
async def tls_connection(
    loop: asyncio.AbstractEventLoop,
) -> AsyncIterator[tuple[asyncio.Transport, Recorder, Recorder]]:
    """A TLS connection to a server on loopback: our transport and protocol, and the
    server's protocol with reading paused (so what we write waits); the server closes after."""
    peers: list[Recorder] = []

    def server_factory() -> Recorder:
        peers.append(Recorder())
        return peers[-1]

    server = await loop.create_server(server_factory, "127.0.0.1", 0, ssl=server_context())
    try:
        port = server.sockets[0].getsockname()[1]
        transport, proto = await loop.create_connection(
            Recorder, "127.0.0.1", port, ssl=client_context(), server_hostname=""
        )
        while not peers or peers[0].transport is None:
            await asyncio.sleep(0)
        peers[0].transport.pause_reading()
        yield transport, proto, peers[0]
    finally:
        server.close()
        await server.wait_closed()


def test_reset_during_tls_shutdown(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> tuple[int, int, bool]:
        # The peer does not read, so our close_notify and the data before it wait.
        async with tls_connection(loop) as (transport, proto, peer):
            transport.write(pattern(4 * 1024 * 1024))
            transport.close()
            # ... and then resets the connection under our shutdown.
            peer.transport.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            peer.transport.abort()
            await asyncio.wait_for(proto.lost, DEADLINE)
            await asyncio.wait_for(peer.lost, DEADLINE)
            await settle(loop)
            return len(proto.lost_calls), len(peer.lost_calls), transport.is_closing()

    assert run(loop_factory, main) == (1, 1, True)


# -- 2. plain data and the ClientHello in one segment -------------------------------------


class LineThenTls(asyncio.BufferedProtocol):
    """Reads a plain line one byte at a time (so nothing past it is taken from the
    socket by the protocol), then upgrades the connection with ``loop.start_tls``."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.buf = bytearray(1)
        self.line = bytearray()
        self.transport: Any = None
        self.upgraded: asyncio.Future[Any] = self.loop.create_future()
        self.after = Recorder()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.buf

    def buffer_updated(self, nbytes: int) -> None:
        assert not self.upgraded.done(), "plain bytes after the upgrade began"
        self.line += self.buf[:nbytes]
        if self.line.endswith(b"\n"):
            self.transport.pause_reading()
            self.loop.create_task(self.upgrade())

    async def upgrade(self) -> None:
        try:
            tls = await self.loop.start_tls(
                self.transport, self.after, server_context(), server_side=True
            )
            self.after.transport = tls
            self.upgraded.set_result(tls)
        except BaseException as exc:
            self.upgraded.set_exception(exc)

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.upgraded.done():
            self.upgraded.set_exception(exc or ConnectionResetError("lost"))


def test_start_tls_on_a_protocol_takes_the_pipelined_client_hello(
    loop_factory: LoopFactory,
) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> tuple[bytes, bytes]:
        with tcp_pair() as (ours, peer):
            _, proto = await loop.connect_accepted_socket(LineThenTls, ours)
            tls, inc, out, hello = client_hello()
            await loop.sock_sendall(peer, b"STARTTLS\n" + hello)

            async def pump(step: Callable[[], Any]) -> Any:
                while True:
                    try:
                        return step()
                    except ssl.SSLWantReadError:
                        if out.pending:
                            await loop.sock_sendall(peer, out.read())
                        data = await asyncio.wait_for(loop.sock_recv(peer, 65536), DEADLINE)
                        assert data, "the server hung up"
                        inc.write(data)

            await pump(tls.do_handshake)
            if out.pending:
                await loop.sock_sendall(peer, out.read())
            tls_transport = await asyncio.wait_for(proto.upgraded, DEADLINE)
            tls.write(b"over tls")
            await loop.sock_sendall(peer, out.read())
            while len(proto.after.data) < 8:
                assert not proto.after.lost.done(), proto.after.lost
                await asyncio.sleep(0.001)
            tls_transport.abort()
            await asyncio.wait_for(proto.after.lost, DEADLINE)
            return bytes(proto.line), bytes(proto.after.data)

    assert run(loop_factory, main) == (b"STARTTLS\n", b"over tls")


# -- 3. pause_writing while TLS writes are in flight --------------------------------------


class Writer(Recorder):
    """Writes ``payload`` in pieces, as fast as flow control lets it."""

    def __init__(self, payload: bytes) -> None:
        super().__init__()
        self.payload = payload
        self.sent = 0
        self.paused = False
        self.cycles = 0
        self.all_sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        transport.set_write_buffer_limits(high=64 * 1024)  # type: ignore[attr-defined]
        # One large write first: it is in flight when the first pause comes.
        self.write(1024 * 1024)
        self.pump()

    def write(self, size: int) -> None:
        piece = self.payload[self.sent : self.sent + size]
        self.transport.write(piece)
        self.sent += len(piece)

    def pump(self) -> None:
        while self.sent < len(self.payload) and not self.paused:
            self.write(97 * 1024)
        if self.sent == len(self.payload) and not self.all_sent.done():
            self.all_sent.set_result(None)

    def pause_writing(self) -> None:
        assert not self.paused, "pause_writing twice"
        self.paused = True

    def resume_writing(self) -> None:
        assert self.paused, "resume_writing without a pause"
        self.paused = False
        self.cycles += 1
        self.pump()


def test_pause_writing_with_a_tls_write_in_flight(loop_factory: LoopFactory) -> None:
    payload = pattern(8 * 1024 * 1024)

    async def main(loop: asyncio.AbstractEventLoop) -> tuple[bool, bool]:
        readers: list[Recorder] = []

        def server_factory() -> Recorder:
            readers.append(Recorder())
            return readers[-1]

        server = await loop.create_server(server_factory, "127.0.0.1", 0, ssl=server_context())
        try:
            port = server.sockets[0].getsockname()[1]
            transport, writer = await loop.create_connection(
                lambda: Writer(payload), "127.0.0.1", port, ssl=client_context(),
                server_hostname="",
            )  # fmt: skip
            while not readers or readers[0].transport is None:
                await asyncio.sleep(0)
            reader = readers[0]
            # The reader reads in bursts, so the writer pauses and resumes many times.
            while len(reader.data) < len(payload):
                reader.transport.pause_reading()
                await asyncio.sleep(0.002)
                reader.transport.resume_reading()
                await asyncio.sleep(0.002)
                assert not reader.lost.done(), reader.lost
            await asyncio.wait_for(writer.all_sent, DEADLINE)
            transport.close()
            await asyncio.wait_for(writer.lost, DEADLINE)
            await asyncio.wait_for(reader.lost, DEADLINE)
            return writer.cycles > 1, bytes(reader.data) == payload
        finally:
            server.close()
            await server.wait_closed()

    assert run(loop_factory, main) == (True, True)


# -- 4. cancelling every awaitable API mid-flight -----------------------------------------


async def started(loop: asyncio.AbstractEventLoop, aw: Awaitable[Any]) -> asyncio.Future[Any]:
    """``aw`` as a task that has run until it blocks; fails if it finished instead."""
    task = asyncio.ensure_future(aw)
    for _ in range(10):
        await asyncio.sleep(0)
    assert not task.done(), f"{aw} did not block: {task}"
    return task


async def cancel(task: asyncio.Future[Any]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, DEADLINE)


def unwatched(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> tuple[bool, bool]:
    """Whether the loop watches ``sock`` for reading, for writing."""
    return loop.remove_reader(sock), loop.remove_writer(sock)


@pytest.mark.parametrize("kind", ["sock_recv", "sock_recv_into", "sock_accept"])
def test_cancel_socket_read(loop_factory: LoopFactory, kind: str) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> tuple[tuple[bool, bool], bytes]:
        with tcp_pair() as (ours, peer), socket.create_server(("127.0.0.1", 0)) as listener:
            listener.setblocking(False)
            buf = bytearray(16)
            aws: dict[str, Callable[[], Awaitable[Any]]] = {
                "sock_recv": lambda: loop.sock_recv(ours, 16),
                "sock_recv_into": lambda: loop.sock_recv_into(ours, buf),
                "sock_accept": lambda: loop.sock_accept(listener),
            }
            await cancel(await started(loop, aws[kind]()))
            watched = unwatched(loop, listener if kind == "sock_accept" else ours)
            # The socket is still usable: the next call gets what arrives.
            if kind == "sock_accept":
                with socket.create_connection(listener.getsockname()):
                    conn, _ = await asyncio.wait_for(loop.sock_accept(listener), DEADLINE)
                    conn.close()
                return watched, b"accepted"
            await loop.sock_sendall(peer, b"after")
            return watched, await asyncio.wait_for(loop.sock_recv(ours, 16), DEADLINE)

    expected = b"accepted" if kind == "sock_accept" else b"after"
    assert run(loop_factory, main) == ((False, False), expected)


def test_cancel_sock_recvfrom(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> tuple[tuple[bool, bool], bytes]:
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as ours,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer,
        ):
            ours.bind(("127.0.0.1", 0))
            ours.setblocking(False)
            await cancel(await started(loop, loop.sock_recvfrom(ours, 100)))
            watched = unwatched(loop, ours)
            peer.sendto(b"after", ours.getsockname())
            data, _ = await asyncio.wait_for(loop.sock_recvfrom(ours, 100), DEADLINE)
            return watched, data

    assert run(loop_factory, main) == ((False, False), b"after")


def test_cancel_sock_sendall_to_a_non_reader(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> tuple[tuple[bool, bool], bool]:
        with tcp_pair() as (ours, peer):
            await cancel(await started(loop, loop.sock_sendall(ours, pattern(64 * 1024 * 1024))))
            watched = unwatched(loop, ours)
            ours.close()
            # What was sent before the cancel arrives, in order, then EOF.
            got = bytearray()
            while data := await asyncio.wait_for(loop.sock_recv(peer, 1 << 20), DEADLINE):
                got += data
            return watched, bytes(got) == pattern(len(got))

    assert run(loop_factory, main) == ((False, False), True)


@contextlib.contextmanager
def unanswered_address() -> Iterator[tuple[str, int]]:
    """An address whose connect() hangs: a listener with a full backlog drops SYNs."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    fillers: list[socket.socket] = []
    try:
        # Fill the accept queue: each filler completes until the queue is full.
        for _ in range(8):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(listener.getsockname())
            fillers.append(s)
        yield listener.getsockname()
    finally:
        for s in fillers:
            s.close()
        listener.close()


def test_cancel_sock_connect(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> tuple[tuple[bool, bool], bool]:
        with unanswered_address() as address, socket.socket() as sock:
            sock.setblocking(False)
            await cancel(await started(loop, loop.sock_connect(sock, address)))
            return unwatched(loop, sock), sock.fileno() >= 0

    # asyncio leaves the socket to its owner: open, unwatched.
    assert run(loop_factory, main) == ((False, False), True)


def test_cancel_create_connection(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> bool:
        with unanswered_address() as address:
            await cancel(await started(loop, loop.create_connection(Recorder, *address)))
            # The loop made the socket, so it closed it (no_fd_leak checks).
            return True

    assert run(loop_factory, main)


def test_cancel_tls_create_connection_mid_handshake(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> bytes:
        with socket.create_server(("127.0.0.1", 0)) as listener:
            listener.setblocking(False)
            connecting = await started(
                loop,
                loop.create_connection(
                    Recorder, *listener.getsockname(), ssl=client_context(), server_hostname=""
                ),
            )
            peer, _ = await asyncio.wait_for(loop.sock_accept(listener), DEADLINE)
            with peer:
                assert await asyncio.wait_for(loop.sock_recv(peer, 65536), DEADLINE)
                await cancel(connecting)
                # The loop's socket is closed: the silent peer sees EOF (no_fd_leak checks it).
                return await asyncio.wait_for(loop.sock_recv(peer, 65536), DEADLINE)

    assert run(loop_factory, main) == b""


def test_cancel_sock_sendfile_to_a_non_reader(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> tuple[tuple[bool, bool], bool]:
        data = pattern(32 * 1024 * 1024)
        with tempfile.TemporaryFile() as f, tcp_pair() as (ours, peer):
            f.write(data)
            f.seek(0)
            await cancel(await started(loop, loop.sock_sendfile(ours, f)))
            watched = unwatched(loop, ours)
            ours.close()
            got = bytearray()
            while chunk := await asyncio.wait_for(loop.sock_recv(peer, 1 << 20), DEADLINE):
                got += chunk
            return watched, bytes(got) == data[: len(got)]

    assert run(loop_factory, main) == ((False, False), True)


def test_cancel_create_subprocess_leaves_no_child(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> list[str]:
        before = children()
        outcomes = []
        for spins in range(6):
            task = asyncio.ensure_future(
                asyncio.create_subprocess_exec(
                    sys.executable, "-c", SLEEPER, stdin=asyncio.subprocess.PIPE
                )
            )
            for _ in range(spins):
                await asyncio.sleep(0)
            task.cancel()
            try:
                proc = await asyncio.wait_for(task, DEADLINE)
            except asyncio.CancelledError:
                outcomes.append("cancelled")
            else:  # it finished before the cancel: ours to end
                proc.kill()
                await proc.wait()
                outcomes.append("ran")
        await settle(loop)
        # Every child is gone, zombies included (they are listed until reaped).
        assert children() <= before, children() - before
        return outcomes

    assert "cancelled" in run(loop_factory, main)


def test_cancel_start_tls_when_the_peer_never_answers(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> tuple[bool, int]:
        with tcp_pair() as (ours, _peer):
            transport, proto = await loop.connect_accepted_socket(Recorder, ours)
            await cancel(
                await started(
                    loop, loop.start_tls(transport, proto, client_context(), server_hostname="")
                )
            )
            await closed(ours)
            return transport.is_closing(), len(proto.lost_calls)

    # asyncio closes the transport it failed to upgrade, and its socket.
    assert run(loop_factory, main) == (True, 0)


def test_cancel_sendfile_to_a_non_reader(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> tuple[bool, bool]:
        data = pattern(32 * 1024 * 1024)
        with tempfile.TemporaryFile() as f, tcp_pair() as (ours, peer):
            f.write(data)
            f.seek(0)
            transport, proto = await loop.connect_accepted_socket(Recorder, ours)
            await cancel(await started(loop, loop.sendfile(transport, f)))
            await settle(loop)
            # The transport is still usable where asyncio leaves it so: close it cleanly
            # and the peer sees a prefix of the file, in order, then EOF.
            transport.close()
            got = bytearray()
            while chunk := await asyncio.wait_for(loop.sock_recv(peer, 1 << 20), DEADLINE):
                got += chunk
            await asyncio.wait_for(proto.lost, DEADLINE)
            return bytes(got) == data[: len(got)], len(proto.lost_calls) == 1

    assert run(loop_factory, main) == (True, True)


def test_cancel_sendfile_over_tls(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> tuple[bool, bool, bool]:
        data = pattern(16 * 1024 * 1024)
        async with tls_connection(loop) as (transport, proto, reader):
            with tempfile.TemporaryFile() as f:
                f.write(data)
                f.seek(0)
                await cancel(await started(loop, loop.sendfile(transport, f)))
            # The fallback's protocol swap is undone: ours gets the connection back.
            restored = transport.get_protocol() is proto
            transport.write(b"END")
            transport.close()
            reader.transport.resume_reading()
            await asyncio.wait_for(reader.lost, DEADLINE)
            await asyncio.wait_for(proto.lost, DEADLINE)
            got = bytes(reader.data)
            return restored, got.endswith(b"END"), got[:-3] == data[: len(got) - 3]

    assert run(loop_factory, main) == (True, True, True)


def test_cancel_getaddrinfo_right_after_it_starts(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> bool:
        tasks = [asyncio.ensure_future(loop.getaddrinfo("localhost", 80)) for _ in range(20)]
        await asyncio.sleep(0)
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, (asyncio.CancelledError, list)) for r in results), results
        # The resolver still answers afterwards.
        return bool(await asyncio.wait_for(loop.getaddrinfo("127.0.0.1", 80), DEADLINE))

    assert run(loop_factory, main)


SLEEPER = "import sys; sys.stdin.read()"


def children() -> set[int]:
    """This process's child pids, running or zombie (Linux)."""
    pids: set[int] = set()
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/children") as f:
            pids.update(int(pid) for pid in f.read().split())
    return pids


@pytest.mark.parametrize("call", ["wait", "communicate"])
def test_cancel_subprocess_wait(loop_factory: LoopFactory, call: str) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> tuple[int, bool]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", SLEEPER, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            aw = proc.wait() if call == "wait" else proc.communicate()
            await cancel(await started(loop, aw))
            assert proc.returncode is None
        finally:
            if proc.returncode is None:
                proc.kill()
            code = await asyncio.wait_for(proc.wait(), DEADLINE)
        await settle(loop)
        try:
            os.waitpid(proc.pid, os.WNOHANG)
            reaped = False
        except ChildProcessError:
            reaped = True
        return code, reaped

    assert run(loop_factory, main) == (-signal.SIGKILL, True)


# -- 5. fork() with a running loop --------------------------------------------------------


def child_program(loop_factory: LoopFactory, report: int) -> None:
    """In the forked child: the parent's loop is not running here, a fresh one works
    (sockets, its own signal handler, a subprocess), and its close leaves the parent's alone."""
    try:
        running = asyncio._get_running_loop()
        inherited = "none" if running is None else "parent's"

        async def child_main() -> int:
            loop = asyncio.get_running_loop()
            await asyncio.sleep(0.001)
            r, w = socket.socketpair()
            with r, w:
                r.setblocking(False)
                w.send(b"x")
                data = await loop.sock_recv(r, 1)
            got: asyncio.Future[int] = loop.create_future()
            loop.add_signal_handler(signal.SIGUSR2, got.set_result, 1)
            os.kill(os.getpid(), signal.SIGUSR2)
            await asyncio.wait_for(got, DEADLINE)
            proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
            return len(data) + got.result() + await proc.wait()

        if loop_factory is aloop.new_event_loop:
            got = aloop.run(child_main())
        else:
            got = asyncio.run(child_main())
        os.write(report, f"{inherited} {got}".encode())
    finally:
        os._exit(0)


FORK_INNER = "ALOOP_TEST_FORK_INNER"


def test_fork_with_a_running_loop(
    loop_factory: LoopFactory, request: pytest.FixtureRequest
) -> None:
    if not os.environ.get(FORK_INNER):
        # fork() in pytest's own process would copy the threads earlier tests
        # left running (a lock held there deadlocks the child): fork from a
        # fresh pytest process running only this test.
        inner = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                f"{__file__}::{request.node.name}",
            ],
            env={**os.environ, FORK_INNER: "1"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert inner.returncode == 0, inner.stdout[-3000:] + inner.stderr[-3000:]
        assert "1 passed" in inner.stdout
        return

    async def main(loop: asyncio.AbstractEventLoop) -> tuple[str, list[str]]:
        # What the parent has going at fork time: a signal handler, a reader, a child.
        parent_signal = loop.create_future()
        loop.add_signal_handler(signal.SIGUSR1, parent_signal.set_result, "signal")
        sleeper = await asyncio.create_subprocess_exec(
            sys.executable, "-c", SLEEPER, stdin=asyncio.subprocess.PIPE
        )
        a, b = socket.socketpair()
        a.setblocking(False)
        reading = asyncio.ensure_future(loop.sock_recv(a, 10))
        r, w = os.pipe()
        try:
            pid = os.fork()
            if pid == 0:
                os.close(r)
                child_program(loop_factory, w)
            os.close(w)
            w = -1
            # Polled, not waited in a thread: a hung child fails the test, not the run.
            async with asyncio.timeout(DEADLINE):
                while (status := os.waitpid(pid, os.WNOHANG))[0] == 0:
                    await asyncio.sleep(0.01)
            assert os.waitstatus_to_exitcode(status[1]) == 0
            report = os.read(r, 100).decode()
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)
        # The parent's loop is unaffected: wakeups, signals, children, sockets.
        checks: list[str] = []
        try:
            woke = loop.create_future()
            threading.Thread(
                target=loop.call_soon_threadsafe, args=(woke.set_result, "woke")
            ).start()
            checks.append(await asyncio.wait_for(woke, DEADLINE))
            os.kill(os.getpid(), signal.SIGUSR1)
            checks.append(await asyncio.wait_for(parent_signal, DEADLINE))
            b.send(b"socket")
            checks.append((await asyncio.wait_for(reading, DEADLINE)).decode())
            await sleeper.communicate(b"")
            checks.append(f"sleeper {sleeper.returncode}")
            proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
            checks.append(f"child {await asyncio.wait_for(proc.wait(), DEADLINE)}")
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)
            if sleeper.returncode is None:
                sleeper.kill()
                await sleeper.wait()
            reading.cancel()
            a.close()
            b.close()
        return report, checks

    expected = ["woke", "signal", "socket", "sleeper 0", "child 0"]
    assert run(loop_factory, main) == ("none 2", expected)
