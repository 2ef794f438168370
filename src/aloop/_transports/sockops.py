"""The low-level socket API: ``sock_recv`` & co. on non-blocking sockets.

Each operation is tried at once; only if the kernel says "would block" does
it wait for readiness, through a reader or writer on the socket's fd that is
removed again as soon as the operation's future is done (cancelled included).
"""

from __future__ import annotations

import asyncio
import functools
import operator
import socket
from collections.abc import Callable
from typing import Any, TypeVar

from aloop._core.loopapi import Cancellable, LoopAPI
from aloop._transports import dns
from aloop._transports.base import WOULD_BLOCK

try:
    import ssl
except ImportError:  # pragma: no cover - CPython without OpenSSL
    ssl = None  # type: ignore[assignment]

__all__ = [
    "check_fd_free",
    "check_socket",
    "refuse_ssl_socket",
    "sock_accept",
    "sock_connect",
    "sock_recv",
    "sock_recv_into",
    "sock_recvfrom",
    "sock_recvfrom_into",
    "sock_sendall",
    "sock_sendto",
]

_T = TypeVar("_T")


def refuse_ssl_socket(sock: Any) -> None:
    """An ``ssl.SSLSocket`` does its own blocking TLS: asyncio refuses it everywhere."""
    if ssl is not None and isinstance(sock, ssl.SSLSocket):
        raise TypeError("Socket cannot be of type SSLSocket")


def check_socket(loop: LoopAPI, sock: Any) -> None:
    """asyncio's checks: no SSLSocket; in debug mode, no blocking socket."""
    refuse_ssl_socket(sock)
    if loop._debug and sock.gettimeout() != 0:
        raise ValueError("the socket must be non-blocking")


def check_fd_free(loop: LoopAPI, fd: int, fileobj: Any = None) -> None:
    """Refuse to wait on an fd that an open transport owns (named as the caller gave it)."""
    transport = loop._transport_for_fd(fd)
    if transport is not None and not transport.is_closing():
        shown = fd if fileobj is None else fileobj
        raise RuntimeError(f"File descriptor {shown!r} is used by transport {transport!r}")


def _wait(
    loop: LoopAPI, sock: socket.socket, write: bool, attempt: Callable[..., _T], *args: Any
) -> asyncio.Future[_T]:
    """A future for ``attempt(*args)``, retried each time ``sock`` becomes ready.

    No closures: their cells and function objects cost more per wait than
    the partial and the tuple passed instead. A socket method is named, not
    bound, so that each try looks it up as asyncio's does.
    """
    fut: asyncio.Future[_T] = loop.create_future()
    fd = sock.fileno()
    check_fd_free(loop, fd)
    handle = (loop._add_writer if write else loop._add_reader)(fd, _on_ready, fut, attempt, args)
    fut.add_done_callback(functools.partial(_stop_waiting, loop, write, fd, handle))
    return fut


def _stop_waiting(loop: LoopAPI, write: bool, fd: int, handle: Cancellable, _: object) -> None:
    # If our handle was replaced by someone else's, leave theirs in place.
    if not handle.cancelled():
        (loop._remove_writer if write else loop._remove_reader)(fd)


def _on_ready(fut: asyncio.Future[_T], attempt: Callable[..., _T], args: tuple[Any, ...]) -> None:
    """The socket is ready: try again, and resolve ``fut`` unless it would still block."""
    if fut.done():
        return
    try:
        result = attempt(*args)
    except WOULD_BLOCK:
        return
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        fut.set_exception(exc)
    else:
        fut.set_result(result)
    finally:
        # This frame stays in a failure's traceback, and ``fut`` holds the exception.
        del fut


async def sock_recv(loop: LoopAPI, sock: socket.socket, nbytes: int) -> bytes:
    """Receive up to ``nbytes`` from ``sock`` (``loop.sock_recv``)."""
    check_socket(loop, sock)
    try:
        return sock.recv(nbytes)
    except WOULD_BLOCK:
        pass
    return await _wait(loop, sock, False, operator.methodcaller("recv", nbytes), sock)


async def sock_recv_into(loop: LoopAPI, sock: socket.socket, buf: Any) -> int:
    """Receive into ``buf``; the number of bytes (``loop.sock_recv_into``)."""
    check_socket(loop, sock)
    try:
        return sock.recv_into(buf)
    except WOULD_BLOCK:
        pass
    return await _wait(loop, sock, False, operator.methodcaller("recv_into", buf), sock)


async def sock_recvfrom(loop: LoopAPI, sock: socket.socket, bufsize: int) -> tuple[bytes, Any]:
    """Receive a datagram of up to ``bufsize`` bytes and its sender (``loop.sock_recvfrom``)."""
    check_socket(loop, sock)
    try:
        return sock.recvfrom(bufsize)
    except WOULD_BLOCK:
        pass
    return await _wait(loop, sock, False, operator.methodcaller("recvfrom", bufsize), sock)


async def sock_recvfrom_into(
    loop: LoopAPI, sock: socket.socket, buf: Any, nbytes: int = 0
) -> tuple[int, Any]:
    """Receive a datagram into ``buf``: (bytes, sender) (``loop.sock_recvfrom_into``)."""
    check_socket(loop, sock)
    nbytes = nbytes or len(buf)
    try:
        return sock.recvfrom_into(buf, nbytes)
    except WOULD_BLOCK:
        pass
    return await _wait(loop, sock, False, operator.methodcaller("recvfrom_into", buf, nbytes), sock)


async def sock_sendall(loop: LoopAPI, sock: socket.socket, data: Any) -> None:
    """Send all of ``data``, waiting while the socket is full (``loop.sock_sendall``)."""
    check_socket(loop, sock)
    try:
        sent = sock.send(data)
    except WOULD_BLOCK:
        sent = 0
    view = memoryview(data).cast("B")
    if sent == len(view):
        return
    position = sent

    def send_rest() -> bool:
        nonlocal position
        position += sock.send(view[position:])
        if position < len(view):
            raise BlockingIOError  # not done: wait for the next writable event
        return True

    await _wait(loop, sock, True, send_rest)


async def sock_sendto(loop: LoopAPI, sock: socket.socket, data: Any, address: Any) -> int:
    """Send a datagram to ``address`` (``loop.sock_sendto``)."""
    check_socket(loop, sock)
    try:
        return sock.sendto(data, address)
    except WOULD_BLOCK:
        pass
    return await _wait(loop, sock, True, operator.methodcaller("sendto", data, 0, address), sock)


async def sock_connect(loop: LoopAPI, sock: socket.socket, address: Any) -> None:
    """Connect ``sock`` to ``address``, resolving a host name first (``loop.sock_connect``)."""
    check_socket(loop, sock)
    if sock.family == socket.AF_INET or (
        hasattr(socket, "AF_INET6") and sock.family == socket.AF_INET6
    ):
        infos = await dns.ensure_resolved(
            loop, address, family=sock.family, type=sock.type, proto=sock.proto
        )
        address = infos[0][4]
    try:
        sock.connect(address)
        return
    except WOULD_BLOCK:
        pass
    # EINPROGRESS: the connection completes (or fails) in the background.

    def connected() -> None:
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err != 0:
            raise OSError(err, f"Connect call failed {address}")

    fut = _wait(loop, sock, True, connected)
    try:
        await fut
    finally:
        del fut  # break the exception -> frame -> future cycle


async def sock_accept(loop: LoopAPI, sock: socket.socket) -> tuple[socket.socket, Any]:
    """Accept a connection: (non-blocking socket, address) (``loop.sock_accept``)."""
    check_socket(loop, sock)
    sock.fileno()  # asyncio's AttributeError for what is not a socket names fileno

    def accept() -> tuple[socket.socket, Any]:
        conn, address = sock.accept()
        conn.setblocking(False)
        return conn, address

    try:
        return accept()
    except WOULD_BLOCK:
        pass
    return await _wait(loop, sock, False, accept)
