"""The stream transport: a connected TCP or Unix socket under a Protocol.

``StreamTransport`` is the ``asyncio.Transport`` the protocol holds; the
reading and writing happen in its compiled core, ``streamcore.StreamCore``.
"""

from __future__ import annotations

import asyncio
import contextvars
import socket
import sys
from typing import Any, Final

from aloop._transports.sendfile import SendfileMode
from aloop._transports.sockbase import SocketTransport, socket_extra
from aloop._transports.streamcore import StreamCore, core_class

__all__ = ["CONNECTION_CONTEXTS", "StreamTransport", "client_context", "set_nodelay"]

# 3.15 (gh-140947): each stream connection has a context of its own, in which
# its protocol's callbacks run, whichever task pauses, resumes or writes to it.
CONNECTION_CONTEXTS: Final = sys.version_info >= (3, 15)


def client_context() -> contextvars.Context | None:
    """A new client connection's context: on 3.15+ a copy of the current one, else None."""
    return contextvars.copy_context() if CONNECTION_CONTEXTS else None


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
    _HOT = (*SocketTransport._HOT, ("write", "write"), ("writelines", "writelines"))
    _core: StreamCore

    def __init__(
        self,
        loop: Any,
        sock: socket.socket,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[Any] | None = None,
        extra: dict[str, Any] | None = None,
        server: Any = None,
        context: contextvars.Context | None = None,
    ) -> None:
        super().__init__(socket_extra(sock, extra))
        # Chosen once: a plain socket's fd directly, any other object through its methods.
        core = core_class(sock)(loop, sock, protocol, server, context)
        set_nodelay(sock)
        self._attach_core(core, waiter)

    def write_eof(self) -> None:
        self._core.write_eof()

    def can_write_eof(self) -> bool:
        return True

    # -- sendfile support (sendfile.transport_sendfile_native) ---------------------------

    def _make_empty_waiter(self) -> asyncio.Future[None]:
        return self._core.make_empty_waiter()

    def _reset_empty_waiter(self) -> None:
        self._core.empty_waiter = None
