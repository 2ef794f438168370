"""asyncio's 3.14 and 3.15 additions, on aloop as on the stdlib loop.

Call graphs (``asyncio.capture_call_graph``), ``python -m asyncio ps/pstree``
reading a live program's tasks from outside, eager ``create_task``,
thread-safe handles, ``TaskGroup.cancel()`` (3.15). Also what 3.14's own test
suite asks of a loop on every version: when a program makes asyncio's
pure-Python Task and Future the default classes, the loop builds those.
"""

from __future__ import annotations

import asyncio
import contextvars
import re
import subprocess
import sys
import threading
import time
import warnings
from asyncio import events, futures, tasks
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support import LoopFactory, aloop_env, both, run_on

import aloop

needs_graph = pytest.mark.skipif(
    sys.version_info < (3, 14), reason="asyncio call graphs are new in Python 3.14"
)
needs_tools = pytest.mark.skipif(
    sys.version_info < (3, 14), reason="python -m asyncio ps/pstree are new in Python 3.14"
)
needs_eager_kwarg = pytest.mark.skipif(
    sys.version_info < (3, 14),
    reason="the stdlib loop's create_task takes eager_start from Python 3.14",
)
HAS_THREADSAFE_HANDLES = hasattr(events, "_ThreadSafeHandle")
needs_threadsafe_handles = pytest.mark.skipif(
    not HAS_THREADSAFE_HANDLES,
    reason="call_soon_threadsafe returns a cancellable-from-any-thread handle from 3.14",
)


def _normalize(text: str) -> str:
    """Output with object ids and thread ids blanked, runs of spaces collapsed."""
    lines = []
    for line in text.splitlines():
        line = re.sub(r"0x[0-9a-f]+", "0x?", line)
        line = re.sub(r"^\d+\s", "TID ", line)
        line = re.sub(r"Task-\d+", "Task-N", line)  # numbered process-wide
        lines.append(" ".join(line.split()))
    return "\n".join(lines)


# -- the pure-Python Task and Future --------------------------------------------------------


@pytest.fixture
def pure_python_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    """asyncio's pure-Python Task and Future as the defaults, as 3.14's test_graph sets them."""
    monkeypatch.setattr(asyncio, "Future", futures._PyFuture)  # type: ignore[attr-defined]
    monkeypatch.setattr(futures, "Future", futures._PyFuture)  # type: ignore[attr-defined]
    monkeypatch.setattr(asyncio, "Task", tasks._PyTask)  # type: ignore[attr-defined]
    monkeypatch.setattr(tasks, "Task", tasks._PyTask)  # type: ignore[attr-defined]
    for name in ("future_add_to_awaited_by", "future_discard_from_awaited_by"):
        if hasattr(futures, f"_py_{name}"):
            monkeypatch.setattr(futures, name, getattr(futures, f"_py_{name}"))
            monkeypatch.setattr(asyncio, name, getattr(futures, f"_py_{name}"))
    if hasattr(tasks, "_py_current_task"):  # 3.12+
        monkeypatch.setattr(asyncio, "current_task", tasks._py_current_task)
        monkeypatch.setattr(tasks, "current_task", tasks._py_current_task)


@pytest.mark.usefixtures("pure_python_tasks")
def test_loop_builds_the_default_task_and_future_classes(loop_factory: LoopFactory) -> None:
    async def main() -> tuple[type, type, str, object]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        future.set_result(None)
        task = loop.create_task(asyncio.sleep(0, "slept"), name="pure")
        return type(future), type(task), task.get_name(), await task

    got = run_on(loop_factory, main)
    assert got == (futures._PyFuture, tasks._PyTask, "pure", "slept")  # type: ignore[attr-defined]


# -- call graphs -------------------------------------------------------------------------------


async def _graph_program() -> list[str]:
    """Call graphs of tasks in a TaskGroup, a gather and a shield (format_call_graph)."""
    out: list[str] = []
    gate = asyncio.Event()

    async def leaf() -> None:
        out.append(asyncio.format_call_graph())  # type: ignore[attr-defined]
        await gate.wait()

    async def group() -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(leaf(), name="leaf-in-group")

    async def gathered() -> None:
        await asyncio.gather(leaf(), asyncio.shield(leaf()))

    tasks_ = [
        asyncio.create_task(group(), name="group"),
        asyncio.create_task(gathered(), name="gathered"),
    ]
    for _ in range(3):
        await asyncio.sleep(0)
    graphs = [asyncio.format_call_graph(task) for task in asyncio.all_tasks()]  # type: ignore[attr-defined]
    out.extend(sorted(_normalize(text) for text in graphs))
    gate.set()
    await asyncio.gather(*tasks_)
    graph = asyncio.capture_call_graph(tasks_[0])  # type: ignore[attr-defined]
    out.append(f"done: {graph.call_stack} {graph.awaited_by}")
    return [_normalize(text) for text in out]


def _graphs_on_both_loops() -> None:
    assert "leaf-in-group" in "".join(both(_graph_program))


@needs_graph
def test_call_graphs_equal_the_stdlib_loops() -> None:
    _graphs_on_both_loops()


@needs_graph
@pytest.mark.usefixtures("pure_python_tasks")
def test_call_graphs_of_pure_python_tasks_equal_the_stdlib_loops() -> None:
    _graphs_on_both_loops()


@needs_graph
def test_print_call_graph_of_the_current_task() -> None:
    async def main() -> str:
        import io

        buf = io.StringIO()

        async def inner() -> None:
            asyncio.print_call_graph(file=buf)  # type: ignore[attr-defined]

        await asyncio.create_task(inner(), name="printer")
        return _normalize(buf.getvalue())

    assert "printer" in both(main)


# -- python -m asyncio ps / pstree -------------------------------------------------------------

_CHILD = """\
import asyncio
import os
import sys

import aloop


async def wait_for(gate):
    await gate.wait()


async def worker(gate):
    async with asyncio.TaskGroup() as tg:
        tg.create_task(wait_for(gate), name="leaf-a")
        tg.create_task(wait_for(gate), name="leaf-b")


async def main():
    gate = asyncio.Event()
    loop = asyncio.get_running_loop()
    held = [
        asyncio.create_task(worker(gate), name="the-worker"),
        loop.create_task(wait_for(gate), name="eager-one", eager_start=True),
    ]
    for _ in range(3):
        await asyncio.sleep(0)
    print("ready", flush=True)
    await asyncio.sleep(3600)


factory = aloop.new_event_loop if sys.argv[1] == "aloop" else asyncio.new_event_loop
asyncio.run(main(), loop_factory=factory)
"""


@pytest.fixture
def child_program(tmp_path: Path) -> Iterator[Callable[[str], int]]:
    """Start the program above on a loop ("aloop" or "stdlib"); return its pid."""
    script = tmp_path / "tasks_program.py"
    script.write_text(_CHILD)
    children: list[subprocess.Popen[str]] = []

    def start(loop: str) -> int:
        proc = subprocess.Popen(
            [sys.executable, str(script), loop],
            stdout=subprocess.PIPE,
            text=True,
            env=aloop_env(),
        )
        children.append(proc)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        return proc.pid

    yield start
    for proc in children:
        proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def _asyncio_tool(command: str, pid: int) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "asyncio", command, str(pid)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0 and "ermission" in done.stderr + done.stdout:
        pytest.skip(f"this system forbids reading another process's memory: {done.stderr}")
    assert done.returncode == 0, done.stderr
    return done.stdout


@needs_tools
@pytest.mark.parametrize("command", ["ps", "pstree"])
def test_asyncio_tool_lists_the_tasks_of_a_running_program(
    command: str, child_program: Callable[[str], int]
) -> None:
    expected = _normalize(_asyncio_tool(command, child_program("stdlib")))
    got = _normalize(_asyncio_tool(command, child_program("aloop")))
    for name in ("the-worker", "leaf-a", "leaf-b", "eager-one", "wait_for", "Event.wait"):
        assert name in got
    if command == "ps":
        # One row per task: the order follows where each task sits in memory.
        assert sorted(got.splitlines()) == sorted(expected.splitlines())
    else:
        assert got == expected


# -- eager create_task, asyncio.run with a loop factory ----------------------------------------


@needs_eager_kwarg
def test_create_task_eager_start(loop_factory: LoopFactory) -> None:
    async def main() -> list[object]:
        loop = asyncio.get_running_loop()
        log: list[object] = []

        async def quick() -> str:
            log.append(("quick runs in", asyncio.current_task() is not outer))
            return "quick"

        async def slow() -> str:
            log.append("slow starts")
            await asyncio.sleep(0)
            log.append("slow resumes")
            return "slow"

        outer = asyncio.current_task()
        done = loop.create_task(quick(), eager_start=True, name="done-at-once")
        log.append(("quick", done.done(), done.result(), done.get_name()))
        pending = loop.create_task(slow(), eager_start=True)
        log.append(("slow", pending.done(), pending in asyncio.all_tasks()))
        lazy = asyncio.create_task(quick(), eager_start=False)  # type: ignore[call-arg]
        log.append(("lazy", lazy.done()))
        log.append(await asyncio.gather(done, pending, lazy))
        return log

    assert run_on(loop_factory, main) == [
        ("quick runs in", True),
        ("quick", True, "quick", "done-at-once"),
        "slow starts",
        ("slow", False, True),
        ("lazy", False),
        "slow resumes",
        ("quick runs in", True),
        ["quick", "slow", "quick"],
    ]


@needs_eager_kwarg
def test_asyncio_run_with_aloop_factory_warns_nothing() -> None:
    seen: list[asyncio.AbstractEventLoop] = []

    async def main() -> str:
        seen.append(asyncio.get_running_loop())
        task = asyncio.get_running_loop().create_task(asyncio.sleep(0, "ok"), eager_start=True)
        return await task

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no policy is involved: no deprecation
        assert asyncio.run(main(), loop_factory=aloop.new_event_loop) == "ok"
    assert isinstance(seen[0], aloop.Loop)
    assert seen[0].is_closed()


# -- TaskGroup.cancel() (3.15) -----------------------------------------------------------------


@pytest.mark.skipif(
    not hasattr(asyncio.TaskGroup, "cancel"), reason="TaskGroup.cancel() is new in Python 3.15"
)
def test_task_group_cancel(loop_factory: LoopFactory) -> None:
    async def main() -> list[object]:
        log: list[object] = []

        async def child(i: int) -> None:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                log.append(f"child {i} cancelled")
                raise

        async with asyncio.TaskGroup() as tg:
            for i in range(2):
                tg.create_task(child(i))
            await asyncio.sleep(0)
            tg.cancel()  # type: ignore[attr-defined]
            await asyncio.sleep(3600)
            log.append("not reached")
        # The group cancels its tasks in set order: sort.
        log[:] = sorted(log)
        current = asyncio.current_task()
        assert current is not None
        log.append(("group left", current.cancelling()))

        early = asyncio.TaskGroup()
        early.cancel()  # type: ignore[attr-defined]
        async with early:
            log.append(("entered, shutting down", repr(early)))
            await asyncio.sleep(3600)
            log.append("not reached either")
        log.append(("cancelled before entry, left", current.cancelling()))
        early.cancel()  # type: ignore[attr-defined]  # after exit: nothing happens
        return log

    assert run_on(loop_factory, main) == [
        "child 0 cancelled",
        "child 1 cancelled",
        ("group left", 0),
        ("entered, shutting down", "<TaskGroup cancelling>"),
        ("cancelled before entry, left", 0),
    ]


# -- a server connection's context (3.15, gh-140947) --------------------------------------------


async def _connection_contexts() -> dict[str, list[tuple[str, object]]]:
    """Context variables each protocol callback sees; a task resumes reading after a pause.

    3.15 runs a server connection's callbacks in a context of their own, copied
    from the server's: what the task set before ``resume_reading()`` stays out
    of ``connection_lost``. Earlier versions let it in, on both loops.
    """
    seen: dict[str, list[tuple[str, object]]] = {}
    marks = [contextvars.ContextVar(f"mark{i}") for i in range(3)]

    def capture(where: str) -> None:
        seen[where] = sorted(
            (var.name, value)
            for var, value in contextvars.copy_context().items()
            if var.name.startswith("mark")
        )

    class Proto(asyncio.Protocol):
        def __init__(self, lost: asyncio.Future[None]) -> None:
            self.lost = lost
            self.tasks: set[asyncio.Task[None]] = set()

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            capture("connection_made")
            assert isinstance(transport, asyncio.Transport)
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            capture("data_received")
            task = asyncio.create_task(self.handle())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            self.transport.pause_reading()

        def connection_lost(self, exc: Exception | None) -> None:
            capture("connection_lost")
            if not self.lost.done():
                self.lost.set_result(None)

        async def handle(self) -> None:
            marks[0].set(True)
            while self.transport.is_reading():
                await asyncio.sleep(0.001)
            marks[1].set(True)
            self.transport.resume_reading()
            marks[2].set(True)
            capture("task end")

    loop = asyncio.get_running_loop()
    lost: asyncio.Future[None] = loop.create_future()
    server = await loop.create_server(lambda: Proto(lost), "127.0.0.1", 0)
    async with server:
        _reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
        writer.write(b"request")
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        await lost
    return seen


def test_server_connection_callbacks_run_in_the_connections_context() -> None:
    got = both(_connection_contexts)
    assert got["task end"] == [("mark0", True), ("mark1", True), ("mark2", True)]


# -- call_soon_threadsafe handles (3.14) -------------------------------------------------------


def _run_threadsafe_program(
    loop_factory: LoopFactory, program: Callable[[asyncio.AbstractEventLoop, list[object]], None]
) -> list[object]:
    """Run ``program(loop, log)`` on a fresh loop until it stops the loop; return the log."""
    loop = loop_factory()
    log: list[object] = []
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        loop.call_soon(program, loop, log)
        loop.run_forever()
    finally:
        loop.close()
    log.extend(f"error: {context['message'].split(' ')[0:3]}" for context in errors)
    return log


@needs_threadsafe_handles
def test_threadsafe_handle_is_asyncios_class(loop_factory: LoopFactory) -> None:
    def program(loop: asyncio.AbstractEventLoop, log: list[object]) -> None:
        handle = loop.call_soon_threadsafe(loop.stop)
        log.append(isinstance(handle, events._ThreadSafeHandle))  # type: ignore[attr-defined]
        log.append(repr(handle).split(" ")[0])
        log.append(repr(loop.call_soon(print)).split(" ")[0])

    assert _run_threadsafe_program(loop_factory, program) == [
        True,
        "<_ThreadSafeHandle",
        "<Handle",
    ]


@needs_threadsafe_handles
def test_threadsafe_handle_cancelled_from_another_thread_never_runs(
    loop_factory: LoopFactory,
) -> None:
    def program(loop: asyncio.AbstractEventLoop, log: list[object]) -> None:
        queued = threading.Event()

        def other_thread() -> None:
            handle = loop.call_soon_threadsafe(log.append, "ran")
            handle.cancel()
            log.append(("cancelled", handle.cancelled()))
            queued.set()
            loop.call_soon_threadsafe(loop.stop)

        thread = threading.Thread(target=other_thread)
        thread.start()
        # The loop stays inside this callback until the handle is queued and cancelled.
        queued.wait()
        thread.join()

    assert _run_threadsafe_program(loop_factory, program) == [("cancelled", True)]


@needs_threadsafe_handles
def test_threadsafe_handle_cancel_waits_for_the_running_callback(
    loop_factory: LoopFactory,
) -> None:
    def program(loop: asyncio.AbstractEventLoop, log: list[object]) -> None:
        started = threading.Event()
        cancelling = threading.Event()
        box: list[asyncio.Handle] = []

        def callback() -> None:
            started.set()
            cancelling.wait()
            # Were cancel() not waiting for this callback, it would return
            # (and be logged) during this pause.
            time.sleep(0.2)
            log.append("callback ends")

        def other_thread() -> None:
            box.append(loop.call_soon_threadsafe(callback))
            started.wait()
            cancelling.set()
            box[0].cancel()
            log.append(("cancel returned", box[0].cancelled()))
            loop.call_soon_threadsafe(loop.stop)

        threading.Thread(target=other_thread).start()

    assert _run_threadsafe_program(loop_factory, program) == [
        "callback ends",
        ("cancel returned", True),
    ]


@needs_threadsafe_handles
def test_threadsafe_handle_cancelled_by_its_own_callback_runs_to_the_end(
    loop_factory: LoopFactory,
) -> None:
    def program(loop: asyncio.AbstractEventLoop, log: list[object]) -> None:
        box: list[asyncio.Handle] = []

        def callback() -> None:
            box[0].cancel()
            log.append(("cancelled itself", box[0].cancelled()))
            loop.stop()

        def other_thread() -> None:
            box.append(loop.call_soon_threadsafe(callback))

        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()

    assert _run_threadsafe_program(loop_factory, program) == [("cancelled itself", True)]


@needs_threadsafe_handles
def test_threadsafe_handle_cancelled_after_being_taken_from_the_queue(
    loop_factory: LoopFactory,
) -> None:
    """A handle cancelled between the loop's check and its run does not run (asyncio's _run)."""

    def program(loop: asyncio.AbstractEventLoop, log: list[object]) -> None:
        handle = loop.call_soon_threadsafe(log.append, "ran")
        handle.cancel()
        handle._run()  # type: ignore[attr-defined]
        log.append("checked")
        loop.stop()

    assert _run_threadsafe_program(loop_factory, program) == ["checked"]


@needs_threadsafe_handles
def test_threadsafe_handle_reports_its_callbacks_exception(loop_factory: LoopFactory) -> None:
    def program(loop: asyncio.AbstractEventLoop, log: list[object]) -> None:
        def fails() -> None:
            loop.stop()
            raise ValueError("from a thread-safe callback")

        handle = loop.call_soon_threadsafe(fails)
        log.append(isinstance(handle, events._ThreadSafeHandle))  # type: ignore[attr-defined]

    assert _run_threadsafe_program(loop_factory, program) == [
        True,
        "error: ['Exception', 'in', 'callback']",
    ]
