"""What socket transports share: extra info, the fd registry, reading on/off, closing.

``SocketTransport`` holds one non-blocking socket for a protocol. Closing is
asyncio's: ``close()`` lets buffered data drain first, ``abort()`` and fatal
errors drop it; either way ``connection_lost()`` is called once, on a later
iteration, and only then is the socket closed.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import warnings
from asyncio import trsock
from collections.abc import Callable
from typing import Any

from aloop._transports.base import WriteFlowControl

__all__ = ["SocketTransport", "logger", "set_result_unless_cancelled", "socket_extra"]

logger = logging.getLogger("asyncio")

# asyncio logs writes to a lost connection from the fifth one on.
CONNLOST_WARN_AFTER = 5
WOULD_BLOCK = (BlockingIOError, InterruptedError)
BYTES_LIKE = (bytes, bytearray, memoryview)


def set_result_unless_cancelled(fut: asyncio.Future[Any], result: Any) -> None:
    if not fut.cancelled():
        fut.set_result(result)


def socket_extra(sock: socket.socket, extra: dict[str, Any] | None) -> dict[str, Any]:
    """asyncio's extra info for a socket transport: socket, sockname, peername."""
    info = dict(extra) if extra else {}
    info["socket"] = trsock.TransportSocket(sock)
    try:
        info["sockname"] = sock.getsockname()
    except OSError:
        info["sockname"] = None
    if "peername" not in info:
        try:
            info["peername"] = sock.getpeername()
        except OSError:
            info["peername"] = None
    return info


class SocketTransport(WriteFlowControl):
    """Lifecycle of a transport over one socket; subclasses read and write."""

    # Class defaults, so __del__ of a half-built transport finds them.
    _sock: socket.socket | None = None
    _server: Any = None

    def __init__(
        self,
        loop: Any,
        sock: socket.socket,
        protocol: asyncio.BaseProtocol,
        extra: dict[str, Any] | None = None,
        server: Any = None,
    ) -> None:
        super().__init__(socket_extra(sock, extra))
        self._loop = loop
        self._sock: socket.socket | None = sock
        self._sock_fd = sock.fileno()
        self._protocol = protocol
        self.set_protocol(protocol)
        self._server = server
        self._conn_lost = 0
        self._closing = False
        self._paused = False
        if server is not None:
            server._attach(self)
        loop._attach_transport(self._sock_fd, self)

    def _start(self, waiter: asyncio.Future[Any] | None) -> None:
        """connection_made(), then reading, then the waiter, each on the next iteration."""
        self._loop.call_soon(self._protocol.connection_made, self)
        self._loop.call_soon(self._start_reading)
        if waiter is not None:
            self._loop.call_soon(set_result_unless_cancelled, waiter, None)

    def __repr__(self) -> str:
        parts = [type(self).__name__]
        if self._sock is None:
            parts.append("closed")
        elif self._closing:
            parts.append("closing")
        parts.append(f"fd={self._sock_fd}")
        if self._sock is not None and not self._closing:
            parts.append("read=" + ("polling" if self.is_reading() else "idle"))
            state = "polling" if self._has_buffered() else "idle"
            parts.append(f"write=<{state}, bufsize={self.get_write_buffer_size()}>")
        return f"<{' '.join(parts)}>"

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        sock = self._sock
        if sock is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            sock.close()
            if self._server is not None:
                self._server._detach(self)

    def _has_buffered(self) -> bool:
        return self.get_write_buffer_size() > 0

    def _drop_buffer(self) -> None:
        """Forget everything waiting to be written (subclasses)."""

    # -- protocol ----------------------------------------------------------------

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol  # type: ignore[no-any-return]

    def is_closing(self) -> bool:
        return self._closing

    # -- reading on and off ----------------------------------------------------------

    def _read_ready(self) -> None:
        raise NotImplementedError

    def _start_reading(self) -> None:
        if not self._closing and not self._paused:
            self._loop._add_reader(self._sock_fd, self._read_ready)

    def is_reading(self) -> bool:
        return not self._closing and not self._paused

    def pause_reading(self) -> None:
        if not self.is_reading():
            return
        self._paused = True
        self._loop._remove_reader(self._sock_fd)

    def resume_reading(self) -> None:
        if self._closing or not self._paused:
            return
        self._paused = False
        self._loop._add_reader(self._sock_fd, self._read_ready)

    def _note_lost_write(self) -> None:
        if self._conn_lost >= CONNLOST_WARN_AFTER:
            logger.warning("socket.send() raised exception.")
        self._conn_lost += 1

    # -- closing -------------------------------------------------------------------

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._loop._remove_reader(self._sock_fd)
        if not self._has_buffered():
            self._conn_lost += 1
            self._loop._remove_writer(self._sock_fd)
            self._loop.call_soon(self._call_connection_lost, None)

    def abort(self) -> None:
        self._force_close(None)

    def _fatal_error(self, exc: BaseException, message: str) -> None:
        if isinstance(exc, OSError):
            # Connection errors are the peer's doing, not a bug: log quietly.
            if self._loop.get_debug():
                logger.debug("%r: %s", self, message, exc_info=True)
        else:
            self._loop.call_exception_handler(
                {
                    "message": message,
                    "exception": exc,
                    "transport": self,
                    "protocol": self._protocol,
                }
            )
        self._force_close(exc)

    def _force_close(self, exc: BaseException | None) -> None:
        if self._conn_lost:
            return
        if self._has_buffered():
            self._drop_buffer()
            self._loop._remove_writer(self._sock_fd)
        if not self._closing:
            self._closing = True
            self._loop._remove_reader(self._sock_fd)
        self._conn_lost += 1
        self._loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        try:
            if self._protocol is not None:
                self._protocol.connection_lost(exc)
        finally:
            sock = self._sock
            if sock is not None:
                self._loop._detach_transport(self._sock_fd, self)
                sock.close()
            self._sock = None
            self._protocol = None
            server = self._server
            if server is not None:
                server._detach(self)
                self._server = None
