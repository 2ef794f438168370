"""Reads cause no page-fault storm, even where glibc's mmap threshold is fixed.

A read that allocates a fresh buffer above glibc's mmap threshold is served by
mmap and page-faults on every read. glibc raises its threshold after the first
such block is freed, unless it is fixed (``MALLOC_MMAP_THRESHOLD_``, mallopt):
then asyncio's ``recv(256 KiB)`` costs two faults per read. The server runs
with the threshold fixed at its default, 128 KiB; the stdlib loop is the
control that shows the check sees a storm.

Large messages must not make glibc's heap shrink and regrow on every request
either (aloop._io.heap): a 100 KiB stream echo runs with glibc's thresholds
left dynamic, the way a user's process starts; the control fixes the trim
threshold at its default, which aloop leaves alone, and faults.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from aloop._io.heap import is_glibc

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads fault counts from /proc (Linux)"
)

SERVER = r"""
import asyncio, sys
import aloop

async def stream_echo(reader, writer):
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()

class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

loop = aloop.new_event_loop() if sys.argv[1] == "aloop" else asyncio.new_event_loop()
if sys.argv[2] == "streams":
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(asyncio.start_server(stream_echo, "127.0.0.1", 0))
else:
    server = loop.run_until_complete(loop.create_server(Echo, "127.0.0.1", 0))
print(server.sockets[0].getsockname()[1], flush=True)
loop.run_forever()
"""


def minor_faults(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])  # field 10: minflt


def echo(sock: socket.socket, size: int, rounds: int) -> None:
    message = os.urandom(size)
    for _ in range(rounds):
        sock.sendall(message)
        got = bytearray()
        while len(got) < size:
            chunk = sock.recv(size - len(got))
            assert chunk, "server closed"
            got += chunk
        assert got == message


FIXED_MMAP = {"MALLOC_MMAP_THRESHOLD_": "131072"}

# The server's environment: only what finds and configures aloop. Where glibc
# places a large block depends on what the heap already holds, os.environ's
# copy included: with the caller's whole environment a few hundred bytes more
# (a developer's shell against CI's) decided whether a freed 100 KiB block
# ended up at the top of the heap, so whether trimming happened at all.
CHILD_ENV = ("PATH", "HOME", "LANG", "PYTHONPATH", "ALOOP_PURE")


def faults_per_read(
    loop: str, size: int, variant: str = "protocol", malloc: dict[str, str] = FIXED_MMAP
) -> list[float]:
    """Minor faults per read in three windows of 200 echoes, after a warm-up."""
    env = {k: os.environ[k] for k in CHILD_ENV if k in os.environ}
    env.update(malloc)
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, loop, variant], stdout=subprocess.PIPE, env=env, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            echo(sock, size, 50)  # warm up: imports, first allocations
            rates = []
            for _ in range(3):
                before = minor_faults(server.pid)
                echo(sock, size, 200)
                rates.append((minor_faults(server.pid) - before) / 200)
            return rates
    finally:
        server.kill()
        server.wait()


# A storm faults in every window; stray faults (a garbage collection growing an
# arena while the machine is busy) land in one window. The checks take the
# quietest window, the controls the mean.


def quietest(rates: list[float]) -> float:
    return min(rates)


def mean(rates: list[float]) -> float:
    return sum(rates) / len(rates)


@pytest.mark.parametrize("size", [1024, 100 * 1024])
def test_reads_do_not_page_fault(size: int) -> None:
    assert quietest(faults_per_read("aloop", size)) < 0.1


def test_the_check_sees_asyncios_fault_storm() -> None:
    # The control: asyncio's recv(256 KiB) crosses the fixed threshold on every read.
    assert mean(faults_per_read("asyncio", 1024)) >= 1


glibc_only = pytest.mark.skipif(not is_glibc(), reason="tunes glibc's malloc; other libcs differ")


@glibc_only
def test_large_messages_do_not_regrow_the_heap() -> None:
    assert quietest(faults_per_read("aloop", 100 * 1024, "streams", malloc={})) < 0.5


@glibc_only
def test_the_check_sees_heap_regrowth() -> None:
    # The control: with glibc's trim threshold fixed at its default (so aloop
    # cannot move it), the heap is given back and refaulted on every request.
    trim = {"MALLOC_TRIM_THRESHOLD_": "131072"}
    assert mean(faults_per_read("aloop", 100 * 1024, "streams", malloc=trim)) >= 5
