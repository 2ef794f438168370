"""IPython's ``%autoawait`` on aloop (``%load_ext aloop.ipython``).

A real ``InteractiveShell`` in a subprocess runs cells (top-level ``await``,
tasks across cells, unloading), and the real terminal ``ipython`` on a pty
shows a task printing while the prompt waits for the next cell.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("IPython", reason="the IPython extension needs IPython")

TIMEOUT = 60

SHELL_SCRIPT = r'''
import json
from IPython.core.interactiveshell import InteractiveShell

ip = InteractiveShell.instance()
out = {}

def cell(code):
    result = ip.run_cell(code, store_history=True)
    result.raise_error()
    return result.result

cell("import asyncio")
# Without the extension: IPython's own asyncio loop.
out["stock"] = cell("await asyncio.sleep(0); type(asyncio.get_running_loop()).__module__")
cell("%load_ext aloop.ipython")
out["runner"] = str(ip.loop_runner)
out["loop"] = cell(
    "loop = asyncio.get_running_loop(); await asyncio.sleep(0); "
    "f'{type(loop).__module__}.{type(loop).__qualname__}'"
)
cell("""
steps = []
release = asyncio.Event()
async def worker():
    steps.append("started")
    await release.wait()
    steps.append("released")
    return "done"
task = asyncio.create_task(worker())
await asyncio.sleep(0)
""")
# A cell without await does not run the loop: the task waits, still alive.
out["between"] = cell("(task.done(), task in asyncio.all_tasks(loop), list(steps))")
out["same_loop"] = cell("await asyncio.sleep(0); asyncio.get_running_loop() is loop")
out["result"] = cell("release.set(); await task")
out["steps"] = cell("steps")
from IPython.core.async_helpers import get_asyncio_loop
out["shared"] = get_asyncio_loop() is ip.user_ns["loop"]
cell("left = asyncio.create_task(asyncio.sleep(3600)); await asyncio.sleep(0)")
cell("%unload_ext aloop.ipython")
out["after_unload"] = [
    str(ip.loop_runner),
    ip.user_ns["loop"].is_closed(),
    ip.user_ns["left"].cancelled(),
    get_asyncio_loop() is not ip.user_ns["loop"],
]
# In a shell whose cell already runs on a loop (as in a Jupyter kernel), loading refuses.
cell("await asyncio.sleep(0); get_ipython().extension_manager.load_extension('aloop.ipython')")
out["nested_runner"] = str(ip.loop_runner)
print("RESULT " + json.dumps(out))
'''


def _env(tmp_path: Path) -> dict[str, str]:
    # IPython writes its profile and history here, not in ~/.ipython.
    return {**os.environ, "IPYTHONDIR": str(tmp_path / "ipython")}


def test_shell_runs_await_cells_on_one_aloop_loop(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SHELL_SCRIPT],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=_env(tmp_path),
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    out = json.loads(line.removeprefix("RESULT "))
    assert out["stock"] == "asyncio.unix_events"  # the control
    assert out["runner"] == "aloop"
    assert out["loop"] == "aloop.loop.Loop"
    assert out["between"] == [False, True, ["started"]]
    assert out["same_loop"] is True
    assert out["result"] == "done"
    assert out["steps"] == ["started", "released"]
    assert out["shared"] is True
    assert out["after_unload"] == ["asyncio", True, True, True]
    assert out["nested_runner"] == "asyncio"
    assert "for Jupyter install the aloop kernel" in proc.stdout


def test_terminal_ipython_runs_tasks_while_the_prompt_waits(tmp_path: Path) -> None:
    """``ipython --ext aloop.ipython``: a task started in one cell prints at the next prompt."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the real terminal IPython
        os.execve(
            sys.executable,
            [sys.executable, "-m", "IPython", "--ext", "aloop.ipython", "--no-banner"],
            {**_env(tmp_path), "TERM": "dumb"},
        )
    term = _Terminal(fd)
    try:
        term.expect("In [1]:")
        term.send("import asyncio")
        term.expect("In [2]:")
        term.send(
            'exec("async def tick(n):\\n for i in range(n):\\n  await asyncio.sleep(0.01)\\n'
            '  print(f\\"tick {i}\\")\\n return type(asyncio.get_running_loop()).__name__")'
        )
        term.expect("In [3]:")
        term.send("task = asyncio.ensure_future(tick(5)); await asyncio.sleep(0)")
        term.expect("In [4]:")
        # No cell runs now: the prompt waits on the loop, and the task runs on.
        term.expect("tick 4")
        term.send("task.result()")
        assert "'Loop'" in term.expect("In [5]:")
        term.send("exit")
        term.expect_eof()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        _reap(pid, fd)


class _Terminal:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.seen = b""

    def send(self, line: str) -> None:
        os.write(self.fd, line.encode() + b"\r")

    def expect(self, text: str) -> str:
        """Read until ``text``; return what came before it (and it)."""
        deadline = time.monotonic() + TIMEOUT
        while text.encode() not in self.seen:
            self._read(deadline, text)
        head, _, self.seen = self.seen.partition(text.encode())
        return (head + text.encode()).decode(errors="replace")

    def expect_eof(self) -> None:
        deadline = time.monotonic() + TIMEOUT
        while self._read(deadline, "end of output"):
            pass

    def _read(self, deadline: float, what: str) -> bool:
        ready, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise AssertionError(f"no {what!r} from ipython; last output: {self.seen[-400:]!r}")
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        self.seen += data
        return bool(data)


def _reap(pid: int, fd: int) -> None:
    """Kill the child if it has not exited (a failed test); wait for it; close the terminal."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    except ChildProcessError:  # reaped by the test already
        pass
    finally:
        os.close(fd)
