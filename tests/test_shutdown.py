"""A program may exit with its loop still open: aloop's objects outlive its modules.

At interpreter shutdown CPython frees modules that nothing refers to, then
finalizes what is left. A pending Task's finalizer calls the loop's
``call_exception_handler``, and an open transport or server is torn down.
These run aloop's compiled code after ``sys.modules`` is gone, which crashed
(3.12, 3.13) or hung (3.11) before ``aloop._core.lifetime`` kept the compiled
modules alive. Each program runs in a child Python on both loops; aloop must
end the way the stdlib loop does: same exit status, same output.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from tests.support import aloop_env

PRELUDE = """
import asyncio, socket, sys
import aloop
loop = aloop.new_event_loop() if sys.argv[1] == "aloop" else asyncio.new_event_loop()
asyncio.set_event_loop(loop)
"""

PROGRAMS = {
    # A task parked on a long sleep; the loop is never closed.
    "pending-task": """
async def forever():
    await asyncio.sleep(3600)
keep = [loop.create_task(forever())]
loop.run_until_complete(asyncio.sleep(0.01))
""",
    # A task blocked in sock_recv: a reader is registered on the loop.
    "pending-sock-recv": """
a, b = socket.socketpair()
a.setblocking(False)
keep = [loop.create_task(loop.sock_recv(a, 100))]
loop.run_until_complete(asyncio.sleep(0.01))
""",
    # A server with one live connection (a client transport and a server-side one).
    "open-server": """
class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
    def data_received(self, data):
        self.transport.write(data)

async def main():
    server = await loop.create_server(Echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"ping")
    assert await reader.readexactly(4) == b"ping"
    return server, reader, writer

keep = loop.run_until_complete(main())
""",
    # A stream handler task that never finishes, and the loop stopped from a callback.
    "stopped-from-callback": """
async def handler(reader, writer):
    await reader.read()

async def main():
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conn = await asyncio.open_connection("127.0.0.1", port)
    loop.call_soon(loop.stop)
    return server, conn

keep = loop.create_task(main())
loop.run_forever()
""",
}


def run(program: str, loop: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", PRELUDE + program + "sys.exit(0)\n", loop],
        capture_output=True,
        text=True,
        timeout=60,
        env=aloop_env(),
    )


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_exit_with_the_loop_open(name: str) -> None:
    expected = run(PROGRAMS[name], "asyncio")
    got = run(PROGRAMS[name], "aloop")
    assert expected.returncode == 0, expected.stderr
    assert (got.returncode, got.stdout, got.stderr) == (
        expected.returncode,
        expected.stdout,
        expected.stderr,
    )
