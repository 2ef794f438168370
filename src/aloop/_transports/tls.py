"""TLS over aloop's stream transports: ``ssl=`` connections and servers, ``start_tls``.

The TLS state machine is aloop's own ``sslproto.SSLProtocol`` (an
``ssl.MemoryBIO`` pair driven as a ``BufferedProtocol``): it sits on an aloop
``StreamTransport`` as that transport's protocol, and the application talks
to the ``SSLTransport`` it exposes. Ciphertext reads go straight into
SSLProtocol's receive buffer through ``recv_into``; only encrypted bytes reach
the socket, and closing performs the TLS shutdown (with its timeout).
"""

from __future__ import annotations

import asyncio
import contextvars
import socket
from typing import Any

from aloop._transports.sslproto import SSLProtocol
from aloop._transports.stream import StreamTransport

try:
    import ssl
except ImportError:  # pragma: no cover - CPython without OpenSSL
    ssl = None  # type: ignore[assignment]

__all__ = ["accept_tls", "check_available", "make_tls_transport", "start_tls"]


def check_available() -> None:
    if ssl is None:  # pragma: no cover
        raise RuntimeError("Python ssl module is not available")


def make_tls_transport(
    loop: Any,
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

    ``context``: the raw connection's own context (see ``sockcore.SocketCore``).
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
    loop: Any,
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
    loop: Any,
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
