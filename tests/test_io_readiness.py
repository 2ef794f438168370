"""add_reader / add_writer on real sockets and pipes, on epoll and on poll(2)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from tests.support import LoopFactory, outcome

import aloop

BACKENDS = ["epoll", "poll"]


@pytest.fixture(params=BACKENDS)
def backend_loop(request: pytest.FixtureRequest, no_fd_leak: None) -> Iterator[aloop.Loop]:
    loop = aloop.Loop(backend=request.param)
    yield loop
    loop.close()


def test_reader_sees_data_and_remove_reader_stops_it(backend_loop: aloop.Loop) -> None:
    loop = backend_loop
    a, b = socket.socketpair()
    a.setblocking(False)
    got: list[bytes] = []

    def on_readable() -> None:
        data = a.recv(100)
        got.append(data)
        if data == b"stop":
            assert loop.remove_reader(a) is True
            loop.stop()

    loop.add_reader(a.fileno(), on_readable)
    loop.call_later(0.01, b.send, b"hello")
    loop.call_later(0.03, b.send, b"stop")
    loop.run_forever()
    assert got == [b"hello", b"stop"]
    assert loop.remove_reader(a) is False
    a.close()
    b.close()


def test_writer_fires_when_writable(backend_loop: aloop.Loop) -> None:
    loop = backend_loop
    a, b = socket.socketpair()
    calls: list[str] = []

    def on_writable(tag: str) -> None:
        calls.append(tag)
        loop.remove_writer(a)
        loop.stop()

    loop.add_writer(a, on_writable, "w")
    loop.run_forever()
    assert calls == ["w"]
    a.close()
    b.close()


def test_reader_and_writer_on_the_same_fd(backend_loop: aloop.Loop) -> None:
    loop = backend_loop
    a, b = socket.socketpair()
    a.setblocking(False)
    events: list[str] = []

    def readable() -> None:
        events.append("read " + a.recv(10).decode())
        loop.remove_reader(a)
        loop.stop()

    def writable() -> None:
        events.append("write")
        loop.remove_writer(a)
        b.send(b"x")

    loop.add_reader(a, readable)
    loop.add_writer(a, writable)
    loop.run_forever()
    assert events == ["write", "read x"]
    a.close()
    b.close()


def test_replacing_a_reader_cancels_the_old_handle(backend_loop: aloop.Loop) -> None:
    loop = backend_loop
    r, w = os.pipe()
    got: list[str] = []
    first = loop.add_reader(r, got.append, "first")
    loop.add_reader(r, lambda: (got.append("second"), os.read(r, 1), loop.stop()))
    assert first.cancelled()
    os.write(w, b"!")
    loop.run_forever()
    assert got == ["second"]
    loop.remove_reader(r)
    os.close(r)
    os.close(w)


def test_hangup_wakes_the_reader(backend_loop: aloop.Loop) -> None:
    loop = backend_loop
    r, w = os.pipe()
    got: list[bytes] = []

    def readable() -> None:
        got.append(os.read(r, 10))
        loop.remove_reader(r)
        loop.stop()

    loop.add_reader(r, readable)
    loop.call_soon(os.close, w)
    loop.run_forever()
    assert got == [b""]
    os.close(r)


def test_fd_number_reused_after_close_is_registered_afresh(backend_loop: aloop.Loop) -> None:
    loop = backend_loop
    a, b = socket.socketpair()
    loop.add_writer(a, print)
    fd = a.fileno()
    a.close()  # the kernel drops it from epoll; aloop's table still lists it
    c, d = socket.socketpair()
    fired: list[str] = []
    target = c if c.fileno() == fd else d if d.fileno() == fd else c

    def on_readable() -> None:
        fired.append("readable")
        loop.remove_reader(target)
        loop.stop()

    loop.remove_writer(fd)
    loop.add_reader(target, on_readable)
    (d if target is c else c).send(b"x")
    loop.run_forever()
    assert fired == ["readable"]
    for s in (b, c, d):
        s.close()


def test_bad_fds_get_selectors_errors(loop_factory: LoopFactory) -> None:
    loop = loop_factory()
    with pytest.raises(ValueError, match="Invalid file descriptor: -1"):
        loop.add_reader(-1, print)
    with pytest.raises(ValueError, match="Invalid file object"):
        loop.add_reader(object(), print)
    with pytest.raises(ValueError, match="Invalid file object"):
        loop.remove_writer("nope")
    loop.close()
    r, w = os.pipe()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.add_reader(r, print)
    assert loop.remove_reader(r) is False
    os.close(r)
    os.close(w)


def test_regular_file_is_refused_like_asyncio(loop_factory: LoopFactory, tmp_path: Any) -> None:
    loop = loop_factory()
    path = tmp_path / "f"
    path.write_bytes(b"data")
    with open(path, "rb") as f:
        with pytest.raises(PermissionError):
            loop.add_reader(f.fileno(), print)
        # The refused fd left nothing behind.
        assert loop.remove_reader(f.fileno()) is False
    loop.close()


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown I/O backend 'kqueue2'"):
        aloop.Loop(backend="kqueue2")


def test_io_keeps_flowing_behind_a_stream_of_callbacks(backend_loop: aloop.Loop) -> None:
    """Each iteration polls, also with callbacks queued: I/O is never starved.

    The data is there before the first iteration, whose poll sees it: the
    reader runs right after the first ``spin``, as on the stdlib loop.
    """
    loop = backend_loop
    a, b = socket.socketpair()
    a.setblocking(False)
    spins = 0

    def spin() -> None:
        nonlocal spins
        spins += 1
        loop.call_soon(spin)

    def readable() -> None:
        a.recv(10)
        loop.remove_reader(a)
        loop.stop()

    loop.add_reader(a, readable)
    loop.call_soon(spin)
    b.send(b"x")
    loop.run_forever()
    assert spins == 1  # the reader ran in the first iteration, though spin() never lets up
    a.close()
    b.close()


def test_close_releases_every_fd(no_fd_leak: None) -> None:
    for backend in BACKENDS:
        loops = [aloop.Loop(backend=backend) for _ in range(20)]
        r, w = os.pipe()
        for loop in loops:
            loop.add_reader(r, print)
            loop.close()
        os.close(r)
        os.close(w)


def test_sock_level_program_matches(loop_factory: LoopFactory) -> None:
    """A readiness-driven echo between socketpair ends, identical on both loops."""
    loop = loop_factory()
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    received: list[bytes] = []

    def echo() -> None:
        data = b.recv(100)
        if data:
            b.send(data.upper())

    def collect() -> None:
        received.append(a.recv(100))
        if len(received) == 3:
            loop.stop()
        else:
            a.send(b"msg%d" % len(received))

    loop.add_reader(b, echo)
    loop.add_reader(a, collect)
    a.send(b"msg0")
    loop.run_forever()
    loop.remove_reader(a)
    loop.remove_reader(b)
    loop.close()
    a.close()
    b.close()
    assert received == [b"MSG0", b"MSG1", b"MSG2"]


def test_asyncio_future_waits_on_fd(loop_factory: LoopFactory) -> None:
    loop = loop_factory()
    r, w = os.pipe()

    async def wait_readable() -> bytes:
        fut = loop.create_future()
        loop.add_reader(r, fut.set_result, None)
        try:
            await fut
        finally:
            loop.remove_reader(r)
        return os.read(r, 10)

    loop.call_later(0.01, os.write, w, b"ping")
    assert loop.run_until_complete(asyncio.wait_for(wait_readable(), 5)) == b"ping"
    loop.close()
    os.close(r)
    os.close(w)


@pytest.mark.parametrize("indexed_fds", [0, 4, 1 << 16])
def test_fd_table_finds_fds_past_its_list_index(indexed_fds: int) -> None:
    """fds at or past the table's list index are found through its dict."""
    from aloop._core.fdtable import FdTable
    from aloop._core.handles import Handle
    from aloop._io.poller import Poller

    loop = aloop.new_event_loop()
    poller = Poller()
    table = FdTable(poller, indexed_fds=indexed_fds)
    pairs = [socket.socketpair() for _ in range(3)]
    try:
        handles = {}
        for a, _ in pairs:
            handles[a.fileno()] = Handle(print, (), loop, None)
            table.add(a.fileno(), handles[a.fileno()], False, a)
        for _, b in pairs:
            b.send(b"x")
        ready: list[Any] = []
        for fd, mask in poller.poll(1.0, len(pairs)):
            table.dispatch(fd, mask, ready)
        assert sorted(id(h) for h in ready) == sorted(id(h) for h in handles.values())
        first = pairs[0][0].fileno()
        assert table.remove(first, False) is True
        ready.clear()
        for fd, mask in poller.poll(1.0, len(pairs)):
            table.dispatch(fd, mask, ready)
        assert len(ready) == 2 and handles[first] not in ready
        assert len(table) == 2
        table.clear()
        assert len(table) == 0
    finally:
        poller.close()
        loop.close()
        for a, b in pairs:
            a.close()
            b.close()


def test_registration_is_found_by_its_object_after_the_socket_closes(
    loop_factory: LoopFactory,
) -> None:
    """As selectors does: remove_* of a socket closed since it was added (fileno() -1)."""

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        results: list[Any] = []
        a, b = socket.socketpair()
        loop.add_reader(a, print)
        loop.add_writer(b, print)
        fd = a.fileno()
        a.close()
        b.close()
        results.append(outcome(lambda: loop.remove_reader(a)))
        results.append(outcome(lambda: loop.remove_writer(b)))
        results.append(outcome(lambda: loop.remove_reader(a)))  # gone now: no fd, no entry
        # The fd number is free again: a new socket on it is watched normally.
        c, d = socket.socketpair()
        seen = loop.create_future()
        loop.add_reader(c, lambda: seen.done() or seen.set_result(c.recv(10)))
        d.send(b"fresh")
        results.append((c.fileno() == fd, await asyncio.wait_for(seen, 10)))
        results.append(loop.remove_reader(c))
        never = socket.socket()
        never.close()
        results.append(outcome(lambda: loop.remove_reader(never)))
        results.append(outcome(lambda: loop.add_reader(never, print)))
        for s in (c, d):
            s.close()
        return results

    loop = loop_factory()
    try:
        got = loop.run_until_complete(main())
    finally:
        loop.close()
    assert got == [
        (None, "True"),
        (None, "True"),
        (ValueError, "Invalid file descriptor: -1"),
        (True, b"fresh"),
        True,
        (ValueError, "Invalid file descriptor: -1"),
        (ValueError, "Invalid file descriptor: -1"),
    ]
