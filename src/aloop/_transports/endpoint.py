"""``create_datagram_endpoint``: UDP and Unix datagram sockets, opened and bound.

asyncio's checks and messages for each Python version, DNS for both ends,
then a ``datagram.DatagramTransport`` on the socket that worked.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import sys
from collections.abc import Callable
from typing import Any

from aloop._core.loopapi import LoopAPI
from aloop._transports import dns
from aloop._transports.base import logger
from aloop._transports.datagram import DatagramTransport
from aloop._transports.server import remove_stale_unix_socket, set_reuseport

__all__ = ["create_datagram_endpoint"]

_UNSET: Any = object()
# Whether this Python's asyncio still takes ``reuse_address`` (only to refuse
# True); later 3.11 releases and 3.12+ do not know the parameter at all.
_TAKES_REUSE_ADDRESS = (
    "reuse_address" in inspect.signature(asyncio.BaseEventLoop.create_datagram_endpoint).parameters
)
# asyncio 3.13+ refuses only stream sockets, with these words.
_ANY_DATAGRAM_SOCKET = sys.version_info >= (3, 13)


def _check_sock_only(sock: socket.socket, options: dict[str, Any]) -> None:
    if _ANY_DATAGRAM_SOCKET:
        if sock.type == socket.SOCK_STREAM:
            raise ValueError(f"A datagram socket was expected, got {sock!r}")
    elif sock.type != socket.SOCK_DGRAM:
        raise ValueError(f"A UDP Socket was expected, got {sock!r}")
    given = ", ".join(f"{k}={v}" for k, v in options.items() if v)
    if given:
        raise ValueError(
            f"socket modifier keyword arguments can not be used when sock is specified. ({given})"
        )


async def _address_pairs(
    loop: LoopAPI, local_addr: Any, remote_addr: Any, family: int, proto: int, flags: int
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
        if local_addr:
            remove_stale_unix_socket(local_addr)
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
    loop: LoopAPI,
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
    loop: LoopAPI,
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
        if not _TAKES_REUSE_ADDRESS:
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
