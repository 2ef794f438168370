"""Faults on datagram endpoints (issue 19): each test runs on the stdlib loop and on aloop.

ENOBUFS from the real kernel (a private network namespace whose loopback
queueing discipline drops or holds packets), a peer's ICMP port unreachable,
bad, unroutable and oversized sends, protocol methods that raise, a peer that
does not read (EAGAIN) with close/abort/flush, sends after close, cancellation
mid-flight and running out of fds. The expected behaviour written in each test
is the stdlib loop's, which runs the same test; where the stdlib is at fault,
the test says so.

Only UDP (with ``IP_RECVERR``) sees ENOBUFS on a send: TCP takes a dropped
packet as a loss and retransmits, and Unix sockets say EAGAIN.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import json
import os
import socket
import struct
import sys
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from tests.support import LoopFactory, open_fds, run_with_loop
from tests.test_faults import (
    CALLBACK,
    EMFILE_PRELUDE,
    EMFILE_RUN,
    FATAL,
    Boom,
    loop_name,
    run_emfile_child,
    summarize,
)

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux network namespaces"),
    pytest.mark.usefixtures("no_fd_leak"),
]

TIMEOUT = 60.0
P = TypeVar("P", bound=asyncio.DatagramProtocol)
IP_RECVERR = getattr(socket, "IP_RECVERR", 11)  # in the socket module from 3.14


async def until(condition: Callable[[], object], what: str) -> None:
    """Let the loop run until ``condition()`` holds (a generous deadline, not a timing test)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not condition():
        assert loop.time() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.001)


async def settle() -> None:
    """A few loop iterations: anything scheduled (a second connection_lost...) would run."""
    for _ in range(5):
        await asyncio.sleep(0)


class Recorder(asyncio.DatagramProtocol):
    """Records what a datagram endpoint's protocol is told."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.received: list[tuple[bytes, Any]] = []
        self.errors: list[Exception] = []
        self.events: list[str] = []
        self.lost: list[BaseException | None] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.events.append("made")

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.append((data, addr))

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)

    def pause_writing(self) -> None:
        self.events.append("pause")

    def resume_writing(self) -> None:
        self.events.append("resume")

    def connection_lost(self, exc: BaseException | None) -> None:
        self.events.append("lost")
        self.lost.append(exc)


def described(exc: BaseException | None) -> tuple[str, int | None] | None:
    """What a test compares of an exception: its type's name and errno."""
    if exc is None:
        return None
    return type(exc).__name__, getattr(exc, "errno", None)


def udp_socket(*, recverr: bool = False, sndbuf: int | None = None) -> socket.socket:
    """A non-blocking UDP socket bound on 127.0.0.1."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if recverr:
        sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    if sndbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


# asyncio 3.13.0 counts 8 bytes more per datagram buffered than it takes back
# when sending it (3.13.1 fixed that): its buffer size never returns to 0.
_HEADER_LEAK = sys.version_info[:3] == (3, 13, 0)


def emptied(transport: Any, loop: asyncio.AbstractEventLoop) -> bool:
    """Whether the write buffer size is back to 0 (or only 3.13.0's leak is left)."""
    size = transport.get_write_buffer_size()
    leak = _HEADER_LEAK and type(loop).__module__.startswith("asyncio")
    return size == 0 or (leak and size % 8 == 0 and size < 8 * 1000)


async def endpoint(
    loop: asyncio.AbstractEventLoop, factory: Callable[[], P], **kwargs: Any
) -> tuple[Any, P]:
    """``loop.create_datagram_endpoint()``; the transport typed Any (typeshed's
    DatagramTransport has no write buffer methods, which asyncio's has)."""
    return await loop.create_datagram_endpoint(factory, **kwargs)


def drain(sock: socket.socket) -> list[bytes]:
    """Every datagram waiting on ``sock`` (non-blocking), in order."""
    got = []
    while True:
        try:
            got.append(sock.recv(65536))
        except BlockingIOError:
            return got


# -- a private network namespace whose loopback drops or holds packets --------------------

_CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _SIOCSIFMTU = 0x8913, 0x8914, 0x8922
_RTM_NEWQDISC, _RTM_DELQDISC, _NLMSG_ERROR = 36, 37, 2
_NLM_F_REQUEST, _NLM_F_ACK, _NLM_F_REPLACE, _NLM_F_CREATE = 0x1, 0x4, 0x100, 0x400
_TCA_KIND, _TCA_OPTIONS, _TCA_TBF_PARMS, _TCA_TBF_BURST = 1, 2, 1, 6
_TC_H_ROOT = 0xFFFFFFFF
_TC_LINKLAYER_ETHERNET = 1


def _libc_call(name: str, *args: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}(): {os.strerror(err)}")


def _attr(kind: int, data: bytes) -> bytes:
    """A netlink attribute, padded to 4 bytes."""
    length = 4 + len(data)
    return struct.pack("=HH", length, kind) + data + b"\0" * (-length % 4)


class Loopback:
    """The loopback device of a private network namespace, and its root qdisc.

    Set over rtnetlink and ioctls, so that no ``ip`` or ``tc`` is needed
    (the sid root that runs 3.14 and 3.15 has neither).
    """

    def __init__(self) -> None:
        self.index = socket.if_nametoindex("lo")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            # An MTU of 1500 lets a small token bucket hold a whole packet.
            fcntl.ioctl(sock, _SIOCSIFMTU, struct.pack("16si20x", b"lo", 1500))
            ifreq = fcntl.ioctl(sock, _SIOCGIFFLAGS, struct.pack("16sH22x", b"lo", 0))
            flags = struct.unpack_from("16sH", ifreq)[1] | 1  # IFF_UP
            fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags))

    def _qdisc(self, msg_type: int, flags: int, attrs: bytes = b"") -> None:
        tcmsg = struct.pack("=BxxxiIII", socket.AF_UNSPEC, self.index, 0, _TC_H_ROOT, 0)
        payload = tcmsg + attrs
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0) as nl:  # NETLINK_ROUTE
            nl.bind((0, 0))
            header = struct.pack(
                "=IHHII", 16 + len(payload), msg_type, flags | _NLM_F_REQUEST | _NLM_F_ACK, 1, 0
            )
            nl.send(header + payload)
            reply = nl.recv(65536)
        _, reply_type, _, _, _, error = struct.unpack_from("=IHHIIi", reply)
        assert reply_type == _NLMSG_ERROR, reply_type
        if error:
            raise OSError(-error, f"rtnetlink: {os.strerror(-error)}")

    def drop_all(self) -> None:
        """Every packet sent is dropped at the queue: ``pfifo limit 0``."""
        options = struct.pack("=I", 0)
        attrs = _attr(_TCA_KIND, b"pfifo\0") + _attr(_TCA_OPTIONS, options)
        self._qdisc(_RTM_NEWQDISC, _NLM_F_CREATE | _NLM_F_REPLACE, attrs)

    def hold(self) -> None:
        """One packet passes, the next ones wait in the queue (``tbf rate 1bps``),
        holding their socket's send buffer: the sender soon gets EAGAIN."""
        rate = struct.pack("=BBHhHI", 0, _TC_LINKLAYER_ETHERNET, 0, 0, 0, 1)  # 1 byte/s
        no_peak = struct.pack("=BBHhHI", 0, 0, 0, 0, 0, 0)
        parms = rate + no_peak + struct.pack("=III", 1 << 20, 0, 0)  # limit, buffer, mtu
        options = _attr(_TCA_TBF_PARMS, parms) + _attr(_TCA_TBF_BURST, struct.pack("=I", 2000))
        attrs = _attr(_TCA_KIND, b"tbf\0") + _attr(_TCA_OPTIONS, options)
        self._qdisc(_RTM_NEWQDISC, _NLM_F_CREATE | _NLM_F_REPLACE, attrs)

    def clear(self) -> None:
        """Back to no queue: packets pass again."""
        self._qdisc(_RTM_DELQDISC, 0)


@contextlib.contextmanager
def private_netns() -> Iterator[Loopback]:
    """Run the calling thread in a fresh network namespace with only ``lo``, up.

    A namespace is per thread: sockets this thread creates inside stay in it
    after the thread returns to its own namespace at the end.
    """
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        try:
            _libc_call("unshare", _CLONE_NEWNET)
        except PermissionError:
            pytest.skip("making a network namespace needs CAP_SYS_ADMIN (root); CI runs as root")
        try:
            yield Loopback()
        finally:
            _libc_call("setns", home, _CLONE_NEWNET)
    finally:
        os.close(home)


# -- 1. ENOBUFS ------------------------------------------------------------------------------


@pytest.mark.parametrize("recverr", [True, False], ids=["IP_RECVERR", "default"])
@pytest.mark.parametrize("api", ["sendto", "connected_sendto", "sock_sendto", "sock_sendall"])
def test_enobufs_on_send(loop_factory: LoopFactory, api: str, recverr: bool) -> None:
    """A full (here: dropping) queue: with IP_RECVERR each datagram's ENOBUFS reaches
    error_received, or the sock_* caller; without, the kernel drops them silently.
    Either way the endpoint works again once the queue passes packets."""

    async def main(loop: asyncio.AbstractEventLoop) -> dict[str, Any]:
        receiver = udp_socket()
        sock = udp_socket(recverr=recverr)
        address = receiver.getsockname()
        with receiver:
            if api in ("connected_sendto", "sock_sendall"):
                sock.connect(address)
            out: dict[str, Any] = {}
            net.drop_all()
            if api in ("sendto", "connected_sendto"):
                transport, proto = await endpoint(loop, Recorder, sock=sock)
                to = None if api == "connected_sendto" else address
                for i in range(3):
                    transport.sendto(b"dropped %d" % i, to)
                out["errors"] = [described(e) for e in proto.errors]
                out["buffered"] = transport.get_write_buffer_size()
                out["closing"] = transport.is_closing()
                net.clear()
                transport.sendto(b"after", to)
                out["got"] = await asyncio.wait_for(loop.sock_recv(receiver, 100), TIMEOUT)
                transport.close()
                await until(lambda: proto.lost, "connection_lost")
                await settle()
                out["events"] = proto.events
            else:
                with sock:
                    errors = []
                    for i in range(3):
                        try:
                            if api == "sock_sendto":
                                await loop.sock_sendto(sock, b"dropped %d" % i, address)
                            else:
                                await loop.sock_sendall(sock, b"dropped %d" % i)
                        except OSError as exc:
                            errors.append(exc)
                    out["errors"] = [described(e) for e in errors]
                    net.clear()
                    if api == "sock_sendto":
                        await loop.sock_sendto(sock, b"after", address)
                    else:
                        await loop.sock_sendall(sock, b"after")
                    out["got"] = await asyncio.wait_for(loop.sock_recv(receiver, 100), TIMEOUT)
                    # Nothing waits on the socket any more.
                    out["writer_left"] = loop.remove_writer(sock.fileno())
        return out

    with private_netns() as net:
        out = run_with_loop(loop_factory, main)
    assert out.pop("errors") == ([("OSError", errno.ENOBUFS)] * 3 if recverr else [])
    assert out.pop("got") == b"after"  # the dropped ones are gone, nothing doubled
    if api in ("sendto", "connected_sendto"):
        assert out == {"buffered": 0, "closing": False, "events": ["made", "lost"]}
    else:
        assert out == {"writer_left": False}


class RaisingOnError(Recorder):
    """error_received() records the error, then raises Boom."""

    def error_received(self, exc: Exception) -> None:
        super().error_received(exc)
        raise Boom("error_received")


@pytest.mark.parametrize("variant", ["unconnected", "connected", "error_received_raises"])
def test_enobufs_when_flushing_queued_datagrams(loop_factory: LoopFactory, variant: str) -> None:
    """EAGAIN first (the queue holds the socket's buffer), so datagrams wait in the
    transport; then the queue drops: each waiting datagram gets its own ENOBUFS in
    error_received, in order, and the transport stays open and works again. An
    error_received() that raises is reported per datagram, and the rest still go."""

    async def main(loop: asyncio.AbstractEventLoop) -> dict[str, Any]:
        contexts: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda loop, context: contexts.append(context))
        receiver = udp_socket()
        sock = udp_socket(recverr=True, sndbuf=4096)
        address: Any = receiver.getsockname()
        out: dict[str, Any] = {}
        with receiver:
            if variant == "connected":
                sock.connect(address)
                address = None
            factory = RaisingOnError if variant == "error_received_raises" else Recorder
            transport, proto = await endpoint(loop, factory, sock=sock)
            net.hold()
            sent: list[bytes] = []
            while not transport.get_write_buffer_size():
                assert len(sent) < 1000, "the queue never filled the send buffer"
                sent.append(b"%d" % len(sent) + b"." * 1000)
                transport.sendto(sent[-1], address)
            accepted = len(sent) - 1  # by the kernel: one passed, the rest held in the queue
            for _ in range(4):
                sent.append(b"%d" % len(sent) + b"." * 1000)
                transport.sendto(sent[-1], address)
            out["waiting"] = len(sent) - accepted
            out["errors_before"] = list(proto.errors)
            # Replacing the queue frees what it held (lost, the kernel's doing): the
            # socket is writable, and each waiting datagram is dropped by the new queue.
            net.drop_all()
            await until(lambda: len(proto.errors) >= 5, "five ENOBUFS")
            await settle()
            out["emptied"] = emptied(transport, loop)
            out["errors"] = [described(e) for e in proto.errors]
            out["closing"] = transport.is_closing()
            net.clear()
            transport.sendto(b"after", address)
            got: list[bytes] = []
            while b"after" not in got:
                got.append(await asyncio.wait_for(loop.sock_recv(receiver, 2000), TIMEOUT))
            out["got"] = [g.split(b".")[0] for g in got]
            out["passed_first"] = got[:-1] == sent[:1]
            transport.close()
            await until(lambda: proto.lost, "connection_lost")
            await settle()
            out["events"] = proto.events
        out["contexts"] = [summarize(c) for c in contexts]
        return out

    with private_netns() as net:
        out = run_with_loop(loop_factory, main)
    raising = variant == "error_received_raises"
    assert out.pop("contexts") == [("Exception in callback", CALLBACK, "Boom")] * 5 * raising
    assert out == {
        "waiting": 5,
        "errors_before": [],
        "errors": [("OSError", errno.ENOBUFS)] * 5,
        "emptied": True,
        "closing": False,
        "got": [b"0", b"after"],
        "passed_first": True,
        "events": ["made", "lost"],
    }


def test_enobufs_while_sock_sendto_waits(loop_factory: LoopFactory) -> None:
    """sock_sendto() waiting on a full send buffer (EAGAIN) when the queue starts to
    drop: it raises the ENOBUFS, leaves no writer behind, and the next call works."""

    async def main(loop: asyncio.AbstractEventLoop) -> dict[str, Any]:
        receiver = udp_socket()
        sock = udp_socket(recverr=True, sndbuf=4096)
        address = receiver.getsockname()
        with receiver, sock:
            net.hold()
            with contextlib.suppress(BlockingIOError):
                for _ in range(1000):
                    sock.sendto(b"." * 1000, address)
            waiting = loop.create_task(loop.sock_sendto(sock, b"waits", address))
            await settle()
            out: dict[str, Any] = {"waiting": not waiting.done()}
            net.drop_all()  # frees the held buffer: writable, then dropped
            try:
                await asyncio.wait_for(waiting, TIMEOUT)
            except OSError as exc:
                out["raised"] = described(exc)
            out["writer_left"] = loop.remove_writer(sock.fileno())
            net.clear()
            drain(receiver)  # what passed before the queue held
            out["sent"] = await loop.sock_sendto(sock, b"after", address)
            out["got"] = await asyncio.wait_for(loop.sock_recv(receiver, 100), TIMEOUT)
        return out

    with private_netns() as net:
        out = run_with_loop(loop_factory, main)
    assert out == {
        "waiting": True,
        "raised": ("OSError", errno.ENOBUFS),
        "writer_left": False,
        "sent": 5,
        "got": b"after",
    }


def test_create_datagram_endpoint_no_route(loop_factory: LoopFactory) -> None:
    """remote_addr with no route to it: connect() fails, the error is raised as the
    kernel gave it, and the socket is closed."""

    async def main(loop: asyncio.AbstractEventLoop) -> tuple[str, int | None, str]:
        before = open_fds()
        made: list[Recorder] = []

        def factory() -> Recorder:
            made.append(Recorder())
            return made[-1]

        try:
            await loop.create_datagram_endpoint(factory, remote_addr=("192.0.2.1", 9))
        except OSError as exc:
            assert open_fds() == before and not made
            return type(exc).__name__, exc.errno, str(exc)
        raise AssertionError("connected to an address with no route")

    with private_netns():
        out = run_with_loop(loop_factory, main)
    assert out == ("OSError", errno.ENETUNREACH, "[Errno 101] Network is unreachable")


# -- 2. the peer's ICMP errors, bad and unreachable addresses -------------------------------


def closed_udp_port() -> tuple[str, int]:
    """An address on 127.0.0.1 where nothing listens (just freed: UDP has no TIME_WAIT)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        address: tuple[str, int] = probe.getsockname()
        return address


@pytest.mark.parametrize("connected", [True, False], ids=["connected", "unconnected"])
def test_icmp_port_unreachable(loop_factory: LoopFactory, connected: bool) -> None:
    """A datagram to a closed port: a connected endpoint gets ConnectionRefusedError in
    error_received, once; an unconnected one is not told (Linux reports ICMP errors
    only on connected UDP sockets). It stays open and reaches the port once bound."""

    async def main(loop: asyncio.AbstractEventLoop) -> dict[str, Any]:
        address = closed_udp_port()
        kwargs = {"remote_addr": address} if connected else {"local_addr": ("127.0.0.1", 0)}
        transport, proto = await endpoint(loop, Recorder, **kwargs)
        to = None if connected else address
        here = transport.get_extra_info("sockname")
        out: dict[str, Any] = {}
        transport.sendto(b"anyone?", to)
        if connected:
            await until(lambda: proto.errors, "error_received")
        else:
            # A datagram from a live peer, sent after the ICMP error, comes after it.
            with udp_socket() as other:
                other.sendto(b"from a live peer", here)
                await until(lambda: proto.received, "the live peer's datagram")
        await settle()
        out["errors"] = [described(e) for e in proto.errors]
        out["closing"] = transport.is_closing()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
            listener.bind(address)
            listener.setblocking(False)
            transport.sendto(b"again", to)
            out["got"] = await asyncio.wait_for(loop.sock_recvfrom(listener, 100), TIMEOUT)
            listener.sendto(b"reply", here)
            await until(lambda: b"reply" in [data for data, _ in proto.received], "the reply")
        out["received"] = [data for data, _ in proto.received]
        out["errors_after"] = [described(e) for e in proto.errors]
        transport.close()
        await until(lambda: proto.lost, "connection_lost")
        out["lost"] = proto.lost
        return out

    out = run_with_loop(loop_factory, main)
    errors = [("ConnectionRefusedError", errno.ECONNREFUSED)] if connected else []
    assert out.pop("got")[0] == b"again"
    assert out == {
        "errors": errors,
        "closing": False,
        "received": [b"reply"] if connected else [b"from a live peer", b"reply"],
        "errors_after": errors,
        "lost": [None],
    }


# (how the address is given, needs a namespace with no route out) per case
BAD_ADDRESSES: dict[str, tuple[Any, bool]] = {
    "no_route": (("192.0.2.1", 9), True),
    "port_0": (("127.0.0.1", 0), False),
    "ipv6_on_ipv4": (("::1", 9), False),
    "port_too_big": (("127.0.0.1", 70000), False),
    "not_a_tuple": ("127.0.0.1", False),
}


@pytest.mark.parametrize("case", sorted(BAD_ADDRESSES))
def test_sendto_bad_address(loop_factory: LoopFactory, case: str) -> None:
    """What the kernel refuses (no route, port 0) or the socket module cannot resolve
    goes to error_received and the endpoint works on; what is no address at all
    (OverflowError, TypeError) is a fatal error: handler called, transport closed."""
    address, isolated = BAD_ADDRESSES[case]

    async def main(loop: asyncio.AbstractEventLoop) -> dict[str, Any]:
        contexts: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda loop, context: contexts.append(context))
        transport, proto = await endpoint(loop, Recorder, local_addr=("127.0.0.1", 0))
        out: dict[str, Any] = {}
        transport.sendto(b"lost", address)
        out["errors"] = [described(e) for e in proto.errors]
        out["closing"] = transport.is_closing()
        if not transport.is_closing():
            with udp_socket() as other:
                transport.sendto(b"still works", other.getsockname())
                out["got"] = await asyncio.wait_for(loop.sock_recv(other, 100), TIMEOUT)
            transport.close()
        await until(lambda: proto.lost, "connection_lost")
        await settle()
        out["contexts"] = [summarize(c) for c in contexts]
        out["lost"] = [described(e) for e in proto.lost]
        return out

    with private_netns() if isolated else contextlib.nullcontext():
        out = run_with_loop(loop_factory, main)
    if case in ("port_too_big", "not_a_tuple"):
        exc = "OverflowError" if case == "port_too_big" else "TypeError"
        assert out == {
            "errors": [],
            "closing": True,
            "contexts": [("Fatal write error on datagram transport", FATAL, exc)],
            "lost": [(exc, None)],
        }
    else:
        error = {
            "no_route": ("OSError", errno.ENETUNREACH),
            "port_0": ("OSError", errno.EINVAL),
            "ipv6_on_ipv4": ("gaierror", socket.EAI_ADDRFAMILY),
        }[case]
        assert out == {
            "errors": [error],
            "closing": False,
            "got": b"still works",
            "contexts": [],
            "lost": [None],
        }


@pytest.mark.parametrize("family", ["udp", "unix"])
def test_sendto_datagram_too_big(loop_factory: LoopFactory, family: str) -> None:
    """A datagram bigger than UDP allows, or than a Unix socket's send buffer:
    EMSGSIZE in error_received, nothing buffered, and the endpoint works on."""

    async def main(loop: asyncio.AbstractEventLoop) -> dict[str, Any]:
        sock: socket.socket
        if family == "udp":
            sock, peer = udp_socket(), udp_socket()
            sock.connect(peer.getsockname())
        else:
            sock, peer = unix_dgram_pair()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        with peer:
            transport, proto = await endpoint(loop, Recorder, sock=sock)
            transport.sendto(b"x" * 70000)
            out = {
                "errors": [described(e) for e in proto.errors],
                "buffered": transport.get_write_buffer_size(),
                "closing": transport.is_closing(),
            }
            transport.sendto(b"fits")
            out["got"] = await asyncio.wait_for(loop.sock_recv(peer, 100000), TIMEOUT)
            transport.close()
            await until(lambda: proto.lost, "connection_lost")
            out["lost"] = proto.lost
        return out

    assert run_with_loop(loop_factory, main) == {
        "errors": [("OSError", errno.EMSGSIZE)],
        "buffered": 0,
        "closing": False,
        "got": b"fits",
        "lost": [None],
    }


# -- 3. protocol methods that raise ----------------------------------------------------------


def unix_dgram_pair() -> tuple[socket.socket, socket.socket]:
    """A non-blocking Unix datagram socket connected to a peer with an abstract address.

    The peer is not connected back: its queue fills (EAGAIN) when it does not read.
    """
    peer = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    peer.bind("")  # autobind: a fresh abstract address
    sock.connect(peer.getsockname())
    sock.setblocking(False)
    peer.setblocking(False)
    return sock, peer


class DgramRaiser(Recorder):
    """Raises Boom from the protocol method named ``step``, the first time it runs."""

    def __init__(self, step: str) -> None:
        super().__init__()
        self.step: str | None = step

    def _maybe(self, step: str) -> None:
        if self.step == step:
            self.step = None
            raise Boom(step)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._maybe("connection_made")

    def datagram_received(self, data: bytes, addr: Any) -> None:
        super().datagram_received(data, addr)
        self._maybe("datagram_received")

    def error_received(self, exc: Exception) -> None:
        super().error_received(exc)
        self._maybe("error_received")

    def pause_writing(self) -> None:
        super().pause_writing()
        self._maybe("pause_writing")

    def resume_writing(self) -> None:
        super().resume_writing()
        self._maybe("resume_writing")

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        self._maybe("connection_lost")


# step -> (what the exception handler gets, what sendto raised)
DGRAM_STEPS: dict[str, tuple[list[tuple[str, list[str], str]], str | None]] = {
    "connection_made": ([("Exception in callback", CALLBACK, "Boom")], None),
    "datagram_received": ([("Exception in callback", CALLBACK, "Boom")], None),
    "error_received": ([("Exception in callback", CALLBACK, "Boom")], None),
    # error_received() runs inside sendto(): its exception is sendto()'s.
    "error_received_in_sendto": ([], "Boom"),
    "pause_writing": ([("protocol.pause_writing() failed", FATAL, "Boom")], None),
    "resume_writing": ([("protocol.resume_writing() failed", FATAL, "Boom")], None),
    "connection_lost": ([("Exception in callback", CALLBACK, "Boom")], None),
}


@pytest.mark.parametrize("step", sorted(DGRAM_STEPS))
def test_datagram_protocol_method_raising(loop_factory: LoopFactory, step: str) -> None:
    """The handler gets asyncio's context; the endpoint stays open and works on (the
    transport is not closed for it), connection_lost comes once, the fd is closed."""
    expected_contexts, expected_raised = DGRAM_STEPS[step]
    method = step.removesuffix("_in_sendto")

    async def main(loop: asyncio.AbstractEventLoop) -> dict[str, Any]:
        contexts: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda loop, context: contexts.append(context))
        out: dict[str, Any] = {"raised": None}
        peer: socket.socket
        if step in ("pause_writing", "resume_writing"):
            sock, peer = unix_dgram_pair()
            transport, proto = await endpoint(loop, lambda: DgramRaiser(method), sock=sock)
            transport.set_write_buffer_limits(high=4000)
            count = 0
            while "pause" not in proto.events:
                transport.sendto(b"%d:" % count + b"." * 1000)
                count += 1
                assert count < 10000, "never paused"
            while count:  # the peer reads all: the buffer empties, resume_writing
                await asyncio.wait_for(loop.sock_recv(peer, 2000), TIMEOUT)
                count -= 1
            await until(lambda: "resume" in proto.events, "resume_writing")
        else:
            peer = udp_socket()
            remote = closed_udp_port() if step == "error_received" else None
            transport, proto = await endpoint(
                loop,
                lambda: DgramRaiser(method),
                local_addr=None if remote else ("127.0.0.1", 0),
                remote_addr=remote,
            )
            await settle()
            here = transport.get_extra_info("sockname")
            if step == "datagram_received":
                peer.sendto(b"one", here)
                peer.sendto(b"two", here)
                await until(lambda: len(proto.received) == 2, "two datagrams")
            elif step == "error_received":
                transport.sendto(b"anyone?")  # the closed port's ICMP error, read later
                await until(lambda: proto.errors, "error_received")
            elif step == "error_received_in_sendto":
                try:
                    transport.sendto(b"port 0", ("127.0.0.1", 0))
                except Boom as exc:
                    out["raised"] = type(exc).__name__
            elif step == "connection_lost":
                transport.close()
            out["received"] = [data for data, _ in proto.received]
        with peer:
            await until(lambda: contexts or out["raised"], "the exception")
            await settle()
            out["closing"] = transport.is_closing()
            if step == "connection_lost":
                out["fd_closed"] = transport.get_extra_info("socket").fileno() == -1
            elif step != "error_received":  # that one's peer is a closed port
                to = None if peer.family == socket.AF_UNIX else peer.getsockname()
                transport.sendto(b"still works", to)
                got = b""
                while got != b"still works":  # (the Unix peer first reads what it missed)
                    got = await asyncio.wait_for(loop.sock_recv(peer, 2000), TIMEOUT)
                transport.close()
            else:
                transport.close()
            await until(lambda: proto.lost, "connection_lost")
            await settle()
        out["contexts"] = [summarize(c) for c in contexts]
        out["boom"] = [str(c["exception"]) for c in contexts]
        out["lost"] = [described(e) for e in proto.lost]
        return out

    out = run_with_loop(loop_factory, main)
    assert out.pop("contexts") == expected_contexts
    assert out.pop("boom") == ([method] if expected_contexts else [])
    assert out.pop("raised") == expected_raised
    assert out.pop("closing") == (step == "connection_lost")
    assert out.pop("lost") == [None]
    if step == "datagram_received":
        assert out.pop("received") == [b"one", b"two"]  # the second after the failed first
    if step == "connection_lost":
        assert out.pop("fd_closed")
    assert out.get("received", []) == []


# -- 4. a peer that does not read: EAGAIN, then close, abort or flush -------------------------


@pytest.mark.parametrize("then", ["flush", "close", "abort"])
def test_queued_datagrams(loop_factory: LoopFactory, then: str) -> None:
    """The peer's queue is full (EAGAIN): datagrams wait in the transport, writing
    pauses. Once the peer reads, they leave in order, each once, and writing resumes;
    close() lets them leave first, abort() drops them. connection_lost(None) once."""

    async def main(loop: asyncio.AbstractEventLoop) -> dict[str, Any]:
        sock, peer = unix_dgram_pair()
        out: dict[str, Any] = {}
        with peer:
            transport, proto = await endpoint(loop, Recorder, sock=sock)
            transport.set_write_buffer_limits(high=20000)
            sent: list[bytes] = []
            accepted = None  # how many the kernel took before the first EAGAIN
            for i in range(300):
                sent.append(b"%d:" % i + (bytes(range(251)) * 12)[: 1 + i * 37 % 3000])
                transport.sendto(sent[-1])
                if accepted is None and transport.get_write_buffer_size():
                    accepted = i
            assert accepted is not None and accepted > 0
            out["events_full"] = list(proto.events)
            if then != "flush":
                getattr(transport, then)()
            got: list[bytes] = []
            if then == "abort":
                await until(lambda: proto.lost, "connection_lost")
                got = drain(peer)
                out["got_all_accepted"] = got == sent[:accepted]
            else:
                while len(got) < len(sent):
                    got.append(await asyncio.wait_for(loop.sock_recv(peer, 4000), TIMEOUT))
                out["got_all"] = got == sent
                if then == "close":
                    await until(lambda: proto.lost, "connection_lost")
            await settle()
            out["doubled"] = drain(peer)
            out["emptied"] = emptied(transport, loop)
            out["closing"] = transport.is_closing()
            if then == "flush":
                transport.close()
                await until(lambda: proto.lost, "connection_lost")
                await settle()
            out["events"] = proto.events
            out["lost"] = proto.lost
        return out

    out = run_with_loop(loop_factory, main)
    assert out.pop("events_full") == ["made", "pause"]
    # asyncio before 3.15 does not zero a datagram transport's buffer size when
    # abort() drops the buffer (3.15's _force_close does); aloop says 0.
    stale = loop_name(loop_factory) == "asyncio" and sys.version_info < (3, 15)
    assert out.pop("emptied") or (then == "abort" and stale)
    assert out == {
        "got_all_accepted" if then == "abort" else "got_all": True,
        "doubled": [],
        "closing": then != "flush",
        "events": ["made", "pause", "lost"]
        if then == "abort"
        else ["made", "pause", "resume", "lost"],
        "lost": [None],
    }


@pytest.mark.parametrize("case", ["connected", "unconnected", "flushed"])
def test_sendto_after_connection_lost(
    loop_factory: LoopFactory, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    """sendto() on a closed endpoint drops the datagram; from the fifth on, asyncio's
    warning 'socket.send() raised exception.' is logged. No exception, no handler call.

    asyncio does so only for a connected endpoint closed with nothing to flush:
    otherwise (unconnected, or closed after flushing queued datagrams) it sends on
    its socket, now None, and its fatal-error path raises AttributeError from
    sendto() (a long-standing CPython bug; python/cpython#28110 would have dropped
    the datagram). aloop drops it in every case.
    """

    async def main(loop: asyncio.AbstractEventLoop) -> dict[str, Any]:
        contexts: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda loop, context: contexts.append(context))
        peer: socket.socket
        if case == "flushed":
            sock, peer = unix_dgram_pair()
            transport, proto = await endpoint(loop, Recorder, sock=sock)
            count = 0
            while not transport.get_write_buffer_size():
                transport.sendto(b"queued")
                count += 1
            transport.close()  # flushes what is queued first, once the peer reads
            address = None
        else:
            peer = udp_socket()
            address = peer.getsockname()
            if case == "connected":
                transport, proto = await endpoint(loop, Recorder, remote_addr=address)
                address = None
            else:
                transport, proto = await endpoint(loop, Recorder, local_addr=("127.0.0.1", 0))
            transport.close()
        with peer:
            if case == "flushed":
                for _ in range(count):
                    await asyncio.wait_for(loop.sock_recv(peer, 100), TIMEOUT)
            await until(lambda: proto.lost, "connection_lost")
            raised = []
            for _ in range(7):
                try:
                    transport.sendto(b"too late", address)
                except Exception as exc:
                    raised.append(type(exc).__name__)
            await settle()
            return {
                "raised": raised,
                "contexts": [summarize(c) for c in contexts],
                "got": drain(peer),
                "errors": proto.errors,
            }

    with caplog.at_level("WARNING", logger="asyncio"):
        out = run_with_loop(loop_factory, main)
    warnings = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    if case != "connected" and loop_name(loop_factory) == "asyncio":
        assert out["raised"] == ["AttributeError"] * 7
        return
    assert out == {"raised": [], "contexts": [], "got": [], "errors": []}
    assert warnings == ["socket.send() raised exception."] * 3


# -- 5. cancelled mid-flight ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["local", "remote", "unix"])
def test_cancel_create_datagram_endpoint_at_every_step(
    loop_factory: LoopFactory, kind: str, tmp_path: Any
) -> None:
    """Cancelled after 0, 1, 2... loop iterations: it raises CancelledError or returns;
    a protocol made is told connection_made then connection_lost; no fd is left."""

    async def main(loop: asyncio.AbstractEventLoop) -> list[tuple[str, list[str]]]:
        trace = []
        made: list[Recorder] = []

        def factory() -> Recorder:
            made.append(Recorder())
            return made[-1]

        for n in range(6):
            made.clear()
            if kind == "local":
                kwargs: dict[str, Any] = {"local_addr": ("127.0.0.1", 0)}
            elif kind == "remote":
                kwargs = {"remote_addr": ("127.0.0.1", 9)}
            else:
                kwargs = {"local_addr": str(tmp_path / f"{n}.sock"), "family": socket.AF_UNIX}
            before = open_fds()
            task = loop.create_task(loop.create_datagram_endpoint(factory, **kwargs))
            for _ in range(n):
                await asyncio.sleep(0)
            task.cancel()
            try:
                transport, _ = await task
            except asyncio.CancelledError:
                outcome = "cancelled"
            else:
                outcome = "done"
                transport.close()
            if made:
                await until(lambda: made[0].lost, "connection_lost")
            await settle()
            assert open_fds() == before, f"an fd left after a cancel at step {n}"
            trace.append((outcome, made[0].events if made else []))
        return trace

    trace = run_with_loop(loop_factory, main)
    assert trace == [
        ("cancelled", []),
        # The transport is made: its waiter is cancelled, and it is closed.
        *[("cancelled", ["made", "lost"])] * 2,
        *[("done", ["made", "lost"])] * 3,
    ]


@pytest.mark.parametrize("op", ["sock_recvfrom", "sock_recvfrom_into", "sock_sendto"])
def test_cancel_sock_op_mid_flight(loop_factory: LoopFactory, op: str) -> None:
    """A sock_* call cancelled while it waits leaves no reader or writer behind, and
    takes nothing with it: the next datagram goes to the next call; a cancelled
    sock_sendto's datagram is never sent."""

    async def main(loop: asyncio.AbstractEventLoop) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if op == "sock_sendto":
            sock, peer = unix_dgram_pair()
            filled = 0
            with contextlib.suppress(BlockingIOError):
                while True:
                    sock.send(b"fill %d" % filled)
                    filled += 1
            call: Coroutine[Any, Any, Any] = loop.sock_sendto(
                sock, b"cancelled", peer.getsockname()
            )
        else:
            sock, peer = udp_socket(), udp_socket()
            if op == "sock_recvfrom":
                call = loop.sock_recvfrom(sock, 100)
            else:
                call = loop.sock_recvfrom_into(sock, bytearray(100))
        with sock, peer:
            task = loop.create_task(call)
            await settle()
            out["waiting"] = not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            out["reader_left"] = loop.remove_reader(sock.fileno())
            out["writer_left"] = loop.remove_writer(sock.fileno())
            if op == "sock_sendto":
                got = drain(peer)
                out["filled"] = got == [b"fill %d" % i for i in range(filled)]
                await loop.sock_sendto(sock, b"next", peer.getsockname())
                out["next"] = await asyncio.wait_for(loop.sock_recv(peer, 100), TIMEOUT)
            else:
                peer.sendto(b"next", sock.getsockname())
                data, addr = await asyncio.wait_for(loop.sock_recvfrom(sock, 100), TIMEOUT)
                out["next"] = data
                out["from_peer"] = addr == peer.getsockname()
            await settle()
            out["more"] = drain(peer) + drain(sock)
        return out

    out = run_with_loop(loop_factory, main)
    expected: dict[str, Any] = {
        "waiting": True,
        "reader_left": False,
        "writer_left": False,
        "next": b"next",
        "more": [],
    }
    expected["filled" if op == "sock_sendto" else "from_peer"] = True
    assert out == expected


# -- 6. out of fds ---------------------------------------------------------------------------

EMFILE_ENDPOINTS = (
    EMFILE_PRELUDE
    + r"""
import tempfile

async def attempt(**kwargs):
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, **kwargs
        )
    except OSError as exc:
        return [type(exc).__name__, exc.errno]
    transport.close()
    for _ in range(3):
        await asyncio.sleep(0)
    return ["ok"]

async def main():
    directory = tempfile.mkdtemp()
    path = os.path.join(directory, "endpoint.sock")
    cases = {
        "local": dict(local_addr=("127.0.0.1", 0)),
        "remote": dict(remote_addr=("127.0.0.1", 9)),
        "family": dict(family=socket.AF_INET),
        "unix": dict(local_addr=path, family=socket.AF_UNIX),
    }
    before = len(os.listdir("/proc/self/fd"))
    fds = fill_fds()
    results = {name: await attempt(**kwargs) for name, kwargs in cases.items()}
    os.close(fds.pop())  # one fd free: enough for an endpoint
    results["one_free"] = await attempt(local_addr=("127.0.0.1", 0))
    free_fds(fds)
    results["leaked"] = len(os.listdir("/proc/self/fd")) - before
    results["after"] = {name: await attempt(**kwargs) for name, kwargs in cases.items()}
    os.unlink(path)
    os.rmdir(directory)
    print(json.dumps(results), flush=True)

"""
    + EMFILE_RUN
)


def test_emfile_creating_datagram_endpoints(loop_factory: LoopFactory) -> None:
    """No fd free: create_datagram_endpoint raises OSError(EMFILE) and leaks nothing;
    with one fd free, or once fds are freed, endpoints are made again."""
    proc = run_emfile_child(EMFILE_ENDPOINTS, loop_name(loop_factory))
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    emfile = ["OSError", errno.EMFILE]
    assert results == {
        "local": emfile,
        "remote": emfile,
        "family": emfile,
        "unix": emfile,
        "one_free": ["ok"],
        "leaked": 0,
        "after": {"local": ["ok"], "remote": ["ok"], "family": ["ok"], "unix": ["ok"]},
    }
