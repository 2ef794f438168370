"""Bad arguments get asyncio's exceptions and wording, not mypyc's (issue 18 item 8).

Each case calls one public method of the event loop with a wrong argument, on
the stdlib loop and on aloop, and compares the outcome: the exception's type
and message, or that both accepted it. Run compiled, this is what finds
mypyc's own messages ("float object expected; got str") at the door. The
stdlib's wording differs between Python versions; the test compares with the
running Python's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import inspect
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from asyncio import base_events
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from tests.support import aloop_env

import aloop
from aloop._core.clock import VirtualClock

Outcome = tuple[str, str]
Case = Callable[[asyncio.AbstractEventLoop, "Env"], Any]


class Env:
    """Resources a case may use, each released after the case."""

    def __init__(self, stack: ExitStack) -> None:
        self._stack = stack

    def socketpair(self) -> tuple[socket.socket, socket.socket]:
        a, b = socket.socketpair()
        for sock in (a, b):
            sock.setblocking(False)
            self._stack.callback(sock.close)
        return a, b

    def sock(self, kind: int = socket.SOCK_STREAM, blocking: bool = False) -> socket.socket:
        sock = socket.socket(socket.AF_INET, kind)
        sock.setblocking(blocking)
        self._stack.callback(sock.close)
        return sock

    def listener(self) -> socket.socket:
        sock = self.sock()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        return sock


def callback() -> None:
    pass


async def coro_function() -> None:
    pass


class Proto(asyncio.Protocol):
    pass


class Opaque:
    """An argument of no accepted type, with a stable repr."""

    def __repr__(self) -> str:
        return "<Opaque>"


OPAQUE = Opaque()
NAN = float("nan")

# Scheduling, the clock, tasks, executors, handlers and debug settings.
CORE_CASES: dict[str, Case] = {
    "call_soon-noncallable": lambda loop, env: loop.call_soon(OPAQUE),
    "call_soon-context-str": lambda loop, env: loop.call_soon(callback, context="x"),  # type: ignore[arg-type]
    "call_soon-coroutine": lambda loop, env: loop.call_soon(coro_function),
    "call_soon_threadsafe-noncallable": lambda loop, env: loop.call_soon_threadsafe(OPAQUE),
    "call_later-str": lambda loop, env: loop.call_later("x", callback),  # type: ignore[arg-type]
    "call_later-none": lambda loop, env: loop.call_later(None, callback),  # type: ignore[arg-type]
    "call_later-bytes": lambda loop, env: loop.call_later(b"1", callback),  # type: ignore[arg-type]
    "call_later-list": lambda loop, env: loop.call_later([1], callback),  # type: ignore[arg-type]
    "call_later-complex": lambda loop, env: loop.call_later(1j, callback),  # type: ignore[arg-type]
    "call_later-opaque": lambda loop, env: loop.call_later(OPAQUE, callback),  # type: ignore[arg-type]
    "call_later-int": lambda loop, env: loop.call_later(10**6, callback),
    "call_later-bool": lambda loop, env: loop.call_later(True, callback),
    "call_later-negative": lambda loop, env: loop.call_later(-5, callback),
    "call_later-nan": lambda loop, env: loop.call_later(NAN, callback),
    "call_later-inf": lambda loop, env: loop.call_later(float("inf"), callback),
    "call_later-huge-int": lambda loop, env: loop.call_later(10**400, callback),
    "call_later-noncallable": lambda loop, env: loop.call_later(1, OPAQUE),
    "call_later-context-str": lambda loop, env: loop.call_later(1, callback, context="x"),  # type: ignore[arg-type]
    "call_at-str": lambda loop, env: loop.call_at("x", callback),  # type: ignore[arg-type]
    "call_at-none": lambda loop, env: loop.call_at(None, callback),  # type: ignore[arg-type]
    "call_at-opaque": lambda loop, env: loop.call_at(OPAQUE, callback),  # type: ignore[arg-type]
    "call_at-int": lambda loop, env: loop.call_at(1, callback),
    "call_at-nan": lambda loop, env: loop.call_at(NAN, callback),
    "call_at-noncallable": lambda loop, env: loop.call_at(1.0, OPAQUE),
    "create_task-int": lambda loop, env: loop.create_task(5),  # type: ignore[arg-type]
    "create_task-name-int": lambda loop, env: _task_named(loop, 5),
    "create_task-name-opaque": lambda loop, env: _task_named(loop, OPAQUE),
    "create_task-context-str": lambda loop, env: _task_in_context(loop, "x"),
    "set_task_factory-str": lambda loop, env: loop.set_task_factory("x"),  # type: ignore[arg-type]
    "set_exception_handler-str": lambda loop, env: loop.set_exception_handler("x"),  # type: ignore[arg-type]
    "call_exception_handler-str": lambda loop, env: loop.call_exception_handler("x"),  # type: ignore[arg-type]
    "default_exception_handler-str": lambda loop, env: loop.default_exception_handler("x"),  # type: ignore[arg-type]
    "set_debug-str": lambda loop, env: loop.set_debug("x"),  # type: ignore[arg-type]
    "set_debug-none": lambda loop, env: loop.set_debug(None),  # type: ignore[arg-type]
    "set_debug-int": lambda loop, env: loop.set_debug(1),  # type: ignore[arg-type]
    "slow_callback_duration-str": lambda loop, env: setattr(loop, "slow_callback_duration", "x"),
    "slow_callback_duration-int": lambda loop, env: setattr(loop, "slow_callback_duration", 1),
    "run_until_complete-int": lambda loop, env: loop.run_until_complete(5),  # type: ignore[arg-type]
    "run_until_complete-none": lambda loop, env: loop.run_until_complete(None),  # type: ignore[arg-type]
    "run_in_executor-noncallable": lambda loop, env: loop.run_in_executor(None, OPAQUE),  # type: ignore[arg-type]
    "run_in_executor-executor-str": lambda loop, env: loop.run_in_executor("x", callback),  # type: ignore[arg-type]
    "set_default_executor-str": lambda loop, env: loop.set_default_executor("x"),
    "set_default_executor-process-pool": lambda loop, env: loop.set_default_executor(
        concurrent.futures.ProcessPoolExecutor
    ),
    "shutdown_default_executor-timeout-str": lambda loop, env: _shutdown_executor(loop, "x"),
    "add_signal_handler-str": lambda loop, env: loop.add_signal_handler("x", callback),  # type: ignore[arg-type]
    "add_signal_handler-zero": lambda loop, env: loop.add_signal_handler(0, callback),
    "add_signal_handler-huge": lambda loop, env: loop.add_signal_handler(10**6, callback),
    "add_signal_handler-sigkill": lambda loop, env: loop.add_signal_handler(
        signal.SIGKILL, callback
    ),
    "add_signal_handler-noncallable": lambda loop, env: loop.add_signal_handler(
        signal.SIGUSR1, OPAQUE
    ),
    "add_signal_handler-coroutine": lambda loop, env: loop.add_signal_handler(
        signal.SIGUSR1, coro_function
    ),
    "remove_signal_handler-str": lambda loop, env: loop.remove_signal_handler("x"),  # type: ignore[arg-type]
    "remove_signal_handler-unset": lambda loop, env: loop.remove_signal_handler(signal.SIGUSR2),
    # Debug mode checks callbacks at the door too.
    "debug-call_soon-noncallable": lambda loop, env: _debug(loop).call_soon(OPAQUE),
    "debug-call_soon-coroutine": lambda loop, env: _debug(loop).call_soon(coro_function),
    "debug-call_soon_threadsafe-noncallable": lambda loop, env: _debug(loop).call_soon_threadsafe(
        OPAQUE
    ),
    "debug-call_later-noncallable": lambda loop, env: _debug(loop).call_later(1, OPAQUE),
    "debug-call_later-str": lambda loop, env: _debug(loop).call_later("x", callback),  # type: ignore[arg-type]
    "debug-call_at-coroutine": lambda loop, env: _debug(loop).call_at(1.0, coro_function),
    "debug-run_in_executor-coroutine": lambda loop, env: _debug(loop).run_in_executor(
        None, coro_function
    ),
    "debug-add_reader-noncallable": lambda loop, env: _debug(loop).add_reader(
        env.socketpair()[0], OPAQUE
    ),
    "debug-add_writer-coroutine": lambda loop, env: _debug(loop).add_writer(
        env.socketpair()[0], coro_function
    ),
    "debug-set_debug-str": lambda loop, env: _debug(loop).set_debug("x"),  # type: ignore[arg-type]
}

# File descriptors, sockets, DNS, connections, servers, pipes and processes.
IO_CASES: dict[str, Case] = {
    "add_reader-str": lambda loop, env: loop.add_reader("x", callback),  # type: ignore[arg-type]
    "add_reader-negative": lambda loop, env: loop.add_reader(-1, callback),
    "add_reader-float": lambda loop, env: loop.add_reader(1.5, callback),  # type: ignore[arg-type]
    "add_reader-none": lambda loop, env: loop.add_reader(None, callback),  # type: ignore[arg-type]
    "add_reader-noncallable": lambda loop, env: loop.add_reader(env.socketpair()[0], OPAQUE),
    "add_reader-coroutine": lambda loop, env: loop.add_reader(env.socketpair()[0], coro_function),
    "add_writer-str": lambda loop, env: loop.add_writer("x", callback),  # type: ignore[arg-type]
    "add_writer-noncallable": lambda loop, env: loop.add_writer(env.socketpair()[0], OPAQUE),
    "remove_reader-str": lambda loop, env: loop.remove_reader("x"),  # type: ignore[arg-type]
    "remove_reader-negative": lambda loop, env: loop.remove_reader(-1),
    "remove_writer-none": lambda loop, env: loop.remove_writer(None),  # type: ignore[arg-type]
    "sock_recv-str": lambda loop, env: loop.sock_recv("x", 10),  # type: ignore[arg-type]
    "sock_recv-nbytes-str": lambda loop, env: loop.sock_recv(env.socketpair()[0], "x"),  # type: ignore[arg-type]
    "sock_recv-nbytes-negative": lambda loop, env: loop.sock_recv(env.socketpair()[0], -1),
    "sock_recv_into-bytes": lambda loop, env: loop.sock_recv_into(env.socketpair()[0], b"xx"),
    "sock_recvfrom-str": lambda loop, env: loop.sock_recvfrom("x", 10),  # type: ignore[arg-type]
    "sock_recvfrom_into-nbytes-str": lambda loop, env: loop.sock_recvfrom_into(
        env.sock(socket.SOCK_DGRAM), bytearray(4), "x"
    ),  # type: ignore[arg-type]
    "sock_sendall-str-data": lambda loop, env: loop.sock_sendall(env.socketpair()[0], "x"),  # type: ignore[arg-type]
    "sock_sendall-none": lambda loop, env: loop.sock_sendall(None, b"x"),  # type: ignore[arg-type]
    "sock_sendto-str-data": lambda loop, env: loop.sock_sendto(
        env.sock(socket.SOCK_DGRAM), "x", ("127.0.0.1", 9)
    ),  # type: ignore[arg-type]
    "sock_connect-str-address": lambda loop, env: loop.sock_connect(env.sock(), "x"),
    "sock_connect-port-str": lambda loop, env: loop.sock_connect(env.sock(), ("127.0.0.1", "x")),
    "sock_connect-blocking-debug": lambda loop, env: _debug(loop).sock_connect(
        env.sock(blocking=True), ("127.0.0.1", 9)
    ),
    "sock_connect-dgram-none": lambda loop, env: loop.sock_connect(None, ("127.0.0.1", 9)),  # type: ignore[arg-type]
    "sock_accept-str": lambda loop, env: loop.sock_accept("x"),  # type: ignore[arg-type]
    "sock_accept-blocking-debug": lambda loop, env: _debug(loop).sock_accept(
        env.sock(blocking=True)
    ),
    "sock_sendfile-str-file": lambda loop, env: loop.sock_sendfile(env.socketpair()[0], "x"),  # type: ignore[arg-type]
    "sock_sendfile-count-negative": lambda loop, env: _sendfile(loop, env, count=-1),
    "sock_sendfile-offset-str": lambda loop, env: _sendfile(loop, env, offset="x"),
    "sock_sendfile-count-float": lambda loop, env: _sendfile(loop, env, count=1.5),
    "getaddrinfo-port-list": lambda loop, env: loop.getaddrinfo("127.0.0.1", [80]),  # type: ignore[arg-type]
    "getaddrinfo-host-int": lambda loop, env: loop.getaddrinfo(5, 80),  # type: ignore[arg-type]
    "getaddrinfo-family-str": lambda loop, env: loop.getaddrinfo("127.0.0.1", 80, family="x"),  # type: ignore[arg-type]
    "getnameinfo-str": lambda loop, env: loop.getnameinfo("x"),  # type: ignore[arg-type]
    "create_connection-no-host": lambda loop, env: loop.create_connection(Proto),
    "create_connection-port-str": lambda loop, env: loop.create_connection(Proto, "127.0.0.1", "x"),
    "create_connection-host-and-sock": lambda loop, env: loop.create_connection(
        Proto, "127.0.0.1", 9, sock=env.sock()
    ),
    "create_connection-sock-str": lambda loop, env: loop.create_connection(Proto, sock="x"),  # type: ignore[arg-type]
    "create_connection-dgram-sock": lambda loop, env: loop.create_connection(
        Proto, sock=env.sock(socket.SOCK_DGRAM)
    ),
    "create_connection-ssl-handshake-timeout": lambda loop, env: loop.create_connection(
        Proto, "127.0.0.1", 9, ssl_handshake_timeout=1
    ),
    "create_connection-happy-eyeballs-str": lambda loop, env: loop.create_connection(
        Proto, "127.0.0.1", env.listener().getsockname()[1], happy_eyeballs_delay="x"
    ),  # type: ignore[arg-type]
    "create_connection-interleave-str": lambda loop, env: loop.create_connection(
        Proto, "127.0.0.1", env.listener().getsockname()[1], interleave="x"
    ),  # type: ignore[arg-type]
    "create_connection-server-hostname": lambda loop, env: loop.create_connection(
        Proto, "127.0.0.1", 9, server_hostname="x"
    ),
    "create_server-port-str": lambda loop, env: loop.create_server(Proto, "127.0.0.1", "x"),  # type: ignore[arg-type]
    "create_server-port-negative": lambda loop, env: loop.create_server(Proto, "127.0.0.1", -1),
    "create_server-host-and-sock": lambda loop, env: loop.create_server(
        Proto, "127.0.0.1", 0, sock=env.listener()
    ),
    "create_server-sock-dgram": lambda loop, env: loop.create_server(
        Proto, sock=env.sock(socket.SOCK_DGRAM)
    ),
    "create_server-sock-str": lambda loop, env: loop.create_server(Proto, sock="x"),  # type: ignore[arg-type]
    "create_server-backlog-str": lambda loop, env: loop.create_server(
        Proto, "127.0.0.1", 0, backlog="x"
    ),  # type: ignore[arg-type]
    "create_server-ssl-handshake-timeout": lambda loop, env: loop.create_server(
        Proto, "127.0.0.1", 0, ssl_handshake_timeout=1
    ),
    "create_unix_server-path-int": lambda loop, env: loop.create_unix_server(Proto, 5),  # type: ignore[arg-type]
    "create_unix_server-no-path": lambda loop, env: loop.create_unix_server(Proto),
    "create_unix_server-sock-inet": lambda loop, env: loop.create_unix_server(
        Proto, sock=env.listener()
    ),
    "create_unix_connection-path-int": lambda loop, env: loop.create_unix_connection(Proto, 5),  # type: ignore[arg-type]
    "create_unix_connection-no-path": lambda loop, env: loop.create_unix_connection(Proto),
    "create_unix_connection-sock-inet": lambda loop, env: loop.create_unix_connection(
        Proto, sock=env.sock()
    ),
    "connect_accepted_socket-str": lambda loop, env: loop.connect_accepted_socket(Proto, "x"),  # type: ignore[arg-type]
    "connect_accepted_socket-dgram": lambda loop, env: loop.connect_accepted_socket(
        Proto, env.sock(socket.SOCK_DGRAM)
    ),
    "create_datagram_endpoint-nothing": lambda loop, env: loop.create_datagram_endpoint(
        asyncio.DatagramProtocol
    ),
    "create_datagram_endpoint-stream-sock": lambda loop, env: loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, sock=env.sock()
    ),
    "create_datagram_endpoint-local-str": lambda loop, env: loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr="x"
    ),  # type: ignore[arg-type]
    "create_datagram_endpoint-reuse-address": lambda loop, env: loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0), reuse_address=True
    ),
    "create_datagram_endpoint-family-str": lambda loop, env: loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, family="x"
    ),  # type: ignore[arg-type]
    "start_tls-no-context": lambda loop, env: loop.start_tls(OPAQUE, Proto(), None),  # type: ignore[arg-type]
    "sendfile-transport-str": lambda loop, env: loop.sendfile("x", OPAQUE),  # type: ignore[arg-type]
    "connect_read_pipe-str": lambda loop, env: loop.connect_read_pipe(Proto, "x"),
    "connect_write_pipe-none": lambda loop, env: loop.connect_write_pipe(Proto, None),
    "subprocess_exec-int-program": lambda loop, env: loop.subprocess_exec(
        asyncio.SubprocessProtocol, 5
    ),
    "subprocess_exec-text": lambda loop, env: loop.subprocess_exec(
        asyncio.SubprocessProtocol, "true", text=True
    ),
    "subprocess_exec-bufsize": lambda loop, env: loop.subprocess_exec(
        asyncio.SubprocessProtocol, "true", bufsize=1
    ),
    "subprocess_exec-universal-newlines": lambda loop, env: loop.subprocess_exec(
        asyncio.SubprocessProtocol, "true", universal_newlines=True
    ),
    "subprocess_exec-shell": lambda loop, env: loop.subprocess_exec(
        asyncio.SubprocessProtocol, "true", shell=True
    ),
    "subprocess_shell-list": lambda loop, env: loop.subprocess_shell(
        asyncio.SubprocessProtocol, ["true"]
    ),  # type: ignore[arg-type]
    "subprocess_shell-bytes-ok": lambda loop, env: loop.subprocess_shell(
        asyncio.SubprocessProtocol, b"true"
    ),
    "subprocess_shell-shell-false": lambda loop, env: loop.subprocess_shell(
        asyncio.SubprocessProtocol, "true", shell=False
    ),
    "subprocess_shell-text": lambda loop, env: loop.subprocess_shell(
        asyncio.SubprocessProtocol, "true", text=True
    ),
}


def _task_named(loop: asyncio.AbstractEventLoop, name: Any) -> Any:
    coro = coro_function()
    try:
        return loop.create_task(coro, name=name)
    except BaseException:
        coro.close()
        raise


def _task_in_context(loop: asyncio.AbstractEventLoop, context: Any) -> Any:
    coro = coro_function()
    try:
        return loop.create_task(coro, context=context)
    except BaseException:
        coro.close()
        raise


async def _shutdown_executor(loop: asyncio.AbstractEventLoop, timeout: Any) -> None:
    loop.run_in_executor(None, callback)
    await loop.shutdown_default_executor(timeout)


def _debug(loop: asyncio.AbstractEventLoop) -> asyncio.AbstractEventLoop:
    loop.set_debug(True)
    return loop


def _sendfile(loop: asyncio.AbstractEventLoop, env: Env, **kwargs: Any) -> Any:
    with open(__file__, "rb") as file:
        # The coroutine checks its arguments before its first await.
        coro = loop.sock_sendfile(env.socketpair()[0], file, **kwargs)
        return _Started(loop, coro)


class _Started:
    """A coroutine that must run while its file is still open."""

    def __init__(self, loop: asyncio.AbstractEventLoop, coro: Any) -> None:
        task = loop.create_task(coro)
        loop.call_soon(loop.stop)
        loop.run_forever()
        self.task = task


def _settle(loop: asyncio.AbstractEventLoop, result: Any) -> Any:
    """The value of ``result``: awaited (with a timeout) when it is awaitable."""
    if isinstance(result, _Started):
        result = result.task
        if result.done():
            return result.result()
        result.cancel()
        return "pending"
    if isinstance(result, asyncio.Task):
        # A task is compared by its creation only (one with a broken context
        # would never finish).
        return result
    if asyncio.iscoroutine(result) or asyncio.isfuture(result):

        async def wait() -> Any:
            return await asyncio.wait_for(result, 10)

        return loop.run_until_complete(wait())
    return result


def _release(loop: asyncio.AbstractEventLoop, value: Any) -> None:
    """Cancel or close whatever a case that was accepted made."""
    for item in value if isinstance(value, tuple) else (value,):
        if isinstance(item, asyncio.Handle):
            item.cancel()
        elif isinstance(item, asyncio.Task):
            item.cancel()
        elif isinstance(item, (asyncio.BaseTransport, asyncio.AbstractServer)):
            item.close()
    for fd in (0, 1):
        loop.remove_reader(fd)
        loop.remove_writer(fd)


def _normalise(message: str) -> str:
    """What differs between runs (addresses, fds, ports) or loop classes."""
    message = re.sub(r"0x[0-9a-f]+", "0x?", message)
    message = re.sub(r"fd=\d+", "fd=?", message)
    message = re.sub(r"(laddr|raddr)=\('([^']*)', \d+\)", r"\1=('\2', ?)", message)
    # "BaseEventLoop.create_server() got an unexpected keyword argument"
    return re.sub(r"\b\w+\.(\w+\(\) got)", r"\1", message)


def outcome(factory: Callable[[], asyncio.AbstractEventLoop], case: Case) -> Outcome:
    """Run ``case`` on a fresh loop: ("ok", "") or (exception type, message)."""
    loop = factory()
    # A timer already pending, as in any real program: asyncio's call_at
    # accepts a non-number ``when`` into an empty heap, and fails only later.
    pending = loop.call_later(3600, callback)
    try:
        with ExitStack() as stack:
            try:
                value = _settle(loop, case(loop, Env(stack)))
            except Exception as exc:  # the outcome is what is compared
                return type(exc).__name__, _normalise(str(exc))
            _release(loop, value)
            return "ok", ""
    finally:
        pending.cancel()
        if not isinstance(loop, aloop.Loop):
            # asyncio's heappush leaves a refused ``when`` in the heap.
            loop._scheduled.clear()  # type: ignore[attr-defined]
        if loop.get_debug():
            loop.set_debug(False)
        for sig in (signal.SIGUSR1, signal.SIGUSR2):
            try:
                loop.remove_signal_handler(sig)
            except Exception:  # only cleaning up
                pass
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("name", sorted({**CORE_CASES, **IO_CASES}))
def test_same_error_as_asyncio(name: str) -> None:
    if name.startswith("shutdown_default_executor") and not _EXECUTOR_TIMEOUT_BY_ASYNCIO:
        pytest.skip(
            "this Python's asyncio gives the timeout to thread.join (3.12.0-3.12.x) or has "
            "no timeout (3.11); aloop bounds it with asyncio.timeout, as 3.13+ does"
        )
    case = CORE_CASES.get(name) or IO_CASES[name]
    with _quiet_unraisable():
        # asyncio's own pipe transport fails in __del__ after a refused pipe.
        expected = outcome(asyncio.new_event_loop, case)
        gc.collect()
    got = outcome(aloop.new_event_loop, case)
    assert got == expected


_EXECUTOR_TIMEOUT_BY_ASYNCIO = "timeout(timeout)" in inspect.getsource(
    base_events.BaseEventLoop.shutdown_default_executor
)


@contextlib.contextmanager
def _quiet_unraisable() -> Iterator[None]:
    saved = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    try:
        yield
    finally:
        sys.unraisablehook = saved


# -- aloop's own parameters ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"virtual_time": "yes"}, TypeError, ["virtual_time", "True", "False", "VirtualClock"]),
        ({"virtual_time": 1}, TypeError, ["virtual_time", "True", "False", "VirtualClock"]),
        ({"virtual_time": None}, TypeError, ["virtual_time", "VirtualClock", "None"]),
        ({"backend": "foo"}, ValueError, ["backend", "'foo'", "'epoll'", "'poll'"]),
        ({"backend": 5}, TypeError, ["backend", "'epoll'", "'poll'", "int"]),
    ],
)
@pytest.mark.parametrize("make", ["new_event_loop", "Loop"])
def test_bad_loop_arguments_name_the_parameter(
    make: str, kwargs: dict[str, Any], error: type[Exception], words: list[str]
) -> None:
    with pytest.raises(error) as info:
        getattr(aloop, make)(**kwargs)
    assert type(info.value) is error
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("kwargs", [{"virtual_time": False}, {"virtual_time": True}, {}])
def test_good_loop_arguments_still_work(kwargs: dict[str, Any]) -> None:
    loop = aloop.new_event_loop(**kwargs, backend="poll")
    try:
        assert (loop.virtual_clock is not None) == bool(kwargs.get("virtual_time"))
    finally:
        loop.close()
    clock = VirtualClock(5)
    loop = aloop.Loop(virtual_time=clock)
    try:
        assert loop.time() == 5
    finally:
        loop.close()


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: VirtualClock("x"), TypeError, "start must be a number, not 'str'"),
        (lambda: VirtualClock(NAN), ValueError, "start must be a finite number, not nan"),
        (lambda: VirtualClock(0).advance("x"), TypeError, "seconds must be a number, not 'str'"),
        (lambda: VirtualClock(0).advance(NAN), ValueError, "seconds must be a finite number"),
    ],
)
def test_virtual_clock_arguments(
    call: Callable[[], Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        call()


def test_use_virtual_time_refuses_a_non_clock() -> None:
    loop = aloop.new_event_loop()
    try:
        with pytest.raises(TypeError, match="clock must be a VirtualClock or None, not 'str'"):
            loop.use_virtual_time("x")  # type: ignore[arg-type]
        assert loop.virtual_clock is None
    finally:
        loop.close()


# -- a failed construction says one thing ----------------------------------------------

FAILED_CONSTRUCTION = textwrap.dedent(
    """
    import gc, aloop
    for kwargs in ({"backend": "foo"}, {"virtual_time": "yes"}, {"backend": 5}):
        for make in (aloop.Loop, aloop.new_event_loop):
            try:
                make(**kwargs)
            except (TypeError, ValueError):
                pass
            else:
                raise SystemExit(f"{make.__name__}({kwargs}) was accepted")
            gc.collect()
    print("done")
    """
)


def test_failed_construction_leaves_no_second_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "-c", FAILED_CONSTRUCTION],
        capture_output=True,
        text=True,
        timeout=60,
        env=aloop_env(),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "done\n"
    assert proc.stderr == ""


def test_failed_construction_releases_its_fds() -> None:
    before = set(os.listdir("/proc/self/fd"))
    for _ in range(3):
        with pytest.raises(TypeError):
            aloop.Loop(virtual_time="yes")  # type: ignore[arg-type]
    assert set(os.listdir("/proc/self/fd")) <= before
