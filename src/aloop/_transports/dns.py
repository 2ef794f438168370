"""Name resolution: ``getaddrinfo``/``getnameinfo`` in the executor, numeric hosts in place.

A host that is already an IP address needs no resolver: its address info is
built right here, on the loop thread, without a trip through the thread pool.
"""

from __future__ import annotations

import socket
from typing import Any

from aloop._core.loopapi import LoopAPI

__all__ = ["AddrInfo", "ensure_resolved", "getaddrinfo", "getnameinfo", "numeric_addrinfo"]

AddrInfo = tuple[int, int, int, str, tuple[Any, ...]]

_HAS_IPV6 = hasattr(socket, "AF_INET6")
_FAMILIES = (socket.AF_INET, socket.AF_INET6) if _HAS_IPV6 else (socket.AF_INET,)
_PROTO_FOR_TYPE: dict[int, int] = {
    socket.SOCK_STREAM: socket.IPPROTO_TCP,
    socket.SOCK_DGRAM: socket.IPPROTO_UDP,
}


def _numeric_port(port: Any) -> int | None:
    """The port as an int, or None when it is a service name needing a lookup."""
    if port is None or port == b"" or port == "":
        return 0
    if isinstance(port, bool):
        return None
    if isinstance(port, int):
        return port
    if isinstance(port, (str, bytes)) and port.strip().isdigit():
        return int(port)
    return None


def numeric_addrinfo(
    host: Any,
    port: Any,
    family: int = 0,
    type: int = socket.SOCK_STREAM,
    proto: int = 0,
    flowinfo: int = 0,
    scopeid: int = 0,
) -> AddrInfo | None:
    """The one address info of a numeric ``host``; None if a resolver is needed."""
    if host is None or proto not in (0, socket.IPPROTO_TCP, socket.IPPROTO_UDP):
        return None
    sock_proto = _PROTO_FOR_TYPE.get(type)
    if sock_proto is None:
        return None
    number = _numeric_port(port)
    if number is None:
        return None
    if isinstance(host, bytes):
        host = host.decode("idna")
    if not isinstance(host, str) or "%" in host:
        # Linux's inet_pton refuses an IPv6 zone index ("fe80::1%eth0").
        return None
    families = (
        [family]
        if family
        else ([socket.AF_INET, socket.AF_INET6] if _HAS_IPV6 else [socket.AF_INET])
    )
    for af in families:
        try:
            socket.inet_pton(af, host)
        except (OSError, ValueError):
            continue
        if _HAS_IPV6 and af == socket.AF_INET6:
            return af, type, sock_proto, "", (host, number, flowinfo, scopeid)
        return af, type, sock_proto, "", (host, number)
    return None


def _numeric_host(host: Any) -> bool:
    if isinstance(host, bytes):
        try:
            host = host.decode("ascii")
        except UnicodeDecodeError:
            return False
    if not isinstance(host, str) or not host or "%" in host:
        return False
    for af in _FAMILIES:
        try:
            socket.inet_pton(af, host)
        except (OSError, ValueError):
            continue
        return True
    return False


async def getaddrinfo(
    loop: LoopAPI,
    host: Any,
    port: Any,
    family: int = 0,
    type: int = 0,
    proto: int = 0,
    flags: int = 0,
) -> list[AddrInfo]:
    """``socket.getaddrinfo``; in the executor unless host and port are numeric."""
    # AI_CANONNAME may make the resolver look the name up: leave that to the executor.
    if not flags & socket.AI_CANONNAME and _numeric_host(host) and _numeric_port(port) is not None:
        # No name service is consulted for a numeric host and port: call it inline.
        return socket.getaddrinfo(host, port, family, type, proto, flags)  # type: ignore[return-value]
    return await loop.run_in_executor(  # type: ignore[no-any-return]
        None, socket.getaddrinfo, host, port, family, type, proto, flags
    )


async def getnameinfo(loop: LoopAPI, sockaddr: tuple[Any, ...], flags: int = 0) -> tuple[str, str]:
    """``socket.getnameinfo`` in the executor."""
    return await loop.run_in_executor(  # type: ignore[no-any-return]
        None, socket.getnameinfo, sockaddr, flags
    )


async def ensure_resolved(
    loop: LoopAPI,
    address: tuple[Any, ...],
    *,
    family: int = 0,
    type: int = socket.SOCK_STREAM,
    proto: int = 0,
    flags: int = 0,
) -> list[AddrInfo]:
    """Address infos for ``address`` (host, port[, flowinfo, scopeid]).

    Goes through ``loop.getaddrinfo`` (which callers may replace) unless the
    host is numeric.
    """
    host, port = address[:2]
    info = numeric_addrinfo(host, port, family, type, proto, *address[2:])
    if info is not None:
        return [info]
    return await loop.getaddrinfo(host, port, family=family, type=type, proto=proto, flags=flags)
