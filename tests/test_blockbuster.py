"""blockbuster on both loops: the loop's own blocking calls pass, the program's are reported.

A program touching every part of the loop that makes a possibly blocking call
(subprocesses, sendfile, Unix servers, DNS, executors, TLS, signals, pipes)
runs under ``blockbuster_ctx()``: on the stdlib loop as it is, on aloop with
``aloop.testing.blockbuster.allow``. Each of aloop's allowances is shown to
be needed (without it, that call is reported at that place) and blocking code
of the program itself is still reported.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.support import (
    LoopFactory,
    aloop_env,
    client_context,
    echo,
    requires_test_certs,
    server_context,
)

import aloop
from aloop._purity import COMPILED_MODULES
from aloop.testing.blockbuster import ALLOWANCES, Allowance, allow

blockbuster = pytest.importorskip(
    "blockbuster", reason="blockbuster is a dev dependency (scripts/env.sh)"
)

pytestmark = [pytest.mark.usefixtures("no_fd_leak"), requires_test_certs]

ROOT = Path(__file__).resolve().parents[1]
DATA_SIZE = 300_000


@dataclass
class Setting:
    """What the scenarios use, made before any loop runs (loading certificates reads files)."""

    data: str
    unix_path: str
    server_ssl: ssl.SSLContext
    client_ssl: ssl.SSLContext


def make_setting(directory: Path) -> Setting:
    data = directory / "data.bin"
    data.write_bytes(b"x" * DATA_SIZE)
    return Setting(
        str(data),
        str(directory / "server.sock"),
        server_context(),
        client_context(),
    )


Scenario = Callable[[Setting], Coroutine[Any, Any, None]]


# -- the program: one scenario per part of the loop -------------------------------------


async def subprocess_exec(setting: Setting) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; sys.stdout.write(sys.stdin.read())",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate(b"hello")
    assert out == b"hello"
    assert await proc.wait() == 0


async def subprocess_program_on_path(setting: Setting) -> None:
    # A bare name: Popen forks and reads its exec-error pipe on every version
    # (posix_spawn, without the pipe, is taken only for a program with a path).
    proc = await asyncio.create_subprocess_exec("sh", "-c", "exit 4")
    assert await proc.wait() == 4


async def subprocess_shell(setting: Setting) -> None:
    proc = await asyncio.create_subprocess_shell("echo hi; exit 3", stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    assert out == b"hi\n"
    assert await proc.wait() == 3


async def subprocess_exec_fails(setting: Setting) -> None:
    with pytest.raises(FileNotFoundError):
        await asyncio.create_subprocess_exec("aloop-no-such-program")


async def subprocess_terminate(setting: Setting) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "input()", stdin=subprocess.PIPE
    )
    proc.terminate()
    assert await proc.wait() == -signal.SIGTERM


async def transport_sendfile(setting: Setting) -> None:
    loop = asyncio.get_running_loop()
    received: asyncio.Future[int] = loop.create_future()

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.set_result(len(await reader.read()))
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(sink, "127.0.0.1", 0)
    _, writer = await asyncio.open_connection(*server.sockets[0].getsockname())
    with open(setting.data, "rb") as file:
        sent = await loop.sendfile(writer.transport, file)
    writer.write_eof()
    assert await received == sent == DATA_SIZE
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()


async def sock_sendfile(setting: Setting) -> None:
    loop = asyncio.get_running_loop()
    with socket.create_server(("127.0.0.1", 0)) as listener, socket.socket() as client:
        listener.setblocking(False)
        client.setblocking(False)
        await loop.sock_connect(client, listener.getsockname())
        conn, _ = await loop.sock_accept(listener)
        with conn:
            conn.setblocking(False)
            received = asyncio.ensure_future(read_all(conn))
            with open(setting.data, "rb") as file:
                sent = await loop.sock_sendfile(client, file)
            client.shutdown(socket.SHUT_WR)
            assert await received == sent == DATA_SIZE


async def read_all(sock: socket.socket) -> int:
    loop = asyncio.get_running_loop()
    size = 0
    while chunk := await loop.sock_recv(sock, 65536):
        size += len(chunk)
    return size


async def unix_server(setting: Setting) -> None:
    loop = asyncio.get_running_loop()
    server = await asyncio.start_unix_server(echo, setting.unix_path)
    reader, writer = await asyncio.open_unix_connection(setting.unix_path)
    writer.write(b"ping")
    assert await reader.readexactly(4) == b"ping"
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()
    # Looked at off the loop's thread: a stat on it is the program's own blocking call.
    removed = not await loop.run_in_executor(None, os.path.exists, setting.unix_path)
    assert removed == (sys.version_info >= (3, 13))


async def dns(setting: Setting) -> None:
    loop = asyncio.get_running_loop()
    assert await loop.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
    assert await loop.getaddrinfo("127.0.0.1", 80)
    assert await loop.getnameinfo(("127.0.0.1", 80))


async def executor(setting: Setting) -> None:
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, sum, [1, 2]) == 3
    assert await asyncio.to_thread(sum, [1, 2, 3]) == 6
    await loop.shutdown_default_executor()


async def tls(setting: Setting) -> None:
    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=setting.server_ssl)
    host, port = server.sockets[0].getsockname()
    reader, writer = await asyncio.open_connection(host, port, ssl=setting.client_ssl)
    writer.write(b"x" * 200_000)
    await writer.drain()
    assert await reader.readexactly(200_000) == b"x" * 200_000
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()


async def start_tls(setting: Setting) -> None:
    async def upgrade(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await writer.start_tls(setting.server_ssl)
        await echo(reader, writer)

    server = await asyncio.start_server(upgrade, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname())
    await writer.start_tls(setting.client_ssl, server_hostname="localhost")
    writer.write(b"abc")
    assert await reader.readexactly(3) == b"abc"
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()


async def signals(setting: Setting) -> None:
    loop = asyncio.get_running_loop()
    got: asyncio.Future[int] = loop.create_future()
    loop.add_signal_handler(signal.SIGUSR1, got.set_result, 1)
    os.kill(os.getpid(), signal.SIGUSR1)
    assert await got == 1
    assert loop.remove_signal_handler(signal.SIGUSR1)


async def tcp(setting: Setting) -> None:
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("localhost", port, family=socket.AF_INET)
    writer.write(b"y" * 500_000)
    await writer.drain()
    writer.write_eof()
    assert len(await reader.read()) == 500_000
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()


async def pipes(setting: Setting) -> None:
    loop = asyncio.get_running_loop()
    rfd, wfd = os.pipe()
    reader = asyncio.StreamReader()
    read_transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(rfd, "rb", 0)
    )
    write_transport, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(wfd, "wb", 0))
    write_transport.write(b"z" * 100_000)
    write_transport.close()
    assert len(await reader.read()) == 100_000
    read_transport.close()


async def datagrams(setting: Setting) -> None:
    loop = asyncio.get_running_loop()
    got: asyncio.Future[bytes] = loop.create_future()

    class Receiver(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            if not got.done():
                got.set_result(data)

    server, _ = await loop.create_datagram_endpoint(Receiver, local_addr=("127.0.0.1", 0))
    client, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, remote_addr=server.get_extra_info("sockname")
    )
    client.sendto(b"dgram")
    assert await got == b"dgram"
    client.close()
    server.close()


async def threadsafe_calls(setting: Setting) -> None:
    loop = asyncio.get_running_loop()
    from_thread: asyncio.Future[int] = loop.create_future()
    threading.Thread(target=loop.call_soon_threadsafe, args=(from_thread.set_result, 5)).start()
    assert await from_thread == 5
    from_loop: asyncio.Future[int] = loop.create_future()
    loop.call_soon_threadsafe(from_loop.set_result, 6)
    assert await from_loop == 6
    await asyncio.sleep(0.001)


PROGRAM: dict[str, Scenario] = {
    scenario.__name__: scenario
    for scenario in (
        subprocess_exec, subprocess_program_on_path, subprocess_shell, subprocess_exec_fails,
        subprocess_terminate, transport_sendfile, sock_sendfile, unix_server, dns, executor,
        tls, start_tls, signals, tcp, pipes, datagrams, threadsafe_calls,
    )
}  # fmt: skip


def run_scenario(
    loop_factory: LoopFactory,
    scenario: Scenario,
    setting: Setting,
    allowances: tuple[Allowance, ...] = ALLOWANCES,
    debug: bool = False,
) -> None:
    """Run ``scenario`` in a Runner (its shutdown included) under blockbuster_ctx()."""
    with blockbuster.blockbuster_ctx() as bb:
        allow(bb, allowances)
        with asyncio.Runner(loop_factory=loop_factory, debug=debug) as runner:
            runner.run(scenario(setting))


@pytest.mark.parametrize("name", sorted(PROGRAM))
def test_loop_calls_pass_under_blockbuster(
    loop_factory: LoopFactory, name: str, tmp_path: Path
) -> None:
    run_scenario(loop_factory, PROGRAM[name], make_setting(tmp_path))


@pytest.mark.parametrize("name", ["subprocess_shell", "sock_sendfile", "unix_server"])
def test_loop_calls_pass_in_debug_mode(
    loop_factory: LoopFactory, name: str, tmp_path: Path
) -> None:
    run_scenario(loop_factory, PROGRAM[name], make_setting(tmp_path), debug=True)


# -- each allowance is needed -------------------------------------------------------------


async def gated_executor_shutdown(setting: Setting) -> None:
    """The shutdown thread reports done, then waits for the gate: joining it must block."""
    await asyncio.to_thread(sum, [1])
    await asyncio.get_running_loop().shutdown_default_executor()


_GATE = threading.Event()


def _hold_shutdown_thread(frame: Any, event: str, arg: Any) -> None:
    if event == "return" and frame.f_code.co_name == "_do_shutdown":
        _GATE.wait(60)


# Which scenario reaches each allowance's call, and from which Python on.
REACHED_BY: dict[Allowance, tuple[str, tuple[int, int]]] = {
    Allowance("os.read", "aloop/_transports/subprocess.py", "__init__"): (
        "subprocess_program_on_path", (3, 11),
    ),
    Allowance("os.sendfile", "aloop/_transports/sendfile.py", "step"): ("sock_sendfile", (3, 11)),
    Allowance("os.stat", "aloop/_transports/server.py", "remove_stale_unix_socket"): (
        "unix_server",
        (3, 11),
    ),
    # From 3.13 a Unix server removes its socket file when it closes.
    Allowance("os.stat", "aloop/network.py", "_remember_unix_server_socket"): (
        "unix_server", (3, 13),
    ),
    Allowance("os.stat", "aloop/network.py", "_forget_unix_server_socket"): (
        "unix_server", (3, 13),
    ),
    Allowance("os.unlink", "aloop/network.py", "_forget_unix_server_socket"): (
        "unix_server", (3, 13),
    ),
    Allowance("threading.Lock.acquire", "aloop/loop.py", "shutdown_default_executor"): (
        "gated_executor_shutdown", (3, 11),
    ),
}  # fmt: skip


def run_without(index: int, directory: str) -> None:
    """In a child Python: run the scenario reaching ALLOWANCES[index] on aloop without it.

    Prints JSON: the error (if any) and the innermost frame of aloop's that raised it.
    """
    scenario_name = REACHED_BY[ALLOWANCES[index]][0]
    if scenario_name == "gated_executor_shutdown":
        scenario: Scenario = gated_executor_shutdown
        threading.setprofile(_hold_shutdown_thread)
    else:
        scenario = PROGRAM[scenario_name]
    others = ALLOWANCES[:index] + ALLOWANCES[index + 1 :]
    report: dict[str, Any] = {"error": None, "where": None}
    try:
        run_scenario(aloop.new_event_loop, scenario, make_setting(Path(directory)), others)
    except blockbuster.BlockingError as exc:
        report["error"] = str(exc)
        frames = [
            (f.filename.replace(os.sep, "/"), f.name)
            for f in traceback.extract_tb(exc.__traceback__)
        ]
        ours = [frame for frame in frames if _in_aloop(frame[0])]
        if ours:
            report["where"] = ours[-1]
    finally:
        _GATE.set()
    print(json.dumps(report))


_PACKAGE = Path(aloop.__file__).parent


def _in_aloop(filename: str) -> bool:
    """Whether a frame's file is one of the aloop package's modules (by what
    follows its last "/aloop/": the checkout itself may be called aloop)."""
    _, found, inside = filename.rpartition("/aloop/")
    return bool(found) and (_PACKAGE / inside).is_file()


CHILD = (
    "import sys; from tests.test_blockbuster import run_without;"
    " run_without(int(sys.argv[1]), sys.argv[2])"
)


def test_every_allowance_is_tested() -> None:
    assert sorted(REACHED_BY) == sorted(ALLOWANCES)


@pytest.mark.parametrize("allowance", list(REACHED_BY), ids=lambda a: "-".join(a))
def test_each_allowance_is_needed(allowance: Allowance, tmp_path: Path) -> None:
    index = ALLOWANCES.index(allowance)
    _, since = REACHED_BY[allowance]
    if sys.version_info < since:
        pytest.skip(f"aloop makes this call from Python {since[0]}.{since[1]} on")
    if allowance.call == "threading.Lock.acquire" and sys.version_info >= (3, 13):
        pytest.skip("Thread.join waits on a thread handle from 3.13, not a Lock blockbuster sees")
    # A child Python: without the allowance, aloop's call fails half-way (a
    # socket or a child left behind), which is not this process's to clean up.
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(index), str(tmp_path)],
        cwd=ROOT, env=aloop_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.splitlines()[-1])
    reported_as = blockbuster.BlockBuster().functions[allowance.call].full_name
    assert report["error"] == f"Blocking call to {reported_as}"
    file, function = report["where"]
    assert file.endswith(allowance.file)
    assert function == allowance.function


def test_allowances_name_interpreted_functions() -> None:
    """A compiled function has no frame blockbuster could see; a renamed one matches nothing."""
    for allowance in ALLOWANCES:
        assert allowance.file.startswith("aloop/")
        module = allowance.file.removesuffix(".py").replace("/", ".")
        assert module not in COMPILED_MODULES
        source = (ROOT / "src" / allowance.file).read_text()
        assert f"def {allowance.function}(" in source, allowance


def test_aloop_does_not_import_blockbuster() -> None:
    code = "import sys, aloop, aloop.testing.blockbuster; print('blockbuster' in sys.modules)"
    proc = subprocess.run(
        [sys.executable, "-c", code], env=aloop_env(), capture_output=True, text=True, timeout=60
    )
    assert proc.stdout.strip() == "False", proc.stderr


# -- the program's own blocking calls are still reported ------------------------------------


def test_blocking_call_in_a_coroutine_is_reported(
    loop_factory: LoopFactory, tmp_path: Path
) -> None:
    async def sleeps(setting: Setting) -> None:
        time.sleep(0.001)

    with pytest.raises(blockbuster.BlockingError, match=r"time\.sleep"):
        run_scenario(loop_factory, sleeps, make_setting(tmp_path))


def receive(sock: socket.socket, done: asyncio.Future[bytes]) -> None:
    try:
        done.set_result(sock.recv(1))
    except Exception as exc:
        done.set_exception(exc)


def test_blocking_socket_in_a_callback_is_reported(
    loop_factory: LoopFactory, tmp_path: Path
) -> None:
    left, right = socket.socketpair()
    right.sendall(b"!")

    async def receives(setting: Setting) -> None:
        done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(receive, left, done)
        await done

    with left, right, pytest.raises(blockbuster.BlockingError, match=r"socket\.socket\.recv"):
        run_scenario(loop_factory, receives, make_setting(tmp_path))


def test_blocking_protocol_factory_under_subprocess_exec_is_reported(tmp_path: Path) -> None:
    """aloop allows Popen's own read only: asyncio's allowance covers all of subprocess_exec."""
    rfd, wfd = os.pipe()
    os.write(wfd, b"!")

    async def reads_in_factory(setting: Setting) -> None:
        def factory() -> asyncio.SubprocessProtocol:
            os.read(rfd, 1)
            return asyncio.SubprocessProtocol()

        await asyncio.get_running_loop().subprocess_exec(factory, "true")

    try:
        with pytest.raises(blockbuster.BlockingError, match=r"os\.read"):
            run_scenario(aloop.new_event_loop, reads_in_factory, make_setting(tmp_path))
    finally:
        os.close(rfd)
        os.close(wfd)


def test_stale_socket_file_is_reported_as_on_asyncio(
    loop_factory: LoopFactory, tmp_path: Path
) -> None:
    """No allowance beyond asyncio's: removing a stale socket file is reported on both loops."""
    setting = make_setting(tmp_path)
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(setting.unix_path)

    async def serves(setting: Setting) -> None:
        await asyncio.start_unix_server(echo, setting.unix_path)

    with warnings.catch_warnings():
        # Both loops leave the new socket to the garbage collector.
        warnings.simplefilter("ignore", ResourceWarning)
        with pytest.raises(blockbuster.BlockingError, match=r"os\.remove"):
            run_scenario(loop_factory, serves, setting)
        gc.collect()
