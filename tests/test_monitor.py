"""The monitor and ``python -m aloop``, against a real monitored program."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.monitored import (
    CONNECTIONS,
    LOOPS_PROGRAM,
    SERVER_PROGRAM,
    Program,
    cli,
    run_program,
)

import aloop
from aloop.tooling.monitor import Monitor, MonitorUnavailable, request, socket_path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Program]:
    """An echo server with CONNECTIONS client connections held open."""
    yield from run_program(tmp_path, SERVER_PROGRAM)


def test_ps_lists_every_task_with_state_and_wait(program: Program) -> None:
    out = cli("ps", str(program.pid)).stdout
    for name in ("main", "parent", "worker-0", "worker-1", "worker-2", "victim"):
        assert name in out
    worker_line = next(line for line in out.splitlines() if "worker-1" in line)
    assert "waiting" in worker_line and "parent" in worker_line
    # Each row names its coroutine; a sleep reads as the time left.
    assert "worker-1 worker()" in worker_line
    assert re.search(r"sleep \(35\d\d\.\d{3} s left\)", worker_line), worker_line
    # monitor=True counts no steps: the table says so rather than show zeros.
    assert request(program.pid, {"cmd": "ps"})["counted"] is False
    assert "not counted" in " ".join(out.split())


def test_pstree_nests_children_under_parents(program: Program) -> None:
    lines = cli("pstree", str(program.pid)).stdout.splitlines()
    parent = next(i for i, line in enumerate(lines) if "parent parent() [waiting]" in line)
    worker = next(i for i, line in enumerate(lines) if "worker-2 worker() [waiting]" in line)
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
    # Not a terminal: one plain snapshot per interval, no cursor control codes.
    assert "\x1b" not in out
    assert len(re.findall(r"^--- \d\d:\d\d:\d\d$", out, re.M)) == 2
    assert out.count("worker-0 worker()") == 2
    assert "since last refresh" in out


def test_sleeping_program_is_not_busy(program: Program) -> None:
    # Every task sleeps and the loop waits in one long poll: that is idle
    # time, though the poll has not returned yet.
    # Startup was busy; the idle share grows from there while the program
    # waits (without counting the wait in progress, it never would).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        stats = request(program.pid, {"cmd": "ps"})["stats"]
        if stats["idle"] > 3 * stats["busy"]:
            break
        time.sleep(0.05)
    assert stats["idle"] > 3 * stats["busy"], stats
    title = cli("ps", str(program.pid)).stdout.splitlines()[0]
    busy = int(re.search(r"loop busy (\d+)%", title).group(1))  # type: ignore[union-attr]
    assert busy < 50, title


def test_socket_is_private(program: Program) -> None:
    path = socket_path(program.pid)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700


@pytest.mark.parametrize("command", ["ps", "pstree", "top", "web", "trace", "cancel"])
def test_gone_process_is_a_clear_error(command: str) -> None:
    extra = ["main"] if command == "cancel" else []
    result = cli(command, "999999999", *extra, check=False)
    assert result.returncode == 1
    assert "no process 999999999: it has exited, or the pid is wrong" in result.stderr
    assert "Traceback" not in result.stderr


@contextlib.contextmanager
def _idle_process(env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """A process of ours with no aloop loop (ALOOP_MONITOR as ``env`` says), up
    and waiting on its stdin; killed and reaped after."""
    base = {key: value for key, value in os.environ.items() if key != "ALOOP_MONITOR"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; print('up', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**base, **env},
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "up\n"
        yield proc
    finally:
        proc.kill()
        proc.wait(30)
        for stream in (proc.stdin, proc.stdout):
            assert stream is not None
            stream.close()


def _stale_socket(path: str) -> None:
    """A socket file nothing listens on, as a killed process leaves it."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(path)


@pytest.mark.parametrize("setting", [None, "0", "1"])
def test_live_process_without_monitor_says_what_to_do(setting: str | None) -> None:
    env = {"ALOOP_MONITOR": setting} if setting is not None else {}
    with _idle_process(env) as proc:
        result = cli("ps", str(proc.pid), check=False)
    assert result.returncode == 1
    message = result.stderr
    assert f"process {proc.pid} (" in message
    if setting == "1":
        # The variable is already set: do not tell the user to set it.
        assert "has ALOOP_MONITOR=1 but serves no monitor" in message
        assert "no aloop event loop is running in it now" in message
        assert "start it with" not in message
    else:
        assert "start it with ALOOP_MONITOR=1" in message and "monitor=True" in message
        if setting == "0":
            assert "runs with ALOOP_MONITOR='0'" in message


def test_stale_socket_of_a_gone_process_is_removed() -> None:
    pid = 999999998
    path = socket_path(pid)
    _stale_socket(path)
    try:
        result = cli("ps", str(pid), check=False)
        assert result.returncode == 1
        assert f"no process {pid}" in result.stderr
        assert f"Its monitor socket {path} was left behind (stale); removed it" in result.stderr
        assert not os.path.exists(path)
    finally:
        if os.path.exists(path):
            os.unlink(path)


def test_stale_socket_of_a_live_process_is_removed() -> None:
    with _idle_process({}) as proc:
        path = socket_path(proc.pid)
        try:
            _stale_socket(path)
            result = cli("pstree", str(proc.pid), check=False)
        finally:
            if os.path.exists(path):
                os.unlink(path)
                pytest.fail("the stale socket was not removed")
    assert result.returncode == 1
    assert f"nothing listens on {path}: the socket is stale" in result.stderr
    assert "removed it" in result.stderr


def test_monitor_that_never_answers_is_a_clear_error() -> None:
    with _idle_process({}) as proc:
        path = socket_path(proc.pid)
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as mute:
                mute.bind(path)
                mute.listen(1)  # accepts connections (backlog), never answers
                with pytest.raises(MonitorUnavailable, match=r"did not answer within 0\.2 s"):
                    request(proc.pid, {"cmd": "ps"}, timeout=0.2)
        finally:
            if os.path.exists(path):
                os.unlink(path)


@pytest.mark.parametrize("how", ["asyncio.run", "Loop", "run"])
def test_environment_turns_tooling_on_for_every_loop(how: str, tmp_path: Path) -> None:
    """ALOOP_MONITOR and ALOOP_TRACE reach loops aloop.run did not make, one
    loop after another: each has the monitor in turn and a trace file."""
    trace = tmp_path / "t-{pid}.json"  # {pid}: the process id
    env = {"ALOOP_MONITOR": "1", "ALOOP_TRACE": str(trace), "ALOOP_WATCHDOG": "0"}
    prog = Program(tmp_path, LOOPS_PROGRAM, args=(how,), env=env, ready="ready 1")
    try:
        for n in (1, 2):
            if n == 2:
                assert prog.readline() == "ready 2"
            names = {row["name"] for row in request(prog.pid, {"cmd": "ps"})["tasks"]}
            assert f"main-{n}" in names
            prog.send("")
        assert prog.readline() == "done"
        assert prog.proc.wait(30) == 0
    finally:
        prog.stop()
    assert not os.path.exists(socket_path(prog.pid))
    for n, name in ((1, f"t-{prog.pid}.json"), (2, f"t-{prog.pid}.2.json")):
        path = tmp_path / name
        data = json.loads(path.read_text())
        tracks = {e["args"]["name"] for e in data["traceEvents"] if e["name"] == "thread_name"}
        assert f"main-{n}" in tracks, (path, tracks)


def test_explicit_argument_wins_over_the_environment(tmp_path: Path) -> None:
    env = {"ALOOP_MONITOR": "1", "ALOOP_WATCHDOG": "0"}
    prog = Program(tmp_path, LOOPS_PROGRAM, args=("run-off",), env=env, ready="ready 1")
    try:
        result = cli("ps", str(prog.pid), check=False)
        prog.send("")
        assert prog.readline() == "ready 2"
        prog.send("")
        assert prog.readline() == "done"
    finally:
        prog.stop()
    assert result.returncode == 1
    assert "has ALOOP_MONITOR=1 but serves no monitor" in result.stderr


BLOCKING_PROGRAM = textwrap.dedent(
    """
    import asyncio, sys, time
    import aloop

    async def main():
        monitor = aloop.Monitor(asyncio.get_running_loop(), **eval(sys.argv[1])).start()
        deadline = time.monotonic() + 30
        while not monitor.watchdog.reports and time.monotonic() < deadline:
            time.sleep(0.01)   # blocks the loop until the watchdog has seen it
        monitor.stop()
        print("reports", len(monitor.watchdog.reports), flush=True)

    print("ready", flush=True)
    aloop.run(main())
    """
)


@pytest.mark.parametrize(
    ("kwargs", "env", "logged"),
    [
        ("{}", {}, True),
        ("{}", {"ALOOP_WATCHDOG": "0"}, False),
        ("{'log_blocks': False}", {}, False),
        ("{'log_blocks': True}", {"ALOOP_WATCHDOG": "0"}, True),
    ],
)
def test_watchdog_reports_on_stderr_can_be_turned_off(
    tmp_path: Path, kwargs: str, env: dict[str, str], logged: bool
) -> None:
    prog = Program(tmp_path, BLOCKING_PROGRAM, args=(kwargs,), env=env, stderr=subprocess.PIPE)
    try:
        assert prog.readline() == "reports 1"
        assert prog.proc.stderr is not None
        err = prog.proc.stderr.read()
        assert prog.proc.wait(30) == 0
    finally:
        prog.stop()
    assert ("event loop blocked for" in err) is logged, err


def test_monitor_is_public_and_loaded_on_use(tmp_path: Path) -> None:
    assert aloop.Monitor is Monitor
    assert "Monitor" in dir(aloop)
    code = "import sys, aloop; print('aloop.tooling.monitor' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"
    # One monitor per socket path in a process.
    loop = aloop.new_event_loop()
    try:
        with Monitor(loop, path=str(tmp_path / "m.sock")):
            with pytest.raises(RuntimeError, match="another aloop Monitor of this process"):
                Monitor(loop, path=str(tmp_path / "m.sock")).start()
            assert request_path_ok(str(tmp_path / "m.sock"))
    finally:
        loop.close()


def request_path_ok(path: str) -> bool:
    """The first monitor still answers at ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(30)
        conn.connect(path)
        conn.sendall(b'{"cmd": "ps"}\n')
        return b'"tasks"' in conn.recv(1 << 20)


def test_server_with_many_connections(server: Program) -> None:
    # The monitor's reply: aloop.inspect's rows, as the CLI and the web page get them.
    rows = {row["name"]: row for row in request(server.pid, {"cmd": "ps"})["tasks"]}
    handlers = [row for name, row in rows.items() if name.startswith("conn-")]
    clients = [row for name, row in rows.items() if name.startswith("client-")]
    assert len(handlers) == len(clients) == CONNECTIONS
    for row in handlers:
        # asyncio starts a handler from the listening socket's accept callback,
        # not from a task: handlers are roots of the tree.
        assert row["state"] == "waiting" and row["parent"] is None
        assert re.fullmatch(r"read from 127\.0\.0\.1:\d+ \(fd \d+\)", row["awaiting"])
        assert row["stack"][0].startswith("handle() at ")
        assert any(frame.startswith("readline() at ") for frame in row["stack"])
    for row in clients:
        assert row["state"] == "waiting" and row["parent"] == "main"
        assert any(frame.startswith("read() at ") for frame in row["stack"])
    assert {f"client-{i}" for i in range(CONNECTIONS)} <= set(rows["main"]["children"])

    out = cli("ps", str(server.pid)).stdout
    lines = [line for line in out.splitlines() if " conn-" in f" {line}"]
    assert len(lines) == CONNECTIONS
    assert all("waiting" in line and "read from 127.0.0.1:" in line for line in lines)
    assert all("handle()" in line for line in lines)
    tree = cli("pstree", str(server.pid)).stdout
    assert "handle() at " in tree and tree.count("conn-") == CONNECTIONS


ASGI_APP = textwrap.dedent(
    """
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                kind = (await receive())["type"].rsplit(".", 1)[1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
    """
)


def test_uvicorn_loop_is_monitored_from_the_environment(tmp_path: Path) -> None:
    """``ALOOP_MONITOR=1 uvicorn --loop aloop:new_event_loop``: ps sees uvicorn's tasks."""
    (tmp_path / "asgi_app.py").write_text(ASGI_APP)
    argv = ["-m", "uvicorn", "asgi_app:app", "--host", "127.0.0.1", "--port", "0"]
    server = subprocess.Popen(
        [sys.executable, *argv, "--loop", "aloop:new_event_loop"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "ALOOP_MONITOR": "1", "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    # Nothing below may wait forever on a server that never comes up.
    guard = threading.Timer(60, server.kill)
    guard.start()
    try:
        assert server.stderr is not None
        for line in server.stderr:
            if "Uvicorn running on" in line:
                break
        rows = request(server.pid, {"cmd": "ps"})["tasks"]
        assert any(row["coro"] == "Server.serve()" for row in rows), rows
        server.send_signal(2)  # Ctrl-C: uvicorn shuts down and asyncio.run closes the loop
        server.communicate(timeout=30)
    finally:
        guard.cancel()
        if server.poll() is None:
            server.kill()
        server.wait(30)
        server.stderr.close()  # type: ignore[union-attr]
    assert not os.path.exists(socket_path(server.pid))


PYTEST_FILE = textwrap.dedent(
    """
    import asyncio, os
    import pytest
    from aloop.tooling.monitor import request

    @pytest.mark.aloop
    @pytest.mark.parametrize("n", [1, 2])
    async def test_sees_itself(n):
        asyncio.current_task().set_name(f"test-{n}")
        reply = request(os.getpid(), {"cmd": "ps"})
        assert f"test-{n}" in {row["name"] for row in reply["tasks"]}
    """
)


def test_pytest_loops_are_monitored_and_traced_in_turn(tmp_path: Path) -> None:
    """Each test's aloop loop has the process's monitor in turn, and a trace."""
    (tmp_path / "test_inner.py").write_text(PYTEST_FILE)
    env = {"ALOOP_MONITOR": "1", "ALOOP_TRACE": str(tmp_path / "t.json"), "ALOOP_WATCHDOG": "0"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_inner.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
    for n, name in ((1, "t.json"), (2, "t.2.json")):
        events = json.loads((tmp_path / name).read_text())["traceEvents"]
        tracks = {e["args"]["name"] for e in events if e["name"] == "thread_name"}
        assert f"test-{n}" in tracks, (name, tracks)


def test_two_loops_at_once_one_has_the_monitor(monkeypatch: pytest.MonkeyPatch) -> None:
    """With ALOOP_MONITOR=1, the first loop to run holds the process's socket
    until it closes; a loop started meanwhile runs without a monitor."""
    from aloop.tooling import auto

    monkeypatch.setenv("ALOOP_MONITOR", "1")
    monkeypatch.setenv("ALOOP_WATCHDOG", "0")
    first, second = aloop.new_event_loop(), aloop.new_event_loop()
    started, release = threading.Event(), threading.Event()

    async def hold() -> None:
        started.set()
        await first.run_in_executor(None, release.wait)

    thread = threading.Thread(target=first.run_until_complete, args=(hold(),))
    thread.start()
    try:
        assert started.wait(30)
        second.run_until_complete(asyncio.sleep(0))
        assert auto._tools[first].monitor is not None
        assert auto._tools[second].monitor is None
        rows = request(os.getpid(), {"cmd": "ps"})["tasks"]
        assert [row["coro"].rsplit(".", 1)[-1] for row in rows] == ["hold()"]  # first's task
    finally:
        release.set()
        thread.join(30)
        first.close()
        second.close()
    assert not os.path.exists(socket_path(os.getpid()))
