"""TLS over aloop's stream transports: ``ssl=`` connections and servers, ``start_tls``.

Two objects make one TLS connection:

- ``SSLProtocol`` is the *raw* stream transport's protocol (a
  ``BufferedProtocol``): ciphertext arrives through
  ``get_buffer()``/``buffer_updated()`` (the stream transport reads into our
  buffer with ``recv_into``) and goes into an incoming ``ssl.MemoryBIO``; an
  ``ssl.SSLObject`` made by ``SSLContext.wrap_bio`` turns it into plaintext
  for the application, and turns the application's plaintext into ciphertext
  in an outgoing ``MemoryBIO`` that we hand to the raw transport. Nothing but
  that outgoing BIO is ever written to the socket.
- ``SSLTransport`` is the ``asyncio.Transport`` the application sees; every
  call is forwarded to its ``SSLProtocol`` (``_ssl_protocol``, the name
  asyncio uses, which user code and CPython's tests poke).

The connection goes through asyncio's states (``TLSState``)::

    UNWRAPPED -> DO_HANDSHAKE -> WRAPPED -> FLUSHING -> SHUTDOWN

and from any of them back to UNWRAPPED when the connection fails or is lost.

FLUSHING delivers what is already decrypted before SHUTDOWN sends
close_notify and waits for the peer's. Handshake and shutdown each have a
timeout, with asyncio's errors and messages; the shutdown timeout lasts until
the raw transport has flushed and closed (asyncio before 3.14 stopped it at the
peer's EOF and could then wait forever for a peer that no longer reads).
Otherwise behaviour follows the stdlib loop of the running Python: releases
differ in how an abort reaches the raw transport and in ``is_closing()`` (see
the flags below).

Closing shares only ``base.count_lost_write`` with sockets and pipes: ``close()``
and ``abort()`` drive the TLS states and end in the raw transport's, which stops
watching the fd, calls ``connection_lost()`` next iteration and closes it.

``make_tls_transport``, ``accept_tls`` and ``start_tls`` at the end put an
``SSLProtocol`` on a stream transport.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import enum
import inspect
import socket
import warnings
from asyncio import constants
from asyncio import sslproto as _stdlib_sslproto  # only to learn its version's behaviour
from collections.abc import Callable, Iterable
from typing import Any, cast

from aloop._core.loopapi import Cancellable, LoopAPI
from aloop._transports.base import (
    MAX_READ,
    check_write_limits,
    count_lost_write,
    logger,
    report_fatal,
    scratch_buffer,
)
from aloop._transports.sendfile import SendfileMode
from aloop._transports.stream import StreamTransport

try:
    import ssl
except ImportError:  # pragma: no cover - CPython without OpenSSL
    ssl = None  # type: ignore[assignment]

__all__ = [
    "AppState",
    "SSLProtocol",
    "SSLTransport",
    "TLSState",
    "accept_tls",
    "check_available",
    "make_tls_transport",
    "start_tls",
]

# gh-113214 (3.13, and some 3.12 patch releases) made an abort hand its exception
# down to the raw transport (``_force_close(exc)``); before, it called the raw
# transport's ``abort()``. Do what this Python's own asyncio does.
_ABORT_PASSES_EXC = "exc" in inspect.signature(_stdlib_sslproto.SSLProtocol._abort).parameters
# gh-118950 (3.14): the TLS transport is closing as soon as the raw one is (a failed
# write closes it at once, connection_lost() follows an iteration later), so that
# StreamWriter.drain() sees it. Again, do what this Python's asyncio does.
_CLOSING_FOLLOWS_RAW = hasattr(_stdlib_sslproto.SSLProtocol, "_is_transport_closing")

# OpenSSL needs more ciphertext before it can go on (or, for SSLSyscallError, the
# peer vanished mid-record; the raw transport's EOF reports that): try again later.
_RETRY: tuple[type[BaseException], ...] = (
    (ssl.SSLWantReadError, ssl.SSLSyscallError) if ssl is not None else ()
)


class TLSState(enum.Enum):
    """Where the TLS session is (asyncio's ``SSLProtocolState``)."""

    UNWRAPPED = "UNWRAPPED"
    DO_HANDSHAKE = "DO_HANDSHAKE"
    WRAPPED = "WRAPPED"
    FLUSHING = "FLUSHING"
    SHUTDOWN = "SHUTDOWN"


class AppState(enum.Enum):
    """Which application callbacks have run: made -> [eof] -> lost, each once."""

    INIT = "INIT"
    MADE = "MADE"
    EOF = "EOF"
    LOST = "LOST"


# Every transition the state machine may take; anything else is a bug.
_ALLOWED = frozenset(
    {
        (TLSState.UNWRAPPED, TLSState.DO_HANDSHAKE),
        (TLSState.DO_HANDSHAKE, TLSState.WRAPPED),
        (TLSState.WRAPPED, TLSState.FLUSHING),
        (TLSState.FLUSHING, TLSState.SHUTDOWN),
    }
)
# States in which the application may no longer write.
_CLOSED_FOR_WRITES = frozenset({TLSState.FLUSHING, TLSState.SHUTDOWN, TLSState.UNWRAPPED})


def _check_timeout(name: str, value: float | None, default: float) -> float:
    """A positive timeout, or asyncio's default for ``None``."""
    if value is None:
        return default
    if value <= 0:
        raise ValueError(f"{name} should be a positive number, got {value}")
    return value


def _default_context(server_side: bool, server_hostname: str | None) -> ssl.SSLContext:
    """The context for ``ssl=True``: secure defaults, client side only."""
    if server_side:
        raise ValueError("Server side SSL needs a valid SSLContext")
    context = ssl.create_default_context()
    if not server_hostname:
        # No name to check the certificate against (asyncio allows this).
        context.check_hostname = False
    return context


def _flat(data: Any) -> memoryview:
    """A bytes-like object as a flat view of bytes (len() is then its size in bytes)."""
    view = memoryview(data)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


class SSLTransport(asyncio.Transport):
    """The transport the application uses; a thin front for its ``SSLProtocol``.

    A second ``close()`` lets go of the protocol (asyncio does the same): an app
    protocol that keeps its transport then no longer keeps the TLS session (its
    context, buffers) alive until the last callback has run. From then on the
    transport behaves as a closed one.
    """

    _start_tls_compatible = True  # TLS in TLS (a proxy's tunnel) works
    _sendfile_compatible = SendfileMode.FALLBACK  # the file must be encrypted: read + write

    def __init__(self, loop: LoopAPI, ssl_protocol: SSLProtocol) -> None:
        super().__init__()
        self._loop = loop
        self._ssl_protocol: SSLProtocol | None = ssl_protocol
        self._closed = False

    def __repr__(self) -> str:
        proto = self._ssl_protocol
        state = "closed" if self._closed or proto is None else proto._state.value
        return f"<SSLTransport {state}>"

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        if not self._closed:
            self._closed = True
            _warn("unclosed transport <aloop SSLTransport object>", ResourceWarning)

    # -- state and information -------------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        proto = self._ssl_protocol
        return default if proto is None else proto._get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        if self._ssl_protocol is not None:
            self._ssl_protocol._set_app_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        proto = self._ssl_protocol
        # None once the connection is lost, as in asyncio.
        return cast(asyncio.BaseProtocol, None if proto is None else proto._app_protocol)

    def is_closing(self) -> bool:
        if self._closed:
            return True
        proto = self._ssl_protocol
        return _CLOSING_FOLLOWS_RAW and proto is not None and proto._raw_closing()

    # -- closing ---------------------------------------------------------------------

    def close(self) -> None:
        """Send close_notify after what is buffered; connection_lost() follows."""
        if not self._closed:
            self._closed = True
            if self._ssl_protocol is not None:
                self._ssl_protocol._start_shutdown()
        else:
            self._ssl_protocol = None

    def abort(self) -> None:
        """Drop the connection now: no close_notify, buffered data is lost."""
        self._force_close(None)

    def _force_close(self, exc: BaseException | None) -> None:
        # A SSLProtocol above us (TLS in TLS) closes us this way on fatal errors.
        self._closed = True
        if self._ssl_protocol is not None:
            self._ssl_protocol._abort(exc)

    # -- reading ---------------------------------------------------------------------

    def is_reading(self) -> bool:
        proto = self._ssl_protocol
        return proto is not None and not proto._app_reading_paused

    def pause_reading(self) -> None:
        if self._ssl_protocol is not None:
            self._ssl_protocol._pause_reading()

    def resume_reading(self) -> None:
        if self._ssl_protocol is not None:
            self._ssl_protocol._resume_reading()

    def set_read_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Limits on ciphertext waiting for a paused app before the socket stops being read."""
        proto = self._ssl_protocol
        if proto is not None:
            proto._set_read_buffer_limits(high, low)
            proto._control_ssl_reading()

    def get_read_buffer_limits(self) -> tuple[int, int]:
        proto = self._ssl_protocol
        return (0, 0) if proto is None else (proto._incoming_low_water, proto._incoming_high_water)

    def get_read_buffer_size(self) -> int:
        proto = self._ssl_protocol
        return 0 if proto is None else proto._get_read_buffer_size()

    # -- writing ---------------------------------------------------------------------

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        proto = self._ssl_protocol
        if proto is not None:
            proto._set_write_buffer_limits(high, low)
            proto._control_app_writing()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        proto = self._ssl_protocol
        return (0, 0) if proto is None else (proto._outgoing_low_water, proto._outgoing_high_water)

    def get_write_buffer_size(self) -> int:
        proto = self._ssl_protocol
        return 0 if proto is None else proto._get_write_buffer_size()

    @property
    def _protocol_paused(self) -> bool:
        # The sendfile fallback reads it to know whether to wait for resume_writing().
        proto = self._ssl_protocol
        return proto is not None and proto._app_writing_paused

    def write(self, data: Any) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"data: expecting a bytes-like instance, got {type(data).__name__}")
        if data and self._ssl_protocol is not None:
            self._ssl_protocol._write_appdata((data,))

    def writelines(self, list_of_data: Iterable[Any]) -> None:
        if self._ssl_protocol is not None:
            self._ssl_protocol._write_appdata(list_of_data)

    def write_eof(self) -> None:
        """TLS has no half-close that asyncio exposes (close_notify ends both ways)."""
        raise NotImplementedError

    def can_write_eof(self) -> bool:
        return False

    def _test__append_write_backlog(self, data: bytes) -> None:
        """For CPython's tests: queue plaintext as if a write got stuck before encryption."""
        proto = self._ssl_protocol
        if proto is not None:
            proto._backlog.append(data)
            proto._backlog_size += len(data)


class SSLProtocol(asyncio.BufferedProtocol):
    """TLS over the raw transport below; drives ``SSLTransport`` for the app above."""

    # Ciphertext read per recv_into, and plaintext per SSLObject.read for a Protocol.
    max_size = MAX_READ

    def __init__(
        self,
        loop: LoopAPI,
        app_protocol: asyncio.BaseProtocol,
        sslcontext: ssl.SSLContext | None,
        waiter: asyncio.Future[Any] | None,
        server_side: bool = False,
        server_hostname: str | None = None,
        call_connection_made: bool = True,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
    ) -> None:
        if ssl is None:  # pragma: no cover
            raise RuntimeError("stdlib ssl module not available")
        self._handshake_timeout = _check_timeout(
            "ssl_handshake_timeout", ssl_handshake_timeout, constants.SSL_HANDSHAKE_TIMEOUT
        )
        self._shutdown_timeout = _check_timeout(
            "ssl_shutdown_timeout", ssl_shutdown_timeout, constants.SSL_SHUTDOWN_TIMEOUT
        )
        if not sslcontext:
            sslcontext = _default_context(server_side, server_hostname)
        self._loop = loop
        self._waiter = waiter
        self._server_side = server_side
        # A server never sends SNI; an empty name means "don't check it".
        hostname = server_hostname if server_hostname and not server_side else None
        self._extra: dict[str, Any] = {"sslcontext": sslcontext}

        # Where the raw transport's last read landed (see get_buffer()).
        self._recv_view = scratch_buffer(self.max_size)
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._sslobj = sslcontext.wrap_bio(
            self._incoming, self._outgoing, server_side=server_side, server_hostname=hostname
        )

        # Plaintext the SSLObject has not taken yet (before the handshake ends).
        self._backlog: collections.deque[bytes | memoryview] = collections.deque()
        self._backlog_size = 0

        self._state = TLSState.UNWRAPPED
        # start_tls: the app protocol already had connection_made() from the raw transport.
        self._app_state = AppState.INIT if call_connection_made else AppState.MADE
        self._transport: Any = None
        self._conn_lost = 0
        self._eof_received = False
        self._handshake_start: float | None = None
        self._handshake_timer: Cancellable | None = None
        self._shutdown_timer: Cancellable | None = None

        # Flow control, four ways: the raw transport pauses our writing, the app
        # pauses our reading, we pause the raw transport's reading and the app's writing.
        self._ssl_writing_paused = False
        self._app_reading_paused = False
        self._ssl_reading_paused = False
        self._app_writing_paused = False
        self._incoming_high_water, self._incoming_low_water = check_write_limits(
            None, None, constants.FLOW_CONTROL_HIGH_WATER_SSL_READ * 1024
        )
        self._outgoing_high_water, self._outgoing_low_water = check_write_limits(
            None, None, constants.FLOW_CONTROL_HIGH_WATER_SSL_WRITE * 1024
        )

        self._app_protocol: Any = None
        self._app_is_buffered = False
        self._set_app_protocol(app_protocol)
        self._app_transport: SSLTransport | None = SSLTransport(loop, self)

    def __repr__(self) -> str:
        return f"<SSLProtocol {self._state.value} server_side={self._server_side}>"

    def _set_app_protocol(self, app_protocol: asyncio.BaseProtocol) -> None:
        """Switch the application protocol; a BufferedProtocol is decrypted into directly."""
        self._app_protocol = app_protocol
        self._app_is_buffered = isinstance(app_protocol, asyncio.BufferedProtocol)

    def _raw_closing(self) -> bool:
        """Whether the raw transport below is closing (or closed)."""
        return self._transport is not None and bool(self._transport.is_closing())

    def _get_extra_info(self, name: str, default: Any = None) -> Any:
        """TLS details first, then whatever the raw transport knows (socket, peername...)."""
        if name in self._extra:
            return self._extra[name]
        if self._transport is not None:
            return self._transport.get_extra_info(name, default)
        return default

    def _set_state(self, new: TLSState) -> None:
        """Move to ``new``; any state may drop to UNWRAPPED, others only go forward."""
        if new is not TLSState.UNWRAPPED and (self._state, new) not in _ALLOWED:
            raise RuntimeError(f"cannot switch state from {self._state} to {new}")
        self._state = new

    def _wakeup_waiter(self, exc: BaseException | None = None) -> None:
        """Resolve the creator's future (once): handshake done, failed or connection gone."""
        waiter = self._waiter
        if waiter is None:
            return
        self._waiter = None
        if waiter.cancelled():
            return
        if exc is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(exc)

    # -- the raw transport's protocol interface --------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """The raw connection is up: the handshake starts at once."""
        self._transport = transport
        self._start_handshake()

    def connection_lost(self, exc: BaseException | None) -> None:
        """The raw transport is gone: tell the app (if it ever knew), free everything."""
        self._backlog.clear()
        self._backlog_size = 0
        self._outgoing.read()  # nowhere to send it any more
        self._conn_lost += 1
        if self._app_transport is not None:
            self._app_transport._closed = True  # no "unclosed transport" warning
        if self._state is not TLSState.DO_HANDSHAKE and self._app_state in (
            AppState.MADE,
            AppState.EOF,
        ):
            self._app_state = AppState.LOST
            self._loop.call_soon(self._app_protocol.connection_lost, exc)
        self._set_state(TLSState.UNWRAPPED)
        # Break the cycles (app transport <-> us <-> raw transport) right away.
        self._transport = None
        self._app_transport = None
        self._app_protocol = None
        self._wakeup_waiter(exc)
        self._cancel_timers()

    def _cancel_timers(self) -> None:
        for timer in (self._handshake_timer, self._shutdown_timer):
            if timer is not None:
                timer.cancel()
        self._handshake_timer = self._shutdown_timer = None

    def get_buffer(self, sizehint: int) -> memoryview:
        """Where the raw transport reads ciphertext into: this thread's scratch buffer.

        Ciphertext only passes through it: buffer_updated() copies it into the
        incoming BIO at once, so no buffer is held per connection.
        """
        self._recv_view = view = scratch_buffer(self.max_size)
        return view

    def buffer_updated(self, nbytes: int) -> None:
        """``nbytes`` of ciphertext arrived: feed the SSLObject, then let the state act."""
        self._incoming.write(self._recv_view[:nbytes])
        self._on_incoming()

    def _on_incoming(self) -> None:
        """New ciphertext (or an unpaused app): what to do depends on the state."""
        state = self._state
        if state is TLSState.DO_HANDSHAKE:
            self._do_handshake()
        elif state is TLSState.WRAPPED:
            self._do_read()
        elif state is TLSState.FLUSHING:
            self._do_flush()
        elif state is TLSState.SHUTDOWN:
            self._do_shutdown()

    def eof_received(self) -> bool | None:
        """The peer closed TCP (maybe without close_notify): finish up, then close.

        Returns True only to keep the raw transport open while the app has reading
        paused, so the plaintext still queued reaches it on resume_reading().
        """
        self._eof_received = True
        if self._loop.get_debug():
            logger.debug("%r received EOF", self)
        try:
            state = self._state
            if state is TLSState.DO_HANDSHAKE:
                # The peer hung up mid-handshake; asyncio reports a bare reset.
                self._on_handshake_complete(ConnectionResetError())
            elif state is TLSState.WRAPPED:
                self._set_state(TLSState.FLUSHING)
                if self._app_reading_paused:
                    return True
                self._do_flush()
            elif state is TLSState.FLUSHING:
                self._do_write()
                self._set_state(TLSState.SHUTDOWN)
                self._do_shutdown()
            elif state is TLSState.SHUTDOWN:
                self._do_shutdown()
        except Exception:
            self._transport.close()
            raise
        return None

    def pause_writing(self) -> None:
        """The raw transport's buffer is full: keep ciphertext in the outgoing BIO."""
        self._ssl_writing_paused = True

    def resume_writing(self) -> None:
        """The raw transport drained: hand it what piled up in the outgoing BIO."""
        self._ssl_writing_paused = False
        self._process_outgoing()

    # -- handshake -------------------------------------------------------------------

    def _start_handshake(self) -> None:
        """Enter DO_HANDSHAKE, arm the handshake timeout and send the first flight."""
        if self._loop.get_debug():
            logger.debug("%r starts SSL handshake", self)
            self._handshake_start = self._loop.time()
        self._set_state(TLSState.DO_HANDSHAKE)
        self._handshake_timer = self._loop.call_later(
            self._handshake_timeout, self._check_handshake_timeout
        )
        self._do_handshake()

    def _check_handshake_timeout(self) -> None:
        if self._state is TLSState.DO_HANDSHAKE:
            self._fatal_error(
                ConnectionAbortedError(
                    f"SSL handshake is taking longer than {self._handshake_timeout} "
                    "seconds: aborting the connection"
                )
            )

    def _do_handshake(self) -> None:
        """One step of the handshake with the ciphertext we have."""
        try:
            self._sslobj.do_handshake()
        except _RETRY:
            self._process_outgoing()  # our flight; then wait for the peer's
        except ssl.SSLError as exc:
            self._on_handshake_complete(exc)
        else:
            self._on_handshake_complete(None)

    def _on_handshake_complete(self, failure: BaseException | None) -> None:
        """Handshake over: report a failure, or make the connection and start reading."""
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        try:
            if failure is not None:
                raise failure
            self._set_state(TLSState.WRAPPED)
            peercert = self._sslobj.getpeercert()
        except Exception as exc:
            failure = None  # no traceback cycle through this frame
            self._set_state(TLSState.UNWRAPPED)
            if isinstance(exc, ssl.CertificateError):
                message = "SSL handshake failed on verifying the certificate"
            else:
                message = "SSL handshake failed"
            self._fatal_error(exc, message)
            self._wakeup_waiter(exc)
            return
        if self._loop.get_debug() and self._handshake_start is not None:
            took = self._loop.time() - self._handshake_start
            logger.debug("%r: SSL handshake took %.1f ms", self, took * 1e3)
        sslobj = self._sslobj
        self._extra.update(
            peercert=peercert,
            cipher=sslobj.cipher(),
            compression=sslobj.compression(),
            ssl_object=sslobj,
        )
        if self._app_state is AppState.INIT:
            self._app_state = AppState.MADE
            self._app_protocol.connection_made(self._app_transport)
        self._wakeup_waiter()
        # The peer's first application data may have come with its last flight.
        self._do_read()

    # -- shutdown --------------------------------------------------------------------

    def _start_shutdown(self) -> None:
        """close(): abort a handshake in progress, else flush and send close_notify."""
        if self._state in _CLOSED_FOR_WRITES:
            return
        if self._app_transport is not None:
            self._app_transport._closed = True
        if self._state is TLSState.DO_HANDSHAKE:
            self._abort(None)
            return
        self._set_state(TLSState.FLUSHING)
        self._shutdown_timer = self._loop.call_later(
            self._shutdown_timeout, self._check_shutdown_timeout
        )
        self._do_flush()

    def _check_shutdown_timeout(self) -> None:
        if self._state in (TLSState.FLUSHING, TLSState.SHUTDOWN):
            # The peer never answered our close_notify: give up on it.
            self._transport._force_close(TimeoutError("SSL shutdown timed out"))

    def _do_flush(self) -> None:
        """FLUSHING: give the app what is decrypted already, then shut down."""
        self._do_read()
        self._set_state(TLSState.SHUTDOWN)
        self._do_shutdown()

    def _do_shutdown(self) -> None:
        """Send close_notify (unless the peer is gone) and wait for the peer's."""
        try:
            if not self._eof_received:
                self._sslobj.unwrap()
        except _RETRY:
            self._process_outgoing()  # our close_notify goes out; the peer's is awaited
        except ssl.SSLError as exc:
            self._on_shutdown_complete(exc)
        else:
            self._process_outgoing()
            self._call_eof_received()
            self._on_shutdown_complete(None)

    def _on_shutdown_complete(self, failure: BaseException | None) -> None:
        if failure is not None:
            self._cancel_timers()
            self._fatal_error(failure)
            return
        # The raw transport sends what it buffered (our close_notify), then closes:
        # a peer that stopped reading can delay that forever, so the shutdown
        # timeout runs on until connection_lost(); it starts now if the peer's EOF
        # began the shutdown.
        if self._shutdown_timer is None:
            self._shutdown_timer = self._loop.call_later(
                self._shutdown_timeout, self._check_shutdown_timeout
            )
        self._loop.call_soon(self._transport.close)

    def _abort(self, exc: BaseException | None) -> None:
        """Drop the raw connection without close_notify."""
        self._set_state(TLSState.UNWRAPPED)
        transport = self._transport
        if transport is None:
            return
        if _ABORT_PASSES_EXC:
            transport._force_close(exc)
        else:
            transport.abort()

    # -- application data out ----------------------------------------------------------

    def _write_appdata(self, list_of_data: Iterable[Any]) -> None:
        """Queue the app's plaintext and encrypt it if the session is up."""
        if self._state in _CLOSED_FOR_WRITES:
            self._conn_lost = count_lost_write(self._conn_lost, "SSL connection is closed")
            return
        # Check every piece before queueing any (a TypeError leaves nothing half-queued).
        pieces = [data if isinstance(data, bytes) else _flat(data) for data in list_of_data]
        if self._state is not TLSState.WRAPPED:
            # They wait for the handshake: the app may reuse its buffers meanwhile.
            pieces = [bytes(data) for data in pieces]
        for data in pieces:
            if data:
                self._backlog.append(data)
                self._backlog_size += len(data)
        try:
            if self._state is TLSState.WRAPPED:
                self._do_write()
        except Exception as exc:
            self._fatal_error(exc, "Fatal error on SSL protocol")

    def _do_write(self) -> None:
        """Encrypt the backlog into the outgoing BIO, then send that on."""
        backlog = self._backlog
        try:
            while backlog:
                data = backlog[0]
                taken = self._sslobj.write(data)
                self._backlog_size -= taken
                if taken < len(data):
                    backlog[0] = memoryview(data)[taken:]
                else:
                    backlog.popleft()
        except _RETRY:
            pass  # renegotiation wants the peer's data first; the rest waits in the backlog
        finally:
            self._keep_backlog_private()
        self._process_outgoing()

    def _keep_backlog_private(self) -> None:
        """Copy app buffers left unencrypted, so the app's later changes don't leak in."""
        backlog = self._backlog
        if any(not isinstance(data, bytes) for data in backlog):
            self._backlog = collections.deque(bytes(data) for data in backlog)

    def _process_outgoing(self) -> None:
        """Hand the outgoing BIO's ciphertext to the raw transport unless it paused us."""
        if not self._ssl_writing_paused and self._transport is not None:
            data = self._outgoing.read()
            if data:
                self._transport.write(data)
        self._control_app_writing()

    # -- application data in -------------------------------------------------------------

    def _do_read(self) -> None:
        """Decrypt what we can for the app, send what the SSLObject wants sent."""
        if self._state not in (TLSState.WRAPPED, TLSState.FLUSHING):
            return
        try:
            if not self._app_reading_paused:
                if self._app_is_buffered:
                    self._read_into_app_buffer()
                else:
                    self._read_and_deliver()
                # Reading may produce records to send (a session ticket's ack, a
                # key update), and a write stuck on renegotiation may now proceed.
                if self._backlog:
                    self._do_write()
                else:
                    self._process_outgoing()
            self._control_ssl_reading()
        except Exception as exc:
            self._fatal_error(exc, "Fatal error on SSL protocol")

    def _read_and_deliver(self) -> None:
        """Plain Protocol: everything decryptable now goes in one data_received()."""
        chunks: list[bytes] = []
        closed = False
        try:
            while True:
                chunk = self._sslobj.read(self.max_size)
                if not chunk:
                    closed = True  # the peer's close_notify
                    break
                chunks.append(chunk)
        except _RETRY:
            pass
        if chunks:
            self._app_protocol.data_received(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if closed:
            self._on_close_notify()

    def _read_into_app_buffer(self) -> None:
        """BufferedProtocol: decrypt straight into the app's buffer."""
        buf = self._app_protocol.get_buffer(self._get_read_buffer_size())
        filled = 0
        closed = False
        # Every view of the app's buffer is released before buffer_updated(), which
        # may resize it.
        with memoryview(buf) as whole, whole.cast("B") as view:
            wanted = len(view)
            if not wanted:
                raise RuntimeError("get_buffer() returned an empty buffer")
            try:
                while filled < wanted:
                    with view[filled:] as rest:
                        # With a buffer, read() returns a count (typeshed says bytes).
                        count = cast(int, self._sslobj.read(wanted - filled, rest))
                    if not count:
                        closed = True
                        break
                    filled += count
                else:
                    # The buffer is full and more may be decrypted: come back next turn.
                    self._loop.call_soon(self._do_read)
            except _RETRY:
                pass
        if filled:
            self._app_protocol.buffer_updated(filled)
        if closed:
            self._on_close_notify()

    def _on_close_notify(self) -> None:
        """The peer ended the session: the app sees EOF, and we close our side too."""
        self._call_eof_received()
        self._start_shutdown()

    def _call_eof_received(self) -> None:
        """The app's eof_received(), once; over TLS the connection always closes after."""
        try:
            if self._app_state is AppState.MADE:
                self._app_state = AppState.EOF
                if self._app_protocol.eof_received():
                    logger.warning(
                        "returning true from eof_received() has no effect when using ssl"
                    )
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Error calling eof_received()")

    # -- flow control ----------------------------------------------------------------

    def _get_write_buffer_size(self) -> int:
        """Plaintext not yet encrypted plus ciphertext the raw transport has not taken."""
        return self._outgoing.pending + self._backlog_size

    def _set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._outgoing_high_water, self._outgoing_low_water = check_write_limits(
            high, low, constants.FLOW_CONTROL_HIGH_WATER_SSL_WRITE * 1024
        )

    def _control_app_writing(self) -> None:
        """pause_writing() at the high-water mark, resume_writing() at the low one."""
        size = self._get_write_buffer_size()
        if size >= self._outgoing_high_water and not self._app_writing_paused:
            self._app_writing_paused = True
            self._call_app("pause_writing")
        elif size <= self._outgoing_low_water and self._app_writing_paused:
            self._app_writing_paused = False
            self._call_app("resume_writing")

    def _call_app(self, method: str) -> None:
        """A flow-control callback of the app; its failure goes to the exception handler."""
        protocol = self._app_protocol
        if protocol is None:
            return  # connection lost: nobody to tell
        try:
            getattr(protocol, method)()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler(
                {
                    "message": f"protocol.{method}() failed",
                    "exception": exc,
                    "transport": self._app_transport,
                    "protocol": self,
                }
            )

    def _get_read_buffer_size(self) -> int:
        """Ciphertext received but not decrypted yet."""
        return self._incoming.pending

    def _set_read_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._incoming_high_water, self._incoming_low_water = check_write_limits(
            high, low, constants.FLOW_CONTROL_HIGH_WATER_SSL_READ * 1024
        )

    def _control_ssl_reading(self) -> None:
        """Stop reading the socket while too much ciphertext waits for a paused app."""
        size = self._get_read_buffer_size()
        if size >= self._incoming_high_water and not self._ssl_reading_paused:
            self._ssl_reading_paused = True
            self._transport.pause_reading()
        elif size <= self._incoming_low_water and self._ssl_reading_paused:
            self._ssl_reading_paused = False
            self._transport.resume_reading()

    def _pause_reading(self) -> None:
        """The app wants no data for now; ciphertext waits in the incoming BIO."""
        self._app_reading_paused = True

    def _resume_reading(self) -> None:
        """Deliver what waited, on the next iteration (never inside the app's call)."""
        if self._app_reading_paused:
            self._app_reading_paused = False
            self._loop.call_soon(self._continue_after_resume)

    def _continue_after_resume(self) -> None:
        # What waited is decrypted now; a close_notify or EOF that came meanwhile, too.
        if self._state is not TLSState.DO_HANDSHAKE:
            self._on_incoming()

    # -- errors ----------------------------------------------------------------------

    def _fatal_error(self, exc: BaseException, message: str = "Fatal error on transport") -> None:
        """Drop the connection with ``exc``; only non-OS errors are worth a report."""
        if self._transport is not None:
            self._transport._force_close(exc)
        if not isinstance(exc, asyncio.CancelledError):
            # An OSError is the peer's doing (reset, bad record...), not a bug.
            quiet = isinstance(exc, OSError)
            report_fatal(self._loop, self._transport, self, exc, message, quiet, who=self)


# -- TLS on a stream transport ----------------------------------------------------------


def check_available() -> None:
    if ssl is None:  # pragma: no cover
        raise RuntimeError("Python ssl module is not available")


def make_tls_transport(
    loop: LoopAPI,
    rawsock: socket.socket,
    protocol: asyncio.BaseProtocol,
    sslcontext: Any,
    waiter: asyncio.Future[Any] | None,
    *,
    server_side: bool = False,
    server_hostname: str | None = None,
    extra: dict[str, Any] | None = None,
    server: Any = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
    context: contextvars.Context | None = None,
) -> asyncio.Transport:
    """A TLS transport for ``protocol`` on ``rawsock``; ``waiter`` resolves after the handshake.

    ``context``: the raw connection's own context (see ``base.SocketCore``).
    """
    tls = SSLProtocol(
        loop,
        protocol,
        sslcontext,
        waiter,
        server_side,
        server_hostname,
        ssl_handshake_timeout=ssl_handshake_timeout,
        ssl_shutdown_timeout=ssl_shutdown_timeout,
    )
    app = tls._app_transport
    assert app is not None
    StreamTransport(loop, rawsock, tls, extra=extra, server=server, context=context)
    return app


def accept_tls(
    loop: LoopAPI,
    conn: socket.socket,
    protocol: asyncio.BaseProtocol,
    extra: dict[str, Any],
    server: Any,
    context: contextvars.Context | None = None,
) -> None:
    """Serve an accepted connection over TLS; a failed handshake closes it."""
    waiter: asyncio.Future[None] = loop.create_future()
    transport = make_tls_transport(
        loop, conn, protocol, server._ssl_context, waiter,
        server_side=True, extra=extra, server=server,
        ssl_handshake_timeout=server._ssl_handshake_timeout,
        ssl_shutdown_timeout=server._ssl_shutdown_timeout, context=context,
    )  # fmt: skip

    def handshake_done(fut: asyncio.Future[None]) -> None:
        if fut.cancelled():
            transport.close()
            return
        exc = fut.exception()
        if exc is None:
            return
        transport.close()
        if loop.get_debug():
            loop.call_exception_handler(
                {
                    "message": "Error on transport creation for incoming connection",
                    "exception": exc,
                    "protocol": protocol,
                    "transport": transport,
                }
            )

    waiter.add_done_callback(handshake_done)


def _take_early_ciphertext(protocol: asyncio.BaseProtocol, tls: SSLProtocol) -> None:
    """Hand what a stream reader already buffered to the TLS layer.

    A client may send its ClientHello right behind the plaintext that asks for
    TLS (STARTTLS), so the server's StreamReader can hold the start of the
    handshake when ``start_tls`` begins; left there, the handshake never ends.
    """
    if not isinstance(protocol, asyncio.StreamReaderProtocol):
        return
    reader = getattr(protocol, "_stream_reader", None)
    buffer = getattr(reader, "_buffer", None)
    if buffer:
        tls._incoming.write(buffer)
        buffer.clear()


async def start_tls(
    loop: LoopAPI,
    transport: asyncio.BaseTransport,
    protocol: asyncio.BaseProtocol,
    sslcontext: Any,
    *,
    server_side: bool = False,
    server_hostname: str | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
) -> asyncio.Transport:
    """Upgrade a connected stream transport to TLS; return the transport to use from now on."""
    check_available()
    if not isinstance(sslcontext, ssl.SSLContext):
        raise TypeError(
            f"sslcontext is expected to be an instance of ssl.SSLContext, got {sslcontext!r}"
        )
    if not getattr(transport, "_start_tls_compatible", False):
        raise TypeError(f"transport {transport!r} is not supported by start_tls()")
    waiter: asyncio.Future[None] = loop.create_future()
    tls = SSLProtocol(
        loop,
        protocol,
        sslcontext,
        waiter,
        server_side,
        server_hostname,
        ssl_handshake_timeout=ssl_handshake_timeout,
        ssl_shutdown_timeout=ssl_shutdown_timeout,
        call_connection_made=False,
    )
    # Nothing may be read between the switch of protocols and connection_made().
    raw: Any = transport
    raw.pause_reading()
    if server_side:
        _take_early_ciphertext(protocol, tls)
    raw.set_protocol(tls)
    made = loop.call_soon(tls.connection_made, transport)
    resumed = loop.call_soon(raw.resume_reading)
    try:
        await waiter
    except BaseException:
        transport.close()
        made.cancel()
        resumed.cancel()
        # The waiter holds the exception, whose traceback holds this frame: no cycle.
        del waiter
        raise
    app = tls._app_transport
    if app is None:
        # The raw transport was closed (without an error) during the handshake;
        # asyncio would return None here, which no caller can use.
        raise ConnectionResetError("the connection was closed during the TLS handshake")
    return app
