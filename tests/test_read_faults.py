"""Reads cause no page-fault storm, even where glibc's mmap threshold is fixed.

A read that allocates a fresh buffer above glibc's mmap threshold is served by
mmap and page-faults on every read. glibc raises its threshold after the first
such block is freed, unless it is fixed (``MALLOC_MMAP_THRESHOLD_``, mallopt):
then asyncio's ``recv(256 KiB)`` costs two faults per read. The server runs
with the threshold fixed at its default, 128 KiB; the stdlib loop is the
control that shows the check sees a storm.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads fault counts from /proc (Linux)"
)

SERVER = r"""
import asyncio, sys
import aloop

class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

loop = aloop.new_event_loop() if sys.argv[1] == "aloop" else asyncio.new_event_loop()
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


def faults_per_read(loop: str, size: int) -> float:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, loop], stdout=subprocess.PIPE, env=env, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            echo(sock, size, 50)  # warm up: imports, first allocations
            before = minor_faults(server.pid)
            echo(sock, size, 400)
            return (minor_faults(server.pid) - before) / 400
    finally:
        server.kill()
        server.wait()


@pytest.mark.parametrize("size", [1024, 100 * 1024])
def test_reads_do_not_page_fault(size: int) -> None:
    assert faults_per_read("aloop", size) < 0.1


def test_the_check_sees_asyncios_fault_storm() -> None:
    # The control: asyncio's recv(256 KiB) crosses the fixed threshold on every read.
    assert faults_per_read("asyncio", 1024) >= 1
