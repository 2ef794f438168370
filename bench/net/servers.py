"""Network benchmark servers: one server on one event loop, in this process.

    python bench/net/servers.py VARIANT LOOP [--port P] [--read-size N]

VARIANT is `protocol`, `streams` or `sockets` (TCP echo) or `http` (HTTP/1.1
keep-alive hello world); LOOP is `asyncio`, `uvloop`, `rloop`, `zuvloop` or `aloop`.
Prints `PORT <n>` once listening on 127.0.0.1, then serves until killed. A loop that
does not import prints `MISSING <reason>` and exits with status 3. bench/net.py starts
one of these per measurement; `bench/net.py --serve` runs one by hand for profiling.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, cast

# The loops and how each is imported: bench/worker.py's table, shared with bench/run.py.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from worker import LOOP_MODULES, import_loop

LoopFactory = Callable[[], asyncio.AbstractEventLoop]
# aloop with its observability on, to measure what that costs per request.
OBSERVED = ("aloop-monitor", "aloop-detail", "aloop-trace")
HOST = "127.0.0.1"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, world!"
READ_SIZE = 65536


class EchoProtocol(asyncio.Protocol):
    """Writes back every chunk it receives."""

    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class HttpProtocol(asyncio.Protocol):
    """Answers every request (GET, no body) with RESPONSE; handles pipelining."""

    transport: asyncio.Transport

    def __init__(self) -> None:
        self.pending = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        buf = self.pending + data if self.pending else data
        start = count = 0
        while (end := buf.find(b"\r\n\r\n", start)) >= 0:
            count += 1
            start = end + 4
        self.pending = buf[start:]
        if count:
            self.transport.write(RESPONSE * count)


async def stream_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """start_server handler: read / write / drain until EOF."""
    try:
        while data := await reader.read(READ_SIZE):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def sock_echo(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> None:
    """One connection served with sock_recv / sock_sendall."""
    with conn:
        try:
            while data := await loop.sock_recv(conn, READ_SIZE):
                await loop.sock_sendall(conn, data)
        except ConnectionError:
            pass


async def sock_server(loop: asyncio.AbstractEventLoop, listener: socket.socket) -> None:
    """Accept with sock_accept; one task per connection."""
    tasks: set[asyncio.Task[None]] = set()
    while True:
        conn, _ = await loop.sock_accept(listener)
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = loop.create_task(sock_echo(loop, conn))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


def listening_socket(port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, port))
    listener.listen(1024)
    listener.setblocking(False)
    return listener


async def start(variant: str, loop: asyncio.AbstractEventLoop, port: int) -> int:
    """Start serving `variant`; return the bound port."""
    listener = listening_socket(port)
    bound: int = listener.getsockname()[1]
    if variant == "protocol":
        await loop.create_server(EchoProtocol, sock=listener)
    elif variant == "http":
        await loop.create_server(HttpProtocol, sock=listener)
    elif variant == "streams":
        await asyncio.start_server(stream_echo, sock=listener)
    elif variant == "sockets":
        keep.append(loop.create_task(sock_server(loop, listener)))
    else:
        raise SystemExit(f"unknown variant {variant!r}")
    return bound


keep: list[asyncio.Task[None]] = []


def loop_factory(name: str) -> LoopFactory:
    if name in OBSERVED:
        return observed_aloop(name.split("-", 1)[1])
    return import_loop(name)[1]


def observed_aloop(mode: str) -> LoopFactory:
    """An aloop loop with the monitor (optionally per-step detail) or a trace recording."""
    import aloop
    from aloop.tooling.monitor import Monitor
    from aloop.tooling.trace import Trace

    def factory() -> asyncio.AbstractEventLoop:
        loop = aloop.new_event_loop()
        if mode == "trace":
            loop.add_instrument(Trace(max_events=100_000))
        else:
            keep_alive.append(Monitor(loop, detail=(mode == "detail")).start())
        return loop

    return factory


keep_alive: list[Any] = []


def run(variant: str, factory: LoopFactory, port: int) -> None:
    loop = factory()
    asyncio.set_event_loop(loop)
    coro: Coroutine[Any, Any, int] = start(variant, loop, port)
    bound = loop.run_until_complete(coro)
    print(f"PORT {bound}", flush=True)
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", choices=["protocol", "streams", "sockets", "http"])
    parser.add_argument("loop", choices=[*LOOP_MODULES, *OBSERVED])
    parser.add_argument("--port", type=int, default=0, help="0: an ephemeral port")
    args = parser.parse_args(argv)
    try:
        factory = loop_factory(args.loop)
    except Exception as exc:  # ImportError or a broken package
        print(f"MISSING {type(exc).__name__}: {exc}", flush=True)
        return 3
    run(args.variant, factory, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
