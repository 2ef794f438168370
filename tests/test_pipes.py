"""connect_read_pipe / connect_write_pipe on real pipes, FIFOs, ptys and /dev/null.

Every test runs the same program on the stdlib loop and on aloop
(``loop_factory``) and checks the protocol saw the same events: data, EOF,
flow control (pause_writing/resume_writing) and connection_lost.
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import tempfile
from typing import Any

import pytest
from tests.support import LoopFactory, both
from tests.support import run_on as run

import aloop


class Recorder(asyncio.Protocol):
    """Records the protocol events of a pipe transport."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.data = bytearray()
        self.transport: Any = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.events.append("made")

    def data_received(self, data: bytes) -> None:
        if not self.events or self.events[-1] != "data":
            self.events.append("data")
        self.data += data

    def eof_received(self) -> None:
        self.events.append("eof")

    def pause_writing(self) -> None:
        self.events.append("pause")

    def resume_writing(self) -> None:
        self.events.append("resume")

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append(("lost", type(exc).__name__ if exc else None))
        self.closed.set_result(None)


def test_read_pipe_data_then_eof(loop_factory: LoopFactory, no_fd_leak: None) -> None:
    async def main() -> tuple[list[Any], bytes]:
        loop = asyncio.get_running_loop()
        rfd, wfd = os.pipe()
        transport, proto = await loop.connect_read_pipe(Recorder, open(rfd, "rb", 0))
        assert isinstance(proto, Recorder)
        assert transport.get_extra_info("pipe").fileno() == rfd
        os.write(wfd, b"hello ")
        os.write(wfd, b"world")
        os.close(wfd)
        await proto.closed
        assert transport.is_closing()
        return proto.events, bytes(proto.data)

    assert run(loop_factory, main) == (["made", "data", "eof", ("lost", None)], b"hello world")


def test_pause_and_resume_reading(loop_factory: LoopFactory, no_fd_leak: None) -> None:
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        rfd, wfd = os.pipe()
        transport, proto = await loop.connect_read_pipe(Recorder, open(rfd, "rb", 0))
        assert isinstance(proto, Recorder)
        transport.pause_reading()
        assert not transport.is_reading()
        os.write(wfd, b"x")
        for _ in range(20):
            await asyncio.sleep(0)
        seen_while_paused = bytes(proto.data)
        transport.resume_reading()
        transport.resume_reading()  # a second resume is a no-op
        while not proto.data:
            await asyncio.sleep(0.001)
        os.close(wfd)
        await proto.closed
        return [seen_while_paused, bytes(proto.data), proto.events]

    assert run(loop_factory, main) == [b"", b"x", ["made", "data", "eof", ("lost", None)]]


def test_write_pipe_flow_control_and_no_byte_lost(
    loop_factory: LoopFactory, no_fd_leak: None
) -> None:
    """Nobody reads: the buffer fills and pauses the protocol; a reader drains it all."""

    async def main() -> tuple[list[Any], int, bool]:
        loop = asyncio.get_running_loop()
        rfd, wfd = os.pipe()
        transport, proto = await loop.connect_write_pipe(Recorder, open(wfd, "wb", 0))
        assert isinstance(proto, Recorder)
        payload = bytes(range(256)) * 4096  # 1 MiB, more than any pipe holds
        transport.write(payload)
        buffered = transport.get_write_buffer_size()
        assert proto.events == ["made", "pause"]
        received = bytearray()
        os.set_blocking(rfd, False)
        while len(received) < len(payload):
            try:
                received += os.read(rfd, 65536)
            except BlockingIOError:
                await asyncio.sleep(0.001)
        transport.close()
        await proto.closed
        os.close(rfd)
        return proto.events, buffered > 0, bytes(received) == payload

    assert run(loop_factory, main) == (["made", "pause", "resume", ("lost", None)], True, True)


def test_write_buffer_limits(loop_factory: LoopFactory, no_fd_leak: None) -> None:
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        rfd, wfd = os.pipe()
        transport, proto = await loop.connect_write_pipe(Recorder, open(wfd, "wb", 0))
        limits = [transport.get_write_buffer_limits()]
        transport.set_write_buffer_limits(high=100)
        limits.append(transport.get_write_buffer_limits())
        transport.set_write_buffer_limits(low=10)
        limits.append(transport.get_write_buffer_limits())
        try:
            transport.set_write_buffer_limits(high=1, low=2)
        except ValueError as exc:
            limits.append(str(exc))
        transport.abort()
        await proto.closed  # type: ignore[attr-defined]
        os.close(rfd)
        return limits

    assert run(loop_factory, main) == [
        (16384, 65536),
        (25, 100),
        (10, 40),
        "high (1) must be >= low (2) must be >= 0",
    ]


def test_write_pipe_reader_goes_away(loop_factory: LoopFactory, no_fd_leak: None) -> None:
    """Closing the read end is seen without writing: connection_lost, then writes are dropped."""

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        rfd, wfd = os.pipe()
        transport, proto = await loop.connect_write_pipe(Recorder, open(wfd, "wb", 0))
        assert isinstance(proto, Recorder)
        os.close(rfd)
        await proto.closed
        transport.write(b"dropped")
        return [*proto.events, transport.is_closing()]

    assert run(loop_factory, main) == ["made", ("lost", None), True]


def test_write_pipe_reader_goes_away_with_data_buffered(
    loop_factory: LoopFactory, no_fd_leak: None
) -> None:
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        rfd, wfd = os.pipe()
        transport, proto = await loop.connect_write_pipe(Recorder, open(wfd, "wb", 0))
        assert isinstance(proto, Recorder)
        transport.write(b"x" * (1 << 20))
        os.close(rfd)
        await proto.closed
        return [*proto.events, transport.get_write_buffer_size()]

    assert run(loop_factory, main) == ["made", "pause", ("lost", "BrokenPipeError"), 0]


def test_write_eof_flushes_then_closes(loop_factory: LoopFactory, no_fd_leak: None) -> None:
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        rfd, wfd = os.pipe()
        transport, proto = await loop.connect_write_pipe(Recorder, open(wfd, "wb", 0))
        assert isinstance(proto, Recorder)
        assert transport.can_write_eof()
        transport.write(b"y" * 300_000)
        transport.write_eof()
        transport.write_eof()  # a second one is a no-op
        _, rproto = await loop.connect_read_pipe(Recorder, open(rfd, "rb", 0))
        assert isinstance(rproto, Recorder)
        await proto.closed
        await rproto.closed
        return [proto.events, rproto.events, len(rproto.data)]

    assert run(loop_factory, main) == [
        ["made", "pause", "resume", ("lost", None)],
        ["made", "data", "eof", ("lost", None)],
        300_000,
    ]


def test_fifo_both_ways(loop_factory: LoopFactory, no_fd_leak: None) -> None:
    async def main() -> tuple[list[Any], bytes]:
        loop = asyncio.get_running_loop()
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "fifo")
            os.mkfifo(path)
            rfd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            wfd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            _, rproto = await loop.connect_read_pipe(Recorder, open(rfd, "rb", 0))
            wt, wproto = await loop.connect_write_pipe(Recorder, open(wfd, "wb", 0))
            assert isinstance(rproto, Recorder) and isinstance(wproto, Recorder)
            wt.write(b"through the fifo")
            wt.close()
            await wproto.closed
            await rproto.closed
            return rproto.events, bytes(rproto.data)

    assert run(loop_factory, main) == (["made", "data", "eof", ("lost", None)], b"through the fifo")


def test_character_device(loop_factory: LoopFactory, no_fd_leak: None) -> None:
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.connect_write_pipe(Recorder, open(os.devnull, "wb"))
        assert isinstance(proto, Recorder)
        transport.write(b"into the void" * 1000)
        transport.close()
        await proto.closed
        return proto.events

    assert run(loop_factory, main) == ["made", ("lost", None)]


def test_pty_both_ways(loop_factory: LoopFactory, no_fd_leak: None) -> None:
    """Write to the slave, read from the master; closing the slave is EIO, not an error."""

    async def main() -> tuple[list[Any], bytes, list[Any]]:
        loop = asyncio.get_running_loop()
        master, slave = os.openpty()
        errors: list[Any] = []
        loop.set_exception_handler(lambda loop, context: errors.append(context["message"]))
        _, rproto = await loop.connect_read_pipe(Recorder, open(master, "rb", 0))
        wt, wproto = await loop.connect_write_pipe(Recorder, open(slave, "wb", 0))
        assert isinstance(rproto, Recorder) and isinstance(wproto, Recorder)
        wt.write(b"through the pty\n")
        while b"\n" not in rproto.data:
            await asyncio.sleep(0.001)
        wt.close()
        await wproto.closed
        await rproto.closed
        return rproto.events, bytes(rproto.data).replace(b"\r\n", b"\n"), errors

    assert run(loop_factory, main) == (
        ["made", "data", ("lost", "OSError")],
        b"through the pty\n",
        [],
    )


def test_socket_write_pipe_sees_peer_close(loop_factory: LoopFactory, no_fd_leak: None) -> None:
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        transport, proto = await loop.connect_write_pipe(Recorder, open(a.detach(), "wb", 0))
        assert isinstance(proto, Recorder)
        transport.write(b"1")
        assert b.recv(10) == b"1"
        b.close()
        await proto.closed
        return proto.events

    assert run(loop_factory, main) == ["made", ("lost", None)]


@pytest.mark.parametrize("method", ["connect_read_pipe", "connect_write_pipe"])
def test_regular_file_is_refused_as_asyncio_does(method: str, no_fd_leak: None) -> None:
    async def main() -> tuple[str, str]:
        loop = asyncio.get_running_loop()
        with tempfile.TemporaryFile() as pipe:
            try:
                await getattr(loop, method)(asyncio.Protocol, pipe)
            except Exception as exc:
                return type(exc).__name__, str(exc)
        return "no error", ""

    assert both(main)[0] == "ValueError"


@pytest.mark.parametrize("method", ["connect_read_pipe", "connect_write_pipe"])
def test_closed_file_is_refused(method: str, no_fd_leak: None) -> None:
    """(Not compared: the stdlib transport then fails again in its __del__.)"""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        pipe = tempfile.TemporaryFile()
        pipe.close()
        with pytest.raises(ValueError, match="closed file"):
            await getattr(loop, method)(asyncio.Protocol, pipe)

    run(aloop.new_event_loop, main)


def test_unclosed_transport_warns_and_closes_the_pipe(no_fd_leak: None) -> None:
    rfd, wfd = os.pipe()

    async def main() -> Any:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_read_pipe(asyncio.Protocol, open(rfd, "rb", 0))
        return transport

    loop = aloop.new_event_loop()
    transport = loop.run_until_complete(main())
    loop.close()
    assert "open" in repr(transport)
    with pytest.warns(ResourceWarning, match="unclosed transport"):
        del transport
        gc.collect()
    os.close(wfd)


def test_closing_transports_after_the_loop_closed_releases_the_pipes(no_fd_leak: None) -> None:
    rfd, wfd = os.pipe()

    async def main() -> tuple[Any, Any]:
        loop = asyncio.get_running_loop()
        reader, _ = await loop.connect_read_pipe(asyncio.Protocol, open(rfd, "rb", 0))
        writer, _ = await loop.connect_write_pipe(asyncio.Protocol, open(wfd, "wb", 0))
        writer.write(b"x" * 200_000)  # more than the pipe takes: some stays buffered
        return reader, writer

    loop = aloop.new_event_loop()
    reader, writer = loop.run_until_complete(main())
    loop.close()
    assert writer.get_write_buffer_size() > 0
    reader.close()
    writer.close()
    writer.abort()
    assert reader.is_closing() and writer.is_closing()
    assert "closed" in repr(reader) and "closed" in repr(writer)
