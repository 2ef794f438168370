"""Callbacks and timers: the same programs on the stdlib loop and on aloop."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import random
import re
import socket
import sys
import threading
import time
import weakref
from typing import Any

import pytest
from tests.support import LoopFactory, both

import aloop

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


def run_program(factory: LoopFactory, program: Any) -> list[Any]:
    """Run ``program(loop, log)`` on a fresh loop until it stops; return the log."""
    loop = factory()
    log: list[Any] = []
    try:
        program(loop, log)
        loop.run_forever()
    finally:
        loop.close()
    return log


def test_call_soon_runs_in_fifo_order_with_args() -> None:
    def program(loop: asyncio.AbstractEventLoop, log: list[Any]) -> None:
        for i in range(5):
            loop.call_soon(log.append, i)
        loop.call_soon(lambda a, b, c: log.append((a, b, c)), 1, 2, 3)
        loop.call_soon(loop.stop)

    assert both(program, run_program) == [0, 1, 2, 3, 4, (1, 2, 3)]


def test_callbacks_scheduled_while_running_wait_for_next_iteration() -> None:
    def program(loop: asyncio.AbstractEventLoop, log: list[Any]) -> None:
        def first() -> None:
            log.append("first")
            loop.call_soon(log.append, "scheduled by first")

        loop.call_soon(first)
        loop.call_soon(log.append, "second")
        loop.call_soon(loop.stop)

    # stop() ends run_forever after the iteration that ran it, so the
    # callback first() scheduled runs on the next run_forever only.
    assert both(program, run_program) == ["first", "second"]


def test_stop_before_run_forever_runs_one_iteration() -> None:
    def program(loop: asyncio.AbstractEventLoop, log: list[Any]) -> None:
        loop.call_soon(log.append, "a")
        loop.stop()
        loop.call_soon(log.append, "b")

    assert both(program, run_program) == ["a", "b"]


def test_timers_run_in_deadline_order_and_equal_deadlines_in_call_order() -> None:
    def program(loop: asyncio.AbstractEventLoop, log: list[Any]) -> None:
        now = loop.time()
        loop.call_at(now + 0.03, log.append, "c")
        loop.call_later(0.01, log.append, "a")
        for i in range(5):
            loop.call_at(now + 0.02, log.append, f"b{i}")
        loop.call_later(0.04, loop.stop)

    assert run_program(aloop.new_event_loop, program) == ["a", "b0", "b1", "b2", "b3", "b4", "c"]


def test_timer_does_not_fire_early() -> None:
    loop = aloop.new_event_loop()
    fired: list[float] = []
    start = loop.time()
    loop.call_later(0.05, lambda: (fired.append(loop.time()), loop.stop()))
    loop.run_forever()
    loop.close()
    assert fired[0] - start >= 0.05 - 1e-3


def test_cancelled_handles_do_not_run() -> None:
    def program(loop: asyncio.AbstractEventLoop, log: list[Any]) -> None:
        h1 = loop.call_soon(log.append, "soon")
        h2 = loop.call_later(0.001, log.append, "later")
        h1.cancel()
        h2.cancel()
        log.append((h1.cancelled(), h2.cancelled()))
        loop.call_later(0.01, loop.stop)

    assert both(program, run_program) == [(True, True)]


def test_handle_api_matches_asyncio() -> None:
    for factory in (asyncio.new_event_loop, aloop.new_event_loop):
        loop = factory()
        ctx = contextvars.copy_context()
        h = loop.call_later(10, print, context=ctx)
        assert h.when() == pytest.approx(loop.time() + 10, abs=0.5)
        # Handle.get_context() is new in 3.12; aloop's handles have it everywhere.
        if factory is aloop.new_event_loop or hasattr(h, "get_context"):
            assert h.get_context() is ctx
        assert "when=" in repr(h) and "print" in repr(h)
        h.cancel()
        assert repr(h).startswith("<TimerHandle cancelled when=")
        h2 = loop.call_soon(print, 1)
        # 3.13 shows arguments only in debug mode.
        assert repr(h2) in ("<Handle print(1)>", "<Handle print()>")
        assert repr(h2) == _stdlib_handle_repr(print, 1)
        loop.close()


def _stdlib_handle_repr(callback: Any, *args: Any) -> str:
    loop = asyncio.new_event_loop()
    try:
        return repr(loop.call_soon(callback, *args))
    finally:
        loop.close()


def test_callbacks_run_in_their_context() -> None:
    def program(loop: asyncio.AbstractEventLoop, log: list[Any]) -> None:
        var.set("at schedule")
        loop.call_soon(lambda: log.append(var.get()))
        ctx = contextvars.Context()
        ctx.run(var.set, "explicit")
        loop.call_soon(lambda: log.append(var.get()), context=ctx)
        loop.call_later(0.001, lambda: log.append(var.get()), context=ctx)
        var.set("changed later")
        loop.call_later(0.002, loop.stop)

    result = contextvars.Context().run(both, program, run_program)
    assert result == ["at schedule", "explicit", "explicit"]


def test_call_soon_threadsafe_wakes_a_sleeping_loop() -> None:
    loop = aloop.new_event_loop()
    woke: list[str] = []

    def from_thread() -> None:
        time.sleep(0.05)
        loop.call_soon_threadsafe(lambda: (woke.append("woken"), loop.stop()))

    # With nothing scheduled the loop sleeps in poll with no timeout: only
    # the wake-up fd can end this run.
    thread = threading.Thread(target=from_thread)
    thread.start()
    loop.run_forever()
    thread.join()
    loop.close()
    assert woke == ["woken"]


def test_many_threads_calling_threadsafe_lose_nothing() -> None:
    loop = aloop.new_event_loop()
    seen: list[int] = []
    per_thread = 2000

    def producer(base: int) -> None:
        for i in range(per_thread):
            loop.call_soon_threadsafe(seen.append, base + i)

    async def main() -> None:
        threads = [threading.Thread(target=producer, args=(k * per_thread,)) for k in range(4)]
        for t in threads:
            t.start()
        while len(seen) < 4 * per_thread:
            await asyncio.sleep(0.001)
        for t in threads:
            t.join()

    loop.run_until_complete(main())
    loop.close()
    assert sorted(seen) == list(range(4 * per_thread))


def test_cancelled_timers_do_not_pile_up() -> None:
    loop = aloop.new_event_loop()

    async def main() -> int:
        peak = 0
        for _ in range(50):
            handles = [loop.call_later(3600, print) for _ in range(1000)]
            for h in handles:
                h.cancel()
            await asyncio.sleep(0)
            peak = max(peak, len(loop._scheduled))
        return len(loop._scheduled)

    left = loop.run_until_complete(main())
    loop.close()
    # asyncio's rule: rebuild once more than half of over 100 timers are cancelled.
    assert left == 0


def test_timer_heap_keeps_live_timers_when_compacting() -> None:
    loop = aloop.new_event_loop()
    fired: list[int] = []
    live = [loop.call_later(0.001 * (i % 5), fired.append, i) for i in range(300)]
    for h in live[::3]:
        h.cancel()
    for _ in range(200):
        loop.call_later(0.0005, print).cancel()
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    loop.close()
    assert sorted(fired) == [i for i in range(300) if i % 3]


def test_timer_heap_orders_as_heapq_does() -> None:
    """Random pushes (many equal deadlines), cancellations and pops: the timers come
    out in (when, seq) order, and the list keeps heapq's invariant throughout."""
    from aloop._core.handles import Handle, TimerHandle
    from aloop._core.timers import TimerQueue

    loop = aloop.new_event_loop()
    rng = random.Random(7)
    queue = TimerQueue()
    expected: list[tuple[float, int]] = []
    popped: list[tuple[float, int]] = []
    for round_ in range(60):
        for _ in range(rng.randrange(0, 80)):
            when = round_ + rng.choice([0.0, 0.5, 1.0, 2.5]) + rng.randrange(4) * 0.25
            timer = TimerHandle(when, queue.next_seq(), print, (), loop, None)
            queue.push(timer)
            if rng.random() < 0.4:
                timer.cancel()
                queue.cancelled_one()
            else:
                expected.append((timer._when, timer._seq))
        queue.prune()
        heap = queue.heap
        assert all(not heap[i] < heap[(i - 1) // 2] for i in range(1, len(heap)))
        ready: list[Handle | None] = []
        queue.pop_due(round_ + 1.0, ready)
        popped += [(t._when, t._seq) for t in ready if isinstance(t, TimerHandle)]
    ready = []
    queue.pop_due(float("inf"), ready)
    popped += [(t._when, t._seq) for t in ready if isinstance(t, TimerHandle)]
    loop.close()
    assert popped == sorted(expected)
    assert queue.heap == [] and queue.cancelled_count == 0


def test_exception_in_callback_does_not_stop_the_loop(loop_factory: LoopFactory) -> None:
    loop = loop_factory()
    contexts: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    ran: list[str] = []

    def boom() -> None:
        raise ZeroDivisionError("boom")

    loop.call_soon(boom)
    loop.call_soon(ran.append, "after")
    loop.call_soon(loop.stop)
    loop.run_forever()
    loop.close()
    assert ran == ["after"]
    assert [type(c["exception"]) for c in contexts] == [ZeroDivisionError]
    assert contexts[0]["message"].startswith("Exception in callback ")
    assert contexts[0]["message"].endswith("boom()") or "boom" in contexts[0]["message"]


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exceptions_propagate_out_of_run_forever(
    loop_factory: LoopFactory, exc_type: type[BaseException]
) -> None:
    loop = loop_factory()

    def stop_hard() -> None:
        raise exc_type

    loop.call_soon(stop_hard)
    with pytest.raises(exc_type):
        loop.run_forever()
    assert not loop.is_running()
    loop.close()


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_callbacks_after_a_base_exception_stay_queued(exc_type: type[BaseException]) -> None:
    """The callback that raised is gone; those behind it run on the next run_forever."""

    def program(loop: asyncio.AbstractEventLoop, log: list[Any]) -> None:
        def boom() -> None:
            log.append("boom")
            raise exc_type

        for item in ("a", boom, "b", "c"):
            if callable(item):
                loop.call_soon(item)
            else:
                loop.call_soon(log.append, item)
        try:
            loop.run_forever()
        except exc_type:
            log.append("raised")
        loop.call_soon(log.append, "d")
        loop.call_soon(loop.stop)

    assert both(program, run_program) == ["a", "boom", "raised", "b", "c", "d"]


def test_a_run_callback_is_let_go_before_the_next_one_runs() -> None:
    """No queue keeps a callback (and what it holds) alive once it has run."""

    class Holder:
        def run(self) -> None:
            pass

    def program(loop: asyncio.AbstractEventLoop, log: list[Any]) -> None:
        holder = Holder()
        ref = weakref.ref(holder)
        loop.call_soon(holder.run)
        del holder
        loop.call_soon(lambda: log.append(ref() is None))
        loop.call_soon(loop.stop)

    assert both(program, run_program) == [True]


def test_bad_input_errors_match_asyncio(loop_factory: LoopFactory) -> None:
    loop = loop_factory()
    with pytest.raises(TypeError, match="delay must not be None"):
        loop.call_later(None, print)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="when cannot be None"):
        loop.call_at(None, print)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="A callable object or None is expected"):
        loop.set_exception_handler(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="task factory must be a callable or None"):
        loop.set_task_factory(42)  # type: ignore[arg-type]
    loop.close()
    for call in (
        lambda: loop.call_soon(print),
        lambda: loop.call_later(1, print),
        lambda: loop.call_at(1, print),
        lambda: loop.call_soon_threadsafe(print),
        lambda: loop.run_forever(),
    ):
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            call()
    loop.close()  # closing twice is fine


def test_debug_mode_rejects_bad_callbacks(loop_factory: LoopFactory) -> None:
    loop = loop_factory()
    loop.set_debug(True)

    async def coro() -> None:
        pass

    c = coro()
    for method in ("call_soon", "call_soon_threadsafe"):
        with pytest.raises(TypeError, match=f"coroutines cannot be used with {method}"):
            getattr(loop, method)(c)
        with pytest.raises(TypeError, match=f"a callable object was expected by {method}"):
            getattr(loop, method)(42)
    with pytest.raises(TypeError, match="coroutines cannot be used with call_at"):
        loop.call_later(1, coro)
    c.close()
    loop.close()


def test_debug_mode_refuses_calls_from_other_threads(loop_factory: LoopFactory) -> None:
    loop = loop_factory()
    loop.set_debug(True)
    errors: list[str] = []

    def other_thread() -> None:
        try:
            loop.call_soon(print)
        except RuntimeError as exc:
            errors.append(str(exc))
        loop.call_soon_threadsafe(loop.stop)

    loop.call_soon(lambda: threading.Thread(target=other_thread).start())
    loop.run_forever()
    loop.close()
    assert errors == [
        "Non-thread-safe operation invoked on an event loop other than the current one"
    ]


def test_debug_mode_warns_about_slow_callbacks(
    loop_factory: LoopFactory, caplog: pytest.LogCaptureFixture
) -> None:
    loop = loop_factory()
    loop.set_debug(True)
    loop.slow_callback_duration = 0.01

    def slow() -> None:
        time.sleep(0.03)

    loop.call_soon(slow)
    loop.call_soon(loop.stop)
    with caplog.at_level("WARNING", logger="asyncio"):
        loop.run_forever()
    loop.close()
    slow_logs = [r.getMessage() for r in caplog.records if "took" in r.getMessage()]
    assert len(slow_logs) == 1
    assert re.fullmatch(
        r"Executing <Handle .*slow\(\) at .*test_scheduling.py:\d+ "
        r"created at .*test_scheduling.py:\d+> took 0\.\d{3} seconds",
        slow_logs[0],
    ), slow_logs[0]


def test_default_exception_handler_logs_like_asyncio(caplog: pytest.LogCaptureFixture) -> None:
    messages = {}
    for name, factory in (("asyncio", asyncio.new_event_loop), ("aloop", aloop.new_event_loop)):
        loop = factory()
        caplog.clear()
        with caplog.at_level("ERROR", logger="asyncio"):
            loop.call_exception_handler(
                {"message": "custom", "exception": ValueError("x"), "answer": 42}
            )
            loop.call_exception_handler({})
        messages[name] = [(r.getMessage(), r.exc_info is not None) for r in caplog.records]
        loop.close()
    assert messages["aloop"] == messages["asyncio"]
    assert messages["aloop"][0][0] == "custom\nanswer: 42"


def test_failing_custom_exception_handler_falls_back(
    loop_factory: LoopFactory, caplog: pytest.LogCaptureFixture
) -> None:
    loop = loop_factory()

    def bad_handler(lp: Any, ctx: dict[str, Any]) -> None:
        raise RuntimeError("handler broke")

    loop.set_exception_handler(bad_handler)
    assert loop.get_exception_handler() is bad_handler
    with caplog.at_level("ERROR", logger="asyncio"):
        loop.call_exception_handler({"message": "original"})
    loop.close()
    assert caplog.records[0].getMessage().startswith("Unhandled error in exception handler")


def test_run_until_complete_returns_result_and_raises(loop_factory: LoopFactory) -> None:
    loop = loop_factory()

    async def ok() -> int:
        await asyncio.sleep(0)
        return 7

    async def bad() -> None:
        raise KeyError("k")

    assert loop.run_until_complete(ok()) == 7
    with pytest.raises(KeyError):
        loop.run_until_complete(bad())
    fut = loop.create_future()
    loop.call_soon(fut.set_result, "f")
    assert loop.run_until_complete(fut) == "f"

    fut2 = loop.create_future()
    loop.call_soon(loop.stop)
    with pytest.raises(RuntimeError, match=r"Event loop stopped before Future completed\."):
        loop.run_until_complete(fut2)
    loop.close()


def test_create_task_name_context_and_factory(loop_factory: LoopFactory) -> None:
    loop = loop_factory()

    async def report() -> str:
        return var.get()

    ctx = contextvars.copy_context()
    ctx.run(var.set, "in ctx")
    task = loop.create_task(report(), name="named", context=ctx)
    assert task.get_name() == "named"
    assert loop.run_until_complete(task) == "in ctx"

    made: list[Any] = []

    def factory(lp: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        t = asyncio.Task(coro, loop=lp, **kwargs)
        made.append(t)
        return t

    loop.set_task_factory(factory)
    assert loop.get_task_factory() is factory
    t2 = loop.create_task(report(), name="via factory", context=ctx)
    assert made == [t2] and t2.get_name() == "via factory"
    assert loop.run_until_complete(t2) == "in ctx"
    loop.set_task_factory(None)
    loop.close()


@pytest.mark.skipif(
    not hasattr(asyncio, "eager_task_factory"), reason="eager tasks exist from Python 3.12"
)
def test_eager_start_and_eager_task_factory(loop_factory: LoopFactory) -> None:
    loop = loop_factory()
    steps: list[str] = []

    async def child() -> str:
        steps.append("child ran")
        return "done"

    async def main() -> tuple[bool, bool]:
        loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined]
        t = asyncio.create_task(child())
        eager_done = t.done()
        loop.set_task_factory(None)
        if isinstance(loop, aloop.Loop):
            # aloop's create_task passes eager_start (and later keywords) to
            # the Task; the stdlib loop's create_task takes it only from 3.14.
            t2 = loop.create_task(child(), eager_start=True)
            return eager_done, t2.done()
        return eager_done, True

    assert loop.run_until_complete(main()) == (True, True)
    assert steps == ["child ran"] * (2 if isinstance(loop, aloop.Loop) else 1)
    loop.close()


def test_task_factory_gets_the_name_from_314(loop_factory: LoopFactory) -> None:
    """asyncio 3.14+ passes ``name`` to the task factory; earlier, the loop set it after."""
    loop = loop_factory()
    received: list[dict[str, Any]] = []

    def factory(lp: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        received.append(dict(kwargs))
        return asyncio.Task(coro, loop=lp, **kwargs)

    async def nothing() -> None:
        pass

    loop.set_task_factory(factory)
    task = loop.create_task(nothing(), name="via factory")
    loop.run_until_complete(task)
    loop.close()
    expected = {"name": "via factory"} if sys.version_info >= (3, 14) else {}
    assert (received, task.get_name()) == ([expected], "via factory")


@pytest.mark.skipif(
    not hasattr(asyncio, "eager_task_factory"), reason="eager tasks exist from Python 3.12"
)
def test_eager_task_in_a_task_group_runs_with_its_name(loop_factory: LoopFactory) -> None:
    loop = loop_factory()
    loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined]
    seen: list[str] = []

    async def child() -> None:
        task = asyncio.current_task()
        assert task is not None
        seen.append(task.get_name())

    async def main() -> str:
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(child(), name="example name")
        return task.get_name()

    final = loop.run_until_complete(main())
    loop.close()
    # Before 3.14 the name was set after the eager first step had run.
    assert final == "example name"
    if sys.version_info >= (3, 14):
        assert seen == ["example name"]
    else:
        assert seen != ["example name"] and seen[0].startswith("Task-")


@pytest.mark.skipif(
    hasattr(asyncio, "eager_task_factory"), reason="checks 3.11, which has no eager tasks"
)
def test_eager_start_on_311_is_refused_clearly(aloop_loop: aloop.Loop) -> None:
    async def child() -> None:
        pass

    task = aloop_loop.create_task(child(), eager_start=False)
    aloop_loop.run_until_complete(task)
    coro = child()
    with pytest.raises(TypeError, match=r"eager_start=True needs Python 3\.12"):
        aloop_loop.create_task(coro, eager_start=True)
    coro.close()


def test_unclosed_loop_warns_and_closes() -> None:
    loop = aloop.new_event_loop()
    with pytest.warns(ResourceWarning, match="unclosed event loop"):
        del loop
        gc.collect()


def test_repr_and_state(loop_factory: LoopFactory) -> None:
    loop = loop_factory()
    assert not loop.is_running() and not loop.is_closed()
    seen: list[bool] = []
    loop.call_soon(lambda: seen.append(loop.is_running()))
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == [True]
    assert "running=False closed=False debug=False" in repr(loop)
    loop.close()
    assert loop.is_closed()


def test_dropped_failed_task_is_reported_without_waiting_for_gc(
    loop_factory: LoopFactory,
) -> None:
    """No reference cycle may keep a finished task alive (asyncio's "self = None")."""
    loop = loop_factory()
    reported: list[str] = []
    loop.set_exception_handler(lambda lp, ctx: reported.append(ctx["message"]))

    async def fail() -> None:
        raise ValueError("dropped")

    async def main() -> list[str]:
        loop.create_task(fail())
        for _ in range(3):
            await asyncio.sleep(0)
        return list(reported)

    gc.disable()
    try:
        seen = loop.run_until_complete(main())
    finally:
        gc.enable()
        loop.close()
    assert seen == ["Task exception was never retrieved"]


def test_loop_inherited_through_fork_refuses_to_run(aloop_loop: aloop.Loop) -> None:
    import os

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what running the parent's loop does
        try:
            aloop_loop.run_until_complete(asyncio.sleep(0))
            message = b"ran"
        except RuntimeError as exc:
            message = str(exc).encode()
        aloop_loop.close()  # must leave the parent's epoll registrations alone
        os.write(write_fd, message)
        os._exit(0)
    os.close(write_fd)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read_fd, "rb") as reader:
        message = reader.read().decode()
    assert os.waitstatus_to_exitcode(status) == 0
    assert message.startswith("this event loop was created in another process")
    # The parent's loop still works, fd registrations included.
    a, b = socket.socketpair()
    got: list[bytes] = []
    aloop_loop.add_reader(a, lambda: (got.append(a.recv(1)), aloop_loop.stop()))
    pid2 = os.fork()
    if pid2 == 0:
        aloop_loop.close()
        os._exit(0)
    os.waitpid(pid2, 0)
    b.send(b"x")
    guard = aloop_loop.call_later(10, aloop_loop.stop)  # fail, don't hang, if it broke
    aloop_loop.run_forever()
    guard.cancel()
    aloop_loop.remove_reader(a)
    a.close()
    b.close()
    assert got == [b"x"]


@pytest.mark.parametrize(
    ("flags", "env"),
    [([], {"PYTHONASYNCIODEBUG": "1"}), (["-X", "dev"], {}), ([], {})],
    ids=["PYTHONASYNCIODEBUG", "X-dev", "off"],
)
def test_debug_mode_follows_the_environment_like_asyncio(
    flags: list[str], env: dict[str, str]
) -> None:
    import os
    import subprocess
    import sys

    program = (
        "import asyncio, aloop\n"
        "for make in (asyncio.new_event_loop, aloop.new_event_loop):\n"
        "    loop = make()\n"
        "    print(loop.get_debug())\n"
        "    loop.close()\n"
    )
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONASYNCIODEBUG"}
    out = subprocess.run(
        [sys.executable, *flags, "-c", program],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[0] == out[1] == ("False" if not flags and not env else "True")


@pytest.mark.skipif(
    not aloop.COMPILED,
    reason="interpreted, BaseLoop is a plain class and keeps every attribute in __dict__",
)
def test_loop_state_stays_out_of_the_instance_dict(tmp_path: Any) -> None:
    # An attribute stored outside the native struct makes CPython create the
    # loop's __dict__, and every method call from C (a Task's call_soon) then
    # searches it first. Networking, signals and children keep state on the loop.
    import signal

    async def main(loop: asyncio.AbstractEventLoop) -> None:
        a, b = socket.socketpair()
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, a)
        transport.close()
        b.close()
        server = await asyncio.start_unix_server(lambda r, w: None, str(tmp_path / "s"))
        server.close()
        await server.wait_closed()
        loop.add_signal_handler(signal.SIGUSR1, lambda: None)
        loop.remove_signal_handler(signal.SIGUSR1)
        proc = await asyncio.create_subprocess_exec("true")
        await proc.wait()
        await loop.run_in_executor(None, int)

    loop = aloop.new_event_loop()
    try:
        loop.run_until_complete(main(loop))
        loop.run_until_complete(loop.shutdown_default_executor())
        assert loop.__dict__ == {}
    finally:
        loop.close()
