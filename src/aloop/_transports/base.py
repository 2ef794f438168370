"""The lifecycle every aloop transport shares, and the names they share.

asyncio's rules, which sockets, pipes and TLS follow alike:

- Write flow control (``WriteFlow``): once the bytes buffered for writing
  rise above the high-water mark, the protocol's ``pause_writing()`` is
  called, and ``resume_writing()`` once they fall to the low-water mark.
- Closing: ``close()`` lets buffered data drain first, ``abort()`` and fatal
  errors drop it; either way ``connection_lost()`` is called once, on a later
  iteration, and only then is the fd closed.
- Fatal errors (``report_fatal``): an ``OSError`` is the peer's doing and is
  only logged in debug mode; anything else goes to the loop's exception handler.
- A failing protocol callback is reported through the exception handler with
  asyncio's message, never raised into the loop (``call_protocol``).

``SocketCore`` is that lifecycle over a socket and ``SocketTransport`` the
``asyncio.Transport`` in front of it; ``stream`` and ``datagram`` derive from
both. The pipe transports and TLS use the rest.

Closing and connection lost are written once, as plain functions that the
compiled socket cores and the interpreted pipes both call (an interpreted
class cannot derive from a native one): ``lose_connection`` (stop watching
the fd, ``connection_lost()`` on the next iteration), ``connection_lost_then``
(the call, then the release whatever it raised), ``count_lost_write`` (writes
after loss dropped, asyncio's warning from the fifth; TLS too),
``warn_unclosed`` (``__del__``'s ResourceWarning) and ``repr_state``. Each
transport keeps what differs: its buffer and when it is flushed, what
``release`` lets go of (a socket: the loop's fd registry, the socket, its
server; a pipe: the pipe and its loop), and a pipe's closing after its loop
has closed.

Each socket transport is two objects in one module: the core (a native class,
compiled) holds the state and runs every hot path, where an attribute read is
a struct load; the transport (``native_class=False``: a plain Python class,
its methods compiled) is the ``asyncio.Transport`` the protocol holds. mypyc
does compile a native class deriving from ``asyncio.Transport``, but cannot
make it weakly referenceable, and the loop and servers hold their transports
weakly.

The transport's hot methods are the core's own, bound on each instance in a
slot of the same name (``self.write = core.write`` in
``StreamTransport.__init__``): a protocol's ``transport.write(data)`` is a
slot read (``LOAD_ATTR_SLOT``) and a call straight into compiled code (a
forwarding method, compiled or not, adds a call and a lookup of the core).
An instance-dict entry shadowing the class's method would be looked up
generically on every call before 3.14. ``super().write`` in a subclass reads
the slot too; a read through the class (``type(transport).write``) finds the
slot's member descriptor, which is not callable, so the metaclass
``SlotMethods`` answers it with a function that calls the instance's slot.
"""

from __future__ import annotations

import asyncio

# mypyc builds a non-native class from its bases' own modules: asyncio.Transport
# lives in asyncio.transports, which must be imported here by name.
import asyncio.transports
import contextvars
import logging
import socket
import threading
import warnings
from abc import ABCMeta, abstractmethod
from asyncio import trsock
from collections.abc import Callable
from types import MemberDescriptorType
from typing import Any, Final

from mypy_extensions import mypyc_attr

from aloop._core.loopapi import LoopAPI

__all__ = [
    "BYTES_LIKE",
    "DEFAULT_HIGH_WATER",
    "LOST_WRITES_BEFORE_WARNING",
    "MAX_READ",
    "WOULD_BLOCK",
    "SocketCore",
    "SocketTransport",
    "WriteFlow",
    "call_protocol",
    "check_write_limits",
    "connection_lost_then",
    "count_lost_write",
    "logger",
    "lose_connection",
    "report_fatal",
    "repr_state",
    "scratch_buffer",
    "set_result_unless_cancelled",
    "socket_extra",
    "warn_unclosed",
]

logger: Final = logging.getLogger("asyncio")

# asyncio's figures: a readable event reads up to 256 KiB (so one busy fd
# cannot hold the loop for long); the write buffer's high-water mark is
# 64 KiB (the low one a quarter of it); writes to a lost connection are
# counted and, from the fifth on, each logs a warning.
MAX_READ: Final = 256 * 1024
DEFAULT_HIGH_WATER: Final = 64 * 1024
LOST_WRITES_BEFORE_WARNING: Final = 5
WOULD_BLOCK: Final = (BlockingIOError, InterruptedError)
BYTES_LIKE: Final = (bytes, bytearray, memoryview)


def set_result_unless_cancelled(fut: asyncio.Future[Any], result: Any) -> None:
    if not fut.cancelled():
        fut.set_result(result)


def check_write_limits(
    high: int | None, low: int | None, default_high: int = DEFAULT_HIGH_WATER
) -> tuple[int, int]:
    """asyncio's (high, low) buffer limits from what the user gave."""
    if high is None:
        high = default_high if low is None else 4 * low
    if low is None:
        low = high // 4
    if not high >= low >= 0:
        raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
    return high, low


def call_protocol(
    loop: LoopAPI, transport: Any, protocol: Any, method: str, failure: str, *args: Any
) -> None:
    """Call ``protocol.method(*args)``; report an exception as ``failure``."""
    try:
        getattr(protocol, method)(*args)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        loop.call_exception_handler(
            {"message": failure, "exception": exc, "transport": transport, "protocol": protocol}
        )


def report_fatal(
    loop: LoopAPI,
    transport: Any,
    protocol: Any,
    exc: BaseException,
    message: str,
    quiet: bool,
    who: Any = None,
) -> None:
    """Report the error that ends a connection, unless ``quiet`` (the peer's doing).

    A quiet error reaches the protocol in ``connection_lost()``; only debug
    mode logs it, as said by ``who`` (default: the transport).
    """
    if quiet:
        if loop.get_debug():
            logger.debug("%r: %s", transport if who is None else who, message, exc_info=True)
        return
    loop.call_exception_handler(
        {"message": message, "exception": exc, "transport": transport, "protocol": protocol}
    )


# -- closing and connection lost: written once for sockets and pipes ------------------
#
# Plain functions taking the values they need: the compiled socket cores and the
# interpreted pipe transports both call them (an interpreted class cannot derive
# from a native one, and a shared state object would add a load to every read).


def count_lost_write(lost: int, warning: str) -> int:
    """Count one write dropped after the connection was lost; warn from the fifth on.

    Returns the new count (the transport's ``conn_lost``).
    """
    if lost >= LOST_WRITES_BEFORE_WARNING:
        logger.warning(warning)
    return lost + 1


def lose_connection(
    loop: LoopAPI,
    fd: int,
    flushing: bool,
    connection_lost: Callable[[BaseException | None], object],
    exc: BaseException | None,
    context: contextvars.Context | None = None,
) -> None:
    """Stop watching ``fd`` (its writer too if ``flushing``); connection_lost(exc) next iteration.

    ``close()`` with nothing left to flush, ``abort()`` and fatal errors end here.
    """
    if flushing:
        loop._remove_writer(fd)
    loop._remove_reader(fd)
    loop.call_soon(connection_lost, exc, context=context)


def connection_lost_then(
    protocol: Any, exc: BaseException | None, release: Callable[[], object]
) -> None:
    """Call ``protocol.connection_lost(exc)``, then ``release()`` whatever it raised."""
    try:
        if protocol is not None:
            protocol.connection_lost(exc)
    finally:
        release()


def repr_state(transport: Any, closed: bool, closing: bool, fd: int) -> list[str]:
    """A transport repr's first words: class name, closed or closing, fd."""
    info = [type(transport).__name__]
    if closed:
        info.append("closed")
    elif closing:
        info.append("closing")
    info.append(f"fd={fd}")
    return info


def warn_unclosed(transport: Any, resource: Any, warn: Callable[..., object]) -> None:
    """``__del__`` of a transport still holding ``resource``: warn, then close it.

    ``warn`` is ``warnings.warn``, bound by the caller's default argument, which
    lasts through interpreter shutdown.
    """
    warn(f"unclosed transport {transport!r}", ResourceWarning, source=transport)
    resource.close()


# Each thread's scratch buffer, for reads whose bytes are copied out before any
# other code runs (a stream's continued read, TLS ciphertext on its way into the
# BIO): a loop runs in one thread at a time, so one buffer serves every connection.
_scratch = threading.local()


def scratch_buffer(size: int) -> memoryview:
    """This thread's scratch buffer, at least ``size`` bytes, made on first use."""
    view: memoryview | None = getattr(_scratch, "view", None)
    if view is None or len(view) < size:
        view = memoryview(bytearray(size))
        _scratch.view = view
    return view


class WriteFlow:
    """asyncio's write flow control for one transport: the limits and whether it paused.

    The transport calls ``buffered()`` after adding to its write buffer and
    ``drained()`` after sending from it, with the buffer's new size.
    """

    def __init__(self) -> None:
        self.high = DEFAULT_HIGH_WATER
        self.low = DEFAULT_HIGH_WATER // 4
        self.paused = False

    def buffered(self, size: int, loop: LoopAPI, transport: Any, protocol: Any) -> None:
        if self.paused or size <= self.high:
            return
        self.paused = True
        call_protocol(loop, transport, protocol, "pause_writing", "protocol.pause_writing() failed")

    def drained(self, size: int, loop: LoopAPI, transport: Any, protocol: Any) -> None:
        if self.paused and size <= self.low:
            self.paused = False
            call_protocol(
                loop, transport, protocol, "resume_writing", "protocol.resume_writing() failed"
            )

    def limits(self) -> tuple[int, int]:
        """asyncio's ``get_write_buffer_limits()``: (low, high)."""
        return (self.low, self.high)

    def set_limits(self, high: int | None, low: int | None) -> None:
        self.high, self.low = check_write_limits(high, low)


# -- sockets -------------------------------------------------------------------------


class SocketCore(metaclass=ABCMeta):
    """State and lifecycle of a transport over one socket; subclasses read and write.

    ``transport`` is the ``SocketTransport`` the protocol sees; it is dropped
    once ``connection_lost()`` has run, which ends the transport-core cycle.

    ``context``: the connection's own context (3.15+ stream connections),
    in which its reader, writer and scheduled callbacks run whoever registers
    them; None registers them, as before 3.15, in a copy of the current one.
    """

    def __init__(
        self,
        loop: LoopAPI,
        sock: socket.socket,
        protocol: Any,
        server: Any,
        context: contextvars.Context | None = None,
    ) -> None:
        self.loop = loop
        self.context = context
        self.sock: socket.socket | None = sock
        self.fd = sock.fileno()
        self.protocol: Any = protocol
        self.transport: Any = None
        self.server = server
        self.conn_lost = 0
        self.closing = False
        self.paused = False
        self.flow = WriteFlow()

    # -- what a subclass defines -------------------------------------------------------

    @abstractmethod
    def read_ready(self) -> None:
        """The socket is readable."""

    @abstractmethod
    def buffer_size(self) -> int:
        """Bytes waiting to be written (asyncio's ``get_write_buffer_size()``)."""

    @abstractmethod
    def has_buffered(self) -> bool:
        """Anything at all waiting to be written."""

    @abstractmethod
    def drop_buffer(self) -> None:
        """Forget everything waiting to be written."""

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    # -- reading on and off --------------------------------------------------------------

    def start_reading(self) -> None:
        if not self.closing and not self.paused:
            self.loop._add_io(self.fd, self.read_ready, (), False, self.context)

    def is_reading(self) -> bool:
        return not self.closing and not self.paused

    def pause_reading(self) -> None:
        if self.closing or self.paused:
            return
        self.paused = True
        self.loop._remove_reader(self.fd)

    def resume_reading(self) -> None:
        if self.closing or not self.paused:
            return
        self.paused = False
        self.loop._add_io(self.fd, self.read_ready, (), False, self.context)

    def is_closing(self) -> bool:
        return self.closing

    # -- write flow control --------------------------------------------------------------

    def maybe_pause_protocol(self) -> None:
        self.flow.buffered(self.buffer_size(), self.loop, self.transport, self.protocol)

    def maybe_resume_protocol(self) -> None:
        self.flow.drained(self.buffer_size(), self.loop, self.transport, self.protocol)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.flow.set_limits(high, low)
        self.maybe_pause_protocol()

    # -- closing -----------------------------------------------------------------------

    def note_lost_write(self) -> None:
        self.conn_lost = count_lost_write(self.conn_lost, "socket.send() raised exception.")

    def close(self) -> None:
        if self.closing:
            return
        self.closing = True
        if self.has_buffered():
            self.loop._remove_reader(self.fd)  # write_ready ends the connection once flushed
            return
        self.conn_lost += 1
        lose_connection(self.loop, self.fd, True, self.call_connection_lost, None, self.context)

    def abort(self) -> None:
        self.force_close(None)

    def fatal_error(self, exc: BaseException, message: str) -> None:
        quiet = isinstance(exc, OSError)
        report_fatal(self.loop, self.transport, self.protocol, exc, message, quiet)
        self.force_close(exc)

    def force_close(self, exc: BaseException | None) -> None:
        if self.conn_lost:
            return
        flushing = self.has_buffered()
        if flushing:
            self.drop_buffer()
        self.closing = True
        self.conn_lost += 1
        lose_connection(self.loop, self.fd, flushing, self.call_connection_lost, exc, self.context)

    def call_connection_lost(self, exc: BaseException | None) -> None:
        connection_lost_then(self.protocol, exc, self.release)

    def release(self) -> None:
        """What a socket lets go of once the connection is lost."""
        transport = self.transport
        sock = self.sock
        if sock is not None:
            self.loop._detach_transport(self.fd, transport)
            sock.close()
        self.sock = None
        self.protocol = None
        self.transport = None
        server = self.server
        if server is not None:
            self.server = None
            server._detach(transport)


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


# -- the hot methods: a slot on each instance, a function through the class --------------


def _write(self: Any, data: Any) -> None:
    self.write(data)


def _writelines(self: Any, list_of_data: Any) -> None:
    self.writelines(list_of_data)


def _sendto(self: Any, data: Any, addr: Any = None) -> None:
    self.sendto(data, addr)


def _is_closing(self: Any) -> bool:
    closing: bool = self.is_closing()
    return closing


def _pause_reading(self: Any) -> None:
    self.pause_reading()


def _resume_reading(self: Any) -> None:
    self.resume_reading()


def _get_write_buffer_size(self: Any) -> int:
    size: int = self.get_write_buffer_size()
    return size


# What reading a hot slot through the class gives: a function calling the instance's.
_THROUGH_CLASS: Final[dict[str, Callable[..., Any]]] = {
    "write": _write,
    "writelines": _writelines,
    "sendto": _sendto,
    "is_closing": _is_closing,
    "pause_reading": _pause_reading,
    "resume_reading": _resume_reading,
    "get_write_buffer_size": _get_write_buffer_size,
}


@mypyc_attr(native_class=False)
class SlotMethods(type):
    """The socket transports' metaclass: a call through the class reaches the instance's slot.

    An instance's ``transport.write`` reads its slot and never passes through
    here; ``type(transport).write`` (or ``StreamTransport.write``) would read
    the slot's member descriptor, which is not callable, and gets the
    function of ``_THROUGH_CLASS`` instead, as asyncio's transports allow.
    """

    def __getattribute__(cls, name: str) -> Any:
        value = type.__getattribute__(cls, name)
        if type(value) is MemberDescriptorType and name in _THROUGH_CLASS:
            return _THROUGH_CLASS[name]
        return value


@mypyc_attr(native_class=False)
class SocketTransport(asyncio.Transport, metaclass=SlotMethods):
    """The ``asyncio.Transport`` in front of a ``SocketCore``; subclasses make the core.

    An ``asyncio.Transport`` even for datagrams, as asyncio's own are.
    ``_loop`` is a plain attribute (TLS and sendfile read it); ``_sock``,
    ``_sock_fd`` and ``_protocol`` read the core's.
    """

    # The core's methods, bound on each instance by _attach_core (see the module docstring).
    __slots__ = (
        "__dict__",
        "__weakref__",
        "get_write_buffer_size",
        "is_closing",
        "pause_reading",
        "resume_reading",
    )
    _core: SocketCore

    def _attach_core(self, core: SocketCore, waiter: asyncio.Future[Any] | None) -> None:
        """Adopt ``core``, register with the loop and server, start as asyncio does."""
        self._core = core
        self._loop = loop = core.loop
        core.transport = self
        self.get_write_buffer_size = core.buffer_size  # type: ignore[method-assign]
        self.is_closing = core.is_closing  # type: ignore[method-assign]
        self.pause_reading = core.pause_reading  # type: ignore[method-assign]
        self.resume_reading = core.resume_reading  # type: ignore[method-assign]
        if core.server is not None:
            core.server._attach(self)
        loop._attach_transport(core.fd, self)
        # connection_made(), then reading, then the waiter, each on the next
        # iteration, in the connection's context if it has one.
        context = core.context
        loop.call_soon(core.protocol.connection_made, self, context=context)
        loop.call_soon(core.start_reading, context=context)
        if waiter is not None:
            loop.call_soon(set_result_unless_cancelled, waiter, None, context=context)

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
        return self._core.flow.paused

    @property
    def _paused(self) -> bool:
        """asyncio's flag for ``pause_reading()`` (3.15's gh-140947 test polls it)."""
        return self._core.paused

    def __repr__(self) -> str:
        core: SocketCore | None = vars(self).get("_core")  # None while half-built
        if core is None:
            return f"<{type(self).__name__} closed>"
        parts = repr_state(self, core.sock is None, core.closing, core.fd)
        if core.sock is not None and not core.closing:
            parts.append("read=" + ("polling" if core.is_reading() else "idle"))
            state = "polling" if core.has_buffered() else "idle"
            parts.append(f"write=<{state}, bufsize={core.buffer_size()}>")
        return f"<{' '.join(parts)}>"

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        core: SocketCore | None = vars(self).get("_core")  # None if __init__ failed
        if core is not None and core.sock is not None:
            warn_unclosed(self, core.sock, _warn)
            if core.server is not None:
                core.server._detach(self)

    # -- forwarded to the core -----------------------------------------------------------

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._core.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        protocol: asyncio.BaseProtocol = self._core.protocol
        return protocol

    def is_reading(self) -> bool:
        return self._core.is_reading()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._core.flow.limits()

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
