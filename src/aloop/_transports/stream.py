"""The stream transport: a connected TCP or Unix socket under a Protocol.

Reads: a plain ``Protocol`` gets ``recv(127 KiB)`` per readable event (below
glibc's mmap threshold, so no page-fault storm per read); a
``BufferedProtocol`` gets the bytes ``recv_into`` its own buffer.
Writes go straight to the socket; only what the kernel did not take is
buffered, and a buffer of several pieces leaves in one ``sendmsg``.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import os
import socket
from collections.abc import Iterable
from typing import Any

from aloop._transports.sendfile import SendfileMode
from aloop._transports.sockbase import (
    BYTES_LIKE,
    WOULD_BLOCK,
    SocketTransport,
    logger,
)

__all__ = ["StreamTransport", "set_nodelay"]

# One read takes a 100 KiB message whole, yet the fresh bytes object stays below
# glibc's default mmap threshold (128 KiB): asyncio's recv(256 KiB) is served by
# mmap, and page-faults on every read, wherever that threshold is fixed (e.g.
# by MALLOC_MMAP_THRESHOLD_); tests/test_read_faults.py checks.
READ_SIZE = 127 * 1024
# Plain reads and writes go through os.read/os.write on the socket's fd: the
# same read(2)/write(2) as recv/send without flags, but the socket methods
# parse their arguments from a tuple (METH_VARARGS), about 1,000 instructions
# per send-and-receive pair more (callgrind, 3.12), a tenth of a 1 KiB echo.
_read = os.read
_write = os.write
_IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 16
_HAS_SENDMSG = hasattr(socket.socket, "sendmsg")


def set_nodelay(sock: socket.socket) -> None:
    """Disable Nagle on a TCP socket: small writes leave without waiting for an ACK."""
    if (
        hasattr(socket, "TCP_NODELAY")
        and sock.family in (socket.AF_INET, socket.AF_INET6)
        and sock.type == socket.SOCK_STREAM
        and sock.proto in (0, socket.IPPROTO_TCP)
    ):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class StreamTransport(SocketTransport):
    """``asyncio.Transport`` over a connected, non-blocking stream socket."""

    _start_tls_compatible = True
    _sendfile_compatible = SendfileMode.TRY_NATIVE

    def __init__(
        self,
        loop: Any,
        sock: socket.socket,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[Any] | None = None,
        extra: dict[str, Any] | None = None,
        server: Any = None,
    ) -> None:
        self._buffered = False
        self._buffer: collections.deque[bytes | memoryview] = collections.deque()
        self._buffer_size = 0
        self._eof = False
        # A future resolved when the write buffer drains (sendfile waits on it).
        self._empty_waiter: asyncio.Future[None] | None = None
        # Bound once: the socket never changes, and the hot path skips two lookups.
        self._recv_into = sock.recv_into
        super().__init__(loop, sock, protocol, extra, server)
        set_nodelay(sock)
        self._start(waiter)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol
        self._buffered = isinstance(protocol, asyncio.BufferedProtocol)

    # -- reading -------------------------------------------------------------------

    def _read_ready(self) -> None:
        if self._conn_lost:
            return
        if self._buffered:
            self._read_into_protocol()
            return
        try:
            data = _read(self._sock_fd, READ_SIZE)
        except WOULD_BLOCK:
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal read error on socket transport")
            return
        if not data:
            self._read_eof()
            return
        try:
            self._protocol.data_received(data)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.data_received() call failed.")

    def _read_into_protocol(self) -> None:
        """BufferedProtocol: read straight into the buffer the protocol lends us."""
        try:
            buf = self._protocol.get_buffer(-1)
            if not len(buf):
                raise RuntimeError("get_buffer() returned an empty buffer")
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.get_buffer() call failed.")
            return
        try:
            nbytes = self._recv_into(buf)
        except WOULD_BLOCK:
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal read error on socket transport")
            return
        if not nbytes:
            self._read_eof()
            return
        try:
            self._protocol.buffer_updated(nbytes)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.buffer_updated() call failed.")

    def _read_eof(self) -> None:
        if self._loop.get_debug():
            logger.debug("%r received EOF", self)
        try:
            keep_open = self._protocol.eof_received()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.eof_received() call failed.")
            return
        if keep_open:
            # Half-closed: the protocol may still write, but nothing more comes in.
            self._loop._remove_reader(self._sock_fd)
        else:
            self.close()

    # -- writing -------------------------------------------------------------------

    def get_write_buffer_size(self) -> int:
        return self._buffer_size

    def write(self, data: Any) -> None:
        if type(data) is not bytes and not isinstance(data, BYTES_LIKE):
            raise TypeError(
                f"data argument must be a bytes-like object, not {type(data).__name__!r}"
            )
        if self._eof:
            raise RuntimeError("Cannot call write() after write_eof()")
        if self._empty_waiter is not None:
            raise RuntimeError("unable to write; sendfile is in progress")
        if not data:
            return
        if self._conn_lost:
            self._note_lost_write()
            return
        if self._buffer:
            self._append(data, 0)
            self._maybe_pause_protocol()
            return
        try:
            sent = _write(self._sock_fd, data)
        except WOULD_BLOCK:
            sent = 0
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal write error on socket transport")
            return
        size = len(data) if type(data) is bytes else memoryview(data).nbytes
        if sent < size:
            self._append(data, sent)
            self._loop._add_writer(self._sock_fd, self._write_ready)
            self._maybe_pause_protocol()

    def writelines(self, list_of_data: Iterable[Any]) -> None:
        if self._eof:
            raise RuntimeError("Cannot call writelines() after write_eof()")
        if self._empty_waiter is not None:
            raise RuntimeError("unable to writelines; sendfile is in progress")
        pieces = [memoryview(data).cast("B") for data in list_of_data]
        if not pieces:
            return
        if self._conn_lost:
            self._note_lost_write()
            return
        was_empty = not self._buffer
        for piece in pieces:
            if piece.nbytes:
                self._append(piece, 0)
        if was_empty and self._buffer:
            # One sendmsg for all of them, no joined copy.
            self._write_ready()
            if self._buffer and not self._conn_lost:
                self._loop._add_writer(self._sock_fd, self._write_ready)
        self._maybe_pause_protocol()

    def _append(self, data: Any, offset: int) -> None:
        """Buffer ``data[offset:]``; mutable buffers are copied so later changes don't leak in."""
        if isinstance(data, bytes):
            piece: bytes | memoryview = memoryview(data)[offset:] if offset else data
        else:
            view = memoryview(data).cast("B")
            if view.readonly and isinstance(view.obj, bytes):
                piece = view[offset:]
            else:
                piece = bytes(view[offset:])
        self._buffer.append(piece)
        self._buffer_size += len(piece)

    def _write_ready(self) -> None:
        if self._conn_lost or not self._buffer:
            return
        assert self._sock is not None
        try:
            if len(self._buffer) == 1 or not _HAS_SENDMSG:
                sent = _write(self._sock_fd, self._buffer[0])
            else:
                sent = self._sock.sendmsg(itertools.islice(self._buffer, _IOV_MAX))
        except WOULD_BLOCK:
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop._remove_writer(self._sock_fd)
            self._drop_buffer()
            self._fatal_error(exc, "Fatal write error on socket transport")
            if self._empty_waiter is not None:
                self._empty_waiter.set_exception(exc)
            return
        self._consume(sent)
        self._maybe_resume_protocol()  # may write more
        if self._buffer:
            return
        self._loop._remove_writer(self._sock_fd)
        if self._empty_waiter is not None:
            self._empty_waiter.set_result(None)
        if self._closing:
            self._call_connection_lost(None)
        elif self._eof:
            self._sock.shutdown(socket.SHUT_WR)

    def _consume(self, nbytes: int) -> None:
        """Drop the first ``nbytes`` buffered bytes (the kernel took them)."""
        buffer = self._buffer
        self._buffer_size -= nbytes
        while nbytes:
            piece = buffer[0]
            if len(piece) <= nbytes:
                nbytes -= len(piece)
                buffer.popleft()
            else:
                buffer[0] = memoryview(piece)[nbytes:]
                break

    def _drop_buffer(self) -> None:
        self._buffer.clear()
        self._buffer_size = 0

    def write_eof(self) -> None:
        if self._closing or self._eof:
            return
        self._eof = True
        if not self._buffer and self._sock is not None:
            self._sock.shutdown(socket.SHUT_WR)

    def can_write_eof(self) -> bool:
        return True

    # -- sendfile support --------------------------------------------------------------

    def _make_empty_waiter(self) -> asyncio.Future[None]:
        if self._empty_waiter is not None:
            raise RuntimeError("Empty waiter is already set")
        self._empty_waiter = self._loop.create_future()
        if not self._buffer:
            self._empty_waiter.set_result(None)
        return self._empty_waiter

    def _reset_empty_waiter(self) -> None:
        self._empty_waiter = None

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        try:
            super()._call_connection_lost(exc)
        finally:
            waiter = self._empty_waiter
            if waiter is not None and not waiter.done():
                waiter.set_exception(ConnectionError("Connection is closed by peer"))
