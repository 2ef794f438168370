"""The monitor and ``python -m aloop``, against a real monitored program."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

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


class Program:
    def __init__(self, tmp: Path) -> None:
        script = tmp / "monitored.py"
        script.write_text(PROGRAM)
        self.proc = subprocess.Popen(
            [sys.executable, str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.readline() == "ready"

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


@pytest.fixture
def program(tmp_path: Path) -> Iterator[Program]:
    prog = Program(tmp_path)
    yield prog
    if prog.proc.poll() is None:
        prog.send("exit")
        prog.proc.wait(30)
    assert not os.path.exists(socket_path(prog.pid)), "the monitor left its socket behind"


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aloop", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
        env={**os.environ, "COLUMNS": "250"},
    )


def test_ps_lists_every_task_with_state_and_wait(program: Program) -> None:
    out = cli("ps", str(program.pid)).stdout
    for name in ("main", "parent", "worker-0", "worker-1", "worker-2", "victim"):
        assert name in out
    worker_line = next(line for line in out.splitlines() if "worker-1" in line)
    assert "waiting" in worker_line and "sleep until" in worker_line and "parent" in worker_line


def test_pstree_nests_children_under_parents(program: Program) -> None:
    lines = cli("pstree", str(program.pid)).stdout.splitlines()
    parent = next(i for i, line in enumerate(lines) if "parent [waiting]" in line)
    worker = next(i for i, line in enumerate(lines) if "worker-2 [waiting]" in line)
    indent = lines[worker].index("worker-2") - lines[parent].index("parent")
    assert worker > parent and indent > 0
    assert "worker() at " in lines[worker + 1]


def test_cancel_by_name(program: Program) -> None:
    assert "cancelling 'victim'" in cli("cancel", str(program.pid), "victim").stdout
    assert program.readline() == "victim cancelled"
    failed = cli("cancel", str(program.pid), "victim", check=False)
    assert failed.returncode == 1 and "no pending task named 'victim'" in failed.stderr


def test_ps_answers_while_the_loop_is_blocked(program: Program, tmp_path: Path) -> None:
    flag = tmp_path / "release"
    program.send(f"block {flag}")
    assert program.readline() == "blocking"
    try:
        # The view says BLOCKED once the block passes the watchdog's 0.1 s
        # threshold; ask until it does (each answer comes while blocked).
        for _ in range(50):
            out = cli("ps", str(program.pid)).stdout
            if "BLOCKED" in out:
                break
    finally:
        flag.touch()
    assert "BLOCKED" in out
    assert program.readline() == "unblocked"


def test_trace_from_outside(program: Program, tmp_path: Path) -> None:
    out = tmp_path / "trace.json"
    result = cli("trace", str(program.pid), "--seconds", "0.3", "-o", str(out))
    assert result.stdout.startswith("wrote ")
    data = json.loads(out.read_text())
    assert data["traceEvents"][0]["ph"] == "M"
    assert any(e["name"] == "I/O wait" for e in data["traceEvents"])


def test_top_refreshes(program: Program) -> None:
    out = cli("top", str(program.pid), "--interval", "0.05", "--iterations", "2").stdout
    assert "worker-0" in out


def test_socket_is_private(program: Program) -> None:
    path = socket_path(program.pid)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700


def test_no_monitor_is_a_clear_error() -> None:
    result = cli("ps", "999999999", check=False)
    assert result.returncode == 1
    assert "no aloop monitor for process 999999999" in result.stderr
