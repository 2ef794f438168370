"""A real program running with its monitor on, for the monitor and web tests."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

from aloop.tooling.monitor import socket_path

PROGRAM = textwrap.dedent(
    """
    import asyncio, os, sys, time
    import aloop

    async def worker():
        await asyncio.sleep(3600)

    async def parent():
        await asyncio.gather(*(asyncio.create_task(worker(), name=f"worker-{i}") for i in range(3)))

    async def victim():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            print("victim cancelled", flush=True)
            raise

    async def main():
        asyncio.current_task().set_name("main")
        family = asyncio.create_task(parent(), name="parent")
        asyncio.create_task(victim(), name="victim")
        await asyncio.sleep(0.05)
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        while True:
            line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
            if line.startswith("block "):
                print("blocking", flush=True)
                flag = line.split(" ", 1)[1]
                deadline = time.monotonic() + 30
                while not os.path.exists(flag) and time.monotonic() < deadline:
                    time.sleep(0.01)   # the loop is blocked here
                print("unblocked", flush=True)
            elif line in ("", "exit"):
                break
        family.cancel()

    aloop.run(main(), monitor=True)
    """
)


# A streams echo server holding CONNECTIONS client connections open: each
# handler task (named conn-N) waits in reader.read() for its client's next line.
CONNECTIONS = 50
SERVER_PROGRAM = textwrap.dedent(
    """
    import asyncio, itertools, sys
    import aloop

    CONNECTIONS = {connections}
    numbers = itertools.count()

    async def handle(reader, writer):
        asyncio.current_task().set_name(f"conn-{next(numbers)}")
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()
        writer.close()

    async def client(port, echoed):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hello\\n")
        assert await reader.readline() == b"hello\\n"
        echoed.release()
        try:
            await reader.read()   # held open until cancelled
        finally:
            writer.close()

    async def main():
        asyncio.current_task().set_name("main")
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        echoed = asyncio.Semaphore(0)
        clients = [
            asyncio.create_task(client(port, echoed), name=f"client-{i}")
            for i in range(CONNECTIONS)
        ]
        for _ in range(CONNECTIONS):
            await echoed.acquire()
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.readline)
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
        server.close()

    aloop.run(main(), monitor=True)
    """
).replace("{connections}", str(CONNECTIONS))


# Two aloop loops one after the other, made the way argv[1] says, each running
# a task main-N until a line arrives on stdin; no monitor or trace asked for
# in the code (the environment decides).
LOOPS_PROGRAM = textwrap.dedent(
    """
    import asyncio, sys
    import aloop

    async def main(n):
        asyncio.current_task().set_name(f"main-{n}")
        print(f"ready {n}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

    how = sys.argv[1]
    for n in (1, 2):
        if how == "asyncio.run":
            if sys.version_info >= (3, 12):
                asyncio.run(main(n), loop_factory=aloop.new_event_loop)
            else:
                with asyncio.Runner(loop_factory=aloop.new_event_loop) as runner:
                    runner.run(main(n))
        elif how == "Loop":
            loop = aloop.Loop()
            loop.run_until_complete(main(n))
            loop.close()
        else:
            aloop.run(main(n), monitor={"run": None, "run-off": False}[how])
    print("done", flush=True)
    """
)


class Program:
    def __init__(
        self,
        tmp: Path,
        source: str = PROGRAM,
        *,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        ready: str = "ready",
        stderr: int | None = None,
    ) -> None:
        script = tmp / "monitored.py"
        script.write_text(source)
        self.proc = subprocess.Popen(
            [sys.executable, str(script), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, **(env or {})},
        )
        assert self.readline() == ready

    @property
    def pid(self) -> int:
        return self.proc.pid

    def readline(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        """Kill it if still running, and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def run_program(tmp_path: Path, source: str = PROGRAM) -> Iterator[Program]:
    """The monitored program, stopped (and its socket checked gone) afterwards."""
    prog = Program(tmp_path, source)
    try:
        yield prog
        if prog.proc.poll() is None:
            prog.send("exit")
            prog.proc.wait(30)
    finally:
        prog.stop()
    assert not os.path.exists(socket_path(prog.pid)), "the monitor left its socket behind"


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``python -m aloop ARGS`` with a wide terminal."""
    return subprocess.run(
        [sys.executable, "-m", "aloop", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
        env={**os.environ, "COLUMNS": "250"},
    )
