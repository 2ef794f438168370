"""The network half of ``aloop.Loop``: sockets, DNS, connections, servers, TLS.

A part of ``Loop`` (see ``aloop._core.loopparts``); each method is a thin
entry point into the module of ``aloop._transports`` that implements it. Its
state (``_net_transports``, ``_net_unix_inodes``) is declared in
``BaseLoop``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import weakref
from collections.abc import Callable
from typing import Any

from aloop._core.fdtable import fileno_or_none
from aloop._core.loopparts import LoopPart
from aloop._transports import connect, dns, endpoint, sendfile, server, sockops, tls
from aloop._transports.base import logger

__all__ = ["NetworkMixin"]

_ProtocolFactory = Callable[[], asyncio.BaseProtocol]


class NetworkMixin(LoopPart):
    """sock_*, DNS, connections, servers, datagram endpoints, sendfile and TLS."""

    # -- transports by fd ------------------------------------------------------------

    def _transport_for_fd(self, fd: int) -> Any:
        table = self._net_transports
        return None if table is None else table.get(fd)

    def _attach_transport(self, fd: int, transport: Any) -> None:
        if self._net_transports is None:
            self._net_transports = weakref.WeakValueDictionary()
        self._net_transports[fd] = transport

    def _detach_transport(self, fd: int, transport: Any) -> None:
        table = self._net_transports
        if table is not None and table.get(fd) is transport:
            del table[fd]

    # -- add_reader & co: refused on an fd an open transport owns (as asyncio) ---------

    def _ensure_fd_no_transport(self, fd: Any) -> None:
        # An object that names no fd now (a closed socket) owns no transport's fd;
        # the registration lookup then finds it by the object (or raises).
        fileno = fileno_or_none(fd)
        if fileno is not None:
            sockops.check_fd_free(self, fileno, fd)

    def add_reader(self, fd: Any, callback: Callable[..., object], *args: Any) -> Any:
        """Call ``callback(*args)`` whenever ``fd`` is readable."""
        self._ensure_fd_no_transport(fd)
        return self._add_reader(fd, callback, *args)

    def add_writer(self, fd: Any, callback: Callable[..., object], *args: Any) -> Any:
        """Call ``callback(*args)`` whenever ``fd`` is writable."""
        self._ensure_fd_no_transport(fd)
        return self._add_writer(fd, callback, *args)

    def remove_reader(self, fd: Any) -> bool:
        self._ensure_fd_no_transport(fd)
        return self._remove_reader(fd)

    def remove_writer(self, fd: Any) -> bool:
        self._ensure_fd_no_transport(fd)
        return self._remove_writer(fd)

    # -- low-level socket operations -------------------------------------------------

    # The coroutine functions themselves, not methods awaiting them: a second
    # coroutine per call would cost a frame and a hop on every send and receive.
    # Each takes the loop as its first argument, so they bind as methods.
    sock_recv = sockops.sock_recv
    sock_recv_into = sockops.sock_recv_into
    sock_recvfrom = sockops.sock_recvfrom
    sock_recvfrom_into = sockops.sock_recvfrom_into
    sock_sendall = sockops.sock_sendall
    sock_sendto = sockops.sock_sendto
    sock_connect = sockops.sock_connect
    sock_accept = sockops.sock_accept

    async def sock_sendfile(
        self,
        sock: socket.socket,
        file: Any,
        offset: int = 0,
        count: int | None = None,
        *,
        fallback: bool = True,
    ) -> int:
        return await sendfile.sock_sendfile(self, sock, file, offset, count, fallback=fallback)

    async def sendfile(
        self,
        transport: asyncio.WriteTransport,
        file: Any,
        offset: int = 0,
        count: int | None = None,
        *,
        fallback: bool = True,
    ) -> int:
        return await sendfile.sendfile(self, transport, file, offset, count, fallback=fallback)

    async def _sendfile_native(
        self, transport: Any, file: Any, offset: int, count: int | None
    ) -> int:
        return await sendfile.transport_sendfile_native(self, transport, file, offset, count)

    # -- DNS -------------------------------------------------------------------------

    async def getaddrinfo(
        self,
        host: Any,
        port: Any,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[dns.AddrInfo]:
        return await dns.getaddrinfo(self, host, port, family, type, proto, flags)

    async def getnameinfo(self, sockaddr: tuple[Any, ...], flags: int = 0) -> tuple[str, str]:
        return await dns.getnameinfo(self, sockaddr, flags)

    # -- connections and servers -----------------------------------------------------

    async def create_connection(
        self, protocol_factory: _ProtocolFactory, host: Any = None, port: Any = None, **kw: Any
    ) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
        return await connect.create_connection(self, protocol_factory, host, port, **kw)

    async def create_unix_connection(
        self, protocol_factory: _ProtocolFactory, path: Any = None, **kw: Any
    ) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
        return await connect.create_unix_connection(self, protocol_factory, path, **kw)

    async def connect_accepted_socket(
        self, protocol_factory: _ProtocolFactory, sock: socket.socket, **kw: Any
    ) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
        return await connect.connect_accepted_socket(self, protocol_factory, sock, **kw)

    async def create_server(
        self, protocol_factory: _ProtocolFactory, host: Any = None, port: Any = None, **kw: Any
    ) -> server.Server:
        return await server.create_server(self, protocol_factory, host, port, **kw)

    async def create_unix_server(
        self, protocol_factory: _ProtocolFactory, path: Any = None, **kw: Any
    ) -> server.Server:
        return await server.create_unix_server(self, protocol_factory, path, **kw)

    async def create_datagram_endpoint(
        self,
        protocol_factory: _ProtocolFactory,
        local_addr: Any = None,
        remote_addr: Any = None,
        **kw: Any,
    ) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
        return await endpoint.create_datagram_endpoint(
            self, protocol_factory, local_addr, remote_addr, **kw
        )

    def _stop_serving(self, sock: socket.socket) -> None:
        """Stop accepting on ``sock`` and close it (asyncio's loops have this too)."""
        server.stop_serving(self, sock)

    def _remember_unix_server_socket(self, sock: socket.socket) -> None:
        """Note the socket file's inode, to remove that file (only) when the server closes."""
        path = sock.getsockname()
        if not path or path[0] in (0, "\x00"):
            return  # abstract namespace: no file
        try:
            inode = os.stat(path).st_ino
        except FileNotFoundError:
            return
        if self._net_unix_inodes is None:
            self._net_unix_inodes = {}
        self._net_unix_inodes[sock] = inode

    def _forget_unix_server_socket(self, sock: socket.socket) -> None:
        inodes = self._net_unix_inodes
        if not inodes or sock not in inodes:
            return
        inode = inodes.pop(sock)
        path = sock.getsockname()
        try:
            if os.stat(path).st_ino == inode:
                os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as err:
            logger.error("Unable to clean up listening UNIX socket %r: %r", path, err)

    # -- TLS -------------------------------------------------------------------------

    async def start_tls(
        self,
        transport: asyncio.BaseTransport,
        protocol: asyncio.BaseProtocol,
        sslcontext: Any,
        **kw: Any,
    ) -> asyncio.Transport:
        return await tls.start_tls(self, transport, protocol, sslcontext, **kw)
