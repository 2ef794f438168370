"""Stream transports over TCP and Unix sockets, and asyncio's streams API on them."""

from __future__ import annotations

import asyncio
import collections
import fcntl
import gc
import socket
import struct
import sys
import termios
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from tests.support import LoopFactory, echo, pattern
from tests.support import run_with_loop as run

pytestmark = pytest.mark.usefixtures("no_fd_leak")


def test_many_concurrent_echo_connections(loop_factory: LoopFactory) -> None:
    async def client(port: int, n: int) -> bool:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        data = pattern(1000 + 7919 * n, seed=n)
        writer.write(data)
        writer.write_eof()
        got = await reader.read()
        writer.close()
        await writer.wait_closed()
        return got == data

    async def main(loop: asyncio.AbstractEventLoop) -> list[bool]:
        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            return await asyncio.gather(*[client(port, n) for n in range(60)])

    assert run(loop_factory, main) == [True] * 60


def test_unix_streams_and_half_close(loop_factory: LoopFactory, tmp_path: Any) -> None:
    path = str(tmp_path / "echo.sock")

    async def main(loop: asyncio.AbstractEventLoop) -> bytes:
        server = await asyncio.start_unix_server(echo, path)
        async with server:
            reader, writer = await asyncio.open_unix_connection(path)
            assert writer.can_write_eof()
            writer.writelines([b"abc", bytearray(b"def"), memoryview(b"ghi")])
            writer.write_eof()  # the server sees EOF, echoes, then closes
            data = await reader.read()
            writer.close()
            await writer.wait_closed()
            return data

    assert run(loop_factory, main) == b"abcdefghi"


class Collect(asyncio.Protocol):
    def __init__(self) -> None:
        self.data = bytearray()
        self.lost: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        self.eof = False
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.data.extend(data)

    def eof_received(self) -> None:
        self.eof = True

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost.set_result(exc)


def test_backpressure_with_a_slow_reader_loses_nothing(loop_factory: LoopFactory) -> None:
    total = 8 * 1024 * 1024
    chunk = 100_000

    async def main(loop: asyncio.AbstractEventLoop) -> tuple[bool, bool, bool]:
        peak = 0
        accepted: asyncio.Future[tuple[Any, Any]] = loop.create_future()

        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.set_result((reader, writer))

        server = await asyncio.start_server(on_client, "127.0.0.1", 0, limit=16384)
        async with server:
            port = server.sockets[0].getsockname()[1]
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            _, srv_writer = await accepted
            transport = writer.transport
            high = transport.get_write_buffer_limits()[1]
            data = pattern(total, seed=3)

            async def produce() -> None:
                nonlocal peak
                for start in range(0, total, chunk):
                    writer.write(data[start : start + chunk])
                    peak = max(peak, transport.get_write_buffer_size())
                    await writer.drain()
                writer.write_eof()

            async def slow_consume() -> bytes:
                out = bytearray()
                srv_reader = (await accepted)[0]
                while piece := await srv_reader.read(4096):
                    out.extend(piece)
                    await asyncio.sleep(0)
                return bytes(out)

            _, received = await asyncio.gather(produce(), slow_consume())
            writer.close()
            srv_writer.close()
            await writer.wait_closed()
            await srv_writer.wait_closed()
            return received == data, peak <= high + chunk, peak > 0

    assert run(loop_factory, main) == (True, True, True)


def test_peer_closing_mid_write_is_a_connection_error(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> tuple[bool, bool]:
        async def rude(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(10)
            writer.transport.abort()

        server = await asyncio.start_server(rude, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            failed = False
            try:
                for _ in range(2000):
                    writer.write(b"x" * 65536)
                    await writer.drain()
            except ConnectionError:
                failed = True
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass
            return failed, writer.transport.is_closing()

    assert run(loop_factory, main) == (True, True)


# asyncio 3.14 reworded the stream transport's refusal of a non-bytes argument.
WRITE_TYPE_ERROR = (
    "data argument must be a bytes, bytearray, or memoryview object, not 'str'"
    if sys.version_info >= (3, 14)
    else "data argument must be a bytes-like object, not 'str'"
)


def test_transport_api_and_bad_input(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        server = await loop.create_server(Collect, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, proto = await loop.create_connection(Collect, "127.0.0.1", port)
        out: list[Any] = [
            isinstance(transport, asyncio.Transport),
            transport.get_extra_info("peername")[1] == port,
            transport.get_extra_info("sockname")[0],
            transport.get_extra_info("socket").family == socket.AF_INET,
            transport.get_extra_info("sslcontext"),
            transport.get_extra_info("nonexistent", "default"),
            transport.get_protocol() is proto,
            transport.is_reading(),
            transport.get_write_buffer_size(),
            transport.get_write_buffer_limits(),
        ]
        transport.set_write_buffer_limits(high=1000)
        out.append(transport.get_write_buffer_limits())
        with pytest.raises(ValueError):
            transport.set_write_buffer_limits(high=1, low=2)
        with pytest.raises(TypeError) as excinfo:
            transport.write("text")
        assert str(excinfo.value) == WRITE_TYPE_ERROR
        transport.pause_reading()
        out.append(transport.is_reading())
        transport.resume_reading()
        transport.write_eof()
        with pytest.raises(RuntimeError, match="Cannot call write\\(\\) after write_eof\\(\\)"):
            transport.write(b"more")
        transport.close()
        out.append(transport.is_closing())
        out.append(await proto.lost)
        transport.close()  # closing twice is fine
        out.append(transport.is_reading())
        server.close()
        await server.wait_closed()
        return out

    assert run(loop_factory, main) == [
        True,
        True,
        "127.0.0.1",
        True,
        None,
        "default",
        True,
        True,
        0,
        (16384, 65536),
        (250, 1000),
        False,
        True,
        None,
        False,
    ]


def test_write_after_close_is_dropped_silently(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> bytes:
        a, b = socket.socketpair()
        transport, proto = await loop.connect_accepted_socket(Collect, a)
        peer, peer_proto = await loop.connect_accepted_socket(Collect, b)
        transport.write(b"before")
        transport.close()
        await proto.lost
        transport.write(b"after")  # no exception, no data
        await peer_proto.lost
        peer.close()
        return bytes(peer_proto.data)

    assert run(loop_factory, main) == b"before"


@pytest.mark.parametrize("second_kind", ["buffered", "plain"])
def test_set_protocol_switches_reader(loop_factory: LoopFactory, second_kind: str) -> None:
    # aloop binds a plain protocol's data_received once: the new one must get the bytes.
    async def main(loop: asyncio.AbstractEventLoop) -> tuple[bytes, bytes]:
        a, b = socket.socketpair()
        transport, first = await loop.connect_accepted_socket(Collect, a)
        peer, _ = await loop.connect_accepted_socket(Collect, b)
        peer.write(b"one")
        while not first.data:
            await asyncio.sleep(0.001)
        second = Buffered() if second_kind == "buffered" else Collect()
        transport.set_protocol(second)
        peer.write(b"two")
        peer.close()
        if isinstance(second, Buffered):
            await second.done
            got = second.received
        else:
            while not second.eof:
                await asyncio.sleep(0.001)
            got = second.data
        transport.close()
        await asyncio.sleep(0)
        return bytes(first.data), bytes(got)

    assert run(loop_factory, main) == (b"one", b"two")


def test_protocol_released_after_connection_lost(loop_factory: LoopFactory) -> None:
    # The transport outlives the connection here; the protocol must not.
    async def main(loop: asyncio.AbstractEventLoop) -> bool:
        a, b = socket.socketpair()
        transport, proto = await loop.connect_accepted_socket(Collect, a)
        b.send(b"x")
        while not proto.data:
            await asyncio.sleep(0.001)
        transport.close()
        await proto.lost
        ref = weakref.ref(proto)
        del proto
        gc.collect()
        b.close()
        return ref() is None and transport.is_closing()

    assert run(loop_factory, main) is True


class NoDataReceived(asyncio.BaseProtocol):
    """A protocol without data_received, used on a stream transport by mistake."""

    def __init__(self) -> None:
        self.lost: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost.set_result(exc)


def test_protocol_without_data_received_is_a_fatal_error(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> tuple[str, str, str]:
        seen: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, context: seen.append(context))
        a, b = socket.socketpair()
        _transport, proto = await loop.connect_accepted_socket(NoDataReceived, a)
        b.send(b"data")
        exc = await proto.lost
        b.close()
        return seen[0]["message"], type(seen[0]["exception"]).__name__, type(exc).__name__

    assert run(loop_factory, main) == (
        "Fatal error: protocol.data_received() call failed.",
        "AttributeError",
        "AttributeError",
    )


class Buffered(asyncio.BufferedProtocol):
    """Lends a small buffer, so one large message takes many reads."""

    def __init__(self) -> None:
        self.buffer = bytearray(1000)
        self.received = bytearray()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.received.extend(self.buffer[:nbytes])

    def eof_received(self) -> None:
        self.done.set_result(None)

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


def test_buffered_protocol_reads_into_its_buffer(loop_factory: LoopFactory) -> None:
    data = pattern(300_000, seed=9)

    async def main(loop: asyncio.AbstractEventLoop) -> bool:
        protos: list[Buffered] = []

        def factory() -> Buffered:
            protos.append(Buffered())
            return protos[-1]

        server = await loop.create_server(factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(data)
        writer.write_eof()
        while not protos:
            await asyncio.sleep(0.001)
        await protos[0].done
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return bytes(protos[0].received) == data

    assert run(loop_factory, main)


def test_create_connection_argument_errors(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> list[str]:
        errors = []
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: loop.create_connection(asyncio.Protocol, "127.0.0.1", 1, server_hostname="x"),
            lambda: loop.create_connection(
                asyncio.Protocol, "127.0.0.1", 1, ssl_handshake_timeout=1
            ),
            lambda: loop.create_connection(asyncio.Protocol),
            lambda: loop.create_connection(asyncio.Protocol, "127.0.0.1", 1, sock=socket.socket()),
            lambda: loop.create_connection(
                asyncio.Protocol, sock=socket.socket(type=socket.SOCK_DGRAM)
            ),
        ]
        for call in calls:
            try:
                await call()
            except ValueError as exc:
                errors.append(str(exc).split(",")[0])
        return errors

    import gc
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # the sockets the calls refuse
        result = run(loop_factory, main)
        gc.collect()
    assert result == [
        "server_hostname is only meaningful with ssl",
        "ssl_handshake_timeout is only meaningful with ssl",
        "host and port was not specified and no sock specified",
        "host/port and sock can not be specified at the same time",
        "A Stream Socket was expected",
    ]


def test_connection_refused_and_all_errors(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
            out: list[Any] = []
            try:
                await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
            except OSError as exc:
                out.append(type(exc))
            if sys.version_info >= (3, 12):
                try:
                    await loop.create_connection(
                        asyncio.Protocol, "127.0.0.1", port, all_errors=True
                    )
                except ExceptionGroup as group:
                    out.append([type(e) for e in group.exceptions])
            return out

    expected: list[Any] = [ConnectionRefusedError]
    if sys.version_info >= (3, 12):
        expected.append([ConnectionRefusedError])
    assert run(loop_factory, main) == expected


def test_happy_eyeballs_over_v6_and_v4(loop_factory: LoopFactory) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")

    async def main(loop: asyncio.AbstractEventLoop) -> tuple[bytes, int]:
        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        infos = [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
        ]

        async def resolve(*args: Any, **kwargs: Any) -> list[Any]:
            return infos

        loop.getaddrinfo = resolve  # type: ignore[method-assign]
        async with server:
            reader, writer = await asyncio.open_connection(
                "localhost.test", port, happy_eyeballs_delay=0.05
            )
            family = writer.get_extra_info("socket").family
            writer.write(b"hi")
            writer.write_eof()
            data = await reader.read()
            writer.close()
            await writer.wait_closed()
            return data, family

    assert run(loop_factory, main) == (b"hi", socket.AF_INET)


class FlowRecorder(asyncio.Protocol):
    def __init__(self) -> None:
        self.events: list[str] = []
        self.lost: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    def pause_writing(self) -> None:
        self.events.append("pause")

    def resume_writing(self) -> None:
        self.events.append("resume")

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost.set_result(exc)


def test_pause_and_resume_writing_are_called_once_each(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> tuple[list[str], int, bool]:
        a, b = socket.socketpair()
        transport, proto = await loop.connect_accepted_socket(FlowRecorder, a)
        transport.set_write_buffer_limits(high=64 * 1024, low=16 * 1024)
        data = pattern(4 * 1024 * 1024, seed=5)
        for start in range(0, len(data), 65536):
            transport.write(data[start : start + 65536])  # nobody reads yet
        buffered = transport.get_write_buffer_size()
        b.setblocking(False)
        received = bytearray()
        while len(received) < len(data):
            try:
                received.extend(b.recv(1 << 20))
            except BlockingIOError:
                await asyncio.sleep(0.001)
        await asyncio.sleep(0.01)
        transport.close()
        await proto.lost
        b.close()
        return proto.events, buffered > 0, bytes(received) == data

    assert run(loop_factory, main) == (["pause", "resume"], True, True)


def test_abort_drops_buffered_data(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> tuple[Any, int, bool]:
        a, b = socket.socketpair()
        transport, proto = await loop.connect_accepted_socket(FlowRecorder, a)
        transport.write(b"x" * (8 * 1024 * 1024))  # more than the socket takes
        before = transport.get_write_buffer_size()
        transport.abort()
        exc = await proto.lost
        b.close()
        return exc, transport.get_write_buffer_size(), before > 0

    assert run(loop_factory, main) == (None, 0, True)


def test_unclosed_transport_warns(loop_factory: LoopFactory) -> None:
    import gc

    async def main(loop: asyncio.AbstractEventLoop) -> list[str]:
        a, b = socket.socketpair()
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, a)
        await asyncio.sleep(0)
        transport.pause_reading()  # drop the loop's reference to the transport
        with pytest.warns(ResourceWarning) as record:
            del transport
            gc.collect()
        b.close()
        return [str(w.message).split(" ")[0] for w in record]

    assert "unclosed" in run(loop_factory, main)


def test_transport_methods_called_through_the_class(loop_factory: LoopFactory) -> None:
    """aloop binds its core's methods on each transport; the class's own work too."""

    async def main(loop: asyncio.AbstractEventLoop) -> tuple[bytes, bool, int, bool]:
        a, b = socket.socketpair()
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, a)
        cls: Any = type(transport)
        cls.write(transport, b"one ")
        cls.writelines(transport, [b"two ", memoryview(b"three")])
        closing = cls.is_closing(transport)
        size = cls.get_write_buffer_size(transport)
        transport.close()
        await asyncio.sleep(0)
        b.setblocking(False)
        got = b""
        while len(got) < 13:
            got += await loop.sock_recv(b, 100)
        b.close()
        return got, closing, size, transport.is_closing()

    assert run(loop_factory, main) == (b"one two three", False, 0, True)


# Message sizes that cross each read-size step: below, at and above SMALL_READ,
# growing past the last read, a read-filling message, and back down.
GROWING_SIZES = [1, 40, 478, 479, 480, 1000, 5000, 100 * 1024, 10, 127 * 1024 + 1, 300 * 1024, 3]


def test_echo_of_growing_and_shrinking_messages(loop_factory: LoopFactory) -> None:
    """Each read is sized from the last; a bigger message still arrives whole, in order."""

    async def main(loop: asyncio.AbstractEventLoop) -> list[bool]:
        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            same = []
            for n, size in enumerate(GROWING_SIZES):
                data = pattern(size, seed=n)
                writer.write(data)
                same.append(await reader.readexactly(size) == data)
            writer.close()
            await writer.wait_closed()
            return same

    assert run(loop_factory, main) == [True] * len(GROWING_SIZES)


def test_read_size_follows_the_last_read(aloop_loop: Any) -> None:
    """aloop's own sizing: twice the last event's bytes, at least SMALL_READ; a
    first read that fills its buffer is continued, so each message arrives whole."""
    from aloop._transports.stream import SMALL_READ

    class Recorder(asyncio.Protocol):
        def __init__(self) -> None:
            self.reads: list[int] = []
            self.got = asyncio.Queue[int]()

        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.reads.append(len(data))
            self.got.put_nowait(len(data))

    async def deliver(proto: Recorder, size: int) -> list[int]:
        start = len(proto.reads)
        total = 0
        while total < size:
            total += await proto.got.get()
        return proto.reads[start:]

    async def main() -> list[tuple[list[int], int]]:
        a, b = socket.socketpair()
        transport, proto = await aloop_loop.connect_accepted_socket(Recorder, a)
        core = transport._core
        seen = []
        for size in (40, 1000, 3000, 2000):
            b.sendall(b"x" * size)
            seen.append((await deliver(proto, size), core.read_size))
        transport.close()
        b.close()
        return seen

    assert aloop_loop.run_until_complete(main()) == [
        ([40], SMALL_READ),  # the first read is READ_SIZE; 40 bytes -> at least SMALL_READ
        ([1000], 2000),  # SMALL_READ filled, continued: one call
        ([3000], 6000),  # 2000 filled, continued
        ([2000], 4000),  # room to spare: no continuation
    ]


def tcp_pair(rcvbuf: int = 0) -> tuple[socket.socket, socket.socket]:
    """A connected TCP pair over loopback: (the accepted end, the connecting end).

    ``rcvbuf`` is set on the listener, before the handshake, so the accepted
    end's window can hold that much unread.
    """
    with socket.socket() as listener:
        if rcvbuf:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        peer = socket.create_connection(listener.getsockname())
        conn, _ = listener.accept()
    peer.setblocking(False)
    return conn, peer


async def until(condition: Callable[[], bool]) -> None:
    """Wait for ``condition``, polling (bounded: a hang fails instead of stalling)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition never met")


class CountingSocket(socket.socket):
    """A socket that counts calls to its own recv, recv_into, send and sendmsg."""

    def __init__(self, fileno: int) -> None:
        super().__init__(fileno=fileno)
        self.calls: collections.Counter[str] = collections.Counter()

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self.calls["recv"] += 1
        return super().recv(bufsize, flags)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        self.calls["recv_into"] += 1
        return super().recv_into(buffer, nbytes, flags)

    def send(self, data: Any, flags: int = 0) -> int:
        self.calls["send"] += 1
        return super().send(data, flags)

    def sendmsg(self, buffers: Any, *args: Any) -> int:
        self.calls["sendmsg"] += 1
        return super().sendmsg(buffers, *args)


class EchoAtEof(asyncio.Protocol):
    """Collects what arrives; at EOF sends it back with write() and writelines()."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received += data

    def eof_received(self) -> None:
        data = bytes(self.received)
        self.transport.write(data[:1000])
        self.transport.writelines([data[1000:2000], data[2000:]])
        # None: the transport closes once the echo has left.


class BufferedEchoAtEof(EchoAtEof, asyncio.BufferedProtocol):
    """The same through a lent buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.buffer = bytearray(1000)

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.received += self.buffer[:nbytes]


@pytest.mark.parametrize("how", ["create_connection", "connect_accepted_socket"])
@pytest.mark.parametrize("kind", [EchoAtEof, BufferedEchoAtEof])
def test_a_socket_subclass_has_its_own_methods_called(
    loop_factory: LoopFactory, how: str, kind: type[EchoAtEof]
) -> None:
    """A ``sock=`` of a socket subclass is read and written through its own
    methods, those asyncio's transport calls (issue 17 item 4)."""
    payload = pattern(30_000, seed=4)

    async def main(loop: asyncio.AbstractEventLoop) -> tuple[list[str], bool]:
        conn, peer = tcp_pair()
        sock = CountingSocket(conn.detach())
        if how == "create_connection":
            await loop.create_connection(kind, sock=sock)
        else:
            await loop.connect_accepted_socket(kind, sock=sock)
        with peer:
            await loop.sock_sendall(peer, payload)
            peer.shutdown(socket.SHUT_WR)
            echoed = bytearray()
            while chunk := await loop.sock_recv(peer, 65536):
                echoed += chunk
        await until(lambda: sock.fileno() == -1)  # closed after connection_lost()
        return sorted(sock.calls), echoed == payload

    read = "recv_into" if kind is BufferedEchoAtEof else "recv"
    # asyncio sends a buffer of several pieces with sendmsg from 3.12 on.
    sent = ["send", "sendmsg"] if sys.version_info >= (3, 12) else ["send"]
    assert run(loop_factory, main) == (sorted([read, *sent]), True)


class PausingRecorder(asyncio.Protocol):
    """Records each data_received; pauses reading after the first."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.received = bytearray()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.sizes.append(len(data))
        self.received += data
        if len(self.sizes) == 1:
            self.transport.pause_reading()


def queued(sock: socket.socket) -> int:
    """Bytes waiting in ``sock``'s receive queue (FIONREAD)."""
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0" * 4))[0]


@pytest.mark.parametrize(
    ("size", "count"), [(1024, 20), (4096, 16), (200 * 1024, 1), (300 * 1024, 1)]
)
def test_a_burst_sent_at_once_is_read_at_once(
    loop_factory: LoopFactory, size: int, count: int
) -> None:
    """Messages sent in one sendall while the reader was paused reach
    data_received together, up to asyncio's 256 KiB per read (issue 17 item 5).

    A small message comes first: what is read next must not be sized from it.
    """
    burst = b"".join(pattern(size, seed=i) for i in range(count))

    async def main(loop: asyncio.AbstractEventLoop) -> tuple[list[int], bool]:
        conn, peer = tcp_pair(rcvbuf=4 * len(burst))
        transport, proto = await loop.connect_accepted_socket(PausingRecorder, conn)
        with peer:
            await loop.sock_sendall(peer, b"hello")
            await until(lambda: proto.sizes == [5])
            await loop.sock_sendall(peer, burst)
            await until(lambda: queued(conn) == len(burst))
            transport.resume_reading()
            await until(lambda: len(proto.received) == 5 + len(burst))
        transport.close()
        return proto.sizes, proto.received == b"hello" + burst

    total = len(burst)
    expected = [5, total] if total <= 256 * 1024 else [5, 256 * 1024, total - 256 * 1024]
    assert run(loop_factory, main) == (expected, True)


class LossRecorder(PausingRecorder):
    def __init__(self) -> None:
        super().__init__()
        self.lost: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost.set_result(exc)


TCP_CLOSE = 7  # the state byte of TCP_INFO


@pytest.mark.parametrize("size", [479, 1000])
def test_bytes_before_a_reset_arrive_before_the_error(loop_factory: LoopFactory, size: int) -> None:
    """Bytes queued ahead of a reset reach data_received; the reset comes next.

    479 bytes fill aloop's first read after a 5-byte one exactly (its
    continuation meets the reset); 1000 overflow it.
    """

    async def main(loop: asyncio.AbstractEventLoop) -> tuple[list[int], str]:
        conn, peer = tcp_pair()
        transport, proto = await loop.connect_accepted_socket(LossRecorder, conn)
        with peer:
            await loop.sock_sendall(peer, b"hello")
            await until(lambda: proto.sizes == [5])
            await loop.sock_sendall(peer, pattern(size))
            await until(lambda: queued(conn) == size)
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await until(lambda: conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] == TCP_CLOSE)
        transport.resume_reading()
        exc = await proto.lost
        return proto.sizes, type(exc).__name__

    assert run(loop_factory, main) == ([5, size], "ConnectionResetError")
