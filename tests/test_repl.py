"""``python -m aloop``: the asyncio REPL on aloop (driven through pipes) and the CLI's help."""

from __future__ import annotations

import fcntl
import importlib.util
import os
import pty
import re
import select
import signal
import subprocess
import sys
import termios
from collections.abc import Iterator

import pytest

import aloop
from aloop import cli
from aloop._purity import COMPILED_MODULES

TIMEOUT = 60.0


class Repl:
    """A REPL process fed lines on stdin; ``expect`` waits for its stdout to show a marker."""

    def __init__(self, *argv: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("PYTHONSTARTUP", None)
        self.proc = subprocess.Popen(
            [sys.executable, *(argv or ("-m", "aloop"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        self.seen = b""  # stdout read so far
        self._unread = 0  # where the next expect starts looking

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def expect(self, marker: str) -> str:
        """Read stdout until ``marker`` appears; the text from the last marker up to it."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        want = marker.encode()
        while (at := self.seen.find(want, self._unread)) < 0:
            ready, _, _ = select.select([fd], [], [], TIMEOUT)
            chunk = os.read(fd, 65536) if ready else b""
            if not chunk:
                raise AssertionError(f"no {marker!r} in REPL output: {self.seen.decode()!r}")
            self.seen += chunk
        text = self.seen[self._unread : at].decode()
        self._unread = at + len(want)
        return text

    def finish(self) -> tuple[int, str, str]:
        """Close stdin (Ctrl-D) and wait for the exit: status, all stdout, stderr."""
        out, err = self.proc.communicate(timeout=TIMEOUT)  # closes stdin first
        return self.proc.returncode, (self.seen + out).decode(), err.decode()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def repl() -> Iterator[Repl]:
    session = Repl()
    try:
        yield session
    finally:
        session.kill()


def test_top_level_await_on_aloop(repl: Repl) -> None:
    repl.send('print("value", await asyncio.sleep(0, 42))')
    repl.expect("value 42\n")
    repl.send('print("loop", type(asyncio.get_running_loop()) is aloop.Loop)')
    repl.expect("loop True\n")
    status, _, err = repl.finish()
    assert status == 0, err
    mode = "compiled" if aloop.COMPILED else "interpreted"
    assert f"aloop {aloop.__version__} REPL ({mode})" in err
    assert err.rstrip().endswith("exiting aloop REPL...")


def test_task_runs_between_lines(repl: Repl) -> None:
    # The task finishes while the prompt waits: nothing else is sent meanwhile.
    repl.send(
        "t = asyncio.create_task(asyncio.sleep(0.05, 'late')); "
        "t.add_done_callback(lambda _: print('bg', 'done'))"
    )
    repl.expect("bg done")
    repl.send('print("result", t.result())')
    repl.expect("result late\n")
    assert repl.finish()[0] == 0


def test_contextvars_persist_between_lines(repl: Repl) -> None:
    repl.send("import contextvars; var = contextvars.ContextVar('var')")
    repl.send("await asyncio.sleep(0, var.set(7))")
    repl.send('print("var", var.get())')
    repl.expect("var 7\n")
    assert repl.finish()[0] == 0


def test_ctrl_c_cancels_the_statement_and_keeps_the_repl(repl: Repl) -> None:
    repl.send("bg = asyncio.create_task(asyncio.sleep(3600))")
    repl.send('print("sleeping"); await asyncio.sleep(60); print("not cancelled")')
    repl.expect("sleeping")
    repl.proc.send_signal(signal.SIGINT)
    repl.send('print("after", bg.done())')
    repl.expect("after False\n")
    # At an idle prompt Ctrl-C changes nothing either.
    repl.proc.send_signal(signal.SIGINT)
    repl.send('print("still", "here")')
    repl.expect("still here")
    status, out, err = repl.finish()
    assert status == 0, err
    assert "not cancelled" not in out
    assert "KeyboardInterrupt" in err


def test_ctrl_c_stops_blocking_code(repl: Repl) -> None:
    # A statement without await runs on the loop's thread: Ctrl-C interrupts it there.
    repl.send('import time; print("blocking"); time.sleep(60)')
    repl.expect("blocking")
    repl.proc.send_signal(signal.SIGINT)
    repl.send('print("back")')
    repl.expect("back")
    status, _, err = repl.finish()
    assert status == 0, err
    assert "KeyboardInterrupt" in err


# The Python-level SIGINT handler runs late when the signal came while the loop's
# thread was between two checks (compiled code, or about to block in epoll): here,
# as the loop picks up the first statement, before it begins.
LATE_CTRL_C = """
import signal, sys
from aloop import repl
start = repl._Session.start
def start_after_a_late_ctrl_c(self, *args):
    repl._Session.start = start
    signal.raise_signal(signal.SIGINT)
repl._Session.start = start_after_a_late_ctrl_c
sys.exit(repl.run_repl())
"""


def test_ctrl_c_at_the_prompt_handled_as_a_statement_arrives() -> None:
    # The Ctrl-C was for the idle prompt: the statement typed after it still runs.
    session = Repl("-c", LATE_CTRL_C)
    try:
        session.send("print('first', 'statement')")
        session.expect("first statement")
        session.send("print('second', 'statement')")
        session.expect("second statement")
        status, _, err = session.finish()
    finally:
        session.kill()
    assert status == 0, err
    assert "KeyboardInterrupt" not in err


def row(tree: list[str], name: str, state: str) -> bool:
    """Whether ``tree`` has a line for task ``name`` (indented as given) in ``state``."""
    return any(line.startswith(name + " ") and state in line for line in tree)


def test_tasks_prints_the_tree(repl: Repl) -> None:
    repl.send("async def parent(): await asyncio.create_task(asyncio.sleep(3600), name='child')")
    repl.send("")
    repl.send("p = asyncio.create_task(parent(), name='parent')")
    repl.send("w = asyncio.create_task(asyncio.Event().wait(), name='waiter')")
    repl.send("await asyncio.sleep(0)")
    repl.send("print('tree', 'start'); tasks(); print('end', 'of', 'tree')")
    repl.expect("tree start\n")
    tree = repl.expect("end of tree").splitlines()
    # Each task under its parent, with its state (the row's format is format_tree's).
    assert row(tree, "parent", "[waiting"), tree
    assert row(tree, "  child", "[waiting, awaits sleep"), tree
    assert row(tree, "waiter", "[waiting"), tree
    repl.send("p.cancel(); await asyncio.wait([p]); print('again'); tasks(done=True); print('end')")
    repl.expect("again\n")
    tree = repl.expect("end\n").splitlines()
    assert row(tree, "parent", "[cancelled]"), tree
    assert row(tree, "  child", "[cancelled]"), tree
    assert repl.finish()[0] == 0


def test_errors_show_the_statement_frames_only(repl: Repl) -> None:
    repl.send("await asyncio.sleep(0, 1) / 0")
    repl.send("print('after', 'error')")
    repl.expect("after error")
    status, _, err = repl.finish()
    assert status == 0
    traceback = err[err.index("Traceback") :]
    assert 'File "<stdin>", line 1' in traceback
    assert "ZeroDivisionError" in traceback
    assert "concurrent" not in traceback and "repl.py" not in traceback


def test_multi_line_statements(repl: Repl) -> None:
    # Python 3.13+'s own asyncio REPL cannot do this without a terminal.
    for line in ("async def double(n):", "    await asyncio.sleep(0)", "    return 2 * n", ""):
        repl.send(line)
    repl.send("print('double', await double(21))")
    repl.expect("double 42\n")
    assert repl.finish()[0] == 0


def test_exit_status_of_exit(repl: Repl) -> None:
    repl.send("bg = asyncio.create_task(asyncio.sleep(3600))")
    repl.send("exit(3)")
    status, _, err = repl.finish()
    assert status == 3, err
    assert "Task was destroyed" not in err  # the tasks left were cancelled and awaited


TRANSCRIPT = [
    "await asyncio.sleep(0, 5)",
    "x = 6",
    "x * 7",
    "async def double(n): return 2 * await asyncio.sleep(0, n)",
    "",
    "await double(21)",
    "t = asyncio.create_task(double(4))",
    "await t",
    "async def count(n): yield 0; yield 1; yield 2",
    "",
    "[i async for i in count(3)]",
    "await asyncio.gather(double(1), double(2))",
    "asyncio.current_task() is not None",
]


def test_same_transcript_as_asyncio_repl() -> None:
    outputs = []
    for module in ("asyncio", "aloop"):
        session = Repl("-m", module)
        try:
            for line in TRANSCRIPT:
                session.send(line)
            status, out, err = session.finish()
        finally:
            session.kill()
        assert status == 0, err
        # 3.13+'s asyncio REPL takes a one-line "def" without "... " for more.
        outputs.append(re.sub(r"(>>> |\.\.\. )", "", out))
    assert outputs[0] == outputs[1]
    assert "[0, 1, 2]" in outputs[1] and "[2, 4]" in outputs[1]


def _take_terminal() -> None:
    """In the child: make the pty (its stdin) the controlling terminal, so ^C is SIGINT."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


@pytest.mark.parametrize("editor", ["default", "basic"])
def test_on_a_terminal(editor: str) -> None:
    # 3.13+ uses pyrepl on a terminal ("basic": readline's input()); Ctrl-C is a key here.
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm", "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    env.pop("PYTHONSTARTUP", None)
    env.pop("PYTHON_BASIC_REPL", None)
    if editor == "basic":
        env["PYTHON_BASIC_REPL"] = "1"
    pyrepl = editor == "default" and sys.version_info >= (3, 13)
    proc = subprocess.Popen(
        [sys.executable, "-m", "aloop"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
        preexec_fn=_take_terminal,
    )
    os.close(slave)
    seen = b""

    def expect(marker: str) -> str:
        nonlocal seen
        while (at := seen.find(marker.encode())) < 0:
            ready, _, _ = select.select([master], [], [], TIMEOUT)
            if not ready:
                raise AssertionError(f"no {marker!r} on the terminal: {seen.decode()!r}")
            seen += os.read(master, 65536)
        before, seen = seen[:at].decode(), seen[at + len(marker) :]
        return before

    def send(keys: str) -> None:
        os.write(master, keys.encode())

    try:
        # The markers are built by the statements, so the echoed input never matches.
        send("t = asyncio.create_task(asyncio.sleep(3600), name='long' + 'sleep')\r")
        send("print('sl' + 'eeping'); await asyncio.sleep(60)\r")
        expect("sleeping")
        send("\x03")  # Ctrl-C: cancels the statement
        # pyrepl drops a line typed before it shows the KeyboardInterrupt: wait for it.
        expect("KeyboardInterrupt")
        expect(">>> ")
        send("print('af' + 'ter', t.done())\r")
        expect("after False")
        expect(">>> ")
        send("\x03")  # at the prompt: pyrepl reads the key, readline's tty sends SIGINT
        if pyrepl:
            expect("KeyboardInterrupt")
            expect(">>> ")
        send("tasks(); print('st' + 'ill')\r")
        tree = expect("still")
        assert "longsleep" in tree
        if importlib.util.find_spec("rich") is not None:
            assert f"pid {proc.pid}" in tree  # drawn by rich on a terminal
        expect(">>> ")
        send("\x04")  # Ctrl-D
        while proc.poll() is None and select.select([master], [], [], TIMEOUT)[0]:
            try:
                seen += os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
        assert proc.wait(timeout=TIMEOUT) == 0
        assert b"exiting aloop REPL" in seen
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


# -- the command line ----------------------------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    try:
        status = cli.main(list(argv))
    except SystemExit as exc:  # --help, --version
        status = exc.code if isinstance(exc.code, int) else 1
    return status, capsys.readouterr().out


COMMANDS = ["repl", "info", "ps", "pstree", "top", "cancel", "web", "trace", "kernel"]


def test_help_lists_every_command_with_what_it_does(capsys: pytest.CaptureFixture[str]) -> None:
    status, out = run_cli(capsys, "--help")
    assert status == 0
    assert "asyncio REPL" in out and "ALOOP_MONITOR=1" in out
    for name in COMMANDS:
        line = next(line for line in out.splitlines() if line.split()[:1] == [name])
        assert len(line.split()) > 2, line  # the command and a few words about it


@pytest.mark.parametrize("name", COMMANDS)
def test_each_command_has_help(capsys: pytest.CaptureFixture[str], name: str) -> None:
    status, out = run_cli(capsys, name, "--help")
    assert status == 0
    assert f"usage: python -m aloop {name}" in out
    description = out.split("\n\n")[1]
    assert len(description.split()) > 3, out
    if name in ("ps", "pstree", "top", "cancel", "web", "trace"):
        assert "ALOOP_MONITOR=1" in out  # the pid's help says what the program needs


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "--version") == (0, f"aloop {aloop.__version__}\n")


def test_info(capsys: pytest.CaptureFixture[str]) -> None:
    status, out = run_cli(capsys, "info")
    assert status == 0
    lines = dict(line.split(": ", 1) for line in out.splitlines()[1:])
    assert out.startswith(f"aloop {aloop.__version__}\n")
    assert lines["compiled"].startswith("yes" if aloop.COMPILED else "no")
    if aloop.COMPILED:
        assert lines["compiled"].startswith(f"yes, all {len(COMPILED_MODULES)} hot modules")
    assert lines["backend"] == ("epoll" if hasattr(select, "epoll") else "poll")
    implementation = sys.implementation.name.replace("cpython", "CPython")
    version = ".".join(map(str, sys.version_info[:3]))
    assert lines["python"].startswith(f"{implementation} {version}")


def test_kernel_command_is_wired(capsys: pytest.CaptureFixture[str]) -> None:
    status, out = run_cli(capsys, "kernel", "install", "--help")
    assert status == 0
    assert "--user" in out
