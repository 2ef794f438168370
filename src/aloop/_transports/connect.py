"""Outgoing connections: ``create_connection`` (with Happy Eyeballs), Unix and accepted sockets."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from aloop._core.loopapi import LoopAPI
from aloop._transports import dns, tls
from aloop._transports.base import logger
from aloop._transports.sockops import refuse_ssl_socket
from aloop._transports.stream import StreamTransport, client_context

# asyncio 3.14+ raises what an attempt's own wait failed with in a group.
_STAGGERED_GROUPS = sys.version_info >= (3, 14)

__all__ = [
    "connect_accepted_socket",
    "create_connection",
    "create_unix_connection",
    "interleave_addrinfos",
    "make_transport",
]


def interleave_addrinfos(infos: list[dns.AddrInfo], first_family_count: int = 1) -> list[Any]:
    """Reorder ``infos`` so address families alternate (RFC 8305).

    The first family (by first appearance) leads with ``first_family_count``
    addresses; the rest alternate one per family.
    """
    by_family: dict[int, list[dns.AddrInfo]] = {}
    for info in infos:
        by_family.setdefault(info[0], []).append(info)
    queues = list(by_family.values())
    ordered: list[dns.AddrInfo] = []
    if first_family_count > 1 and queues:
        ordered.extend(queues[0][: first_family_count - 1])
        queues[0] = queues[0][first_family_count - 1 :]
    longest = max((len(queue) for queue in queues), default=0)
    for position in range(longest):
        for queue in queues:
            if position < len(queue):
                ordered.append(queue[position])
    return ordered


def _failure(exceptions: list[OSError], all_errors: bool) -> BaseException:
    """The one exception to raise when every connection attempt failed."""
    if not exceptions:
        # No attempt got as far as an OSError (a staggered race ended without one).
        return TimeoutError("create_connection failed")
    if all_errors:
        return ExceptionGroup("create_connection failed", exceptions)
    if len(exceptions) == 1:
        return exceptions[0]
    first = str(exceptions[0])
    if all(str(exc) == first for exc in exceptions):
        return exceptions[0]
    return OSError(f"Multiple exceptions: {', '.join(str(exc) for exc in exceptions)}")


def _bind_local(
    sock: socket.socket, family: int, local_infos: list[dns.AddrInfo], errors: list[OSError]
) -> None:
    """Bind ``sock`` to the first local address of its family that works."""
    for info in local_infos:
        if info[0] != family:
            continue
        try:
            sock.bind(info[4])
            return
        except OSError as exc:
            errors.append(
                OSError(
                    exc.errno,
                    f"error while attempting to bind on address {info[4]!r}: {str(exc).lower()}",
                )
            )
    if errors:
        raise errors.pop()
    raise OSError(f"no matching local address with family={family!r} found")


async def _connect_one(
    loop: LoopAPI,
    info: dns.AddrInfo,
    local_infos: list[dns.AddrInfo] | None,
    errors: list[OSError],
) -> socket.socket:
    """Create, bind and connect one socket; its OSErrors go into ``errors``."""
    family, type_, proto, _, address = info
    sock = None
    try:
        sock = socket.socket(family=family, type=type_, proto=proto)
        sock.setblocking(False)
        if local_infos is not None:
            _bind_local(sock, family, local_infos, errors)
        await loop.sock_connect(sock, address)
        return sock
    except OSError as exc:
        errors.append(exc)
        _close_quietly(sock)
        raise
    except BaseException:
        _close_quietly(sock)
        raise
    finally:
        # ``errors`` holds the exception whose traceback holds this frame: no cycle.
        del errors


def _close_quietly(sock: socket.socket | None) -> None:
    """Close a failed attempt's socket; an error there must not hide the attempt's own."""
    if sock is None:
        return
    try:
        sock.close()
    except OSError:
        pass


async def _staggered(
    loop: LoopAPI, attempts: list[Callable[[], Coroutine[Any, Any, socket.socket]]], delay: float
) -> socket.socket | None:
    """Happy Eyeballs: start an attempt every ``delay`` s (or when one fails); first wins.

    The losers are cancelled, and a loser that connected anyway is closed.
    """
    running: set[asyncio.Task[socket.socket]] = set()
    winner: socket.socket | None = None
    next_index = 0
    failed = asyncio.Event()

    def on_done(task: asyncio.Task[socket.socket]) -> None:
        if not task.cancelled() and task.exception() is not None:
            failed.set()

    try:
        while winner is None:
            if next_index < len(attempts):
                task = loop.create_task(attempts[next_index]())
                next_index += 1
                task.add_done_callback(on_done)
                running.add(task)
            elif not running:
                return None
            failed.clear()
            waiter = loop.create_task(failed.wait())
            try:
                wait_for: set[asyncio.Future[Any]] = {waiter, *running}
                timeout = delay if next_index < len(attempts) else None
                await asyncio.wait(wait_for, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
            for task in [t for t in running if t.done()]:
                running.discard(task)
                if not task.cancelled() and task.exception() is None and winner is None:
                    winner = task.result()
                elif not task.cancelled() and task.exception() is None:
                    task.result().close()
        return winner
    finally:
        for task in running:
            task.cancel()
        for task in running:
            with contextlib.suppress(BaseException):
                await task
            if not task.cancelled() and task.exception() is None:
                task.result().close()


async def make_transport(
    loop: LoopAPI,
    sock: socket.socket,
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    ssl: Any,
    server_hostname: str | None,
    *,
    server_side: bool = False,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
    """Wrap a connected socket in a transport; return once connection_made() has run."""
    sock.setblocking(False)
    # Copied before the factory runs, as asyncio does: what it sets stays out.
    context = client_context()
    protocol = protocol_factory()
    waiter = loop.create_future()
    transport: asyncio.BaseTransport
    if ssl:
        transport = tls.make_tls_transport(
            loop, sock, protocol, None if isinstance(ssl, bool) else ssl, waiter,
            server_side=server_side, server_hostname=server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout, context=context,
        )  # fmt: skip
    else:
        transport = StreamTransport(loop, sock, protocol, waiter, context=context)
    try:
        await waiter
    except BaseException:
        transport.close()
        # The waiter holds the exception, whose traceback holds this frame: no cycle.
        del waiter
        raise
    return transport, protocol


def _check_delay(delay: Any) -> None:
    """asyncio's error for a ``happy_eyeballs_delay`` that is not a number.

    asyncio waits between attempts with ``wait_for(..., delay)``, which
    compares the delay with 0 first.
    """
    try:
        _ = delay <= 0
    except TypeError as exc:
        if _STAGGERED_GROUPS:
            raise ExceptionGroup("staggered race failed", [exc]) from None
        raise


def _check_ssl_args(
    ssl: Any, ssl_handshake_timeout: float | None, ssl_shutdown_timeout: float | None
) -> None:
    if ssl_handshake_timeout is not None and not ssl:
        raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
    if ssl_shutdown_timeout is not None and not ssl:
        raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")


async def _resolve(loop: LoopAPI, address: Any, family: int, proto: int, flags: int) -> list[Any]:
    infos = await dns.ensure_resolved(
        loop, address, family=family, type=socket.SOCK_STREAM, proto=proto, flags=flags
    )
    if not infos:
        raise OSError("getaddrinfo() returned empty list")
    return infos


async def _connect_host(
    loop: LoopAPI,
    host: Any,
    port: Any,
    family: int,
    proto: int,
    flags: int,
    local_addr: Any,
    happy_eyeballs_delay: float | None,
    interleave: int | None,
    all_errors: bool,
) -> socket.socket:
    """A socket connected to one of the addresses ``host`` resolves to."""
    infos = await _resolve(loop, (host, port), family, proto, flags)
    local_infos = None
    if local_addr is not None:
        local_infos = await _resolve(loop, local_addr, family, proto, flags)
    if interleave:
        infos = interleave_addrinfos(infos, interleave)
    errors: list[OSError] = []
    sock: socket.socket | None = None
    if happy_eyeballs_delay is None:
        for info in infos:
            try:
                sock = await _connect_one(loop, info, local_infos, errors)
                break
            except OSError:
                continue
    else:
        _check_delay(happy_eyeballs_delay)
        attempts: list[Callable[[], Coroutine[Any, Any, socket.socket]]] = [
            functools.partial(_connect_one, loop, info, local_infos, errors) for info in infos
        ]
        sock = await _staggered(loop, attempts, happy_eyeballs_delay)
    if sock is None:
        try:
            raise _failure(errors, all_errors)
        finally:
            # The exception's traceback holds this frame, whose ``errors`` (also
            # bound in each attempt) holds the exception: no cycle.
            errors.clear()
    return sock


async def create_connection(
    loop: LoopAPI,
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    host: Any = None,
    port: Any = None,
    *,
    ssl: Any = None,
    family: int = 0,
    proto: int = 0,
    flags: int = 0,
    sock: Any = None,
    local_addr: Any = None,
    server_hostname: str | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
    happy_eyeballs_delay: float | None = None,
    interleave: int | None = None,
    all_errors: bool = False,
) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
    if server_hostname is not None and not ssl:
        raise ValueError("server_hostname is only meaningful with ssl")
    if server_hostname is None and ssl:
        if not host:
            raise ValueError("You must set server_hostname when using ssl without a host")
        server_hostname = host
    _check_ssl_args(ssl, ssl_handshake_timeout, ssl_shutdown_timeout)
    if ssl:
        tls.check_available()
    if sock is not None:
        refuse_ssl_socket(sock)
    if happy_eyeballs_delay is not None and interleave is None:
        interleave = 1
    if host is not None or port is not None:
        if sock is not None:
            raise ValueError("host/port and sock can not be specified at the same time")
        sock = await _connect_host(
            loop, host, port, family, proto, flags, local_addr,
            happy_eyeballs_delay, interleave, all_errors,
        )  # fmt: skip
    else:
        if sock is None:
            raise ValueError("host and port was not specified and no sock specified")
        if sock.type != socket.SOCK_STREAM:
            raise ValueError(f"A Stream Socket was expected, got {sock!r}")
    transport, protocol = await make_transport(
        loop, sock, protocol_factory, ssl, server_hostname,
        ssl_handshake_timeout=ssl_handshake_timeout,
        ssl_shutdown_timeout=ssl_shutdown_timeout,
    )  # fmt: skip
    if loop._debug:
        logger.debug(
            "%r connected to %s:%r: (%r, %r)",
            transport.get_extra_info("socket"), host, port, transport, protocol,
        )  # fmt: skip
    return transport, protocol


async def create_unix_connection(
    loop: LoopAPI,
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    path: Any = None,
    *,
    ssl: Any = None,
    sock: Any = None,
    server_hostname: str | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
    if ssl:
        if server_hostname is None:
            raise ValueError("you have to pass server_hostname when using ssl")
        tls.check_available()
    else:
        if server_hostname is not None:
            raise ValueError("server_hostname is only meaningful with ssl")
        _check_ssl_args(ssl, ssl_handshake_timeout, ssl_shutdown_timeout)
    if path is not None:
        if sock is not None:
            raise ValueError("path and sock can not be specified at the same time")
        path = os.fspath(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, path)
        except BaseException:
            sock.close()
            raise
    else:
        if sock is None:
            raise ValueError("no path and sock were specified")
        if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
            raise ValueError(f"A UNIX Domain Stream Socket was expected, got {sock!r}")
        sock.setblocking(False)
    return await make_transport(
        loop, sock, protocol_factory, ssl, server_hostname,
        ssl_handshake_timeout=ssl_handshake_timeout,
        ssl_shutdown_timeout=ssl_shutdown_timeout,
    )  # fmt: skip


async def connect_accepted_socket(
    loop: LoopAPI,
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    sock: Any,
    *,
    ssl: Any = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
    if sock.type != socket.SOCK_STREAM:
        raise ValueError(f"A Stream Socket was expected, got {sock!r}")
    _check_ssl_args(ssl, ssl_handshake_timeout, ssl_shutdown_timeout)
    if ssl:
        tls.check_available()
    refuse_ssl_socket(sock)
    transport, protocol = await make_transport(
        loop, sock, protocol_factory, ssl, "", server_side=True,
        ssl_handshake_timeout=ssl_handshake_timeout,
        ssl_shutdown_timeout=ssl_shutdown_timeout,
    )  # fmt: skip
    if loop._debug:
        sock = transport.get_extra_info("socket")
        logger.debug("%r handled: (%r, %r)", sock, transport, protocol)
    return transport, protocol
