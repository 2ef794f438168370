"""The compiled core of a stream transport: reads and writes on a connected socket.

Reads: a plain ``Protocol`` gets one ``read`` per readable event, of at most
127 KiB (below glibc's mmap threshold, so no page-fault storm per read) and
sized from the previous read; a ``BufferedProtocol`` gets the bytes
``recv_into`` its own buffer.
Writes go straight to the socket; only what the kernel did not take is
buffered, and a buffer of several pieces leaves in one ``sendmsg``.
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

from aloop._transports.sockcore import WOULD_BLOCK, SocketCore, logger

__all__ = ["READ_SIZE", "StreamCore"]

# One read takes a 100 KiB message whole, yet the fresh bytes object stays below
# glibc's default mmap threshold (128 KiB): asyncio's recv(256 KiB) is served by
# mmap, and page-faults on every read, wherever that threshold is fixed (e.g.
# by MALLOC_MMAP_THRESHOLD_); tests/test_read_faults.py checks.
READ_SIZE: Final = 127 * 1024
# Plain reads and writes go through os.read/os.write on the socket's fd: the
# same read(2)/write(2) as recv/send without flags, but the socket methods
# parse their arguments from a tuple (METH_VARARGS), about 1,000 instructions
# per send-and-receive pair more (callgrind, 3.12), a tenth of a 1 KiB echo.
_read: Final = os.read
_write: Final = os.write
# Reads are sized from the last one: twice what it returned, at least
# SMALL_READ, at most READ_SIZE, and READ_SIZE again after a read that filled
# its buffer (more may be waiting). os.read allocates the full size and then
# shrinks the bytes object to what arrived; for a small message the 127 KiB
# block, its split and glibc's consolidation cost about 700 instructions per
# request (HTTP hello, callgrind, 3.12). SMALL_READ is the largest read whose
# bytes object (33-byte header) pymalloc serves from its 512-byte blocks.
SMALL_READ: Final = 512 - 33
_IOV_MAX: Final = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 16
_HAS_SENDMSG: Final = hasattr(socket.socket, "sendmsg")
# What write() says of a non-bytes argument: asyncio's wording changed in 3.14.
_WRITE_TYPE_ERROR: Final = (
    "data argument must be a bytes, bytearray, or memoryview object, not {!r}"
    if sys.version_info >= (3, 14)
    else "data argument must be a bytes-like object, not {!r}"
)


class StreamCore(SocketCore):
    """What ``StreamTransport`` does, as a native class (see ``sockcore``)."""

    def __init__(
        self,
        loop: Any,
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
        size = self.read_size
        try:
            data = _read(self.fd, size)
        except WOULD_BLOCK:
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self.fatal_error(exc, "Fatal read error on socket transport")
            return
        n = len(data)
        if not n:
            self.read_eof()
            return
        if n >= size:
            self.read_size = READ_SIZE
        else:
            self.read_size = min(max(2 * n, SMALL_READ), READ_SIZE)
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

    def read_into_protocol(self) -> None:
        """BufferedProtocol: read straight into the buffer the protocol lends us."""
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
            sent: int = _write(self.fd, data)
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
            if len(self.buffer) == 1 or not _HAS_SENDMSG:
                sent: int = _write(self.fd, self.buffer[0])
            else:
                sent = sock.sendmsg(itertools.islice(self.buffer, _IOV_MAX))
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
            self.call_connection_lost(None)
        elif self.eof:
            sock.shutdown(socket.SHUT_WR)

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
