"""Faults on plain sockets (issue 19): each test runs on the stdlib loop and on aloop.

Out of fds on accept, write storms against a peer that does not read, signals
arriving during every blocking call, closing a transport with a full write
buffer, and protocol methods and callbacks that raise. The expected behaviour
written in each test is the stdlib loop's, which runs the same test.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tests.support import LoopFactory, aloop_env, run_with_loop

pytestmark = [
    pytest.mark.skipif(
        not sys.platform.startswith("linux"), reason="Linux socket, rlimit and signal behaviour"
    ),
    pytest.mark.usefixtures("no_fd_leak"),
]

TIMEOUT = 60.0


def pattern(size: int) -> bytes:
    """Bytes that differ at every offset mod 251, so a lost or repeated chunk shows."""
    return bytes(i % 251 for i in range(size))


async def tcp_pair(
    loop: asyncio.AbstractEventLoop,
    factory: Callable[[], asyncio.Protocol],
    *,
    sndbuf: int | None = None,
    rcvbuf: int | None = None,
) -> tuple[asyncio.Transport, Any, socket.socket]:
    """A transport over TCP to a raw non-blocking peer socket; small buffers on request."""
    lsock = socket.create_server(("127.0.0.1", 0))
    if rcvbuf is not None:  # inherited by the accepted socket, before the window opens
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    lsock.setblocking(False)
    sock = socket.socket()
    try:
        if sndbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        sock.setblocking(False)
        (peer, _), _ = await asyncio.gather(
            loop.sock_accept(lsock), loop.sock_connect(sock, lsock.getsockname())
        )
    except BaseException:
        sock.close()
        raise
    finally:
        lsock.close()
    peer.setblocking(False)
    transport, protocol = await loop.create_connection(factory, sock=sock)
    return transport, protocol, peer


async def recv_all(loop: asyncio.AbstractEventLoop, sock: socket.socket, chunk: int) -> bytes:
    """Read ``sock`` to EOF (or reset) in ``chunk``-sized reads."""
    parts = []
    while True:
        try:
            data = await loop.sock_recv(sock, chunk)
        except ConnectionResetError:
            break
        if not data:
            break
        parts.append(data)
    return b"".join(parts)


# -- 1. out of fds on accept -------------------------------------------------------------

# The child programs below start with this (a table of 128 fds) and end running main().
EMFILE_PRELUDE = r"""
import asyncio, json, os, resource, socket, subprocess, sys, time
import aloop

FACTORIES = {"asyncio": asyncio.new_event_loop, "aloop": aloop.new_event_loop}
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard))

def fill_fds():
    # Take every free fd (dups of stdin); return them.
    fds = []
    try:
        while True:
            fds.append(os.dup(0))
    except OSError as exc:
        assert exc.errno == 24, exc
    return fds

def free_fds(fds):
    while fds:
        os.close(fds.pop())
"""
EMFILE_RUN = """
loop = FACTORIES[sys.argv[1]]()
asyncio.set_event_loop(loop)
loop.run_until_complete(main())
loop.close()
"""


def loop_name(loop_factory: LoopFactory) -> str:
    return "aloop" if loop_factory.__module__.startswith("aloop") else "asyncio"


def run_emfile_child(program: str, name: str) -> subprocess.CompletedProcess[str]:
    """Run an EMFILE child program to its end on the loop called ``name``."""
    return subprocess.run(
        args=[sys.executable, "-c", program, name],
        stdin=subprocess.DEVNULL,  # the fd the child dups to fill its table
        capture_output=True,
        env=aloop_env(),
        text=True,
        timeout=TIMEOUT,
    )


EMFILE_SERVER = (
    EMFILE_PRELUDE
    + r"""

class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        served.append(time.monotonic())
    def data_received(self, data):
        self.transport.write(data)
    def eof_received(self):
        done.set_result(None) if not done.done() else None

def warm_up_tracebacks():
    # Import and cache what logging a traceback needs: it cannot open files later.
    import linecache, logging, traceback
    logging.lastResort.format  # the handler asyncio's logger falls back on
    with socket.socket() as unbound:
        try:
            unbound.accept()  # an OSError raised in socket.py, as accept's is
        except OSError:
            traceback.format_exc()
    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None):
            linecache.getlines(module.__file__)

async def main():
    global done
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    server = await loop.create_server(Echo, "127.0.0.1", 0)
    before = [s.fileno() for s in server.sockets]
    warm_up_tracebacks()
    fds = []
    def handler(loop, context):
        contexts.append({
            "message": context.get("message"),
            "keys": sorted(context),
            "errno": getattr(context.get("exception"), "errno", None),
            "socket": type(context.get("socket")).__name__,
            "same_socket": context["socket"].fileno() in before,
            "at": time.monotonic(),
        })
        if len(contexts) == 1:
            loop.default_exception_handler(context)  # logs, as asyncio's default does
            # Free the fds a little later: the server must serve again once it retries.
            loop.call_later(0.1, free)
    def free():
        free_fds(fds)
    loop.set_exception_handler(handler)
    fds.extend(fill_fds())
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.wait_for(done, 30)
    result = {
        "contexts": contexts,
        "reports": len(contexts),
        "served": len(served),
        "paused_for": served[0] - contexts[0]["at"] if contexts and served else None,
        "serving": server.is_serving(),
        "same_sockets": [s.fileno() for s in server.sockets] == before,
    }
    server.close()
    await server.wait_closed()
    print(json.dumps(result), flush=True)

contexts, served = [], []
"""
    + EMFILE_RUN
)


def test_emfile_on_accept_pauses_then_serves_again(loop_factory: LoopFactory) -> None:
    """EMFILE on accept: logged once, accepting paused, the listening socket kept, served after."""
    name = loop_name(loop_factory)
    proc = subprocess.Popen(
        args=[sys.executable, "-c", EMFILE_SERVER, name],
        stdin=subprocess.DEVNULL,  # the fd the child dups to fill its table
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=aloop_env(),
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
            client.sendall(b"hello")
            assert client.recv(5) == b"hello"  # served once the fds were freed
            client.shutdown(socket.SHUT_WR)
            out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    context = result["contexts"][0]
    if name == "aloop":
        assert len(result["contexts"]) == 1  # one report, then no accept until the retry
    else:
        # asyncio tries the rest of the backlog (100) in the same event, each attempt
        # failing and reported while the fds stay taken.
        assert len(result["contexts"]) >= 1
        assert all(c == dict(context, at=c["at"]) for c in result["contexts"])
    assert context["message"] == "socket.accept() out of system resource"
    assert context["keys"] == ["exception", "message", "socket"]
    assert context["errno"] == 24
    assert context["socket"] == "TransportSocket"
    assert context["same_socket"]
    assert "socket.accept() out of system resource" in err
    assert "Too many open files" in err
    assert result["served"] == 1
    assert result["serving"] and result["same_sockets"]
    # asyncio waits constants.ACCEPT_RETRY_DELAY (1 s) before accepting again.
    assert result["paused_for"] >= 0.9


EMFILE_THEN_CLOSE = (
    EMFILE_PRELUDE
    + r"""

async def main():
    loop = asyncio.get_running_loop()
    contexts = []
    reported = loop.create_future()
    def handler(loop, context):
        contexts.append(context.get("message"))
        if not reported.done():
            reported.set_result(None)
    loop.set_exception_handler(handler)
    server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
    client = socket.create_connection(server.sockets[0].getsockname())
    fds = fill_fds()
    await asyncio.wait_for(reported, 30)
    free_fds(fds)
    server.close()
    await asyncio.wait_for(server.wait_closed(), 30)
    # Past the retry (ACCEPT_RETRY_DELAY, 1 s): it must find the server closed.
    retried = loop.create_future()
    loop.call_later(1.5, retried.set_result, None)
    await retried
    client.close()
    print(json.dumps(contexts), flush=True)

"""
    + EMFILE_RUN
)


def test_emfile_then_server_closed_during_the_pause(loop_factory: LoopFactory) -> None:
    """A server closed while accepting is paused stays closed, and nothing more is reported."""
    name = loop_name(loop_factory)
    proc = run_emfile_child(EMFILE_THEN_CLOSE, name)
    assert proc.returncode == 0, proc.stderr
    contexts = json.loads(proc.stdout.strip().splitlines()[-1])
    if name == "aloop":
        assert contexts == ["socket.accept() out of system resource"]
    else:
        # asyncio reports each failed attempt of the backlog's worth it tries per event,
        # and its retry then fails on the closed socket: "Exception in callback
        # BaseSelectorEventLoop._start_serving(...)" (ValueError, fd -1). aloop's
        # retry sees the server closed; one report.
        assert contexts[0] == "socket.accept() out of system resource"


EMFILE_OPS = (
    EMFILE_PRELUDE
    + r"""

async def attempt(coro):
    try:
        result = await coro
    except OSError as exc:
        return [type(exc).__name__, exc.errno]
    return ["ok", repr(result)]

async def spawn_with_free_fds(free):
    # A subprocess with three pipes when only `free` fds are left: raise or run.
    before = len(os.listdir("/proc/self/fd"))
    fds = fill_fds()
    for _ in range(free):
        os.close(fds.pop())
    try:
        proc = await asyncio.create_subprocess_exec(
            "/bin/true", stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    except OSError as exc:
        outcome = exc.errno
    else:
        outcome = "ok"
    finally:
        free_fds(fds)
    if outcome == "ok":
        await asyncio.wait_for(proc.communicate(), 30)
        outcome = proc.returncode
    with open(f"/proc/{os.getpid()}/task/{os.getpid()}/children") as f:
        children = f.read().split()
    return [outcome, len(os.listdir("/proc/self/fd")) - before, children]

async def main():
    loop = asyncio.get_running_loop()
    lsock = socket.create_server(("127.0.0.1", 0))
    lsock.setblocking(False)
    client = socket.create_connection(lsock.getsockname())  # waits in the backlog
    before = len(os.listdir("/proc/self/fd"))
    fds = fill_fds()
    results = {
        "sock_accept": await attempt(loop.sock_accept(lsock)),
        "create_connection": await attempt(
            loop.create_connection(asyncio.Protocol, *lsock.getsockname())
        ),
        "open_connection": await attempt(asyncio.open_connection(*lsock.getsockname())),
        "subprocess": await attempt(
            asyncio.create_subprocess_exec(sys.executable, "-c", "", stdout=subprocess.PIPE)
        ),
    }
    free_fds(fds)
    results["leaked"] = len(os.listdir("/proc/self/fd")) - before
    results["subprocess_partial"] = [await spawn_with_free_fds(free) for free in range(10)]
    conn, _ = await loop.sock_accept(lsock)  # the queued connection is still there
    conn.close()
    client.close()
    lsock.close()
    print(json.dumps(results), flush=True)

"""
    + EMFILE_RUN
)


def test_operations_out_of_fds_raise_and_leak_nothing(loop_factory: LoopFactory) -> None:
    """With no fd free, accept/connect/subprocess raise OSError(EMFILE) and leak no fd."""
    name = loop_name(loop_factory)
    proc = run_emfile_child(EMFILE_OPS, name)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    emfile = ["OSError", 24]
    # EMFILE (24) until there are fds enough for the pipes, then the child runs (rc 0);
    # never an fd or a child left behind.
    partial = results.pop("subprocess_partial")
    outcomes = [outcome for outcome, _, _ in partial]
    assert outcomes[0] == 24 and outcomes[-1] == 0
    assert outcomes == sorted(outcomes, reverse=True) and set(outcomes) == {24, 0}
    assert [(leaked, children) for _, leaked, children in partial] == [(0, [])] * len(partial)
    assert results == {
        "sock_accept": emfile,
        "create_connection": emfile,
        "open_connection": emfile,
        "subprocess": emfile,
        "leaked": 0,
    }


# -- 2. write storms against a peer that does not read ---------------------------------------


class Writer(asyncio.Protocol):
    """Records pause/resume calls and connection_lost."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.paused = asyncio.Event()
        self.resumed = asyncio.Event()
        self.lost: list[BaseException | None] = []

    def pause_writing(self) -> None:
        self.events.append("pause")
        self.resumed.clear()
        self.paused.set()

    def resume_writing(self) -> None:
        self.events.append("resume")
        self.paused.clear()
        self.resumed.set()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost.append(exc)


async def slow_reader(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, started: asyncio.Event, total: int
) -> bytes:
    """Read only once the writer is paused, then in small reads, to make EAGAIN repeat."""
    await started.wait()
    return await recv_all(loop, sock, 4096)


def asyncio_writelines_pauses() -> bool:
    """Whether the stdlib's socket transport pauses its protocol in writelines.

    3.12.1's own writelines (sendmsg) does not; 3.11's, inherited, calls write().
    """
    from asyncio import selector_events

    writelines = vars(selector_events._SelectorSocketTransport).get("writelines")
    return writelines is None or "_maybe_pause_protocol" in inspect.getsource(writelines)


@pytest.mark.parametrize("method", ["write", "writelines"])
@pytest.mark.parametrize("family", ["tcp", "unix"])
def test_transport_write_storm_loses_nothing(
    loop_factory: LoopFactory, family: str, method: str
) -> None:
    """pause/resume alternate and balance; the peer gets every byte, in order."""
    if method == "writelines" and loop_factory is asyncio.new_event_loop:
        if not asyncio_writelines_pauses():
            pytest.skip("this asyncio's writelines() never calls pause_writing (a CPython bug)")
    size, chunk = 4 * 1024 * 1024, 60000
    data = pattern(size)

    def write(transport: asyncio.Transport, piece: bytes) -> None:
        if method == "write":
            transport.write(piece)
        else:  # several pieces at once: one sendmsg on aloop
            third = len(piece) // 3
            transport.writelines([piece[:third], memoryview(piece)[third:], b""])

    async def main(loop: asyncio.AbstractEventLoop) -> tuple[list[str], bytes, Writer]:
        if family == "tcp":
            transport, proto, peer = await tcp_pair(loop, Writer, sndbuf=4096, rcvbuf=4096)
        else:
            sock, peer = socket.socketpair()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            peer.setblocking(False)
            transport, proto = await loop.create_unix_connection(Writer, sock=sock)
        with peer:
            reader = loop.create_task(slow_reader(loop, peer, proto.paused, size))
            for i, offset in enumerate(range(0, size, chunk)):
                write(transport, data[offset : offset + chunk])
                # Writes while paused too: allowed, and they must not pause again.
                if proto.paused.is_set() and i % 3 == 0:
                    await asyncio.wait_for(proto.resumed.wait(), TIMEOUT)
            transport.close()
            got = await asyncio.wait_for(reader, TIMEOUT)
            while not proto.lost:
                await asyncio.sleep(0)
        return proto.events, got, proto

    events, got, proto = run_with_loop(loop_factory, main)
    assert len(got) == size and hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    assert events.count("pause") >= 10  # a storm, not one pause
    assert events == ["pause", "resume"] * (len(events) // 2)
    assert proto.lost == [None]


def test_sock_sendall_storm_loses_nothing(loop_factory: LoopFactory) -> None:
    """sock_sendall of 4 MiB through tiny buffers to a slow reader: every byte arrives."""
    size = 4 * 1024 * 1024
    data = pattern(size)

    async def main(loop: asyncio.AbstractEventLoop) -> bytes:
        a, b = socket.socketpair()
        with a, b:
            a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            a.setblocking(False)
            b.setblocking(False)

            async def send() -> None:
                await loop.sock_sendall(a, data)
                a.shutdown(socket.SHUT_WR)

            sender = loop.create_task(send())
            got = await asyncio.wait_for(recv_all(loop, b, 3000), TIMEOUT)
            await sender
            return got

    got = run_with_loop(loop_factory, main)
    assert len(got) == size and got == data


# -- 3. signals during every blocking call ---------------------------------------------------


KILLER = r"""
import os, sys, time
pid = int(sys.argv[1])
while True:
    os.kill(pid, 10)  # SIGUSR1
    time.sleep(0.0005)
"""


@pytest.fixture
def signal_storm() -> Iterator[None]:
    """Leave SIGALRM's and SIGUSR1's handlers and the interval timer as they were."""
    old = {sig: signal.getsignal(sig) for sig in (signal.SIGALRM, signal.SIGUSR1)}
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for sig, handler in old.items():
            signal.signal(sig, handler)


async def sendfile_round(loop: asyncio.AbstractEventLoop, data: bytes) -> bool:
    """sock_sendfile a file's bytes through a socketpair, read with sock_recv_into."""
    a, b = socket.socketpair()
    with a, b, tempfile.TemporaryFile() as file:
        file.write(data)
        file.seek(0)
        a.setblocking(False)
        b.setblocking(False)

        async def send() -> None:
            await loop.sock_sendfile(a, file)
            a.shutdown(socket.SHUT_WR)

        sender = loop.create_task(send())
        got = bytearray()
        buf = bytearray(3000)
        while n := await loop.sock_recv_into(b, buf):
            got += buf[:n]
        await sender
        return got == data


async def child(i: int) -> tuple[int, int | None]:
    """A shell that prints ``i`` and exits with ``i % 7``: what it said, and its status."""
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh", "-c", f"echo {i}; exit {i % 7}", stdout=subprocess.PIPE
    )
    out, _ = await proc.communicate()
    return int(out), proc.returncode


async def every_blocking_call(loop: asyncio.AbstractEventLoop) -> dict[str, object]:
    """Run each kind of blocking call once; return what each produced."""
    results: dict[str, object] = {}
    size = 1024 * 1024
    data = pattern(size)
    lsock = socket.create_server(("127.0.0.1", 0))
    lsock.setblocking(False)
    sock = socket.socket()
    sock.setblocking(False)
    with lsock, sock:
        (peer, _), _ = await asyncio.gather(
            loop.sock_accept(lsock), loop.sock_connect(sock, lsock.getsockname())
        )
        with peer:
            peer.setblocking(False)

            async def send() -> None:
                await loop.sock_sendall(sock, data)
                sock.shutdown(socket.SHUT_WR)

            sender = loop.create_task(send())
            results["sock"] = await recv_all(loop, peer, 1000) == data
            await sender
    results["sock_sendfile"] = await sendfile_round(loop, data)
    results["getaddrinfo"] = await loop.getaddrinfo(
        "127.0.0.1", 80, type=socket.SOCK_STREAM
    ) == socket.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(7000):
            writer.write(chunk)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    try:
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])

        async def write() -> None:
            for offset in range(0, size, 50000):
                writer.write(data[offset : offset + 50000])
                await writer.drain()
            writer.write_eof()

        writing = loop.create_task(write())
        results["stream"] = await reader.read() == data
        await writing
        writer.close()
        await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys; sys.stdout.write(sys.stdin.read()[::-1])",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    out, _ = await proc.communicate(b"abc" * 10000)
    results["subprocess"] = (out == b"cba" * 10000, await proc.wait())
    results["children"] = await asyncio.gather(*(child(i) for i in range(20)))
    start = time.monotonic()
    await asyncio.sleep(0.05)
    results["sleep"] = time.monotonic() - start >= 0.05
    results["executor"] = await loop.run_in_executor(None, sum, range(100000))
    return results


@pytest.mark.parametrize(
    "how", ["add_signal_handler", "signal.signal", "from_process", "from_process_plain"]
)
def test_signal_storm_during_every_blocking_call(
    loop_factory: LoopFactory, how: str, signal_storm: None
) -> None:
    """SIGALRM every ms, or SIGUSR1 sent in a loop by another process: every operation
    completes with the right result, no data lost."""
    fired = [0]

    def count(*args: object) -> None:
        fired[0] += 1

    async def main(loop: asyncio.AbstractEventLoop) -> dict[str, object]:
        sig = signal.SIGUSR1 if how.startswith("from_process") else signal.SIGALRM
        if how in ("add_signal_handler", "from_process"):
            loop.add_signal_handler(sig, count)
        else:
            signal.signal(sig, count)
        killer = None
        if sig == signal.SIGALRM:
            signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
        else:
            killer = subprocess.Popen([sys.executable, "-c", KILLER, str(os.getpid())])
        try:
            while not fired[0]:  # the storm is on before the first call
                await asyncio.sleep(0.001)
            return await every_blocking_call(loop)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            if killer is not None:
                killer.kill()
                killer.wait()
            if how in ("add_signal_handler", "from_process"):
                loop.remove_signal_handler(sig)

    results = run_with_loop(loop_factory, main)
    assert results == {
        "sock": True,
        "sock_sendfile": True,
        "getaddrinfo": True,
        "stream": True,
        "subprocess": (True, 0),
        "children": [(i, i % 7) for i in range(20)],
        "sleep": True,
        "executor": sum(range(100000)),
    }
    assert fired[0] > 10


# -- 4. closing a transport with a full write buffer -----------------------------------------


class BigWriter(asyncio.Protocol):
    """Writes ``size`` bytes, then closes or aborts: on b"go" or when told by a task."""

    def __init__(self, data: bytes, how: str, in_callback: bool) -> None:
        self.data, self.how, self.in_callback = data, how, in_callback
        self.lost: list[BaseException | None] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.in_callback:
            self.finish()

    def finish(self) -> None:
        assert self.transport is not None
        self.transport.write(self.data)
        assert self.transport.get_write_buffer_size() > 0  # the kernel took only part
        getattr(self.transport, self.how)()
        assert self.transport.is_closing()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost.append(exc)


@pytest.mark.parametrize("in_callback", [True, False], ids=["data_received", "task"])
@pytest.mark.parametrize("how", ["close", "abort"])
def test_close_with_full_write_buffer(
    loop_factory: LoopFactory, how: str, in_callback: bool
) -> None:
    """close() flushes every byte then EOF; abort() drops the buffer. connection_lost(None) once."""
    size = 2 * 1024 * 1024
    data = pattern(size)

    async def main(loop: asyncio.AbstractEventLoop) -> tuple[bytes, BigWriter]:
        transport, proto, peer = await tcp_pair(
            loop, lambda: BigWriter(data, how, in_callback), sndbuf=4096, rcvbuf=4096
        )
        with peer:
            if in_callback:
                await loop.sock_sendall(peer, b"go")
                while not transport.is_closing():
                    await asyncio.sleep(0)
            else:
                await loop.create_task(asyncio.sleep(0))  # another task does it
                proto.finish()
            got = await asyncio.wait_for(recv_all(loop, peer, 65536), TIMEOUT)
            while not proto.lost:
                await asyncio.sleep(0)
            for _ in range(3):  # a second connection_lost would come soon after
                await asyncio.sleep(0)
        return got, proto

    got, proto = run_with_loop(loop_factory, main)
    assert proto.lost == [None]
    if how == "close":
        assert got == data
    else:
        assert len(got) < size and got == data[: len(got)]


@pytest.mark.parametrize("then", ["peer_resets", "abort", "abort_in_pause_writing"])
def test_flushing_close_interrupted(loop_factory: LoopFactory, then: str) -> None:
    """close() is flushing a full buffer when the peer resets or abort() comes: lost once."""
    size = 2 * 1024 * 1024
    data = pattern(size)

    class Proto(BigWriter):
        def pause_writing(self) -> None:
            if then == "abort_in_pause_writing":
                assert self.transport is not None
                self.transport.abort()

    async def main(loop: asyncio.AbstractEventLoop) -> tuple[list[Any], Proto, bytes]:
        contexts: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda loop, context: contexts.append(context))
        transport, proto, peer = await tcp_pair(
            loop, lambda: Proto(data, "close", False), sndbuf=4096, rcvbuf=4096
        )
        got = b""
        with peer:
            if then == "abort_in_pause_writing":
                transport.write(data)  # pauses, which aborts
                transport.close()
            else:
                proto.finish()
            if then == "peer_resets":
                peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
                peer.close()
            elif then == "abort":
                transport.abort()
            if then != "peer_resets":
                got = await asyncio.wait_for(recv_all(loop, peer, 65536), TIMEOUT)
            while not proto.lost:
                await asyncio.sleep(0.001)
            for _ in range(3):
                await asyncio.sleep(0)
        return contexts, proto, got

    contexts, proto, got = run_with_loop(loop_factory, main)
    assert contexts == []  # a reset is no error worth the handler (asyncio logs it in debug)
    if then == "peer_resets":
        assert len(proto.lost) == 1 and isinstance(proto.lost[0], ConnectionError)
    else:
        assert proto.lost == [None]
        assert len(got) < size and got == data[: len(got)]


@pytest.mark.parametrize("how", ["close", "abort"])
def test_no_protocol_call_after_closing_in_data_received(
    loop_factory: LoopFactory, how: str
) -> None:
    """Closed in its first data_received while the peer keeps sending: no more data or EOF."""

    class Closer(asyncio.Protocol):
        def __init__(self) -> None:
            self.calls: list[str] = []
            self.transport: asyncio.Transport | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.calls.append("data_received")
            assert self.transport is not None
            self.transport.write(b"x" * 100_000)  # still buffered when closing
            getattr(self.transport, how)()

        def eof_received(self) -> bool | None:
            self.calls.append("eof_received")
            return None

        def connection_lost(self, exc: BaseException | None) -> None:
            self.calls.append(f"connection_lost({exc!r})")

    async def main(loop: asyncio.AbstractEventLoop) -> list[str]:
        _, proto, peer = await tcp_pair(loop, Closer, sndbuf=4096, rcvbuf=4096)
        with peer:
            sender = loop.create_task(loop.sock_sendall(peer, pattern(1_000_000)))
            peer_got = await asyncio.wait_for(recv_all(loop, peer, 65536), TIMEOUT)
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            while not any(c.startswith("connection_lost") for c in proto.calls):
                await asyncio.sleep(0.001)
            for _ in range(3):
                await asyncio.sleep(0)
        # Closing with unread input resets the connection: the peer may miss the tail.
        assert peer_got == b"x" * len(peer_got) and len(peer_got) <= 100_000
        return proto.calls

    assert run_with_loop(loop_factory, main) == ["data_received", "connection_lost(None)"]


@pytest.mark.parametrize("flushed", [True, False], ids=["flushed", "empty"])
def test_write_after_connection_lost_goes_nowhere(
    loop_factory: LoopFactory, flushed: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """write() once connection_lost() has run, after a close() that first flushed a
    full buffer or had nothing to flush: dropped, with asyncio's warning from the
    fifth write, and never sent through the fd number the socket had, which the
    next socket opened reuses.

    asyncio before gh-156512 (3.14.10 has it) drops it only after a close() with
    nothing to flush; after a flush its transport writes to its socket, now None,
    and raises AttributeError. aloop wrote the bytes to the fd's new owner
    (another connection).
    """

    async def main(loop: asyncio.AbstractEventLoop) -> dict[str, Any]:
        transport, proto, peer = await tcp_pair(loop, Writer, sndbuf=4096, rcvbuf=4096)
        fd = transport.get_extra_info("socket").fileno()
        with peer:
            if flushed:
                transport.write(pattern(1_000_000))
                assert transport.get_write_buffer_size() > 0
            transport.close()
            got = await asyncio.wait_for(recv_all(loop, peer, 65536), TIMEOUT)
            await until_lost(proto)
        others: list[socket.socket] = []  # new sockets, until one has the freed fd number
        try:
            while fd not in [s.fileno() for s in others]:
                assert len(others) < 100, "the fd number was not reused"
                others.extend(socket.socketpair())
            raised = []
            for _ in range(7):
                try:
                    transport.write(b"too late")
                except Exception as exc:
                    raised.append(type(exc).__name__)
            for _ in range(3):
                await asyncio.sleep(0)
            for sock in others:
                sock.setblocking(False)
            leaked = [sock.recv(100) for sock in others if _readable(sock)]
        finally:
            for sock in others:
                sock.close()
        return {"got": len(got), "raised": raised, "leaked": leaked}

    with caplog.at_level("WARNING", logger="asyncio"):
        out = run_with_loop(loop_factory, main)
    warnings = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert out["got"] == (1_000_000 if flushed else 0)
    assert out["leaked"] == []
    if flushed and loop_name(loop_factory) == "asyncio" and not asyncio_counts_flushed_close():
        assert out["raised"] == ["AttributeError"] * 7
        return
    assert out["raised"] == []
    assert warnings == ["socket.send() raised exception."] * 3


def asyncio_counts_flushed_close() -> bool:
    """Whether the stdlib's socket transport counts the connection lost when a
    flushing close() ends (gh-156512), as it does when nothing was left to flush."""
    from asyncio import selector_events

    cls = selector_events._SelectorSocketTransport
    names = ("_write_ready", "_write_send", "_write_sendmsg")
    source = "".join(inspect.getsource(getattr(cls, n)) for n in names if n in vars(cls))
    return "_conn_lost += 1" in source


def _readable(sock: socket.socket) -> bool:
    try:
        sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return False
    return True


async def until_lost(proto: Writer) -> None:
    while not proto.lost:
        await asyncio.sleep(0.001)


# -- 5. protocol methods and callbacks that raise --------------------------------------------


class Boom(Exception):
    """Raised by the step under test."""


class Raiser(asyncio.Protocol):
    """Raises Boom from the protocol method named ``step``."""

    def __init__(self, step: str) -> None:
        self.step = step
        self.lost: list[BaseException | None] = []
        self.made = asyncio.Event()
        self.transport: asyncio.Transport | None = None

    def _maybe(self, step: str) -> None:
        if self.step == step:
            raise Boom(step)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.made.set()
        self._maybe("connection_made")

    def data_received(self, data: bytes) -> None:
        self._maybe("data_received")

    def eof_received(self) -> bool | None:
        self._maybe("eof_received")
        return None

    def pause_writing(self) -> None:
        self._maybe("pause_writing")

    def resume_writing(self) -> None:
        self._maybe("resume_writing")

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost.append(exc)
        self._maybe("connection_lost")


class BufferedRaiser(Raiser, asyncio.BufferedProtocol):
    """A BufferedProtocol raising from get_buffer or buffer_updated."""

    def __init__(self, step: str) -> None:
        super().__init__(step)
        self.buffer = bytearray(1024)

    def get_buffer(self, sizehint: int) -> bytearray:
        self._maybe("get_buffer")
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        self._maybe("buffer_updated")


async def server_pair(
    loop: asyncio.AbstractEventLoop, factory: Callable[[], Raiser]
) -> tuple[asyncio.Transport, Raiser, socket.socket, asyncio.Server]:
    """A server's accepted transport, small buffers, and the raw client socket."""
    lsock = socket.create_server(("127.0.0.1", 0))
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # inherited on accept
    protocols: list[Raiser] = []

    def make() -> Raiser:
        protocols.append(factory())
        return protocols[-1]

    server = await loop.create_server(make, sock=lsock)
    peer = socket.socket()
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    peer.setblocking(False)
    await loop.sock_connect(peer, lsock.getsockname())
    while not protocols or protocols[0].transport is None:
        await asyncio.sleep(0.001)
    return protocols[0].transport, protocols[0], peer, server


def summarize(context: dict[str, Any]) -> tuple[str, list[str], str]:
    """What a test may compare across loops: the message's fixed part, the keys, the type."""
    message = context["message"]
    if message.startswith("Exception in callback"):
        message = "Exception in callback"
    keys = sorted(k for k in context if k != "source_traceback")
    return message, keys, type(context.get("exception")).__name__


FATAL = ["exception", "message", "protocol", "transport"]
CALLBACK = ["exception", "handle", "message"]
PROTOCOL_STEPS = {
    "connection_made": (("Exception in callback", CALLBACK, "Boom"), False, []),
    "data_received": (
        ("Fatal error: protocol.data_received() call failed.", FATAL, "Boom"),
        True,
        ["Boom"],
    ),
    "eof_received": (
        ("Fatal error: protocol.eof_received() call failed.", FATAL, "Boom"),
        True,
        ["Boom"],
    ),
    "pause_writing": (("protocol.pause_writing() failed", FATAL, "Boom"), False, []),
    "resume_writing": (("protocol.resume_writing() failed", FATAL, "Boom"), False, []),
    "connection_lost": (("Exception in callback", CALLBACK, "Boom"), True, ["NoneType"]),
    "get_buffer": (
        ("Fatal error: protocol.get_buffer() call failed.", FATAL, "Boom"),
        True,
        ["Boom"],
    ),
    "buffer_updated": (
        ("Fatal error: protocol.buffer_updated() call failed.", FATAL, "Boom"),
        True,
        ["Boom"],
    ),
}


async def provoke(
    loop: asyncio.AbstractEventLoop,
    step: str,
    transport: asyncio.Transport,
    proto: Raiser,
    peer: socket.socket,
    contexts: list[dict[str, Any]],
) -> bool:
    """Make the protocol's ``step`` run; return whether the transport is closing after it."""
    await proto.made.wait()
    await asyncio.sleep(0)
    if step in ("pause_writing", "resume_writing"):
        transport.set_write_buffer_limits(high=8192)
        transport.write(b"x" * 1_000_000)
        await asyncio.wait_for(recv_exactly(loop, peer, 1_000_000), TIMEOUT)
        while transport.get_write_buffer_size():
            await asyncio.sleep(0)
    elif step in ("data_received", "get_buffer", "buffer_updated"):
        await loop.sock_sendall(peer, b"data")
    elif step == "eof_received":
        peer.shutdown(socket.SHUT_WR)
    elif step == "connection_lost":
        transport.close()
    deadline = loop.time() + TIMEOUT
    while not contexts and loop.time() < deadline:
        await asyncio.sleep(0.001)
    for _ in range(5):
        await asyncio.sleep(0)
    closing = transport.is_closing()
    if not closing:
        transport.close()
    while not proto.lost:
        await asyncio.sleep(0.001)
    return closing


@pytest.mark.parametrize("side", ["client", "server"])
@pytest.mark.parametrize("step", sorted(PROTOCOL_STEPS))
def test_protocol_method_raising(loop_factory: LoopFactory, step: str, side: str) -> None:
    """The handler gets asyncio's context; the loop runs on; the transport as asyncio leaves it."""
    expected_context, closes, lost = PROTOCOL_STEPS[step]
    kind = BufferedRaiser if step in ("get_buffer", "buffer_updated") else Raiser

    async def main(loop: asyncio.AbstractEventLoop) -> tuple[list[Any], bool, list[str]]:
        contexts: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda loop, context: contexts.append(context))
        server = None
        if side == "client":
            transport, proto, peer = await tcp_pair(
                loop, lambda: kind(step), sndbuf=4096, rcvbuf=4096
            )
        else:
            transport, proto, peer, server = await server_pair(loop, lambda: kind(step))
        try:
            closing = await provoke(loop, step, transport, proto, peer, contexts)
        finally:
            peer.close()
            if server is not None:
                server.close()
                await server.wait_closed()
        ran = loop.create_future()  # the loop keeps running: a later callback still runs
        loop.call_soon(ran.set_result, True)
        assert await ran
        return contexts, closing, [type(e).__name__ for e in proto.lost]

    contexts, closing, lost_with = run_with_loop(loop_factory, main)
    assert [summarize(c) for c in contexts] == [expected_context]
    assert isinstance(contexts[0]["exception"], Boom)
    assert closing == closes
    assert lost_with == (lost or ["NoneType"])  # else closed by the test afterwards


async def recv_exactly(loop: asyncio.AbstractEventLoop, sock: socket.socket, n: int) -> bytes:
    """Read exactly ``n`` bytes."""
    parts, got = [], 0
    while got < n:
        data = await loop.sock_recv(sock, min(65536, n - got))
        assert data, "EOF too early"
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def boom() -> None:
    raise Boom("callback")


@pytest.mark.parametrize("kind", ["call_soon", "call_later", "add_reader", "add_writer", "signal"])
def test_callback_raising(loop_factory: LoopFactory, kind: str) -> None:
    """A raising callback: 'Exception in callback boom()' with its handle; the loop runs on."""

    async def main(loop: asyncio.AbstractEventLoop) -> tuple[list[Any], str]:
        contexts: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda loop, context: contexts.append(context))
        a, b = socket.socketpair()
        with a, b:
            schedule(loop, kind, a, b)
            while not contexts:
                await asyncio.sleep(0.001)
            if kind == "add_reader":
                loop.remove_reader(a.fileno())
            elif kind == "add_writer":
                loop.remove_writer(a.fileno())
            elif kind == "signal":
                loop.remove_signal_handler(signal.SIGUSR1)
        ran = loop.create_future()
        loop.call_soon(ran.set_result, type(contexts[0]["handle"]).__name__)
        return contexts, await ran

    contexts, handle_type = run_with_loop(loop_factory, main)
    assert summarize(contexts[0]) == ("Exception in callback", CALLBACK, "Boom")
    assert contexts[0]["message"].startswith("Exception in callback boom()")
    assert handle_type == ("TimerHandle" if kind == "call_later" else "Handle")
    if kind in ("add_reader", "add_writer"):
        assert len(contexts) >= 1  # still ready: it may fire again until removed
    else:
        assert len(contexts) == 1


def schedule(
    loop: asyncio.AbstractEventLoop, kind: str, a: socket.socket, b: socket.socket
) -> None:
    """Have ``boom`` called back the ``kind`` way."""
    if kind == "call_soon":
        loop.call_soon(boom)
    elif kind == "call_later":
        loop.call_later(0.001, boom)
    elif kind == "add_reader":
        b.send(b"x")
        loop.add_reader(a.fileno(), boom)
    elif kind == "add_writer":
        loop.add_writer(a.fileno(), boom)
    else:
        loop.add_signal_handler(signal.SIGUSR1, boom)
        os.kill(os.getpid(), signal.SIGUSR1)


def test_exception_handler_raising(
    loop_factory: LoopFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A raising handler: asyncio logs 'Unhandled error in exception handler'; the loop runs on."""

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        raise Boom("handler")

    async def main(loop: asyncio.AbstractEventLoop) -> bool:
        loop.set_exception_handler(handler)
        loop.call_soon(boom)
        ran = loop.create_future()
        loop.call_soon(ran.set_result, True)
        return await ran

    with caplog.at_level("ERROR", logger="asyncio"):
        assert run_with_loop(loop_factory, main)
    (record,) = [r for r in caplog.records if "exception handler" in r.getMessage()]
    assert record.name == "asyncio"
    assert record.getMessage().startswith("Unhandled error in exception handler")
    assert record.exc_info is not None and isinstance(record.exc_info[1], Boom)
    assert "Exception in callback boom()" in record.getMessage()
