"""aloop's own TLS layer (``aloop._transports.tls``), differential against the stdlib loop.

Real loopback connections (socket pairs), each program run on both loops with the
same expected result: flow control both ways with slow readers, close_notify on
close() and none on abort(), handshake and shutdown timeouts, start_tls on both
sides and TLS inside TLS, a BufferedProtocol app, set_protocol() mid-stream, a
paused reader that the peer's EOF must not lose data for, and no fd left open.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any

import pytest
from tests.support import LoopFactory, client_context, pattern, requires_test_certs, server_context
from tests.support import run_with_loop as run
from tests.test_tls import skip_stdlib_before

import aloop
from aloop._transports.tls import SSLProtocol, SSLTransport

pytestmark = [pytest.mark.usefixtures("no_fd_leak"), requires_test_certs]

# Every program gives up after this long rather than hanging the test run.
DEADLINE = 30.0


def digest(data: bytes | bytearray) -> str:
    return hashlib.sha256(data).hexdigest()


async def tls_pair(
    loop: asyncio.AbstractEventLoop,
    server_factory: Callable[[], asyncio.BaseProtocol],
    client_factory: Callable[[], asyncio.BaseProtocol],
    **client_kw: Any,
) -> tuple[tuple[asyncio.BaseTransport, Any], tuple[asyncio.BaseTransport, Any]]:
    """Both ends of one TLS connection over a socket pair, both on ``loop``."""
    a, b = socket.socketpair()
    server = loop.connect_accepted_socket(server_factory, a, ssl=server_context())
    client = loop.create_connection(
        client_factory, sock=b, ssl=client_context(), server_hostname="", **client_kw
    )
    srv, cli = await asyncio.gather(server, client)
    return srv, cli


class Recorder(asyncio.Protocol):
    """Keeps what arrives and how the connection ended."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.data = bytearray()
        self.eof = False
        self.lost: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.data += data

    def eof_received(self) -> None:
        self.eof = True

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost.set_result(exc)


# -- flow control ------------------------------------------------------------------------


class SlowPeer(asyncio.Protocol):
    """Sends ``payload`` as fast as flow control allows; reads slowly (pauses after each read)."""

    CHUNK = 64 * 1024

    def __init__(self, payload: bytes, expect: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.payload = payload
        self.expect = expect
        self.sent = 0
        self.received = bytearray()
        self.paused = False
        self.pauses = 0
        self.resumes = 0
        self.max_app_buffer = 0
        self.max_raw_buffer = 0
        self.transport: Any = None
        self.done: asyncio.Future[None] = self.loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.pump()

    def pump(self) -> None:
        while self.sent < len(self.payload) and not self.paused:
            piece = self.payload[self.sent : self.sent + self.CHUNK]
            self.transport.write(piece)
            self.sent += len(piece)
            self.note_buffers()
        self.check_done()

    def note_buffers(self) -> None:
        self.max_app_buffer = max(self.max_app_buffer, self.transport.get_write_buffer_size())
        proto = getattr(self.transport, "_ssl_protocol", None)
        raw = getattr(proto, "_transport", None)
        if raw is not None:
            self.max_raw_buffer = max(self.max_raw_buffer, raw.get_write_buffer_size())

    def pause_writing(self) -> None:
        self.paused = True
        self.pauses += 1

    def resume_writing(self) -> None:
        self.paused = False
        self.resumes += 1
        self.pump()

    def data_received(self, data: bytes) -> None:
        self.received += data
        # A slow consumer: nothing more for a few milliseconds.
        self.transport.pause_reading()
        self.loop.call_later(0.002, self.transport.resume_reading)
        self.check_done()

    def check_done(self) -> None:
        finished = self.sent == len(self.payload) and len(self.received) >= self.expect
        if finished and not self.paused and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.done.done():
            self.done.set_exception(exc or ConnectionResetError("lost early"))


def test_large_transfer_both_ways_with_slow_readers(loop_factory: LoopFactory) -> None:
    size = 6 * 1024 * 1024
    to_server, to_client = pattern(size, 1), pattern(size, 2)

    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        (st, sp), (ct, cp) = await tls_pair(
            loop, lambda: SlowPeer(to_client, size), lambda: SlowPeer(to_server, size)
        )
        await asyncio.wait_for(asyncio.gather(sp.done, cp.done), DEADLINE)
        high = ct.get_write_buffer_limits()[1]
        out = [
            digest(sp.received) == digest(to_server),
            digest(cp.received) == digest(to_client),
            sp.pauses > 0 and cp.pauses > 0,
            (sp.pauses, cp.pauses) == (sp.resumes, cp.resumes),
            # Bounded: the app-side buffer never grows past high water plus one write.
            max(sp.max_app_buffer, cp.max_app_buffer) <= high + SlowPeer.CHUNK,
            ct.get_write_buffer_size(),
        ]
        if isinstance(ct, SSLTransport):
            # And the raw transport never holds more than about one BIO's worth.
            out.append(max(sp.max_raw_buffer, cp.max_raw_buffer) <= 2 * high + SlowPeer.CHUNK)
        else:
            out.append(True)
        ct.close()
        st.close()
        await asyncio.sleep(0.05)
        return out

    assert run(loop_factory, main) == [True, True, True, True, True, 0, True]


def test_write_buffer_limits_and_pause_at_high_water(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        a, b = socket.socketpair()
        b.setblocking(False)
        # A peer that answers the handshake and then reads nothing: the client's data piles up.
        release = threading.Event()
        peer = asyncio.ensure_future(silent_tls_peer(b, release))
        proto = SlowPeer(b"", 0)
        transport, _ = await loop.create_connection(
            lambda: proto, sock=a, ssl=client_context(), server_hostname=""
        )
        out: list[Any] = [transport.get_write_buffer_limits()]
        transport.set_write_buffer_limits(high=1024)
        out.append(transport.get_write_buffer_limits())
        for _ in range(64):
            transport.write(b"x" * 65536)
            if proto.paused:
                break
        out.append(proto.paused)
        out.append(transport.get_write_buffer_size() > 1024)
        with pytest.raises(ValueError, match="must be >= low"):
            transport.set_write_buffer_limits(high=1, low=2)
        transport.abort()
        release.set()
        await peer
        return out

    assert run(loop_factory, main) == [(131072, 524288), (256, 1024), True, True]


async def silent_tls_peer(sock: socket.socket, release: threading.Event) -> None:
    """Complete the server handshake in a thread, then send nothing and read nothing
    until ``release`` is set; then swallow raw bytes until the other side hangs up."""

    def peer() -> None:
        sock.setblocking(True)
        sock.settimeout(DEADLINE)
        with server_context().wrap_socket(sock, server_side=True) as tls:
            release.wait(DEADLINE)
            raw = socket.socket(fileno=socket.dup(tls.fileno()))
            with raw:
                try:
                    while raw.recv(1 << 20):
                        pass
                except OSError:
                    pass

    await asyncio.to_thread(peer)


# -- closing -----------------------------------------------------------------------------


def tls_thread_server(sock: socket.socket, answer_close_notify: bool) -> tuple[str, bytes]:
    """A blocking TLS server: reads until the client's close_notify (or a ragged EOF)."""
    sock.setblocking(True)
    sock.settimeout(DEADLINE)
    tls = server_context().wrap_socket(sock, server_side=True, suppress_ragged_eofs=False)
    data = b""
    try:
        while True:
            try:
                chunk = tls.recv(65536)
            except (ssl.SSLEOFError, ConnectionResetError, BrokenPipeError):
                # The TCP connection ended without close_notify. OpenSSL 3.0 reports
                # that as SSLEOFError; newer releases (3.6, which the 3.14 and 3.15
                # builds here use) first try to send an alert, which fails on the
                # closed socket with EPIPE.
                return "ragged EOF", data
            if not chunk:
                if answer_close_notify:
                    tls.unwrap().close()
                return "close_notify", data
            data += chunk
    finally:
        tls.close()


def test_close_sends_close_notify(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        a, b = socket.socketpair()
        peer = asyncio.ensure_future(asyncio.to_thread(tls_thread_server, b, True))
        transport, proto = await loop.create_connection(
            Recorder, sock=a, ssl=client_context(), server_hostname=""
        )
        transport.write(b"hello ")
        transport.writelines([b"over ", bytearray(b"tls"), memoryview(b"!")])
        transport.close()
        out = [transport.is_closing(), await asyncio.wait_for(proto.lost, DEADLINE)]
        out.append(await peer)
        out.append(proto.eof)  # the peer's close_notify answer reached the app as EOF
        return out

    assert run(loop_factory, main) == [True, None, ("close_notify", b"hello over tls!"), True]


def test_peer_close_notify_is_a_clean_eof(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        (st, sp), (ct, cp) = await tls_pair(loop, Recorder, Recorder)
        st.write(b"bye")
        st.close()
        lost = await asyncio.wait_for(asyncio.gather(sp.lost, cp.lost), DEADLINE)
        return [bytes(cp.data), cp.eof, sp.eof, lost, ct.is_closing()]

    assert run(loop_factory, main) == [b"bye", True, True, [None, None], True]


def test_abort_sends_no_close_notify(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        a, b = socket.socketpair()
        peer = asyncio.ensure_future(asyncio.to_thread(tls_thread_server, b, False))
        transport, proto = await loop.create_connection(
            Recorder, sock=a, ssl=client_context(), server_hostname=""
        )
        transport.write(b"partial")
        await asyncio.sleep(0.05)
        transport.abort()
        exc = await asyncio.wait_for(proto.lost, DEADLINE)
        kind, data = await peer
        return [transport.is_closing(), exc, kind, data]

    assert run(loop_factory, main) == [True, None, "ragged EOF", b"partial"]


def test_handshake_timeout(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        a, b = socket.socketpair()
        messages: list[Any] = []
        loop.set_exception_handler(lambda loop, ctx: messages.append(ctx))

        def silent_peer() -> bytes:
            # Reads the ClientHello, never answers, returns when the client hangs up.
            b.settimeout(DEADLINE)
            seen = b""
            while chunk := b.recv(65536):
                seen += chunk
            b.close()
            return seen[:1]

        peer = asyncio.ensure_future(asyncio.to_thread(silent_peer))
        started = loop.time()
        try:
            await loop.create_connection(
                asyncio.Protocol,
                sock=a,
                ssl=client_context(),
                server_hostname="",
                ssl_handshake_timeout=0.3,
            )
        except ConnectionAbortedError as exc:
            error = str(exc)
        elapsed = loop.time() - started
        # The timer cannot fire before its delay (no upper bound: timing is not tested).
        return [error, elapsed >= 0.25, await peer, messages]

    assert run(loop_factory, main) == [
        "SSL handshake is taking longer than 0.3 seconds: aborting the connection",
        True,
        b"\x16",
        [],
    ]


def test_shutdown_timeout_when_peer_never_answers(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        a, b = socket.socketpair()
        b.setblocking(False)
        release = threading.Event()
        peer = asyncio.ensure_future(silent_tls_peer(b, release))
        transport, proto = await loop.create_connection(
            Recorder, sock=a, ssl=client_context(), server_hostname="", ssl_shutdown_timeout=0.3
        )
        started = loop.time()
        transport.close()
        exc = await asyncio.wait_for(proto.lost, DEADLINE)
        elapsed = loop.time() - started
        release.set()
        await peer
        return [type(exc).__name__, str(exc), elapsed >= 0.25]

    assert run(loop_factory, main) == ["TimeoutError", "SSL shutdown timed out", True]


class Filler(Recorder):
    """Also records whether the transport asked it to stop writing."""

    def __init__(self) -> None:
        super().__init__()
        self.paused = False

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False


def eof_then_deaf_peer(sock: socket.socket, filled: threading.Event, done: threading.Event) -> None:
    """A TLS server that, once the client has filled the connection, sends a TCP EOF
    (no close_notify) and never reads again, keeping its socket open until ``done``."""
    sock.settimeout(DEADLINE)
    with server_context().wrap_socket(sock, server_side=True) as tls:
        filled.wait(DEADLINE)
        tls.shutdown(socket.SHUT_WR)
        done.wait(DEADLINE)


@pytest.mark.parametrize("close_first", [True, False], ids=["close-then-eof", "eof-only"])
def test_shutdown_timeout_covers_a_peer_that_sent_eof_and_stopped_reading(
    loop_factory: LoopFactory, close_first: bool
) -> None:
    # After the peer's EOF the shutdown is over on the TLS side, but the raw
    # transport still flushes what it buffered before closing, which a peer that
    # does not read delays forever: the shutdown timeout must cover that too.
    skip_stdlib_before((3, 14), loop_factory, "the timeout stops at the peer's EOF")

    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        a, b = socket.socketpair()
        filled, done = threading.Event(), threading.Event()
        peer = asyncio.ensure_future(asyncio.to_thread(eof_then_deaf_peer, b, filled, done))
        transport, proto = await loop.create_connection(
            Filler, sock=a, ssl=client_context(), server_hostname="", ssl_shutdown_timeout=0.2
        )
        try:
            chunk = bytes(1 << 20)
            for _ in range(64):
                if proto.paused:
                    break
                transport.write(chunk)
                await asyncio.sleep(0)
            if close_first:
                transport.close()
            filled.set()
            exc = await asyncio.wait_for(proto.lost, DEADLINE)
        finally:
            filled.set()
            done.set()
            transport.abort()
        await peer
        return [proto.paused, type(exc).__name__, str(exc)]

    assert run(loop_factory, main) == [True, "TimeoutError", "SSL shutdown timed out"]


def handshaken_peer(sock: socket.socket) -> ssl.SSLSocket:
    sock.settimeout(DEADLINE)
    return server_context().wrap_socket(sock, server_side=True)


def test_transport_is_closing_once_the_raw_one_is(loop_factory: LoopFactory) -> None:
    # A failed write closes the raw transport at once; connection_lost() comes an
    # iteration later. Since 3.14 (gh-118950) the TLS transport says it is closing
    # in between (StreamWriter.drain() relies on it); before, it did not.
    expected = hasattr(asyncio.sslproto.SSLProtocol, "_is_transport_closing")

    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        a, b = socket.socketpair()
        handshake = asyncio.ensure_future(asyncio.to_thread(handshaken_peer, b))
        transport, proto = await loop.create_connection(
            Recorder, sock=a, ssl=client_context(), server_hostname=""
        )
        (await handshake).close()  # the client's next write fails (EPIPE)
        transport.write(b"into the void")
        closing = transport.is_closing()
        exc = await asyncio.wait_for(proto.lost, DEADLINE)
        return [closing, type(exc).__name__, transport.is_closing()]

    assert run(loop_factory, main) == [expected, "BrokenPipeError", True]


def test_timeouts_must_be_positive(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> list[str]:
        out = []
        for kw in ({"ssl_handshake_timeout": 0}, {"ssl_shutdown_timeout": -1}):
            a, b = socket.socketpair()
            try:
                await loop.create_connection(
                    asyncio.Protocol, sock=a, ssl=client_context(), server_hostname="", **kw
                )
            except ValueError as exc:
                out.append(str(exc))
            a.close()
            b.close()
        return out

    assert run(loop_factory, main) == [
        "ssl_handshake_timeout should be a positive number, got 0",
        "ssl_shutdown_timeout should be a positive number, got -1",
    ]


def test_writes_after_close_are_dropped(
    loop_factory: LoopFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        (_st, sp), (ct, cp) = await tls_pair(loop, Recorder, Recorder)
        ct.close()
        for _ in range(8):
            ct.write(b"late")
        await asyncio.wait_for(asyncio.gather(sp.lost, cp.lost), DEADLINE)
        return [bytes(sp.data)]

    with caplog.at_level("WARNING", logger="asyncio"):
        assert run(loop_factory, main) == [b""]
    assert [r.getMessage() for r in caplog.records].count("SSL connection is closed") == 3


# -- the transport's interface ------------------------------------------------------------


def test_transport_interface(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        (st, sp), (ct, cp) = await tls_pair(loop, Recorder, Recorder)
        out: list[Any] = [
            isinstance(ct, asyncio.Transport),
            ct.can_write_eof(),
            ct.is_reading(),
            ct.get_protocol() is cp,
            isinstance(ct.get_extra_info("ssl_object"), ssl.SSLObject),
            ct.get_extra_info("sslcontext") is not None,
            ct.get_extra_info("cipher")[1],
            ct.get_extra_info("compression"),
            st.get_extra_info("peercert"),
            ct.get_extra_info("socket") is not None,
            ct.get_extra_info("sockname"),
            ct.get_extra_info("nonsense", "default"),
            ct.get_write_buffer_size(),
            ct.get_read_buffer_size(),  # type: ignore[attr-defined]
            ct.get_read_buffer_limits(),  # type: ignore[attr-defined]
            ct._protocol_paused,  # type: ignore[attr-defined]  # the sendfile fallback reads it
        ]
        with pytest.raises(NotImplementedError):
            ct.write_eof()
        with pytest.raises(TypeError, match="bytes-like"):
            ct.write("text")
        ct.pause_reading()
        out.append(ct.is_reading())
        ct.resume_reading()
        out.append(ct.is_reading())
        ct.close()
        await asyncio.wait_for(asyncio.gather(sp.lost, cp.lost), DEADLINE)
        out += [
            ct.is_closing(),
            isinstance(ct.get_extra_info("ssl_object"), ssl.SSLObject),
            ct.get_extra_info("peername", "gone"),  # the raw transport's info is gone
            ct.get_protocol(),
        ]
        ct.close()  # twice is fine
        return out

    assert run(loop_factory, main) == [
        True,
        False,
        True,
        True,
        True,
        True,
        "TLSv1.3",
        None,
        None,
        True,
        "",
        "default",
        0,
        0,
        (65536, 262144),
        False,
        False,
        True,
        True,
        True,
        "gone",
        None,
    ]


def test_paused_reader_loses_nothing_when_peer_closes(loop_factory: LoopFactory) -> None:
    payload = pattern(1024 * 1024, 7)

    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        (st, sp), (ct, cp) = await tls_pair(loop, Recorder, Recorder)
        ct.pause_reading()
        st.write(payload)
        st.close()
        await asyncio.sleep(0.2)
        held = len(cp.data)
        ct.resume_reading()
        await asyncio.wait_for(asyncio.gather(sp.lost, cp.lost), DEADLINE)
        return [held, digest(cp.data) == digest(payload), cp.eof]

    assert run(loop_factory, main) == [0, True, True]


# -- application protocols -----------------------------------------------------------------


class SmallBuffers(asyncio.BufferedProtocol):
    """A BufferedProtocol that lends a tiny buffer, so plaintext arrives in many pieces."""

    def __init__(self, lend_bytearray: bool = False) -> None:
        self.buffer = bytearray(1000)
        # The stdlib's TLS layer loses data when lent a bytearray (it slices it, which
        # copies); aloop's does not, so only aloop is tested with one.
        self.lend: bytearray | memoryview = (
            self.buffer if lend_bytearray else memoryview(self.buffer)
        )
        self.data = bytearray()
        self.calls = 0
        self.eof = False
        self.lost: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    def get_buffer(self, sizehint: int) -> bytearray | memoryview:
        return self.lend

    def buffer_updated(self, nbytes: int) -> None:
        self.calls += 1
        self.data += self.buffer[:nbytes]

    def eof_received(self) -> None:
        self.eof = True

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost.set_result(exc)


def test_buffered_protocol_as_app_protocol(loop_factory: LoopFactory) -> None:
    payload = pattern(300_000, 3)

    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        (st, _sp), (_ct, cp) = await tls_pair(loop, Recorder, SmallBuffers)
        st.write(payload)
        st.close()
        exc = await asyncio.wait_for(cp.lost, DEADLINE)
        return [exc, digest(cp.data) == digest(payload), cp.eof, cp.calls >= 300]

    assert run(loop_factory, main) == [None, True, True, True]


def test_buffered_protocol_lending_a_bytearray() -> None:
    payload = pattern(300_000, 4)

    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        (st, _sp), (_ct, cp) = await tls_pair(loop, Recorder, lambda: SmallBuffers(True))
        st.write(payload)
        st.close()
        exc = await asyncio.wait_for(cp.lost, DEADLINE)
        return [exc, digest(cp.data) == digest(payload), cp.eof]

    assert run(aloop.new_event_loop, main) == [None, True, True]


def test_set_protocol_mid_stream(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        (st, _sp), (ct, cp) = await tls_pair(loop, Recorder, Recorder)
        st.write(b"first")
        while len(cp.data) < 5:
            await asyncio.sleep(0.01)
        second = SmallBuffers()
        ct.set_protocol(second)
        st.write(b"second")
        st.close()
        exc = await asyncio.wait_for(second.lost, DEADLINE)
        return [bytes(cp.data), bytes(second.data), second.eof, exc, ct.get_protocol() is None]

    assert run(loop_factory, main) == [b"first", b"second", True, None, True]


# -- start_tls --------------------------------------------------------------------------


class Upgradable(Recorder):
    """A plain protocol that sees data before and after the upgrade."""


def test_start_tls_client_and_server(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        a, b = socket.socketpair()
        (st, sp), (ct, cp) = await asyncio.gather(
            loop.connect_accepted_socket(Upgradable, a),
            loop.create_connection(Upgradable, sock=b),
        )
        ct.write(b"STARTTLS")
        while bytes(sp.data) != b"STARTTLS":
            await asyncio.sleep(0.01)
        server_new = SmallBuffers()
        tls_server, tls_client = await asyncio.wait_for(
            asyncio.gather(
                loop.start_tls(st, server_new, server_context(), server_side=True),
                loop.start_tls(ct, cp, client_context(), server_hostname=""),
            ),
            DEADLINE,
        )
        out: list[Any] = [
            tls_client.get_protocol() is cp,
            isinstance(tls_client.get_extra_info("ssl_object"), ssl.SSLObject),
            st.is_closing(),  # the plain transport carries TLS now; it stays open
        ]
        tls_client.write(b"secret")
        tls_server.write(b"answer")
        while bytes(cp.data) != b"answer" or len(server_new.data) < 6:
            await asyncio.sleep(0.01)
        tls_client.close()
        await asyncio.wait_for(asyncio.gather(server_new.lost, cp.lost), DEADLINE)
        out += [bytes(server_new.data), bytes(cp.data), server_new.eof]
        return out

    assert run(loop_factory, main) == [True, True, False, b"secret", b"answer", True]


def test_tls_inside_tls(loop_factory: LoopFactory) -> None:
    """start_tls on a TLS transport (a tunnel through a TLS proxy)."""

    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        (st, _sp), (ct, cp) = await tls_pair(loop, Recorder, Recorder)
        inner_server = Recorder()
        _inner_st, inner_ct = await asyncio.wait_for(
            asyncio.gather(
                loop.start_tls(st, inner_server, server_context(), server_side=True),
                loop.start_tls(ct, cp, client_context(), server_hostname=""),
            ),
            DEADLINE,
        )
        outer_obj = ct.get_extra_info("ssl_object")
        inner_obj = inner_ct.get_extra_info("ssl_object")
        payload = pattern(200_000, 5)
        inner_ct.write(payload)
        while len(inner_server.data) < len(payload):
            await asyncio.sleep(0.01)
        inner_ct.close()
        # The inner shutdown closes the outer TLS transports, and those the sockets.
        await asyncio.wait_for(asyncio.gather(inner_server.lost, cp.lost), DEADLINE)
        return [inner_obj is not outer_obj, digest(inner_server.data) == digest(payload)]

    assert run(loop_factory, main) == [True, True]


# -- aloop only ------------------------------------------------------------------------------


def test_aloop_uses_its_own_tls_layer() -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        (_st, sp), (ct, cp) = await tls_pair(loop, Recorder, Recorder)
        proto = ct._ssl_protocol  # type: ignore[attr-defined]
        out = [type(ct).__name__, isinstance(proto, SSLProtocol), proto._state.value]
        raw = proto._transport
        out.append(type(raw).__name__)
        ct.close()
        await asyncio.wait_for(asyncio.gather(sp.lost, cp.lost), DEADLINE)
        out.append(proto._state.value)
        return out

    assert run(aloop.new_event_loop, main) == [
        "SSLTransport",
        True,
        "WRAPPED",
        "StreamTransport",
        "UNWRAPPED",
    ]


def test_sslprotocol_checks_its_arguments() -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        out = []
        with pytest.raises(ValueError, match="Server side SSL needs a valid SSLContext"):
            SSLProtocol(loop, asyncio.Protocol(), None, None, server_side=True)
        proto = SSLProtocol(loop, asyncio.Protocol(), None, None, server_hostname="example.org")
        out.append(str(proto._extra["sslcontext"].check_hostname))
        transport = proto._app_transport
        assert transport is not None
        transport.close()
        return out

    loop = aloop.new_event_loop()
    try:
        assert loop.run_until_complete(main()) == ["True"]
    finally:
        loop.close()


def test_unclosed_transport_warns() -> None:
    loop = aloop.new_event_loop()
    try:
        proto = SSLProtocol(loop, asyncio.Protocol(), client_context(), None)
        transport = proto._app_transport
        proto._app_transport = None
        with pytest.warns(ResourceWarning, match="unclosed transport"):
            del transport
            gc.collect()
    finally:
        loop.close()


def test_cpython_sslprotocol_unit_tests_pass_on_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    """CPython's SslProtoHandshakeTests build ``asyncio.sslproto.SSLProtocol`` on a mock
    transport; pointed at aloop's classes they must pass just the same."""
    import types
    import unittest

    from test.test_asyncio import test_sslproto

    from aloop._transports import tls

    ours = types.SimpleNamespace(
        SSLProtocol=tls.SSLProtocol,
        SSLProtocolState=tls.TLSState,
        AppProtocolState=tls.AppState,
    )
    monkeypatch.setattr(test_sslproto, "sslproto", ours)
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(test_sslproto.SslProtoHandshakeTests)
    result = unittest.TestResult()
    suite.run(result)
    problems = [(str(test), text) for test, text in result.failures + result.errors]
    assert problems == []
    assert result.testsRun >= 10


def test_loops_in_two_threads_do_not_share_received_bytes() -> None:
    """The receive buffer is shared per thread; loops in two threads must not mix data."""
    size = 2 * 1024 * 1024
    results: list[Any] = []

    def one(seed: int) -> None:
        to_server, to_client = pattern(size, seed), pattern(size, seed + 1)

        async def main(loop: asyncio.AbstractEventLoop) -> bool:
            (st, sp), (ct, cp) = await tls_pair(
                loop, lambda: SlowPeer(to_client, size), lambda: SlowPeer(to_server, size)
            )
            await asyncio.wait_for(asyncio.gather(sp.done, cp.done), DEADLINE)
            ct.close()
            st.close()
            await asyncio.sleep(0.05)
            return digest(sp.received) == digest(to_server) and digest(cp.received) == digest(
                to_client
            )

        results.append(run(aloop.new_event_loop, main))

    threads = [threading.Thread(target=one, args=(seed,)) for seed in (10, 20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE)
    assert results == [True, True]
