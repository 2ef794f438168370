"""Unix signal handlers on the loop: real signals, on the stdlib loop and on aloop.

A handler added with ``add_signal_handler`` runs as a loop callback, also when
the signal arrives while the loop sleeps in poll with nothing else to wake it.
Errors (bad signal numbers, SIGKILL, a non-main thread) are asyncio's, type
and message; closing the loop restores the default handlers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import pytest
from tests.support import LoopFactory, both, in_new_loop, outcome

import aloop

SRC_DIR = os.path.dirname(os.path.dirname(os.path.abspath(aloop.__file__)))


@pytest.fixture(autouse=True)
def restore_signals() -> Any:
    """Whatever a failing test leaves behind, later tests get the default handlers back."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)
    signal.set_wakeup_fd(-1)


def test_handler_runs_while_the_loop_sleeps(loop_factory: LoopFactory, no_fd_leak: None) -> None:
    """Nothing but the signal can wake the loop: no timer, no other fd, a bare future."""

    def body(loop: asyncio.AbstractEventLoop) -> list[Any]:
        got: list[Any] = []
        done = loop.create_future()

        def handler(*args: Any) -> None:
            got.append((args, asyncio.get_running_loop() is loop))
            done.set_result(None)

        loop.add_signal_handler(signal.SIGUSR1, handler, "a", 1)
        # From another thread, so the loop is certainly inside poll when it lands.
        timer = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGUSR1))
        timer.start()
        loop.run_until_complete(done)
        timer.join()
        return got

    assert in_new_loop(loop_factory, body) == [(("a", 1), True)]


def test_signal_from_an_interval_timer_while_polling(loop_factory: LoopFactory) -> None:
    def body(loop: asyncio.AbstractEventLoop) -> int:
        caught = 0

        def handler() -> None:
            nonlocal caught
            caught += 1
            loop.stop()

        loop.add_signal_handler(signal.SIGALRM, handler)
        signal.setitimer(signal.ITIMER_REAL, 0.02, 0)
        guard = loop.call_later(60, loop.stop)
        loop.run_forever()
        guard.cancel()
        return caught

    assert in_new_loop(loop_factory, body) == 1


def test_each_signal_runs_the_handler_and_last_handler_wins(loop_factory: LoopFactory) -> None:
    def body(loop: asyncio.AbstractEventLoop) -> list[str]:
        got: list[str] = []

        async def main() -> None:
            loop.add_signal_handler(signal.SIGUSR1, got.append, "first")
            loop.add_signal_handler(signal.SIGUSR1, got.append, "second")
            loop.add_signal_handler(signal.SIGUSR2, got.append, "usr2")
            for count, sig in enumerate((signal.SIGUSR1, signal.SIGUSR2, signal.SIGUSR1), 1):
                # One at a time: two pending signals of one kind merge into one.
                os.kill(os.getpid(), sig)
                await _until(lambda n=count: len(got) >= n)  # type: ignore[misc]

        loop.run_until_complete(main())
        return got

    assert in_new_loop(loop_factory, body) == ["second", "usr2", "second"]


async def _until(cond: Callable[[], bool]) -> None:
    """Yield to the loop until ``cond()`` holds (signals arrive asynchronously)."""
    for _ in range(100_000):
        if cond():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition never became true")


def test_exception_in_handler_goes_to_the_exception_handler(loop_factory: LoopFactory) -> None:
    def body(loop: asyncio.AbstractEventLoop) -> list[str]:
        seen: list[str] = []

        def handler() -> None:
            raise ZeroDivisionError("in handler")

        def on_error(loop: Any, context: dict[str, Any]) -> None:
            seen.append(type(context.get("exception")).__name__)
            seen.append(context["message"].split(" ")[0])

        loop.set_exception_handler(on_error)
        loop.add_signal_handler(signal.SIGUSR1, handler)

        async def main() -> None:
            os.kill(os.getpid(), signal.SIGUSR1)
            await _until(lambda: bool(seen))

        loop.run_until_complete(main())
        return seen

    assert in_new_loop(loop_factory, body) == ["ZeroDivisionError", "Exception"]


def test_handler_runs_in_the_context_it_was_added_in(loop_factory: LoopFactory) -> None:
    import contextvars

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    def body(loop: asyncio.AbstractEventLoop) -> list[str]:
        seen: list[str] = []

        async def main() -> None:
            var.set("at add")
            loop.add_signal_handler(signal.SIGUSR1, lambda: seen.append(var.get()))
            var.set("later")
            os.kill(os.getpid(), signal.SIGUSR1)
            await _until(lambda: bool(seen))

        loop.run_until_complete(main())
        return seen

    assert in_new_loop(loop_factory, body) == ["at add"]


BAD_CALLS: list[tuple[str, Callable[[asyncio.AbstractEventLoop], Any]]] = [
    ("add str", lambda loop: loop.add_signal_handler("boom", print)),  # type: ignore[arg-type]
    ("remove str", lambda loop: loop.remove_signal_handler("boom")),  # type: ignore[arg-type]
    ("add 0", lambda loop: loop.add_signal_handler(0, print)),
    ("remove 0", lambda loop: loop.remove_signal_handler(0)),
    ("add -1", lambda loop: loop.add_signal_handler(-1, print)),
    ("add NSIG+1", lambda loop: loop.add_signal_handler(signal.NSIG + 1, print)),
    ("remove NSIG+1", lambda loop: loop.remove_signal_handler(signal.NSIG + 1)),
    ("add SIGKILL", lambda loop: loop.add_signal_handler(signal.SIGKILL, print)),
    ("add SIGSTOP", lambda loop: loop.add_signal_handler(signal.SIGSTOP, print)),
    ("remove SIGKILL", lambda loop: loop.remove_signal_handler(signal.SIGKILL)),
    ("remove unset", lambda loop: loop.remove_signal_handler(signal.SIGUSR2)),
    ("add coroutine function", lambda loop: loop.add_signal_handler(signal.SIGUSR1, _coro)),
    ("add float", lambda loop: loop.add_signal_handler(2.0, print)),  # type: ignore[arg-type]
]


async def _coro() -> None:
    pass


@pytest.mark.parametrize("call", [c for _, c in BAD_CALLS], ids=[n for n, _ in BAD_CALLS])
def test_bad_input_gets_asyncios_exception(
    call: Callable[[asyncio.AbstractEventLoop], Any], no_fd_leak: None
) -> None:
    both(lambda loop: outcome(lambda: call(loop)), in_new_loop)  # the same outcome on each
    # A refused handler leaves the default disposition in place.
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_closed_loop_refuses_a_handler(loop_factory: LoopFactory) -> None:
    loop = loop_factory()
    loop.close()
    assert outcome(lambda: loop.add_signal_handler(signal.SIGUSR1, print)) == (
        RuntimeError,
        "Event loop is closed",
    )


def test_non_main_thread_is_refused_with_asyncios_error() -> None:
    results: dict[str, Any] = {}

    def in_thread(name: str, factory: LoopFactory) -> None:
        loop = factory()
        try:
            results[name] = outcome(lambda: loop.add_signal_handler(signal.SIGUSR1, print))
        finally:
            loop.close()

    for name, factory in (("std", asyncio.new_event_loop), ("aloop", aloop.new_event_loop)):
        thread = threading.Thread(target=in_thread, args=(name, factory))
        thread.start()
        thread.join()
    assert results["aloop"] == results["std"]
    assert results["std"][0] is RuntimeError


def test_remove_and_close_restore_the_defaults(loop_factory: LoopFactory) -> None:
    loop = loop_factory()
    loop.add_signal_handler(signal.SIGUSR1, print)
    loop.add_signal_handler(signal.SIGUSR2, print)
    loop.add_signal_handler(signal.SIGINT, print)
    assert signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, None)
    assert loop.remove_signal_handler(signal.SIGUSR1) is True
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    assert loop.remove_signal_handler(signal.SIGUSR1) is False
    loop.close()
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    # No wakeup fd is left installed: set_wakeup_fd returns the previous one.
    assert signal.set_wakeup_fd(-1) == -1


def test_handlers_survive_fork_of_a_child_closing_its_copy(no_fd_leak: None) -> None:
    """A forked child closing its inherited loop must not unregister the parent's fds."""
    loop = aloop.new_event_loop()
    try:
        got: list[str] = []
        loop.add_signal_handler(signal.SIGUSR1, got.append, "parent")
        pid = os.fork()
        if pid == 0:  # the child: close the inherited loop and leave at once
            code = 0
            try:
                loop.close()
            except BaseException:
                traceback.print_exc()
                code = 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0

        async def main() -> None:
            os.kill(os.getpid(), signal.SIGUSR1)
            await _until(lambda: bool(got))

        loop.run_until_complete(main())
        assert got == ["parent"]
    finally:
        loop.close()


CTRL_C_CHILD = """\
import asyncio, signal, sys
sys.path.insert(0, {src!r})
import aloop

# As a terminal's process: a shell without job control starts children with SIGINT ignored.
signal.signal(signal.SIGINT, signal.default_int_handler)
run = asyncio.run if sys.argv[1] == "asyncio" else aloop.run

async def main():
    loop = asyncio.get_running_loop()
    # A handler for another signal: the loop's wakeup fd is installed.
    loop.add_signal_handler(signal.SIGUSR1, print, "usr1")
    try:
        print("ready", flush=True)
        await loop.create_future()
    except asyncio.CancelledError:
        print("main cancelled", flush=True)
        raise

try:
    run(main())
except KeyboardInterrupt:
    print("run raised KeyboardInterrupt", flush=True)
    raise
"""


def _ctrl_c(runner: str) -> tuple[str, int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CTRL_C_CHILD.format(src=SRC_DIR), runner],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline() == "ready\n"
        # Let the child get into its poll, as tests/test_runner.py does.
        time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return out, proc.returncode


def test_ctrl_c_with_signal_handlers_installed_is_as_asyncio_run() -> None:
    expected = _ctrl_c("asyncio")
    assert expected == ("main cancelled\nrun raised KeyboardInterrupt\n", -signal.SIGINT)
    assert _ctrl_c("aloop") == expected


def _run_child(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh interpreter; its output, as text."""
    return subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=60
    )


# A SIGINT that arrives while the loop runs C code only (no bytecode between the
# last callback and the poll): libc's kill() through ctypes does not check for
# pending signals itself, as os.kill and signal.raise_signal would.
PENDING_SIGINT = r"""
import asyncio, ctypes, os, signal, sys
import aloop

loop = aloop.new_event_loop() if sys.argv[1] == "aloop" else asyncio.new_event_loop()
fired = []
loop.call_soon(ctypes.CDLL(None).kill, os.getpid(), signal.SIGINT)
loop.call_later(2.0, fired.append, "timer")
loop.call_later(2.0, loop.stop)
try:
    loop.run_forever()
    print("no KeyboardInterrupt")
except KeyboardInterrupt:
    print("KeyboardInterrupt", "after the timer" if fired else "before the timer")
finally:
    loop.close()
"""


@pytest.mark.parametrize("name", ["asyncio", "aloop"])
def test_sigint_between_callbacks_interrupts_the_sleeping_loop(name: str) -> None:
    # Ctrl-C at the instant a REPL statement's task goes back to the loop.
    proc = _run_child(PENDING_SIGINT, name)
    assert proc.stdout.strip() == "KeyboardInterrupt before the timer", proc.stderr


# The same for any Python-level handler (signal.signal, no add_signal_handler):
# it runs before the loop goes back to sleep, as between asyncio's callbacks.
PENDING_USR1 = r"""
import asyncio, ctypes, os, signal, sys
import aloop

loop = aloop.new_event_loop() if sys.argv[1] == "aloop" else asyncio.new_event_loop()
seen = []
signal.signal(signal.SIGUSR1, lambda *_: seen.append(loop.time()))
start = loop.time()
loop.call_soon(ctypes.CDLL(None).kill, os.getpid(), signal.SIGUSR1)
loop.call_later(1.0, loop.stop)
loop.run_forever()
loop.close()
print("handler ran", "at once" if seen and seen[0] - start < 0.5 else seen)
"""


@pytest.mark.parametrize("name", ["asyncio", "aloop"])
def test_python_level_handler_runs_before_the_loop_sleeps(name: str) -> None:
    proc = _run_child(PENDING_USR1, name)
    assert proc.stdout.strip() == "handler ran at once", proc.stderr


def test_a_run_leaves_the_wakeup_fd_as_it_found_it(loop_factory: LoopFactory) -> None:
    """Unset stays unset after a run; another owner's fd is neither replaced nor dropped."""

    def wakeup_fd_after_run(before: int) -> int:
        signal.set_wakeup_fd(before)
        loop = loop_factory()
        try:
            loop.run_until_complete(asyncio.sleep(0))
        finally:
            loop.close()
        return signal.set_wakeup_fd(-1)

    assert wakeup_fd_after_run(-1) == -1
    read_fd, write_fd = os.pipe()
    try:
        os.set_blocking(write_fd, False)
        assert wakeup_fd_after_run(write_fd) == write_fd
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_a_signal_between_runs_reaches_its_handler(loop_factory: LoopFactory) -> None:
    """add_signal_handler's wakeup fd outlives a run: the next run delivers the signal."""

    def body(loop: asyncio.AbstractEventLoop) -> list[str]:
        got: list[str] = []
        loop.add_signal_handler(signal.SIGUSR1, got.append, "usr1")
        loop.run_until_complete(asyncio.sleep(0))
        os.kill(os.getpid(), signal.SIGUSR1)
        loop.run_until_complete(asyncio.sleep(0.1))
        return got

    assert in_new_loop(loop_factory, body) == ["usr1"]


# A thread floods call_soon_threadsafe while the loop is busy in one callback,
# then a signal comes. asyncio writes a byte to its self-pipe per call, fills it,
# and the signal module's write of the signal number fails ("Exception ignored
# when trying to write to the signal wakeup fd"): the handler never runs. aloop
# writes one wake-up byte until the loop drains the pipe, so the number gets in.
FLOODED_WAKEUP = r"""
import os, signal, threading
import aloop

loop = aloop.new_event_loop()
done = loop.create_future()
loop.add_signal_handler(signal.SIGUSR1, lambda: done.done() or done.set_result("usr1"))


def flood():
    for _ in range(200_000):
        loop.call_soon_threadsafe(int)


def busy_then_signal():
    thread = threading.Thread(target=flood)
    thread.start()
    thread.join()
    os.kill(os.getpid(), signal.SIGUSR1)


loop.call_soon(busy_then_signal)
loop.call_later(5.0, lambda: done.done() or done.set_result("timeout"))
print(loop.run_until_complete(done))
loop.close()
"""


def test_a_signal_after_a_flood_of_thread_wakeups_reaches_its_handler() -> None:
    proc = _run_child(FLOODED_WAKEUP)
    assert (proc.stdout.strip(), proc.stderr) == ("usr1", "")
