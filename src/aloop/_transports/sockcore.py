"""The compiled core of a socket transport: its state, reading on/off, closing, flow control.

asyncio's transports must subclass ``asyncio.Transport``, a plain Python
class, and mypyc cannot make a native class of such a subclass. So each
socket transport is two objects: a Python facade (``sockbase.SocketTransport``
and its subclasses) that *is* the ``asyncio.Transport``, and a native core
(``SocketCore`` and its subclasses, compiled) that holds the state and runs
every hot path. Attribute reads on a native object are struct loads, where a
compiled access to a Python object's attribute is a generic lookup.

Closing is asyncio's: ``close()`` lets buffered data drain first, ``abort()``
and fatal errors drop it; either way ``connection_lost()`` is called once, on
a later iteration, and only then is the socket closed.
"""

from __future__ import annotations

import contextvars
import logging
import socket
from abc import ABCMeta, abstractmethod
from typing import Any, Final

from aloop._transports.base import DEFAULT_HIGH_WATER, call_protocol, check_write_limits

__all__ = ["BYTES_LIKE", "WOULD_BLOCK", "SocketCore", "logger"]

logger: Final = logging.getLogger("asyncio")

# asyncio logs writes to a lost connection from the fifth one on.
CONNLOST_WARN_AFTER: Final = 5
WOULD_BLOCK: Final = (BlockingIOError, InterruptedError)
BYTES_LIKE: Final = (bytes, bytearray, memoryview)


class SocketCore(metaclass=ABCMeta):
    """State and lifecycle of a transport over one socket; subclasses read and write.

    ``transport`` is the facade the protocol sees; it is dropped once
    ``connection_lost()`` has run, which ends the facade-core reference cycle.

    ``context``: the connection's own context (3.15+ stream connections),
    in which its reader, writer and scheduled callbacks run whoever registers
    them; None registers them, as before 3.15, in a copy of the current one.
    """

    def __init__(
        self,
        loop: Any,
        sock: socket.socket,
        protocol: Any,
        server: Any,
        context: contextvars.Context | None = None,
    ) -> None:
        self.loop = loop
        self.context = context
        self.sock: socket.socket | None = sock
        self.fd = sock.fileno()
        self.protocol: Any = protocol
        self.transport: Any = None
        self.server = server
        self.conn_lost = 0
        self.closing = False
        self.paused = False
        self.protocol_paused = False
        self.high_water = DEFAULT_HIGH_WATER
        self.low_water = DEFAULT_HIGH_WATER // 4

    # -- what a subclass defines -------------------------------------------------------

    @abstractmethod
    def read_ready(self) -> None:
        """The socket is readable."""

    @abstractmethod
    def buffer_size(self) -> int:
        """Bytes waiting to be written (asyncio's ``get_write_buffer_size()``)."""

    @abstractmethod
    def has_buffered(self) -> bool:
        """Anything at all waiting to be written."""

    @abstractmethod
    def drop_buffer(self) -> None:
        """Forget everything waiting to be written."""

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    # -- reading on and off --------------------------------------------------------------

    def start_reading(self) -> None:
        if not self.closing and not self.paused:
            self.loop._add_io(self.fd, self.read_ready, (), False, self.context)

    def is_reading(self) -> bool:
        return not self.closing and not self.paused

    def pause_reading(self) -> None:
        if self.closing or self.paused:
            return
        self.paused = True
        self.loop._remove_reader(self.fd)

    def resume_reading(self) -> None:
        if self.closing or not self.paused:
            return
        self.paused = False
        self.loop._add_io(self.fd, self.read_ready, (), False, self.context)

    def is_closing(self) -> bool:
        return self.closing

    # -- write flow control --------------------------------------------------------------

    def maybe_pause_protocol(self) -> None:
        if self.protocol_paused or self.buffer_size() <= self.high_water:
            return
        self.protocol_paused = True
        call_protocol(
            self.loop,
            self.transport,
            self.protocol,
            "pause_writing",
            "protocol.pause_writing() failed",
        )

    def maybe_resume_protocol(self) -> None:
        if self.protocol_paused and self.buffer_size() <= self.low_water:
            self.protocol_paused = False
            call_protocol(
                self.loop,
                self.transport,
                self.protocol,
                "resume_writing",
                "protocol.resume_writing() failed",
            )

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self.low_water, self.high_water)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.high_water, self.low_water = check_write_limits(high, low)
        self.maybe_pause_protocol()

    # -- closing -----------------------------------------------------------------------

    def note_lost_write(self) -> None:
        if self.conn_lost >= CONNLOST_WARN_AFTER:
            logger.warning("socket.send() raised exception.")
        self.conn_lost += 1

    def close(self) -> None:
        if self.closing:
            return
        self.closing = True
        self.loop._remove_reader(self.fd)
        if not self.has_buffered():
            self.conn_lost += 1
            self.loop._remove_writer(self.fd)
            self.loop.call_soon(self.call_connection_lost, None, context=self.context)

    def abort(self) -> None:
        self.force_close(None)

    def fatal_error(self, exc: BaseException, message: str) -> None:
        if isinstance(exc, OSError):
            # Connection errors are the peer's doing, not a bug: log quietly.
            if self.loop.get_debug():
                logger.debug("%r: %s", self.transport, message, exc_info=True)
        else:
            self.loop.call_exception_handler(
                {
                    "message": message,
                    "exception": exc,
                    "transport": self.transport,
                    "protocol": self.protocol,
                }
            )
        self.force_close(exc)

    def force_close(self, exc: BaseException | None) -> None:
        if self.conn_lost:
            return
        if self.has_buffered():
            self.drop_buffer()
            self.loop._remove_writer(self.fd)
        if not self.closing:
            self.closing = True
            self.loop._remove_reader(self.fd)
        self.conn_lost += 1
        self.loop.call_soon(self.call_connection_lost, exc, context=self.context)

    def call_connection_lost(self, exc: BaseException | None) -> None:
        transport = self.transport
        try:
            if self.protocol is not None:
                self.protocol.connection_lost(exc)
        finally:
            sock = self.sock
            if sock is not None:
                self.loop._detach_transport(self.fd, transport)
                sock.close()
            self.sock = None
            self.protocol = None
            self.transport = None
            server = self.server
            if server is not None:
                self.server = None
                server._detach(transport)
