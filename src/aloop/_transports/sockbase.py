"""The Python face of a socket transport: what the protocol holds, in front of a native core.

``SocketTransport`` is the base of ``StreamTransport`` and of
``DatagramTransport`` (also an ``asyncio.DatagramTransport``). It owns a
``sockcore.SocketCore``, which holds the state and does the work; each method
here forwards to it. The hot methods (``write``, ``sendto``, ...) are the
core's, bound on each instance in a slot of the same name, so a protocol's
``transport.write(data)`` goes from its own code into compiled code without a
Python frame in between. Slots, not instance-dict entries: 3.11-3.13 compile
the lookup to a cached slot read (``LOAD_ATTR_SLOT``), where an instance
attribute shadowing a method of ``asyncio.Transport`` is looked up
generically, 120-245 instructions more per call (callgrind). ``super().write``
in a subclass reads the slot too, and ``HotSlots`` makes a call through the
class (``type(transport).write(transport, data)``) work as it does on asyncio's.
"""

from __future__ import annotations

import asyncio
import socket
import warnings
from asyncio import trsock
from collections.abc import Callable
from types import MemberDescriptorType
from typing import Any

from aloop._transports.sockcore import SocketCore, logger

__all__ = ["SocketTransport", "logger", "set_result_unless_cancelled", "socket_extra"]


def set_result_unless_cancelled(fut: asyncio.Future[Any], result: Any) -> None:
    if not fut.cancelled():
        fut.set_result(result)


def socket_extra(sock: socket.socket, extra: dict[str, Any] | None) -> dict[str, Any]:
    """asyncio's extra info for a socket transport: socket, sockname, peername."""
    info = dict(extra) if extra else {}
    info["socket"] = trsock.TransportSocket(sock)
    try:
        info["sockname"] = sock.getsockname()
    except OSError:
        info["sockname"] = None
    if "peername" not in info:
        try:
            info["peername"] = sock.getpeername()
        except OSError:
            info["peername"] = None
    return info


class HotSlots(type):
    """Metaclass: each name in a class's ``_HOT`` becomes a slot, read through
    the class as a method that calls the instance's.

    Only class-level reads pass through ``__getattribute__``; reads on an
    instance do not.
    """

    def __new__(cls, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> HotSlots:
        inherited = {hot for base in bases for hot, _ in getattr(base, "_HOT", ())}
        own = [hot for hot, _ in namespace.get("_HOT", ()) if hot not in inherited]
        namespace["__slots__"] = (*namespace.get("__slots__", ()), *own)
        for hot_name in own:
            _FORWARDERS.setdefault(hot_name, _forwarder(hot_name))
        return super().__new__(cls, name, bases, namespace)

    def __getattribute__(cls, name: str) -> Any:
        value = type.__getattribute__(cls, name)
        if isinstance(value, MemberDescriptorType) and name in _FORWARDERS:
            return _FORWARDERS[name]
        return value


_FORWARDERS: dict[str, Callable[..., Any]] = {}


def _forwarder(name: str) -> Callable[..., Any]:
    def forward(self: Any, *args: Any, **kwargs: Any) -> Any:
        return getattr(self, name)(*args, **kwargs)

    forward.__name__ = forward.__qualname__ = name
    return forward


class SocketTransport(asyncio.Transport, metaclass=HotSlots):
    """Forwards a transport's calls to its core; subclasses make the core.

    An ``asyncio.Transport`` even for datagrams, as asyncio's own are.

    ``_loop`` stays a plain attribute (TLS and sendfile read it); ``_sock``,
    ``_sock_fd`` and ``_protocol`` read the core's.
    """

    _core: SocketCore
    # The core's methods bound on each instance (see the module docstring), as
    # (name here, name on the core); a subclass adds its own. HotSlots makes
    # each name a slot.
    _HOT: tuple[tuple[str, str], ...] = (
        ("is_closing", "is_closing"),
        ("pause_reading", "pause_reading"),
        ("resume_reading", "resume_reading"),
        ("get_write_buffer_size", "buffer_size"),
    )
    __slots__ = ("__dict__", "__weakref__")

    def _attach_core(self, core: SocketCore, waiter: asyncio.Future[Any] | None) -> None:
        """Adopt ``core``, register with the loop and server, start as asyncio does."""
        self._core = core
        self._loop = core.loop
        core.transport = self
        for name, core_name in self._HOT:
            setattr(self, name, getattr(core, core_name))
        if core.server is not None:
            core.server._attach(self)
        core.loop._attach_transport(core.fd, self)
        # connection_made(), then reading, then the waiter, each on the next
        # iteration, in the connection's context if it has one.
        context = core.context
        self._loop.call_soon(core.protocol.connection_made, self, context=context)
        self._loop.call_soon(core.start_reading, context=context)
        if waiter is not None:
            self._loop.call_soon(set_result_unless_cancelled, waiter, None, context=context)

    @property
    def _sock(self) -> Any:
        return self._core.sock

    @property
    def _sock_fd(self) -> int:
        return self._core.fd

    @property
    def _protocol(self) -> Any:
        return self._core.protocol

    @property
    def _protocol_paused(self) -> bool:
        return self._core.protocol_paused

    @property
    def _paused(self) -> bool:
        """asyncio's flag for ``pause_reading()`` (3.15's gh-140947 test polls it)."""
        return self._core.paused

    def __repr__(self) -> str:
        core: SocketCore | None = vars(self).get("_core")  # None while half-built
        parts = [type(self).__name__]
        if core is None or core.sock is None:
            parts.append("closed")
        elif core.closing:
            parts.append("closing")
        if core is not None:
            parts.append(f"fd={core.fd}")
        if core is not None and core.sock is not None and not core.closing:
            parts.append("read=" + ("polling" if core.is_reading() else "idle"))
            state = "polling" if core.has_buffered() else "idle"
            parts.append(f"write=<{state}, bufsize={core.buffer_size()}>")
        return f"<{' '.join(parts)}>"

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        core: SocketCore | None = vars(self).get("_core")  # None if __init__ failed
        if core is not None and core.sock is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            core.sock.close()
            if core.server is not None:
                core.server._detach(self)

    # -- forwarded to the core -----------------------------------------------------------

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._core.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._core.protocol  # type: ignore[no-any-return]

    def is_reading(self) -> bool:
        return self._core.is_reading()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._core.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._core.set_write_buffer_limits(high, low)

    def close(self) -> None:
        self._core.close()

    def abort(self) -> None:
        self._core.abort()

    def _fatal_error(self, exc: BaseException, message: str) -> None:
        self._core.fatal_error(exc, message)

    def _force_close(self, exc: BaseException | None) -> None:
        self._core.force_close(exc)
