"""What a transport may ask of its loop: ``LoopAPI``, checked by mypy.

The transports in ``aloop._transports`` take their loop as a ``LoopAPI``:
asyncio's public loop methods they call, and the few private ones through
which they own an fd (``_add_io`` and its variants, ``_attach_transport``
...). ``aloop.Loop`` provides all of them; a transport calls nothing else.

It is a ``typing.Protocol``: nothing inherits from it at run time, and a
compiled transport calls these methods as it would on any object.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import socket
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

__all__ = ["Cancellable", "LoopAPI"]


class Cancellable(Protocol):
    """A scheduled callback or timer, as the transports use one: they may cancel it."""

    def cancel(self) -> None: ...

    def cancelled(self) -> bool: ...


class LoopAPI(Protocol):
    """The loop as seen by aloop's transports, servers, DNS and sendfile."""

    # -- asyncio's public API ------------------------------------------------

    @property
    def _debug(self) -> bool:
        """asyncio's debug flag, read as an attribute where a call would cost (``sock_*``)."""
        ...

    def get_debug(self) -> bool: ...

    def is_closed(self) -> bool: ...

    def time(self) -> float: ...

    def call_soon(
        self,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> Cancellable: ...

    def call_later(
        self,
        delay: float,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> Cancellable: ...

    def call_exception_handler(self, context: dict[str, Any]) -> None: ...

    def create_future(self) -> asyncio.Future[Any]: ...

    def create_task(
        self,
        coro: Coroutine[Any, Any, Any],
        *,
        name: Any = None,
        context: contextvars.Context | None = None,
    ) -> asyncio.Task[Any]: ...

    def run_in_executor(
        self,
        executor: concurrent.futures.Executor | None,
        func: Callable[..., Any],
        *args: Any,
    ) -> asyncio.Future[Any]: ...

    async def getaddrinfo(
        self,
        host: Any,
        port: Any,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[Any]: ...

    async def sock_connect(self, sock: socket.socket, address: Any) -> None: ...

    async def sock_sendall(self, sock: socket.socket, data: Any) -> None: ...

    async def sendfile(
        self,
        transport: asyncio.WriteTransport,
        file: Any,
        offset: int = 0,
        count: int | None = None,
        *,
        fallback: bool = True,
    ) -> int: ...

    async def connect_read_pipe(
        self, protocol_factory: Callable[[], asyncio.BaseProtocol], pipe: Any
    ) -> tuple[asyncio.ReadTransport, asyncio.BaseProtocol]: ...

    async def connect_write_pipe(
        self, protocol_factory: Callable[[], asyncio.BaseProtocol], pipe: Any
    ) -> tuple[asyncio.WriteTransport, asyncio.BaseProtocol]: ...

    # -- readiness callbacks on an fd the transport owns -----------------------
    # The public add_reader & co refuse an fd an open transport owns (as
    # asyncio's do); the transports register through these.

    def _add_reader(
        self,
        fd: Any,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> Cancellable: ...

    def _add_writer(
        self,
        fd: Any,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> Cancellable: ...

    def _add_io(
        self,
        fd: Any,
        callback: Callable[..., object],
        args: tuple[Any, ...],
        write: bool,
        context: contextvars.Context | None = None,
    ) -> Cancellable:
        """``_add_reader``/``_add_writer`` with positional arguments only (no keyword parse)."""
        ...

    def _remove_reader(self, fd: Any) -> bool: ...

    def _remove_writer(self, fd: Any) -> bool: ...

    # -- the loop's registry of open socket transports ---------------------------

    def _attach_transport(self, fd: int, transport: Any) -> None: ...

    def _detach_transport(self, fd: int, transport: Any) -> None: ...

    def _transport_for_fd(self, fd: int) -> Any: ...

    # -- hooks asyncio's loops have too ----------------------------------------

    async def _sendfile_native(
        self, transport: Any, file: Any, offset: int, count: int | None
    ) -> int: ...

    def _remember_unix_server_socket(self, sock: socket.socket) -> None: ...

    def _forget_unix_server_socket(self, sock: socket.socket) -> None: ...
