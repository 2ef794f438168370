"""The stream transport: a connected TCP or Unix socket under a Protocol.

``StreamTransport`` is the ``asyncio.Transport`` the protocol holds;
``StreamCore``, compiled, reads and writes (see ``base`` for why two objects).

Reads: a plain ``Protocol`` gets everything a readable event finds (up to
256 KiB, as asyncio), in one ``data_received``; a ``BufferedProtocol`` gets
the bytes ``recv_into`` its own buffer.
Writes go straight to the socket; only what the kernel did not take is
buffered, and a buffer of several pieces leaves in one ``sendmsg``.

A plain ``socket.socket`` is read and written through its fd; any other
socket object (a subclass, a wrapper) through its own methods, the ones
asyncio's transport calls (``ObjectStreamCore``).
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import itertools
import os
import socket
import sys
from collections.abc import Iterable
from typing import Any, Final

from mypy_extensions import mypyc_attr

from aloop._core.loopapi import LoopAPI
from aloop._transports.base import (
    MAX_READ,
    WOULD_BLOCK,
    SocketCore,
    SocketTransport,
    logger,
    scratch_buffer,
    socket_extra,
)
from aloop._transports.sendfile import SendfileMode

__all__ = [
    "CONNECTION_CONTEXTS",
    "READ_SIZE",
    "SMALL_READ",
    "ObjectStreamCore",
    "StreamCore",
    "StreamTransport",
    "client_context",
    "core_class",
    "set_nodelay",
]

# 3.15 (gh-140947): each stream connection has a context of its own, in which
# its protocol's callbacks run, whichever task pauses, resumes or writes to it.
CONNECTION_CONTEXTS: Final = sys.version_info >= (3, 15)

# The largest first read: it takes a 100 KiB message whole, yet the fresh
# bytes object stays below glibc's default mmap threshold (128 KiB):
# asyncio's recv(256 KiB) is served by mmap, and page-faults on every read,
# wherever that threshold is fixed (e.g. by MALLOC_MMAP_THRESHOLD_);
# tests/test_read_faults.py checks.
READ_SIZE: Final = 127 * 1024
# Plain reads and writes go through os.read/os.write on the socket's fd: the
# same read(2)/write(2) as recv/send without flags, where the socket methods
# parse their arguments from a tuple (METH_VARARGS) on every call.
_read: Final = os.read
_readv: Final = os.readv
_write: Final = os.write
# First reads are sized from the last event's total: twice it, at least
# SMALL_READ, at most READ_SIZE. os.read allocates the full size and then
# shrinks the bytes object to what arrived, so a small message read with a
# 127 KiB buffer costs a large block, its split and glibc's consolidation.
# SMALL_READ is the largest read whose bytes object (33-byte header) pymalloc
# serves from its 512-byte blocks.
# A first read that fills its buffer is continued into a scratch buffer (see
# read_rest), so a burst still arrives whole. Only after an event that brought
# more than READ_SIZE is a read MAX_READ-sized (and above a threshold fixed at
# 128 KiB, mmap'd like asyncio's).
SMALL_READ: Final = 512 - 33

_IOV_MAX: Final = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 16
_HAS_SENDMSG: Final = hasattr(socket.socket, "sendmsg")
# asyncio 3.12+ sends its write buffer with sendmsg, 3.11 with send.
_SENDMSG_BUFFER: Final = _HAS_SENDMSG and sys.version_info >= (3, 12)
# What write() says of a non-bytes argument: asyncio's wording changed in 3.14.
_WRITE_TYPE_ERROR: Final = (
    "data argument must be a bytes, bytearray, or memoryview object, not {!r}"
    if sys.version_info >= (3, 14)
    else "data argument must be a bytes-like object, not {!r}"
)


class StreamCore(SocketCore):
    """What ``StreamTransport`` does, as a native class."""

    def __init__(
        self,
        loop: LoopAPI,
        sock: socket.socket,
        protocol: Any,
        server: Any,
        context: contextvars.Context | None = None,
    ) -> None:
        self.buffered = False
        self.buffer: collections.deque[bytes | memoryview] = collections.deque()
        self.pending = 0  # bytes in ``buffer``
        self.eof = False
        self.read_size = READ_SIZE
        # An error met while continuing a read (read_rest), reported at the next EOF.
        self.read_error: OSError | None = None
        # A future resolved when the write buffer drains (sendfile waits on it).
        self.empty_waiter: asyncio.Future[None] | None = None
        # Bound once: the socket never changes, and the hot path skips two lookups.
        self.recv_into: Any = sock.recv_into
        super().__init__(loop, sock, protocol, server, context)
        self.set_protocol(protocol)

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol
        self.buffered = isinstance(protocol, asyncio.BufferedProtocol)
        # Bound once, as uvloop does: a call through the protocol looks the
        # name up in its class and instance dict on every read. None if it
        # has none: read_ready then asks the protocol itself, so the
        # AttributeError is asyncio's, and comes when asyncio's would.
        self.data_received: Any = (
            None if self.buffered else getattr(protocol, "data_received", None)
        )

    # -- reading -------------------------------------------------------------------

    def read_ready(self) -> None:
        if self.conn_lost:
            return
        if self.buffered:
            self.read_into_protocol()
            return
        try:
            data = self.receive()
        except WOULD_BLOCK:
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self.fatal_error(exc, "Fatal read error on socket transport")
            return
        if not len(data):
            self.read_eof()
            return
        receive = self.data_received
        try:
            if receive is not None:
                receive(data)
            else:
                self.protocol.data_received(data)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self.fatal_error(exc, "Fatal error: protocol.data_received() call failed.")

    def receive(self) -> bytes:
        """What one readable event finds (b"" at EOF): a first read, continued if it filled."""
        size = self.read_size
        data: bytes = _read(self.fd, size)
        n = len(data)
        if n >= size:
            data = self.read_rest(data)
            n = len(data)
        # Past READ_SIZE (a bulk transfer) the next read takes MAX_READ at once,
        # as asyncio's does: one allocation, no continuation and its copy.
        self.read_size = min(max(2 * n, SMALL_READ), READ_SIZE) if n <= READ_SIZE else MAX_READ
        return data

    def read_rest(self, data: bytes) -> bytes:
        """``data`` filled its read: add what else is there, up to MAX_READ in all.

        The rest is read into this thread's scratch buffer (base) and copied out at its
        exact size: no large block is allocated for bytes that may not come.
        """
        room = MAX_READ - len(data)
        if room <= 0:
            return data
        view = scratch_buffer(MAX_READ)[:room]
        try:
            more: int = _readv(self.fd, [view])
        except WOULD_BLOCK:
            return data
        except OSError as exc:
            # asyncio's single recv would have returned ``data``, the next one
            # the error. The next read here finds the connection at its end
            # (the kernel reports an error once): read_eof raises it then.
            self.read_error = exc
            return data
        return data + view[:more] if more else data

    def read_into_protocol(self) -> None:
        """BufferedProtocol: read straight into the buffer the protocol lends us."""
        # The same guards as read_ready's, written out again: this is the read path,
        # and a shared helper would cost a call per read and a return code to test.
        try:
            buf = self.protocol.get_buffer(-1)
            if not len(buf):
                raise RuntimeError("get_buffer() returned an empty buffer")
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self.fatal_error(exc, "Fatal error: protocol.get_buffer() call failed.")
            return
        try:
            nbytes = self.recv_into(buf)
        except WOULD_BLOCK:
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self.fatal_error(exc, "Fatal read error on socket transport")
            return
        if not nbytes:
            self.read_eof()
            return
        try:
            self.protocol.buffer_updated(nbytes)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self.fatal_error(exc, "Fatal error: protocol.buffer_updated() call failed.")

    def read_eof(self) -> None:
        error = self.read_error
        if error is not None:
            self.read_error = None
            self.fatal_error(error, "Fatal read error on socket transport")
            return
        if self.loop.get_debug():
            logger.debug("%r received EOF", self.transport)
        try:
            keep_open = self.protocol.eof_received()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self.fatal_error(exc, "Fatal error: protocol.eof_received() call failed.")
            return
        if keep_open:
            # Half-closed: the protocol may still write, but nothing more comes in.
            self.loop._remove_reader(self.fd)
        else:
            self.close()

    # -- writing -------------------------------------------------------------------

    def buffer_size(self) -> int:
        return self.pending

    def has_buffered(self) -> bool:
        return self.pending > 0

    def write(self, data: Any) -> None:
        if isinstance(data, bytes):
            size = len(data)
        elif isinstance(data, (bytearray, memoryview)):
            size = memoryview(data).nbytes
        else:
            raise TypeError(_WRITE_TYPE_ERROR.format(type(data).__name__))
        if self.eof:
            raise RuntimeError("Cannot call write() after write_eof()")
        if self.empty_waiter is not None:
            raise RuntimeError("unable to write; sendfile is in progress")
        if not size:
            return
        if self.conn_lost:
            self.note_lost_write()
            return
        if self.pending:
            self.append(data, 0)
            self.maybe_pause_protocol()
            return
        try:
            sent = self.send(data)
        except WOULD_BLOCK:
            sent = 0
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self.fatal_error(exc, "Fatal write error on socket transport")
            return
        if sent < size:
            self.append(data, sent)
            self.loop._add_io(self.fd, self.write_ready, (), True, self.context)
            self.maybe_pause_protocol()

    def writelines(self, list_of_data: Iterable[Any]) -> None:
        if self.eof:
            raise RuntimeError("Cannot call writelines() after write_eof()")
        if self.empty_waiter is not None:
            raise RuntimeError("unable to writelines; sendfile is in progress")
        pieces = [memoryview(data).cast("B") for data in list_of_data]
        if not pieces:
            return
        if self.conn_lost:
            self.note_lost_write()
            return
        was_empty = not self.buffer
        for piece in pieces:
            if piece.nbytes:
                self.append(piece, 0)
        if was_empty and self.buffer:
            # One sendmsg for all of them, no joined copy.
            self.write_ready()
            if self.buffer and not self.conn_lost:
                self.loop._add_io(self.fd, self.write_ready, (), True, self.context)
        self.maybe_pause_protocol()

    def append(self, data: Any, offset: int) -> None:
        """Buffer ``data[offset:]``; mutable buffers are copied so later changes don't leak in."""
        piece: bytes | memoryview
        if isinstance(data, bytes):
            piece = memoryview(data)[offset:] if offset else data
        else:
            view = memoryview(data).cast("B")
            if view.readonly and isinstance(view.obj, bytes):
                piece = view[offset:]
            else:
                piece = bytes(view[offset:])
        self.buffer.append(piece)
        self.pending += len(piece)

    def write_ready(self) -> None:
        if self.conn_lost or not self.buffer:
            return
        sock = self.sock
        assert sock is not None
        try:
            sent = self.send_buffer()
        except WOULD_BLOCK:
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self.loop._remove_writer(self.fd)
            self.drop_buffer()
            self.fatal_error(exc, "Fatal write error on socket transport")
            if self.empty_waiter is not None:
                self.empty_waiter.set_exception(exc)
            return
        self.consume(sent)
        self.maybe_resume_protocol()  # may write more
        if self.buffer:
            return
        self.loop._remove_writer(self.fd)
        if self.empty_waiter is not None:
            self.empty_waiter.set_result(None)
        if self.closing:
            # As close() with nothing to flush: later writes are dropped, not sent
            # through the fd number, which the next socket opened may own.
            self.conn_lost += 1
            self.call_connection_lost(None)
        elif self.eof:
            sock.shutdown(socket.SHUT_WR)

    def send(self, data: Any) -> int:
        """Send ``data`` now; how many bytes the kernel took."""
        sent: int = _write(self.fd, data)
        return sent

    def send_buffer(self) -> int:
        """Send from the buffer: its one piece, or up to IOV_MAX pieces in one sendmsg."""
        buffer = self.buffer
        if len(buffer) == 1 or not _HAS_SENDMSG:
            sent: int = _write(self.fd, buffer[0])
            return sent
        sock = self.sock
        assert sock is not None
        return sock.sendmsg(itertools.islice(buffer, _IOV_MAX))

    def consume(self, nbytes: int) -> None:
        """Drop the first ``nbytes`` buffered bytes (the kernel took them)."""
        buffer = self.buffer
        self.pending -= nbytes
        while nbytes:
            piece = buffer[0]
            if len(piece) <= nbytes:
                nbytes -= len(piece)
                buffer.popleft()
            else:
                buffer[0] = memoryview(piece)[nbytes:]
                break

    def drop_buffer(self) -> None:
        self.buffer.clear()
        self.pending = 0

    def write_eof(self) -> None:
        if self.closing or self.eof:
            return
        self.eof = True
        if not self.buffer and self.sock is not None:
            self.sock.shutdown(socket.SHUT_WR)

    # -- sendfile support --------------------------------------------------------------

    def make_empty_waiter(self) -> asyncio.Future[None]:
        if self.empty_waiter is not None:
            raise RuntimeError("Empty waiter is already set")
        waiter: asyncio.Future[None] = self.loop.create_future()
        self.empty_waiter = waiter
        if not self.buffer:
            waiter.set_result(None)
        return waiter

    def call_connection_lost(self, exc: BaseException | None) -> None:
        try:
            super().call_connection_lost(exc)
        finally:
            self.data_received = None  # the protocol is let go of with the connection
            waiter = self.empty_waiter
            if waiter is not None and not waiter.done():
                waiter.set_exception(ConnectionError("Connection is closed by peer"))


class ObjectStreamCore(StreamCore):
    """A core over a socket object that is not exactly a ``socket.socket``.

    A subclass or wrapper may override recv/send (instrumentation, test
    doubles): this core calls the object's methods where asyncio's transport
    does (``recv(256 KiB)``, ``send``, and ``sendmsg`` for the buffer on 3.12+;
    ``recv_into`` for a BufferedProtocol, as every core does).
    """

    def receive(self) -> bytes:
        sock = self.sock
        assert sock is not None
        return sock.recv(MAX_READ)

    def send(self, data: Any) -> int:
        sock = self.sock
        assert sock is not None
        return sock.send(data)

    def send_buffer(self) -> int:
        sock = self.sock
        assert sock is not None
        if _SENDMSG_BUFFER:
            return sock.sendmsg(itertools.islice(self.buffer, _IOV_MAX))
        return sock.send(self.buffer[0])


def core_class(sock: socket.socket) -> type[StreamCore]:
    """The core for ``sock``: through its fd if a plain socket, else through its methods."""
    return StreamCore if type(sock) is socket.socket else ObjectStreamCore


# -- the transport -------------------------------------------------------------------


def client_context() -> contextvars.Context | None:
    """A new client connection's context: on 3.15+ a copy of the current one, else None."""
    return contextvars.copy_context() if CONNECTION_CONTEXTS else None


def set_nodelay(sock: socket.socket) -> None:
    """Disable Nagle on a TCP socket: small writes leave without waiting for an ACK."""
    if (
        hasattr(socket, "TCP_NODELAY")
        and sock.family in (socket.AF_INET, socket.AF_INET6)
        and sock.type == socket.SOCK_STREAM
        and sock.proto in (0, socket.IPPROTO_TCP)
    ):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@mypyc_attr(native_class=False)
class StreamTransport(SocketTransport):
    """``asyncio.Transport`` over a connected, non-blocking stream socket."""

    _start_tls_compatible = True
    _sendfile_compatible = SendfileMode.TRY_NATIVE
    # The core's write and writelines, bound on each instance (see base).
    __slots__ = ("write", "writelines")
    _core: StreamCore

    def __init__(
        self,
        loop: LoopAPI,
        sock: socket.socket,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[Any] | None = None,
        extra: dict[str, Any] | None = None,
        server: Any = None,
        context: contextvars.Context | None = None,
    ) -> None:
        super().__init__(socket_extra(sock, extra))
        # Chosen once: a plain socket's fd directly, any other object through its methods.
        core = core_class(sock)(loop, sock, protocol, server, context)
        set_nodelay(sock)
        self.write = core.write  # type: ignore[method-assign]
        self.writelines = core.writelines  # type: ignore[method-assign]
        self._attach_core(core, waiter)

    def write_eof(self) -> None:
        self._core.write_eof()

    def can_write_eof(self) -> bool:
        return True

    # -- sendfile support (sendfile.transport_sendfile_native) ---------------------------

    def _make_empty_waiter(self) -> asyncio.Future[None]:
        return self._core.make_empty_waiter()

    def _reset_empty_waiter(self) -> None:
        self._core.empty_waiter = None
