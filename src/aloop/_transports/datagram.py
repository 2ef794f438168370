"""The datagram transport: a UDP or Unix datagram socket under a DatagramProtocol.

``DatagramTransport`` is the ``asyncio.DatagramTransport`` the protocol
holds; ``DatagramCore``, compiled, receives and sends (see ``base`` for why
two objects). ``endpoint.create_datagram_endpoint`` makes them.

Each datagram is received with ``recvfrom_into`` into one buffer the core
reuses, then copied out at its own size: a 256 KiB ``recvfrom`` per datagram
(asyncio's way) would hit the allocator's mmap path every time.
"""

from __future__ import annotations

import asyncio

# mypyc builds a non-native class from its bases' own modules: asyncio.Transport
# lives in asyncio.transports, which must be imported here by name.
import asyncio.transports
import collections
import socket
import sys
from typing import Any, Final

from mypy_extensions import mypyc_attr

from aloop._core.loopapi import LoopAPI
from aloop._transports.base import (
    BYTES_LIKE,
    WOULD_BLOCK,
    SocketCore,
    SocketTransport,
    socket_extra,
)

__all__ = ["DatagramCore", "DatagramTransport"]

# Big enough for any UDP datagram and for the usual Unix datagram limits.
MAX_DATAGRAM: Final = 256 * 1024
# 3.13 counts a per-datagram header in the write buffer size.
_HEADER_SIZE: Final = 8 if sys.version_info >= (3, 13) else 0
_DROP_EMPTY: Final = sys.version_info < (3, 13)


class DatagramCore(SocketCore):
    """What ``DatagramTransport`` does, as a native class.

    ``address`` is the remote address of a connected endpoint, else None;
    ``connected`` says the socket has a peer (sent with ``send``, not ``sendto``).
    """

    def __init__(
        self, loop: LoopAPI, sock: socket.socket, protocol: Any, address: Any, connected: bool
    ) -> None:
        self.address = address
        self.connected = connected
        self.buffer: collections.deque[tuple[bytes, Any]] = collections.deque()
        self.pending = 0  # bytes in ``buffer``, with 3.13's per-datagram header
        self.recv_buffer: bytearray | None = None
        super().__init__(loop, sock, protocol, None)

    def buffer_size(self) -> int:
        return self.pending

    def has_buffered(self) -> bool:
        return bool(self.buffer)

    def drop_buffer(self) -> None:
        self.buffer.clear()
        self.pending = 0

    def read_ready(self) -> None:
        if self.conn_lost:
            return
        buf = self.recv_buffer
        if buf is None:
            buf = self.recv_buffer = bytearray(MAX_DATAGRAM)
        sock = self.sock
        assert sock is not None
        try:
            nbytes, addr = sock.recvfrom_into(buf)
        except WOULD_BLOCK:
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self.io_failed(exc, "Fatal read error on datagram transport")
            return
        self.protocol.datagram_received(bytes(memoryview(buf)[:nbytes]), addr)

    def sendto(self, data: Any, addr: Any = None) -> None:
        if not isinstance(data, BYTES_LIKE):
            raise TypeError(
                f"data argument must be a bytes-like object, not {type(data).__name__!r}"
            )
        if _DROP_EMPTY and not data:
            return
        if self.address:
            if addr not in (None, self.address):
                raise ValueError(f"Invalid address: must be None or {self.address}")
            addr = self.address
        if self.conn_lost and (self.address or self.sock is None):
            # Dropped, with asyncio's warning from the fifth. asyncio drops only a
            # connected endpoint's: an unconnected one calls sendto() on its None
            # socket, and its fatal-error path raises AttributeError from sendto().
            self.note_lost_write()
            return
        if not self.buffer:
            try:
                self.send(data, addr)
                return
            except WOULD_BLOCK:
                self.loop._add_writer(self.fd, self.write_ready)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self.io_failed(exc, "Fatal write error on datagram transport")
                return
        # Copied: the caller may reuse a mutable buffer once we return.
        self.buffer.append((bytes(data), addr))
        self.pending += len(data) + _HEADER_SIZE
        self.maybe_pause_protocol()

    def io_failed(self, exc: BaseException, message: str) -> None:
        """A read or send raised: an OSError goes to error_received and the endpoint
        stays open (as asyncio's); anything else is fatal, with ``message``."""
        if isinstance(exc, OSError):
            self.protocol.error_received(exc)
        else:
            self.fatal_error(exc, message)

    def send(self, data: Any, addr: Any) -> None:
        sock = self.sock
        assert sock is not None
        if self.connected:
            sock.send(data)
        else:
            sock.sendto(data, addr)

    def write_ready(self) -> None:
        while self.buffer:
            data, addr = self.buffer[0]
            try:
                self.send(data, addr)
            except WOULD_BLOCK:
                break
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                if isinstance(exc, OSError):  # this datagram is given up
                    self.buffer.popleft()
                    self.pending -= len(data) + _HEADER_SIZE
                self.io_failed(exc, "Fatal write error on datagram transport")
                return
            self.buffer.popleft()
            self.pending -= len(data) + _HEADER_SIZE
        self.maybe_resume_protocol()  # may send more
        if not self.buffer:
            self.loop._remove_writer(self.fd)
            if self.closing:
                self.conn_lost += 1  # as close() with nothing to flush: later sends drop
                self.call_connection_lost(None)


@mypyc_attr(native_class=False)
class DatagramTransport(SocketTransport, asyncio.DatagramTransport):
    """``asyncio.DatagramTransport`` over a non-blocking datagram socket."""

    # The core's sendto, bound on each instance (see base).
    __slots__ = ("sendto",)
    _core: DatagramCore

    def __init__(
        self,
        loop: LoopAPI,
        sock: socket.socket,
        protocol: asyncio.BaseProtocol,
        address: Any = None,
        waiter: asyncio.Future[Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(socket_extra(sock, extra))
        connected = bool(self.get_extra_info("peername"))
        core = DatagramCore(loop, sock, protocol, address, connected)
        self.sendto = core.sendto  # type: ignore[method-assign]
        self._attach_core(core, waiter)
