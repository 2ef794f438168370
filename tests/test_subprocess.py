"""Subprocesses on real children: the same programs on the stdlib loop and on aloop.

Covers asyncio.create_subprocess_exec/shell (communicate, wait, the stdio
options), loop.subprocess_exec with a protocol (the order of its callbacks),
many concurrent children, a child flooding stdout to a slow reader, cancelling
communicate() and wait(), process groups, bad input, the two ways aloop
sees a child exit (pidfd, or a waiting thread), and how the exit is published
(reaped only as returncode is set; wait() ends at the exit, open pipes or
not). Every child is reaped: no test leaves a zombie or an fd behind.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
from tests.support import LoopFactory, both, outcome
from tests.support import run_on as run

import aloop
from aloop._core import children as aloop_children

PY = sys.executable
PIPE = asyncio.subprocess.PIPE
CAT = [PY, "-c", "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())"]
BLOCKED = [PY, "-c", "import time; time.sleep(3600)"]


def children() -> set[int]:
    """Our direct children, zombies included (Linux: /proc/<pid>/task/*/children)."""
    pids: set[int] = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/children") as f:
                pids.update(int(p) for p in f.read().split())
        except (FileNotFoundError, ProcessLookupError):
            pass  # that thread (a waitpid thread, say) just ended; its children moved on
    return pids


@pytest.fixture
def no_zombie() -> Iterator[None]:
    """Fail the test if it leaves a child of ours, running or zombie."""
    before = children()
    yield
    left = children() - before
    assert not left, f"children left behind: {left}"


@pytest.fixture(params=["pidfd", "thread"])
def watcher(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """aloop's two exit watchers: a polled pidfd, and the waitpid thread used without one."""
    if request.param == "thread":
        monkeypatch.setattr(aloop_children, "pidfd_supported", lambda: False)
    elif not aloop_children.pidfd_supported():
        pytest.skip("this kernel has no pidfd_open (Linux < 5.3): the thread watcher is used")
    return str(request.param)


# -- create_subprocess_* -------------------------------------------------------------


def test_communicate_round_trip(no_fd_leak: None, no_zombie: None) -> None:
    async def main() -> tuple[bytes, bytes, int | None]:
        proc = await asyncio.create_subprocess_exec(
            PY,
            "-c",
            "import sys; d = sys.stdin.buffer.read(); sys.stdout.buffer.write(d[::-1]);"
            "sys.stderr.write('err'); sys.exit(3)",
            stdin=PIPE,
            stdout=PIPE,
            stderr=PIPE,
        )
        out, err = await proc.communicate(b"hello")
        return out, err, proc.returncode

    assert both(main) == (b"olleh", b"err", 3)


def test_shell_and_wait(no_fd_leak: None, no_zombie: None) -> None:
    async def main() -> list[Any]:
        proc = await asyncio.create_subprocess_shell("echo $((6 * 7)); exit 5", stdout=PIPE)
        assert proc.stdout is not None
        line = await proc.stdout.readline()
        return [line, await proc.wait(), await proc.wait()]

    assert both(main) == [b"42\n", 5, 5]


def test_stdio_options(no_fd_leak: None, no_zombie: None) -> None:
    """DEVNULL, STDOUT, a file, pass_fds, cwd and env reach the child as with asyncio."""
    code = (
        "import os, sys; sys.stdout.write(os.getcwd() + ' ' + os.environ['ALOOP_T'] + ' ');"
        "sys.stdout.flush(); sys.stderr.write('to-stdout'); sys.stderr.flush();"
        "os.write(int(sys.argv[1]), b'via-fd'); print(repr(sys.stdin.read()))"
    )

    async def main() -> list[Any]:
        with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryFile() as out:
            rfd, wfd = os.pipe()
            proc = await asyncio.create_subprocess_exec(
                PY,
                "-c",
                code,
                str(wfd),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                pass_fds=(wfd,),
                cwd=tmp,
                env={**os.environ, "ALOOP_T": "env-ok"},
            )
            rc = await proc.wait()
            os.close(wfd)
            via_fd = os.read(rfd, 100)
            os.close(rfd)
            out.seek(0)
            text = out.read().decode().replace(os.path.realpath(tmp), "<tmp>")
            return [rc, via_fd, text, proc.stdin, proc.stdout, proc.stderr]

    assert both(main) == [0, b"via-fd", "<tmp> env-ok to-stdout''\n", None, None, None]


def test_stderr_to_stdout_pipe(no_fd_leak: None, no_zombie: None) -> None:
    async def main() -> tuple[bytes, bytes | None]:
        proc = await asyncio.create_subprocess_exec(
            PY,
            "-c",
            "import sys; print('out', flush=True); print('err', file=sys.stderr)",
            stdout=PIPE,
            stderr=subprocess.STDOUT,
        )
        out, err = await proc.communicate()
        return out, err

    assert both(main) == (b"out\nerr\n", None)


def test_start_new_session_and_preexec_fn(no_fd_leak: None, no_zombie: None) -> None:
    code = "import os; print(os.getsid(0) == os.getpid(), os.getpgid(0) == os.getpid())"

    async def main() -> list[bytes]:
        results = []
        for kwargs in ({"start_new_session": True}, {"preexec_fn": os.setpgrp}, {}):
            proc = await asyncio.create_subprocess_exec(PY, "-c", code, stdout=PIPE, **kwargs)
            out, _ = await proc.communicate()
            results.append(out)
        return results

    assert both(main) == [b"True True\n", b"False True\n", b"False False\n"]


def test_many_concurrent_short_lived_children(
    watcher: str, no_fd_leak: None, no_zombie: None
) -> None:
    async def one(i: int) -> bytes:
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", f"echo {i}; exit $(({i} % 7))", stdout=PIPE
        )
        out, _ = await proc.communicate()
        assert proc.returncode == i % 7
        return out

    async def main() -> list[bytes]:
        return await asyncio.gather(*(one(i) for i in range(60)))

    assert run(aloop.new_event_loop, main) == [f"{i}\n".encode() for i in range(60)]


def test_flooding_child_and_slow_reader(watcher: str, no_fd_leak: None, no_zombie: None) -> None:
    """16 MiB through a StreamReader read slowly: every byte arrives, the buffer stays bounded."""
    size = 16 << 20
    code = (
        "import sys, os\n"
        "block = bytes(range(256)) * 256\n"
        f"for _ in range({size} // len(block)):\n"
        "    sys.stdout.buffer.write(block)\n"
    )

    async def main() -> tuple[int, str, int, bool]:
        limit = 64 * 1024
        proc = await asyncio.create_subprocess_exec(PY, "-c", code, stdout=PIPE, limit=limit)
        assert proc.stdout is not None
        digest = hashlib.sha256()
        total = 0
        largest_buffer = 0
        while chunk := await proc.stdout.read(4096):
            digest.update(chunk)
            total += len(chunk)
            largest_buffer = max(largest_buffer, len(proc.stdout._buffer))  # type: ignore[attr-defined]
            await asyncio.sleep(0)  # a slow consumer: one read per loop iteration
        rc = await proc.wait()
        # The reader pauses its pipe above 2*limit; one more read may land before that.
        bounded = largest_buffer <= 2 * limit + 256 * 1024
        return total, digest.hexdigest(), rc, bounded

    expected = hashlib.sha256((bytes(range(256)) * 256) * (size // 65536)).hexdigest()
    assert run(aloop.new_event_loop, main) == (size, expected, 0, True)


def test_pipe_flow_control_under_a_protocol(no_fd_leak: None, no_zombie: None) -> None:
    """A protocol pausing the stdout pipe keeps what it holds bounded; nothing is lost."""
    size = 8 << 20

    class Slow(asyncio.SubprocessProtocol):
        def __init__(self) -> None:
            self.held = 0
            self.most_held = 0
            self.received = 0
            self.transport: Any = None
            self.done = asyncio.get_running_loop().create_future()

        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def pipe_data_received(self, fd: int, data: bytes) -> None:
            self.held += len(data)
            self.received += len(data)
            self.most_held = max(self.most_held, self.held)
            if self.held > 1 << 20:
                pipe = self.transport.get_pipe_transport(1)
                pipe.pause_reading()
                asyncio.get_running_loop().call_later(0.001, self.drain, pipe)

        def drain(self, pipe: Any) -> None:
            self.held = 0
            pipe.resume_reading()

        def connection_lost(self, exc: Exception | None) -> None:
            self.done.set_result(None)

    async def main() -> tuple[int, bool, int | None]:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.subprocess_exec(
            Slow,
            PY,
            "-c",
            f"import sys; sys.stdout.buffer.write(b'z' * {size})",
            stdin=None,
            stderr=None,
        )
        assert isinstance(proto, Slow)
        await proto.done
        transport.close()
        return proto.received, proto.most_held <= (1 << 20) + 256 * 1024, transport.get_returncode()

    assert both(main) == (size, True, 0)


def test_stdin_flow_control_with_drain(no_fd_leak: None, no_zombie: None) -> None:
    async def main() -> tuple[int, int]:
        proc = await asyncio.create_subprocess_exec(*CAT, stdin=PIPE, stdout=PIPE)
        assert proc.stdin is not None and proc.stdout is not None

        async def feed() -> None:
            assert proc.stdin is not None
            for _ in range(64):
                proc.stdin.write(b"q" * 65536)
                await proc.stdin.drain()
            proc.stdin.close()
            await proc.stdin.wait_closed()

        feeder = asyncio.create_task(feed())
        data = await proc.stdout.read()
        await feeder
        return len(data), await proc.wait()

    assert both(main) == (64 * 65536, 0)


# -- cancellation and killing ---------------------------------------------------------------


def test_cancel_communicate_then_kill(no_fd_leak: None, no_zombie: None) -> None:
    """communicate() on a child that reads its input and then never exits."""
    code = "import sys, time; sys.stdin.buffer.read(); print('read', flush=True); time.sleep(3600)"

    async def main() -> tuple[bool, int]:
        proc = await asyncio.create_subprocess_exec(PY, "-c", code, stdin=PIPE, stdout=PIPE)
        task = asyncio.create_task(proc.communicate(b"x" * 100))
        await asyncio.sleep(0.05)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        proc.kill()
        return task.cancelled(), await proc.wait()

    assert both(main) == (True, -signal.SIGKILL)


def test_cancel_wait(no_fd_leak: None, no_zombie: None) -> None:
    async def main() -> tuple[bool, int | None, int]:
        proc = await asyncio.create_subprocess_exec(*BLOCKED)
        task = asyncio.create_task(proc.wait())
        await asyncio.sleep(0)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        before = proc.returncode
        proc.terminate()
        return task.cancelled(), before, await proc.wait()

    assert both(main) == (True, None, -signal.SIGTERM)


def test_cancel_while_starting_leaves_nothing_running(
    watcher: str, no_fd_leak: None, no_zombie: None
) -> None:
    async def main() -> bool:
        task = asyncio.create_task(asyncio.create_subprocess_exec(*BLOCKED, stdout=PIPE))
        asyncio.get_running_loop().call_soon(task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            return True
        proc = task.result()
        proc.kill()
        await proc.wait()
        return False

    assert run(aloop.new_event_loop, main) is True


def test_kill_a_process_group(no_fd_leak: None, no_zombie: None) -> None:
    """killpg reaches the grandchildren: the pipe they hold reaches EOF."""

    async def main() -> tuple[int, bytes]:
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            "sleep 3600 & sleep 3600 & echo started; wait",
            stdout=PIPE,
            start_new_session=True,
        )
        assert proc.stdout is not None
        assert await proc.stdout.readline() == b"started\n"
        os.killpg(proc.pid, signal.SIGKILL)
        rest = await proc.stdout.read()  # EOF only once every holder is dead
        return await proc.wait(), rest

    assert both(main) == (-signal.SIGKILL, b"")


def test_transport_api_and_signals(watcher: str, no_fd_leak: None, no_zombie: None) -> None:
    class Proto(asyncio.SubprocessProtocol):
        def __init__(self) -> None:
            self.exited = asyncio.get_running_loop().create_future()

        def process_exited(self) -> None:
            self.exited.set_result(None)

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.subprocess_exec(
            Proto, *BLOCKED, stdin=None, stdout=None, stderr=None
        )
        assert isinstance(proto, Proto)
        seen: list[Any] = [
            transport.get_pid() == transport.get_extra_info("subprocess").pid,
            transport.get_returncode(),
            transport.get_pipe_transport(0),
            transport.get_pipe_transport(1),
            transport.get_protocol() is proto,
            transport.is_closing(),
        ]
        transport.send_signal(signal.SIGUSR1)
        await proto.exited
        seen.append(transport.get_returncode())
        seen.append(outcome(transport.kill))  # exited already
        transport.close()
        seen.append(transport.is_closing())
        await asyncio.sleep(0.01)
        seen.append(outcome(transport.terminate))
        seen.append(outcome(lambda: transport.send_signal(signal.SIGTERM)))
        return seen

    assert both(main)[:7] == [True, None, None, None, True, False, -signal.SIGUSR1]


def test_protocol_callback_order(watcher: str, no_fd_leak: None, no_zombie: None) -> None:
    """connection_made first; per pipe data then pipe_connection_lost; connection_lost last."""

    class Proto(asyncio.SubprocessProtocol):
        def __init__(self) -> None:
            self.events: list[Any] = []
            self.done = asyncio.get_running_loop().create_future()

        def connection_made(self, transport: Any) -> None:
            self.events.append("made")

        def pipe_data_received(self, fd: int, data: bytes) -> None:
            self.events.append(("data", fd, data))

        def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
            self.events.append(("pipe_lost", fd, exc))

        def process_exited(self) -> None:
            self.events.append("exited")

        def connection_lost(self, exc: Exception | None) -> None:
            self.events.append(("lost", exc))
            self.done.set_result(None)

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.subprocess_exec(
            Proto,
            PY,
            "-c",
            "import sys, os; os.write(1, b'out'); os.write(2, b'err'); sys.exit(4)",
            stdin=PIPE,
        )
        assert isinstance(proto, Proto)
        transport.get_pipe_transport(0).close()
        await proto.done
        rc = transport.get_returncode()
        transport.close()
        events = proto.events
        assert events[0] == "made" and events[-1] == ("lost", None)
        assert events.index("exited") < len(events) - 1
        per_fd = {
            fd: [e[0] for e in events if isinstance(e, tuple) and e[1] == fd] for fd in (0, 1, 2)
        }
        return [per_fd, sorted(map(str, events)), rc]

    both(main)  # the same events, per pipe and in all, and exit code on each


# -- publishing the exit ------------------------------------------------------------------

# From 3.14.7 the stdlib loop reaps a child and publishes its exit in one step
# (gh-127049), and ends wait() at the exit whatever the pipes do (gh-119710):
# from there on it is the reference for the tests below; before, it has neither
# and these tests run on aloop alone.
STDLIB_PUBLISHES_EXITS = sys.version_info >= (3, 14, 7)


def exit_reference_loops() -> list[LoopFactory]:
    """The loops the exit-publishing tests run on: aloop, and the stdlib loop where it agrees."""
    loops: list[LoopFactory] = [aloop.new_event_loop]
    if STDLIB_PUBLISHES_EXITS:
        loops.insert(0, asyncio.new_event_loop)
    return loops


def unreaped(pid: int) -> bool:
    """Whether ``pid`` is still our child, running or a zombie; False once reaped (pid free)."""
    try:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
    except ChildProcessError:
        return False
    return True


def test_a_child_is_reaped_only_as_its_exit_is_published(
    watcher: str, no_fd_leak: None, no_zombie: None
) -> None:
    """While returncode is None the pid is not freed, so kill() never reaches a recycled pid."""

    async def main() -> tuple[bool, int]:
        proc = await asyncio.create_subprocess_exec(*BLOCKED)
        proc.kill()
        always_unreaped = True
        while proc.returncode is None:
            always_unreaped = always_unreaped and unreaped(proc.pid)
            proc.kill()
            await asyncio.sleep(0)
        return always_unreaped, await proc.wait()

    for factory in exit_reference_loops():
        assert run(factory, main) == (True, -signal.SIGKILL)


def test_the_waiting_thread_leaves_the_reaping_to_the_loop(
    monkeypatch: pytest.MonkeyPatch, no_fd_leak: None, no_zombie: None
) -> None:
    """Without pidfds a thread waits for the exit; the pid stays ours till the loop publishes it."""
    monkeypatch.setattr(aloop_children, "pidfd_supported", lambda: False)
    if STDLIB_PUBLISHES_EXITS:
        from asyncio import unix_events

        monkeypatch.setattr(unix_events, "can_use_pidfd", lambda: False)

    async def main() -> tuple[int, bool, int | None, int]:
        before = set(threading.enumerate())
        proc = await asyncio.create_subprocess_exec(*BLOCKED)
        waiting = [thread for thread in threading.enumerate() if thread not in before]
        proc.kill()
        for thread in waiting:
            thread.join()  # it saw the exit; the loop, blocked here, has not published it
        still_ours, returncode = unreaped(proc.pid), proc.returncode
        proc.kill()
        return len(waiting), still_ours, returncode, await proc.wait()

    for factory in exit_reference_loops():
        assert run(factory, main) == (1, True, None, -signal.SIGKILL)


def test_wait_returns_at_the_exit_while_a_grandchild_holds_the_pipes(
    watcher: str, no_fd_leak: None, no_zombie: None
) -> None:
    """The pipes reach EOF only when the grandchild exits; wait() must not wait for that."""
    grandchild = "import sys; sys.stdout.write('ready'); sys.stdout.flush(); sys.stdin.read()"
    code = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {grandchild!r}])"

    async def main() -> tuple[bool, int, bytes]:
        proc = await asyncio.create_subprocess_exec(PY, "-c", code, stdin=PIPE, stdout=PIPE)
        assert proc.stdin is not None and proc.stdout is not None
        waiting = asyncio.create_task(proc.wait())  # begun before the exit
        assert await proc.stdout.readexactly(5) == b"ready"
        proc.kill()
        # A bound against hanging, not a timing check: the exit comes right after the kill.
        done, _ = await asyncio.wait({waiting}, timeout=60)
        proc.stdin.close()  # the grandchild reads EOF and exits, closing the pipes
        rest = await proc.stdout.read()
        return bool(done), await waiting, rest

    for factory in exit_reference_loops():
        assert run(factory, main) == (True, -signal.SIGKILL, b"")


# -- bad input -----------------------------------------------------------------------------


def _outcome(
    main: Callable[[], Coroutine[Any, Any, Any]],
) -> Callable[[], Coroutine[Any, Any, Any]]:
    async def wrapped() -> tuple[str, str]:
        try:
            await main()
        except Exception as exc:
            return type(exc).__name__, str(exc)
        return "no error", ""

    return wrapped


# No fd at or above the soft limit can be open: passing it to a child fails.
NO_FD = resource.getrlimit(resource.RLIMIT_NOFILE)[0]

BAD: dict[str, Callable[[], Coroutine[Any, Any, Any]]] = {
    "missing program": lambda: asyncio.create_subprocess_exec("/nonexistent/program"),
    "bad stdin fd": lambda: asyncio.create_subprocess_exec(PY, "-c", "pass", stdin=987),
    "bad cwd": lambda: asyncio.create_subprocess_exec(PY, "-c", "pass", cwd="/nonexistent"),
    "text": lambda: asyncio.create_subprocess_exec(PY, "-c", "pass", text=True),
    "encoding": lambda: asyncio.create_subprocess_exec(PY, encoding="utf-8"),
    "errors": lambda: asyncio.create_subprocess_shell("true", errors="strict"),
    "universal_newlines": lambda: asyncio.create_subprocess_shell("true", universal_newlines=True),
    "bufsize": lambda: asyncio.get_running_loop().subprocess_exec(
        asyncio.SubprocessProtocol, "true", bufsize=4096
    ),
    "exec shell=True": lambda: asyncio.get_running_loop().subprocess_exec(
        asyncio.SubprocessProtocol, "true", shell=True
    ),
    "shell shell=False": lambda: asyncio.get_running_loop().subprocess_shell(
        asyncio.SubprocessProtocol, "true", shell=False
    ),
    "shell list": lambda: asyncio.get_running_loop().subprocess_shell(
        asyncio.SubprocessProtocol,
        ["true"],  # type: ignore[arg-type]
    ),
    "bad pass_fds": lambda: asyncio.create_subprocess_exec(PY, "-c", "pass", pass_fds=(NO_FD,)),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_gets_asyncios_exception(case: str, no_fd_leak: None, no_zombie: None) -> None:
    result = both(_outcome(BAD[case]))
    assert result[0] != "no error"


# -- where the loop runs -------------------------------------------------------------------


def test_loop_in_a_non_main_thread(watcher: str, no_fd_leak: None, no_zombie: None) -> None:
    results: dict[str, Any] = {}

    async def main() -> tuple[bytes, int | None]:
        proc = await asyncio.create_subprocess_exec(*CAT, stdin=PIPE, stdout=PIPE)
        out, _ = await proc.communicate(b"from a thread")
        return out, proc.returncode

    def in_thread(name: str, factory: LoopFactory) -> None:
        with asyncio.Runner(loop_factory=factory) as runner:
            results[name] = runner.run(main())

    for name, factory in (("std", asyncio.new_event_loop), ("aloop", aloop.new_event_loop)):
        thread = threading.Thread(target=in_thread, args=(name, factory))
        thread.start()
        thread.join()
    assert results["aloop"] == results["std"] == (b"from a thread", 0)


def test_closing_the_loop_with_a_child_running_reaps_it_later(
    watcher: str, no_fd_leak: None, no_zombie: None
) -> None:
    """The loop is gone before the child exits: its exit is still collected."""
    loop = aloop.new_event_loop()

    async def start() -> Any:
        return await asyncio.create_subprocess_exec(*BLOCKED)

    proc = loop.run_until_complete(start())
    pid = proc.pid
    loop.close()
    os.kill(pid, signal.SIGKILL)
    popen = proc._transport.get_extra_info("subprocess")
    for _ in range(10_000):
        if pid not in children():
            break
        threading.Event().wait(0.001)
    assert pid not in children()
    assert popen.returncode == -signal.SIGKILL
    proc._transport.close()


def test_virtual_time_waits_for_the_child_as_for_io(
    watcher: str, no_fd_leak: None, no_zombie: None
) -> None:
    """Both watchers report the exit as I/O: a virtual-time loop waits, never deadlocks."""

    async def main() -> tuple[bytes, int | None]:
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", "import time; time.sleep(0.2); print('done')", stdout=PIPE, stderr=None
        )
        out, _ = await proc.communicate()
        return out, proc.returncode

    assert aloop.run(main(), virtual_time=True) == (b"done\n", 0)


def test_failing_to_connect_a_pipe_kills_and_reaps_the_child(
    watcher: str, no_fd_leak: None, no_zombie: None
) -> None:
    """(aloop only: the stdlib loop then waits forever for the pipe it never connected.)"""

    async def main() -> str:
        loop = asyncio.get_running_loop()

        async def broken(*args: Any, **kwargs: Any) -> Any:
            raise ZeroDivisionError("no pipe today")

        loop.connect_read_pipe = broken  # type: ignore[method-assign]
        try:
            await asyncio.create_subprocess_exec(*BLOCKED, stdin=PIPE, stdout=PIPE)
        except ZeroDivisionError as exc:
            return str(exc)
        return "no error"

    assert run(aloop.new_event_loop, main) == "no pipe today"


def test_sending_a_bad_signal_number(no_fd_leak: None, no_zombie: None) -> None:
    async def main() -> tuple[str, int]:
        proc = await asyncio.create_subprocess_exec(*BLOCKED)
        try:
            proc.send_signal(signal.NSIG + 100)
            error = "no error"
        except Exception as exc:
            error = type(exc).__name__
        proc.kill()
        return error, await proc.wait()

    assert both(main) == ("OSError", -signal.SIGKILL)
