"""Datagram endpoints: UDP and Unix datagram sockets under a DatagramProtocol.

Each datagram is received with ``recvfrom_into`` into one buffer the
transport reuses, then copied out at its own size: a 256 KiB ``recvfrom``
per datagram (asyncio's way) would hit the allocator's mmap path every time.
"""

from __future__ import annotations

import asyncio
import collections
import os
import socket
import stat
import sys
from collections.abc import Callable
from typing import Any

from aloop._transports import dns
from aloop._transports.server import set_reuseport
from aloop._transports.sockbase import BYTES_LIKE, WOULD_BLOCK, SocketTransport, logger

__all__ = ["DatagramTransport", "create_datagram_endpoint"]

# Big enough for any UDP datagram and for the usual Unix datagram limits.
MAX_DATAGRAM = 256 * 1024
# 3.13 counts a per-datagram header in the write buffer size.
_HEADER_SIZE = 8 if sys.version_info >= (3, 13) else 0
_DROP_EMPTY = sys.version_info < (3, 13)


class DatagramTransport(SocketTransport, asyncio.DatagramTransport):
    """``asyncio.DatagramTransport`` over a non-blocking datagram socket."""

    def __init__(
        self,
        loop: Any,
        sock: socket.socket,
        protocol: asyncio.BaseProtocol,
        address: Any = None,
        waiter: asyncio.Future[Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self._address = address
        self._buffer: collections.deque[tuple[bytes, Any]] = collections.deque()
        self._buffer_size = 0
        self._recv_buffer: bytearray | None = None
        super().__init__(loop, sock, protocol, extra)
        self._start(waiter)

    def get_write_buffer_size(self) -> int:
        return self._buffer_size

    def _has_buffered(self) -> bool:
        return bool(self._buffer)

    def _drop_buffer(self) -> None:
        self._buffer.clear()
        self._buffer_size = 0

    def _read_ready(self) -> None:
        if self._conn_lost:
            return
        buf = self._recv_buffer
        if buf is None:
            buf = self._recv_buffer = bytearray(MAX_DATAGRAM)
        assert self._sock is not None
        try:
            nbytes, addr = self._sock.recvfrom_into(buf)
        except WOULD_BLOCK:
            return
        except OSError as exc:
            self._protocol.error_received(exc)
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal read error on datagram transport")
            return
        self._protocol.datagram_received(bytes(memoryview(buf)[:nbytes]), addr)

    def sendto(self, data: Any, addr: Any = None) -> None:
        if not isinstance(data, BYTES_LIKE):
            raise TypeError(
                f"data argument must be a bytes-like object, not {type(data).__name__!r}"
            )
        if _DROP_EMPTY and not data:
            return
        if self._address:
            if addr not in (None, self._address):
                raise ValueError(f"Invalid address: must be None or {self._address}")
            addr = self._address
        if self._conn_lost and self._address:
            self._note_lost_write()
            return
        if not self._buffer:
            try:
                self._send(data, addr)
                return
            except WOULD_BLOCK:
                self._loop._add_writer(self._sock_fd, self._write_ready)
            except OSError as exc:
                self._protocol.error_received(exc)
                return
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal write error on datagram transport")
                return
        # Copied: the caller may reuse a mutable buffer once we return.
        self._buffer.append((bytes(data), addr))
        self._buffer_size += len(data) + _HEADER_SIZE
        self._maybe_pause_protocol()

    def _send(self, data: Any, addr: Any) -> None:
        assert self._sock is not None
        if self.get_extra_info("peername"):
            self._sock.send(data)
        else:
            self._sock.sendto(data, addr)

    def _write_ready(self) -> None:
        while self._buffer:
            data, addr = self._buffer[0]
            try:
                self._send(data, addr)
            except WOULD_BLOCK:
                break
            except OSError as exc:
                self._buffer.popleft()
                self._buffer_size -= len(data) + _HEADER_SIZE
                self._protocol.error_received(exc)
                return
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal write error on datagram transport")
                return
            self._buffer.popleft()
            self._buffer_size -= len(data) + _HEADER_SIZE
        self._maybe_resume_protocol()  # may send more
        if not self._buffer:
            self._loop._remove_writer(self._sock_fd)
            if self._closing:
                self._call_connection_lost(None)


# -- create_datagram_endpoint ---------------------------------------------------------

_UNSET: Any = object()


def _check_sock_only(sock: socket.socket, options: dict[str, Any]) -> None:
    if sock.type != socket.SOCK_DGRAM:
        raise ValueError(f"A UDP Socket was expected, got {sock!r}")
    given = ", ".join(f"{k}={v}" for k, v in options.items() if v)
    if given:
        raise ValueError(
            f"socket modifier keyword arguments can not be used when sock is specified. ({given})"
        )


def _remove_stale_unix_socket(path: str) -> None:
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        logger.error("Unable to check or remove stale UNIX socket %r: %r", path, err)


async def _address_pairs(
    loop: Any, local_addr: Any, remote_addr: Any, family: int, proto: int, flags: int
) -> list[tuple[tuple[int, int], list[Any]]]:
    """(family, proto) -> [local address, remote address], for every usable pair."""
    if not (local_addr or remote_addr):
        if family == 0:
            raise ValueError("unexpected address family")
        return [((family, proto), [None, None])]
    if hasattr(socket, "AF_UNIX") and family == socket.AF_UNIX:
        for addr in (local_addr, remote_addr):
            if addr is not None and not isinstance(addr, str):
                raise TypeError("string is expected")
        if local_addr and local_addr[0] not in (0, "\x00"):
            _remove_stale_unix_socket(local_addr)
        return [((family, proto), [local_addr, remote_addr])]
    pairs: dict[tuple[int, int], list[Any]] = {}
    for index, addr in ((0, local_addr), (1, remote_addr)):
        if addr is None:
            continue
        if not (isinstance(addr, tuple) and len(addr) == 2):
            raise TypeError("2-tuple is expected")
        infos = await dns.ensure_resolved(
            loop, addr, family=family, type=socket.SOCK_DGRAM, proto=proto, flags=flags
        )
        if not infos:
            raise OSError("getaddrinfo() returned empty list")
        for fam, _, pro, _, address in infos:
            pairs.setdefault((fam, pro), [None, None])[index] = address
    usable = [
        (key, pair)
        for key, pair in pairs.items()
        if not ((local_addr and pair[0] is None) or (remote_addr and pair[1] is None))
    ]
    if not usable:
        raise ValueError("can not get address information")
    return usable


async def _open_socket(
    loop: Any,
    family: int,
    proto: int,
    local: Any,
    remote: Any,
    reuse_port: bool | None,
    allow_broadcast: bool | None,
) -> socket.socket:
    sock = socket.socket(family=family, type=socket.SOCK_DGRAM, proto=proto)
    try:
        if reuse_port:
            set_reuseport(sock)
        if allow_broadcast:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setblocking(False)
        if local:
            sock.bind(local)
        if remote and not allow_broadcast:
            await loop.sock_connect(sock, remote)
    except BaseException:
        sock.close()
        raise
    return sock


async def create_datagram_endpoint(
    loop: Any,
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    local_addr: Any = None,
    remote_addr: Any = None,
    *,
    family: int = 0,
    proto: int = 0,
    flags: int = 0,
    reuse_address: Any = _UNSET,
    reuse_port: bool | None = None,
    allow_broadcast: bool | None = None,
    sock: socket.socket | None = None,
) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
    if reuse_address is not _UNSET:
        if sys.version_info >= (3, 12):
            raise TypeError(
                "create_datagram_endpoint() got an unexpected keyword argument 'reuse_address'"
            )
        if reuse_address:
            raise ValueError(
                "Passing `reuse_address=True` is no longer supported, as the usage of "
                "SO_REUSEPORT in UDP poses a significant security concern."
            )
    remote: Any = None
    if sock is not None:
        _check_sock_only(
            sock,
            {
                "local_addr": local_addr,
                "remote_addr": remote_addr,
                "family": family,
                "proto": proto,
                "flags": flags,
                "reuse_port": reuse_port,
                "allow_broadcast": allow_broadcast,
            },
        )
        sock.setblocking(False)
    else:
        pairs = await _address_pairs(loop, local_addr, remote_addr, family, proto, flags)
        errors: list[OSError] = []
        for (fam, pro), (local, remote_address) in pairs:
            try:
                sock = await _open_socket(
                    loop, fam, pro, local_addr and local, remote_addr and remote_address,
                    reuse_port, allow_broadcast,
                )  # fmt: skip
            except OSError as exc:
                errors.append(exc)
                continue
            remote = remote_address if remote_addr else None
            break
        else:
            raise errors[0]
    assert sock is not None
    protocol = protocol_factory()
    waiter = loop.create_future()
    transport = DatagramTransport(loop, sock, protocol, remote, waiter)
    if loop._debug:
        logger.debug(
            "Datagram endpoint local_addr=%r remote_addr=%r created: (%r, %r)",
            local_addr, remote_addr, transport, protocol,
        )  # fmt: skip
    try:
        await waiter
    except BaseException:
        transport.close()
        raise
    return transport, protocol
