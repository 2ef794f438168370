"""TLS on both loops: ssl= connections and servers, start_tls, extra info, clean shutdown."""

from __future__ import annotations

import asyncio
import gc
import socket
import ssl
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from tests.support import LoopFactory, client_context, requires_test_certs, server_context
from tests.support import run_with_loop as run

pytestmark = [pytest.mark.usefixtures("no_fd_leak"), requires_test_certs]

T = TypeVar("T")

# A blocking peer gives up after this long rather than hanging the test run.
DEADLINE = 20.0


def skip_stdlib_before(version: tuple[int, int], loop_factory: LoopFactory, why: str) -> None:
    """Skip the stdlib loop's run where its asyncio still has the bug the test is about."""
    if loop_factory is asyncio.new_event_loop and sys.version_info < version:
        pytest.skip(f"asyncio before {version[0]}.{version[1]}: {why}")


async def upper_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data.upper())
        await writer.drain()
    writer.close()
    await writer.wait_closed()


def test_tls_streams_round_trip(loop_factory: LoopFactory) -> None:
    payload = b"abcdefgh" * 100_000

    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        server = await asyncio.start_server(upper_echo, "127.0.0.1", 0, ssl=server_context())
        async with server:
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_context(), server_hostname=""
            )
            out: list[Any] = [
                writer.get_extra_info("sslcontext") is not None,
                isinstance(writer.get_extra_info("ssl_object"), ssl.SSLObject),
                writer.get_extra_info("cipher") is not None,
                writer.get_extra_info("peername")[0],
                writer.can_write_eof(),
            ]
            writer.write(payload)
            await writer.drain()
            received = await reader.readexactly(len(payload))
            out.append(received == payload.upper())
            writer.close()
            await writer.wait_closed()
            return out

    assert run(loop_factory, main) == [True, True, True, "127.0.0.1", False, True]


def test_no_plaintext_leaves_a_tls_transport(loop_factory: LoopFactory) -> None:
    secret = b"this must never be seen on the wire"

    async def main(loop: asyncio.AbstractEventLoop) -> tuple[bool, bool]:
        wire = bytearray()
        done = loop.create_future()

        async def sniffer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # A plain TCP peer: records the raw bytes, then does TLS on top with start_tls.
            wire.extend(await reader.read(65536))  # the ClientHello
            done.set_result(None)
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(sniffer, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            client_task = asyncio.ensure_future(
                asyncio.open_connection("127.0.0.1", port, ssl=client_context(), server_hostname="")
            )
            await done
            with pytest.raises((ConnectionError, ssl.SSLError)):
                await client_task
        return secret not in wire, wire[:1] == b"\x16"  # a TLS handshake record

    assert run(loop_factory, main) == (True, True)


def test_start_tls_upgrades_both_sides(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> list[bytes]:
        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            assert await reader.readline() == b"STARTTLS\n"
            writer.write(b"GO\n")
            await writer.drain()
            await writer.start_tls(server_context())
            line = await reader.readline()
            writer.write(line.upper())
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(on_client, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"STARTTLS\n")
            go = await reader.readline()
            await writer.start_tls(client_context(), server_hostname="")
            writer.write(b"secret line\n")
            answer = await reader.readline()
            writer.close()
            await writer.wait_closed()
            return [go, answer]

    assert run(loop_factory, main) == [b"GO\n", b"SECRET LINE\n"]


def test_tls_argument_errors(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> list[str]:
        out = []
        for call in (
            lambda: loop.create_connection(asyncio.Protocol, ssl=client_context()),
            lambda: loop.create_server(asyncio.Protocol, "127.0.0.1", 0, ssl_shutdown_timeout=1),
            lambda: loop.create_unix_connection(asyncio.Protocol, "/nonexistent", ssl=True),
        ):
            try:
                await call()
            except ValueError as exc:
                out.append(str(exc))
        a, b = socket.socketpair()
        transport, proto = await loop.connect_accepted_socket(asyncio.Protocol, a)
        try:
            await loop.start_tls(transport, proto, "not a context")  # type: ignore[arg-type]
        except TypeError as exc:
            out.append(str(exc).split(",")[0])
        transport.close()
        b.close()
        await asyncio.sleep(0)
        return out

    assert run(loop_factory, main) == [
        "You must set server_hostname when using ssl without a host",
        "ssl_shutdown_timeout is only meaningful with ssl",
        "you have to pass server_hostname when using ssl",
        "sslcontext is expected to be an instance of ssl.SSLContext",
    ]


def test_failed_handshake_leaves_server_serving(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> tuple[bool, bytes]:
        server = await asyncio.start_server(upper_echo, "127.0.0.1", 0, ssl=server_context())
        async with server:
            port = server.sockets[0].getsockname()[1]
            strict = ssl.create_default_context()  # does not trust the test certificate
            failed = False
            try:
                await asyncio.open_connection(
                    "127.0.0.1", port, ssl=strict, server_hostname="localhost"
                )
            except (ssl.SSLError, ConnectionError):
                failed = True
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_context(), server_hostname=""
            )
            writer.write(b"ok")
            data = await reader.readexactly(2)
            writer.close()
            await writer.wait_closed()
            return failed, data

    assert run(loop_factory, main) == (True, b"OK")


# -- start_tls with the handshake already buffered -----------------------------------------


def _pump(sock: socket.socket, tls: ssl.SSLObject, out: ssl.MemoryBIO, inc: ssl.MemoryBIO,
          step: Callable[[], Any]) -> Any:  # fmt: skip
    """Run ``step`` on a MemoryBIO TLS session over a blocking socket until it needs no more."""
    while True:
        try:
            return step()
        except ssl.SSLWantReadError:
            if out.pending:
                sock.sendall(out.read())
            data = sock.recv(65536)
            if not data:
                raise ConnectionResetError("the server hung up") from None
            inc.write(data)


def pipelining_starttls_client(port: int) -> bytes:
    """Sends STARTTLS and its ClientHello in one write, then a line over TLS; returns the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock:
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = client_context().wrap_bio(inc, out)
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        sock.sendall(b"STARTTLS\n" + out.read())
        _pump(sock, tls, out, inc, tls.do_handshake)
        tls.write(b"ping\n")
        sock.sendall(out.read())
        answer: bytes = _pump(sock, tls, out, inc, lambda: tls.read(5))
        return answer


def test_start_tls_takes_the_handshake_the_reader_buffered(loop_factory: LoopFactory) -> None:
    # The ClientHello arrives with the STARTTLS line, so the server's StreamReader
    # holds it when start_tls() begins: it must reach the TLS layer, not be lost.
    skip_stdlib_before((3, 14), loop_factory, "the StreamReader keeps it (gh-142352)")

    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        seen: list[Any] = []

        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.append(await reader.readline())
            await asyncio.wait_for(writer.start_tls(server_context()), DEADLINE)
            line = await reader.readline()
            writer.write(line.replace(b"i", b"o"))
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(on_client, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            seen.append(await asyncio.to_thread(pipelining_starttls_client, port))
        return seen

    assert run(loop_factory, main) == [b"STARTTLS\n", b"pong\n"]


# -- failed connections leave no reference cycles ------------------------------------------


def cycles_left_by(
    loop_factory: LoopFactory, main: Callable[[asyncio.AbstractEventLoop], Awaitable[T]]
) -> tuple[T, list[str]]:
    """``main``'s result, run with the collector off, and the names of the exceptions,
    transports and futures only a collection frees: what reference cycles kept alive."""
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        result = run(loop_factory, main)
        gc.collect()
        kinds = (BaseException, asyncio.BaseTransport, asyncio.Future)
        return result, sorted({type(obj).__name__ for obj in gc.garbage if isinstance(obj, kinds)})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
        gc.collect()


def untrusting_peer(sock: socket.socket) -> None:
    """A TLS server whose certificate the client (verifying) rejects."""
    sock.settimeout(DEADLINE)
    with sock:
        try:
            server_context().wrap_socket(sock, server_side=True)
        except OSError:
            pass


@pytest.mark.parametrize("how", ["create_connection", "start_tls"])
def test_failed_tls_handshake_leaves_no_cycles(loop_factory: LoopFactory, how: str) -> None:
    # An exception whose traceback's frames hold it (or the transports) again is
    # freed only by the cyclic collector; asyncio 3.14 breaks those cycles.
    skip_stdlib_before((3, 14), loop_factory, "the failed waiter stays in a cycle (gh-159049)")

    async def main(loop: asyncio.AbstractEventLoop) -> bool:
        a, b = socket.socketpair()
        peer = asyncio.ensure_future(asyncio.to_thread(untrusting_peer, b))
        rejected = False
        verifying = client_context(verify=True)
        try:
            if how == "create_connection":
                await loop.create_connection(
                    asyncio.Protocol, sock=a, ssl=verifying, server_hostname=""
                )
            else:
                transport, protocol = await loop.connect_accepted_socket(asyncio.Protocol, a)
                await loop.start_tls(transport, protocol, verifying, server_hostname="")
        except ssl.SSLCertVerificationError:
            rejected = True
        await peer
        return rejected

    assert cycles_left_by(loop_factory, main) == (True, [])


def test_failed_happy_eyeballs_leaves_no_cycles(loop_factory: LoopFactory) -> None:
    # Libraries (anyio) check that nothing but their own frame refers to the error.
    skip_stdlib_before((3, 14), loop_factory, "the attempts' errors stay in cycles")

    async def main(loop: asyncio.AbstractEventLoop) -> str:
        # A bound, not listening port refuses connections on every address.
        with socket.socket() as closed_port:
            closed_port.bind(("0.0.0.0", 0))
            port = closed_port.getsockname()[1]

            async def resolve(*args: Any, **kw: Any) -> list[Any]:
                family, kind = socket.AF_INET, socket.SOCK_STREAM
                return [
                    (family, kind, 6, "", (address, port)) for address in ("127.0.0.1", "127.0.0.2")
                ]

            loop.getaddrinfo = resolve  # type: ignore[method-assign]
            try:
                await loop.create_connection(
                    asyncio.Protocol, "two.example", port, happy_eyeballs_delay=0.01
                )
            except OSError as exc:
                return type(exc).__name__
        return "connected"

    assert cycles_left_by(loop_factory, main) == ("OSError", [])
