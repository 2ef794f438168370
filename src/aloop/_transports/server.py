"""Listening sockets: ``create_server``, ``create_unix_server`` and the ``Server`` object.

A readable listening socket is drained with ``accept()`` (up to ``backlog``
connections per event); each connection gets its protocol and transport at
once, without a task per connection.
"""

from __future__ import annotations

import asyncio
import collections.abc
import contextvars
import errno
import itertools
import os
import socket
import stat
import sys
import weakref
from asyncio import trsock
from collections.abc import Callable
from typing import Any

from aloop._core.loopapi import LoopAPI
from aloop._transports import dns, tls
from aloop._transports.base import logger
from aloop._transports.sockops import refuse_ssl_socket
from aloop._transports.stream import CONNECTION_CONTEXTS, StreamTransport

__all__ = ["Server", "create_server", "create_unix_server", "start_serving", "stop_serving"]

# After EMFILE & co., wait this long (s) before accepting again (asyncio's value).
ACCEPT_RETRY_DELAY = 1.0
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_PY312 = sys.version_info >= (3, 12)
# gh-123720 (3.13.15, 3.14.7): a cancelled serve_forever() also closes the
# server's connections, so a client that never sends cannot hold it open.
_CLOSE_CLIENTS_ON_CANCEL = sys.version_info >= (
    (3, 13, 15) if sys.version_info < (3, 14) else (3, 14, 7)
)


class Server(asyncio.AbstractServer):
    """A set of listening sockets serving one protocol factory."""

    def __init__(
        self,
        loop: LoopAPI,
        sockets: list[socket.socket],
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        ssl_context: Any,
        backlog: int,
        ssl_handshake_timeout: float | None,
        ssl_shutdown_timeout: float | None = None,
    ) -> None:
        self._loop = loop
        self._sockets: list[socket.socket] | None = sockets
        # Weak, so a transport its protocol dropped can still be collected (and warn).
        self._clients: weakref.WeakSet[Any] = weakref.WeakSet()
        self._active_count = 0
        self._waiters: list[asyncio.Future[None]] | None = []
        self._protocol_factory = protocol_factory
        self._backlog = backlog
        self._ssl_context = ssl_context
        self._ssl_handshake_timeout = ssl_handshake_timeout
        self._ssl_shutdown_timeout = ssl_shutdown_timeout
        self._serving = False
        self._serving_forever_fut: asyncio.Future[None] | None = None
        # 3.15: each connection runs in a copy of the context the server was made
        # in, wherever it is started from (see _accept_one).
        self._context = contextvars.copy_context() if CONNECTION_CONTEXTS else None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} sockets={self.sockets!r}>"

    def _attach(self, transport: Any = None) -> None:
        # Before 3.13 the stdlib's Server only counted its connections, and
        # tests call _attach()/_detach() without a transport: keep a count too.
        assert self._sockets is not None
        if transport is None:
            self._active_count += 1
        else:
            self._clients.add(transport)

    def _detach(self, transport: Any = None) -> None:
        if transport is None:
            self._active_count -= 1
        else:
            self._clients.discard(transport)
        if not self._connected() and self._sockets is None:
            self._wakeup()

    def _connected(self) -> int:
        return len(self._clients) + self._active_count

    def _wakeup(self) -> None:
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def _start_serving(self) -> None:
        if self._serving:
            return
        self._serving = True
        for sock in self._sockets or ():
            sock.listen(self._backlog)
            start_serving(self._loop, sock, self)

    def get_loop(self) -> Any:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    @property
    def sockets(self) -> tuple[trsock.TransportSocket, ...]:
        if self._sockets is None:
            return ()
        return tuple(trsock.TransportSocket(s) for s in self._sockets)

    def close(self) -> None:
        sockets = self._sockets
        if sockets is None:
            return
        self._sockets = None
        for sock in sockets:
            stop_serving(self._loop, sock)
        self._serving = False
        fut = self._serving_forever_fut
        if fut is not None and not fut.done():
            fut.cancel()
            self._serving_forever_fut = None
        if not self._connected():
            self._wakeup()

    def close_clients(self) -> None:
        for transport in self._clients.copy():
            transport.close()

    def abort_clients(self) -> None:
        for transport in self._clients.copy():
            transport.abort()

    async def start_serving(self) -> None:
        self._start_serving()
        # One iteration, so the listening readers are in place when we return.
        await asyncio.sleep(0)

    async def serve_forever(self) -> None:
        if self._serving_forever_fut is not None:
            raise RuntimeError(f"server {self!r} is already being awaited on serve_forever()")
        if self._sockets is None:
            raise RuntimeError(f"server {self!r} is closed")
        self._start_serving()
        self._serving_forever_fut = self._loop.create_future()
        try:
            await self._serving_forever_fut
        except asyncio.CancelledError:
            try:
                self.close()
                if _CLOSE_CLIENTS_ON_CANCEL:
                    self.close_clients()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever_fut = None

    async def wait_closed(self) -> None:
        """Wait until the server is closed and its connections are gone.

        3.11 returns at once for a closed server, whatever its connections
        do; 3.12.1+ waits for both. Each interpreter's behaviour is kept.
        """
        if self._waiters is None or (not _PY312 and self._sockets is None):
            return
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter


# -- accepting -----------------------------------------------------------------------


def start_serving(loop: LoopAPI, sock: socket.socket, server: Server) -> None:
    """Watch ``sock`` for incoming connections."""
    loop._add_reader(sock.fileno(), _accept_ready, loop, sock, server)


def stop_serving(loop: LoopAPI, sock: socket.socket) -> None:
    """Stop watching ``sock`` and close it (removing a Unix socket file we made)."""
    loop._remove_reader(sock.fileno())
    loop._forget_unix_server_socket(sock)
    sock.close()


def _accept_ready(loop: LoopAPI, sock: socket.socket, server: Server) -> None:
    # Several connections may be queued: take up to a backlog's worth per event.
    for _ in range(server._backlog):
        try:
            conn, addr = sock.accept()
            if loop._debug:
                logger.debug("%r got a new connection from %r: %r", server, addr, conn)
            conn.setblocking(False)
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        except OSError as exc:
            if exc.errno not in _OUT_OF_RESOURCES:
                raise  # the loop logs it and carries on
            loop.call_exception_handler(
                {
                    "message": "socket.accept() out of system resource",
                    "exception": exc,
                    "socket": trsock.TransportSocket(sock),
                }
            )
            # Linux keeps the fd readable: stop listening for a while.
            loop._remove_reader(sock.fileno())
            loop.call_later(ACCEPT_RETRY_DELAY, _resume_accepting, loop, sock, server)
            return
        else:
            _accept_one(loop, conn, addr, server)


def _resume_accepting(loop: LoopAPI, sock: socket.socket, server: Server) -> None:
    if server._sockets is not None and sock in server._sockets and server._serving:
        start_serving(loop, sock, server)


def _accept_one(loop: LoopAPI, conn: socket.socket, addr: Any, server: Server) -> None:
    """Set an accepted connection up in a context of its own, as asyncio's task per connection does.

    On 3.15+ a copy of the server's, which the transport keeps for its callbacks;
    before, a copy of the current one, and the transport schedules as it always did.
    """
    server_context = server._context
    if server_context is None:
        contextvars.copy_context().run(_connection_accepted, loop, conn, addr, server, None)
    else:
        context = server_context.copy()
        context.run(_connection_accepted, loop, conn, addr, server, context)


def _connection_accepted(
    loop: LoopAPI,
    conn: socket.socket,
    addr: Any,
    server: Server,
    context: contextvars.Context | None,
) -> None:
    """Give an accepted connection its protocol and transport."""
    extra = {"peername": addr}
    protocol = None
    try:
        protocol = server._protocol_factory()
        if server._ssl_context is not None:
            tls.accept_tls(loop, conn, protocol, extra, server, context)
        else:
            StreamTransport(loop, conn, protocol, extra=extra, server=server, context=context)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        conn.close()
        if loop._debug:
            details: dict[str, Any] = {
                "message": "Error on transport creation for incoming connection",
                "exception": exc,
            }
            if protocol is not None:
                details["protocol"] = protocol
            loop.call_exception_handler(details)


# -- creating ------------------------------------------------------------------------


def _check_ssl_args(
    ssl: Any, ssl_handshake_timeout: float | None, ssl_shutdown_timeout: float | None
) -> None:
    if isinstance(ssl, bool):
        raise TypeError("ssl argument must be an SSLContext or None")
    if ssl_handshake_timeout is not None and not ssl:
        raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
    if ssl_shutdown_timeout is not None and not ssl:
        raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")


async def _server_infos(
    loop: LoopAPI, host: Any, port: Any, family: int, flags: int
) -> list[dns.AddrInfo]:
    infos = await dns.ensure_resolved(
        loop, (host, port), family=family, type=socket.SOCK_STREAM, flags=flags
    )
    if not infos:
        raise OSError(f"getaddrinfo({host!r}) returned empty list")
    return infos


def _listening_socket(
    info: dns.AddrInfo, reuse_address: bool, reuse_port: bool, keep_alive: bool
) -> socket.socket:
    af, socktype, proto, _, _ = info
    sock = socket.socket(af, socktype, proto)
    try:
        if reuse_address:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, True)
        if reuse_port:
            set_reuseport(sock)
        if keep_alive:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, True)
        if af == getattr(socket, "AF_INET6", None) and hasattr(socket, "IPPROTO_IPV6"):
            # Each family gets its own socket: don't let v6 also grab v4.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, True)
    except BaseException:
        sock.close()
        raise
    return sock


def remove_stale_unix_socket(path: Any) -> None:
    """Remove the socket file an earlier run left at ``path``: it would make bind() fail.

    Not for an abstract address (a leading NUL), which has no file.
    """
    if path[0] in (0, "\x00"):
        return
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        logger.error("Unable to check or remove stale UNIX socket %r: %r", path, err)


def set_reuseport(sock: socket.socket) -> None:
    if not hasattr(socket, "SO_REUSEPORT"):
        raise ValueError("reuse_port not supported by socket module")
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    except OSError:
        raise ValueError(
            "reuse_port not supported by socket module, SO_REUSEPORT defined but not implemented."
        ) from None


async def _bind_all(
    loop: LoopAPI,
    host: Any,
    port: Any,
    family: int,
    flags: int,
    reuse_address: bool,
    reuse_port: bool,
    keep_alive: bool,
) -> list[socket.socket]:
    """One bound socket per distinct address ``host`` (one or several) resolves to."""
    if host == "":
        hosts: list[Any] = [None]
    elif isinstance(host, str) or not isinstance(host, collections.abc.Iterable):
        hosts = [host]
    else:
        hosts = list(host)
    found = await asyncio.gather(*[_server_infos(loop, h, port, family, flags) for h in hosts])
    infos = set(itertools.chain.from_iterable(found))
    sockets: list[socket.socket] = []
    try:
        for info in infos:
            try:
                sock = _listening_socket(info, reuse_address, reuse_port, keep_alive)
            except OSError:
                if loop._debug:
                    logger.warning(
                        "create_server() failed to create socket %r", info, exc_info=True
                    )
                continue
            sockets.append(sock)
            try:
                sock.bind(info[4])
            except OSError as err:
                message = (
                    f"error while attempting to bind on address {info[4]!r}: {str(err).lower()}"
                )
                if err.errno == errno.EADDRNOTAVAIL:
                    sockets.pop()
                    sock.close()
                    if loop._debug:
                        logger.warning(message)
                    continue
                raise OSError(err.errno, message) from None
        if not sockets:
            raise OSError(f"could not bind on any address out of {[info[4] for info in infos]!r}")
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


async def create_server(
    loop: LoopAPI,
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    host: Any = None,
    port: Any = None,
    *,
    family: int = socket.AF_UNSPEC,
    flags: int = socket.AI_PASSIVE,
    sock: Any = None,
    backlog: int = 100,
    ssl: Any = None,
    reuse_address: bool | None = None,
    reuse_port: bool | None = None,
    keep_alive: bool | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
    start_serving: bool = True,
) -> Server:
    _check_ssl_args(ssl, ssl_handshake_timeout, ssl_shutdown_timeout)
    if ssl is not None:
        tls.check_available()
    if sock is not None:
        refuse_ssl_socket(sock)
    if host is not None or port is not None:
        if sock is not None:
            raise ValueError("host/port and sock can not be specified at the same time")
        if reuse_address is None:
            reuse_address = os.name == "posix" and sys.platform != "cygwin"
        sockets = await _bind_all(
            loop, host, port, family, flags, reuse_address, bool(reuse_port), bool(keep_alive)
        )
    else:
        if sock is None:
            raise ValueError("Neither host/port nor sock were specified")
        if sock.type != socket.SOCK_STREAM:
            raise ValueError(f"A Stream Socket was expected, got {sock!r}")
        sockets = [sock]
    for s in sockets:
        s.setblocking(False)
    return await _serve(
        loop, sockets, protocol_factory, ssl, backlog,
        ssl_handshake_timeout, ssl_shutdown_timeout, start_serving,
    )  # fmt: skip


async def _serve(
    loop: LoopAPI,
    sockets: list[socket.socket],
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    ssl: Any,
    backlog: int,
    ssl_handshake_timeout: float | None,
    ssl_shutdown_timeout: float | None,
    start: bool,
) -> Server:
    server = Server(
        loop, sockets, protocol_factory, ssl, backlog, ssl_handshake_timeout, ssl_shutdown_timeout
    )
    if start:
        server._start_serving()
        await asyncio.sleep(0)
    if loop._debug:
        logger.info("%r is serving", server)
    return server


def _bind_unix(path: Any) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    remove_stale_unix_socket(path)
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise OSError(errno.EADDRINUSE, f"Address {path!r} is already in use") from None
        raise
    except BaseException:
        sock.close()
        raise
    return sock


async def create_unix_server(
    loop: LoopAPI,
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    path: Any = None,
    *,
    sock: Any = None,
    backlog: int = 100,
    ssl: Any = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
    start_serving: bool = True,
    cleanup_socket: bool = True,
) -> Server:
    _check_ssl_args(ssl, ssl_handshake_timeout, ssl_shutdown_timeout)
    if ssl is not None:
        tls.check_available()
    if path is not None:
        if sock is not None:
            raise ValueError("path and sock can not be specified at the same time")
        sock = _bind_unix(os.fspath(path))
    else:
        if sock is None:
            raise ValueError("path was not specified, and no sock specified")
        if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
            raise ValueError(f"A UNIX Domain Stream Socket was expected, got {sock!r}")
    if cleanup_socket and sys.version_info >= (3, 13):
        loop._remember_unix_server_socket(sock)
    sock.setblocking(False)
    return await _serve(
        loop, [sock], protocol_factory, ssl, backlog,
        ssl_handshake_timeout, ssl_shutdown_timeout, start_serving,
    )  # fmt: skip
