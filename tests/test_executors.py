"""Executors: run_in_executor, to_thread, the default executor and its shutdown.

Tests taking ``loop_factory`` run on the stdlib loop and on aloop, so each
expectation written here is checked against asyncio itself as well.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import os
import sys
import threading
import warnings
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest
from tests.support import LoopFactory, both, run_on

import aloop

T = TypeVar("T")

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


def thread_info(x: int) -> tuple[int, str, bool]:
    thread = threading.current_thread()
    return x * 10, thread.name.rsplit("_", 1)[0], thread is threading.main_thread()


def square(x: int) -> int:
    return x * x


def pid() -> int:
    return os.getpid()


class CustomError(Exception):
    def __init__(self, code: int, detail: str) -> None:
        super().__init__(code, detail)
        self.code = code
        self.detail = detail


def fail(code: int) -> None:
    raise CustomError(code, "failed in executor")


# -- run_in_executor --------------------------------------------------------------------


def test_default_executor_is_an_asyncio_thread_pool(loop_factory: LoopFactory) -> None:
    async def main() -> tuple[Any, ...]:
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(None, thread_info, 4)
        assert isinstance(fut, asyncio.Future)
        assert fut.get_loop() is loop
        one = await fut
        many = await asyncio.gather(*(loop.run_in_executor(None, thread_info, i) for i in range(8)))
        return one, many

    one, many = run_on(loop_factory, main)
    assert one == (40, "asyncio", False)
    assert many == [(i * 10, "asyncio", False) for i in range(8)]


def test_default_executor_is_created_once_and_reused(loop_factory: LoopFactory) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, square, 1)
        first = loop._default_executor  # type: ignore[attr-defined]
        await loop.run_in_executor(None, square, 2)
        assert isinstance(first, concurrent.futures.ThreadPoolExecutor)
        assert loop._default_executor is first  # type: ignore[attr-defined]

    run_on(loop_factory, main)


def test_explicit_thread_pool_executor(loop_factory: LoopFactory) -> None:
    async def main() -> list[tuple[int, str, bool]]:
        loop = asyncio.get_running_loop()
        with concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="mine") as pool:
            results = await asyncio.gather(
                *(loop.run_in_executor(pool, thread_info, i) for i in range(5))
            )
        # The explicit executor is not made the default.
        assert loop._default_executor is None  # type: ignore[attr-defined]
        return results

    assert run_on(loop_factory, main) == [(i * 10, "mine", False) for i in range(5)]


def test_explicit_process_pool_executor(loop_factory: LoopFactory) -> None:
    async def main() -> tuple[list[int], int]:
        loop = asyncio.get_running_loop()
        with concurrent.futures.ProcessPoolExecutor(2) as pool:
            squares = await asyncio.gather(
                *(loop.run_in_executor(pool, square, i) for i in range(6))
            )
            child = await loop.run_in_executor(pool, pid)
        return squares, child

    squares, child = run_on(loop_factory, main)
    assert squares == [0, 1, 4, 9, 16, 25]
    assert child != os.getpid()


def test_run_in_executor_does_not_copy_context_but_to_thread_does() -> None:
    def read_var(tag: str) -> tuple[str, str]:
        return tag, request_id.get()

    async def main() -> list[tuple[str, str]]:
        loop = asyncio.get_running_loop()
        request_id.set("req-42")
        results = [
            await loop.run_in_executor(None, read_var, "run_in_executor"),
            await asyncio.to_thread(read_var, "to_thread"),
        ]
        # to_thread runs in a copy: a set() in the thread stays there.
        await asyncio.to_thread(request_id.set, "set-in-thread")
        results.append(("after", request_id.get()))
        return results

    assert both(main) == [
        ("run_in_executor", "unset"),
        ("to_thread", "req-42"),
        ("after", "req-42"),
    ]


def test_to_thread_passes_args_and_uses_the_default_executor(loop_factory: LoopFactory) -> None:
    def combine(a: int, b: int, *, sep: str) -> tuple[str, str]:
        return f"{a}{sep}{b}", threading.current_thread().name.rsplit("_", 1)[0]

    async def main() -> tuple[str, str]:
        result = await asyncio.to_thread(combine, 1, 2, sep="+")
        assert asyncio.get_running_loop()._default_executor is not None  # type: ignore[attr-defined]
        return result

    assert run_on(loop_factory, main) == ("1+2", "asyncio")


def test_thread_blocking_does_not_block_the_loop(loop_factory: LoopFactory) -> None:
    async def main() -> list[str]:
        log: list[str] = []
        release = threading.Event()
        blocked = asyncio.ensure_future(asyncio.to_thread(release.wait, 60))
        for i in range(3):
            await asyncio.sleep(0.001)
            log.append(f"tick {i}")
        release.set()
        log.append(f"released {await blocked}")
        return log

    assert run_on(loop_factory, main) == ["tick 0", "tick 1", "tick 2", "released True"]


# -- exceptions and cancellation ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["default", "thread", "process"])
def test_executor_exceptions_propagate(loop_factory: LoopFactory, kind: str) -> None:
    async def main() -> CustomError:
        loop = asyncio.get_running_loop()
        pool: concurrent.futures.Executor | None = None
        if kind == "thread":
            pool = concurrent.futures.ThreadPoolExecutor(1)
        elif kind == "process":
            pool = concurrent.futures.ProcessPoolExecutor(1)
        try:
            with pytest.raises(CustomError) as info:
                await loop.run_in_executor(pool, fail, 7)
            # The pool is still usable afterwards.
            assert await loop.run_in_executor(pool, square, 3) == 9
        finally:
            if pool is not None:
                pool.shutdown()
        return info.value

    exc = run_on(loop_factory, main)
    assert (exc.code, exc.detail, exc.args) == (7, "failed in executor", (7, "failed in executor"))
    if kind == "process":
        # The child's traceback comes along as the cause.
        assert "failed in executor" in str(exc.__cause__)


def test_to_thread_exception_propagates(loop_factory: LoopFactory) -> None:
    async def main() -> None:
        with pytest.raises(CustomError, match="failed in executor"):
            await asyncio.to_thread(fail, 1)

    run_on(loop_factory, main)


def test_keyboard_interrupt_in_executor_stops_the_loop(loop_factory: LoopFactory) -> None:
    def interrupt() -> None:
        raise KeyboardInterrupt

    loop = loop_factory()
    try:

        async def main() -> None:
            await loop.run_in_executor(None, interrupt)

        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(main())
        assert not loop.is_running()
        # The loop is still usable afterwards.
        assert loop.run_until_complete(loop.run_in_executor(None, square, 4)) == 16
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


def test_cancelling_the_awaiting_task() -> None:
    """The task is cancelled; a running call finishes in its thread; a queued one never runs."""

    def program() -> Coroutine[Any, Any, list[Any]]:
        async def main() -> list[Any]:
            loop = asyncio.get_running_loop()
            log: list[Any] = []
            release = threading.Event()
            started = threading.Event()

            def blocking(tag: str) -> str:
                started.set()
                release.wait(60)
                log.append(f"{tag} ran")
                return tag

            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                running_fut = loop.run_in_executor(pool, blocking, "running")
                queued_fut = loop.run_in_executor(pool, blocking, "queued")

                async def waiter(fut: asyncio.Future[str]) -> str:
                    return await fut

                running_task = asyncio.ensure_future(waiter(running_fut))
                queued_task = asyncio.ensure_future(waiter(queued_fut))
                # Let both tasks start awaiting their futures. From 3.14,
                # to_thread() may return without yielding (its job can finish
                # before wrap_future chains it), so it cannot be relied on here.
                await asyncio.sleep(0)
                await asyncio.to_thread(started.wait, 60)
                running_task.cancel()
                queued_task.cancel()
                for task in (running_task, queued_task):
                    try:
                        await task
                    except asyncio.CancelledError:
                        log.append("task cancelled")
                log.append(("futures cancelled", running_fut.cancelled(), queued_fut.cancelled()))
                release.set()
            # Leaving the with block waited for the running call.
            log.append("pool shut down")
            await asyncio.sleep(0)
            return log

        return main()

    errors: list[dict[str, Any]] = []

    def run(factory: LoopFactory) -> list[Any]:
        loop = factory()
        loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
        try:
            return loop.run_until_complete(program())
        finally:
            loop.close()

    expected = run(asyncio.new_event_loop)
    assert expected == [
        "task cancelled",
        "task cancelled",
        ("futures cancelled", True, True),
        "running ran",
        "pool shut down",
    ]
    assert run(aloop.new_event_loop) == expected
    assert errors == []


class InlineExecutor(concurrent.futures.Executor):
    """Runs each call in ``submit`` itself: the future is done when returned."""

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        future.set_result(fn(*args, **kwargs))
        return future


def test_run_in_executor_with_a_job_already_done() -> None:
    """Whether the asyncio future is done at once (3.14's wrap_future) or a turn later."""

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(InlineExecutor(), pow, 2, 10)
        out: list[Any] = [fut.done()]
        out.append(await fut)
        return out

    assert both(main)[1] == 1024


def test_debug_mode_refuses_coroutine_functions(loop_factory: LoopFactory) -> None:
    async def coro_fn() -> None:
        pass

    loop = loop_factory()
    loop.set_debug(True)
    try:
        with pytest.raises(
            TypeError, match=r"^coroutines cannot be used with run_in_executor\(\)$"
        ):
            loop.run_in_executor(None, coro_fn)
    finally:
        loop.close()


# -- set_default_executor --------------------------------------------------------------------


def test_set_default_executor_uses_it(loop_factory: LoopFactory) -> None:
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="custom_default")

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(pool)
        return [
            await loop.run_in_executor(None, thread_info, 1),
            (await asyncio.to_thread(thread_info, 2))[1],
        ]

    try:
        assert run_on(loop_factory, main) == [(10, "custom_default", False), "custom_default"]
        # shutdown_default_executor (in run_on) shut the custom executor down.
        with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
            pool.submit(square, 1)
    finally:
        pool.shutdown()


@pytest.mark.parametrize("kind", ["process pool", "object", "none"])
def test_set_default_executor_refuses_other_executors(loop_factory: LoopFactory, kind: str) -> None:
    loop = loop_factory()
    executor: Any
    if kind == "process pool":
        executor = concurrent.futures.ProcessPoolExecutor(1)
    elif kind == "object":
        executor = object()
    else:
        executor = None
    try:
        with pytest.raises(TypeError) as info:
            loop.set_default_executor(executor)
        assert str(info.value) == "executor must be ThreadPoolExecutor instance"
        assert loop._default_executor is None  # type: ignore[attr-defined]
    finally:
        loop.close()
        if kind == "process pool":
            executor.shutdown()


# -- shutdown_default_executor ---------------------------------------------------------------


def test_shutdown_default_executor_then_run_in_executor_refuses(
    loop_factory: LoopFactory,
) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, square, 5) == 25
        executor = loop._default_executor  # type: ignore[attr-defined]
        await loop.shutdown_default_executor()
        # Its threads were joined.
        assert all(not t.is_alive() for t in executor._threads)
        with pytest.raises(RuntimeError) as info:
            loop.run_in_executor(None, square, 1)
        assert str(info.value) == "Executor shutdown has been called"
        with pytest.raises(RuntimeError, match=r"^Executor shutdown has been called$"):
            await asyncio.to_thread(square, 1)
        # An explicit executor still works.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            assert await loop.run_in_executor(pool, square, 6) == 36

    run_on(loop_factory, main)


def test_shutdown_default_executor_before_any_use(loop_factory: LoopFactory) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        await loop.shutdown_default_executor()
        assert loop._default_executor is None  # type: ignore[attr-defined]
        with pytest.raises(RuntimeError, match=r"^Executor shutdown has been called$"):
            loop.run_in_executor(None, square, 1)

    run_on(loop_factory, main)


def test_shutdown_default_executor_waits_for_running_calls(loop_factory: LoopFactory) -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        log: list[str] = []
        started = threading.Event()
        release = threading.Event()

        def slow() -> None:
            started.set()
            release.wait(60)
            log.append("call finished")

        fut = loop.run_in_executor(None, slow)
        await asyncio.to_thread(started.wait, 60)
        shutdown = asyncio.ensure_future(loop.shutdown_default_executor())
        for _ in range(5):
            await asyncio.sleep(0.001)
        log.append(f"shutdown done before release: {shutdown.done()}")
        release.set()
        await shutdown
        log.append(f"shutdown done, call done: {fut.done()}")
        await fut
        return log

    assert run_on(loop_factory, main) == [
        "shutdown done before release: False",
        "call finished",
        "shutdown done, call done: True",
    ]


def skip_unless_stdlib_has_timeout(factory: LoopFactory) -> None:
    """asyncio's shutdown_default_executor(timeout) as aloop implements it: 3.12.3+."""
    if factory is not asyncio.new_event_loop:
        return
    if sys.version_info < (3, 12):
        pytest.skip("asyncio's shutdown_default_executor() takes no timeout before 3.12")
    if sys.version_info < (3, 12, 3):
        pytest.skip(
            "asyncio 3.12.0-3.12.2 waits for the blocked thread despite the timeout "
            "(CPython gh-111358, fixed in 3.12.3); aloop has the fixed behaviour"
        )


def test_shutdown_default_executor_timeout_warns(loop_factory: LoopFactory) -> None:
    """A call blocking past the timeout: asyncio's RuntimeWarning, executor shut down."""
    skip_unless_stdlib_has_timeout(loop_factory)

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        release = threading.Event()
        started = threading.Event()

        def blocking() -> str:
            started.set()
            release.wait(60)
            return "finished"

        fut = loop.run_in_executor(None, blocking)
        executor = loop._default_executor  # type: ignore[attr-defined]
        await asyncio.to_thread(started.wait, 60)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            await loop.shutdown_default_executor(timeout=0.05)  # type: ignore[call-arg]
        log: list[Any] = [(w.category, str(w.message), w.filename) for w in caught]
        log.append(f"call done: {fut.done()}")
        with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
            executor.submit(square, 1)
        with pytest.raises(RuntimeError, match=r"^Executor shutdown has been called$"):
            loop.run_in_executor(None, square, 1)
        release.set()
        log.append(await fut)
        return log

    loop = loop_factory()
    try:
        log = loop.run_until_complete(main())
    finally:
        loop.close()
    assert log == [
        (
            RuntimeWarning,
            "The executor did not finishing joining its threads within 0.05 seconds.",
            # stacklevel=2: the warning points at the caller's await.
            __file__,
        ),
        "call done: False",
        "finished",
    ]


def test_shutdown_default_executor_timeout_not_reached(loop_factory: LoopFactory) -> None:
    skip_unless_stdlib_has_timeout(loop_factory)

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, square, 2)
        executor = loop._default_executor  # type: ignore[attr-defined]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            await loop.shutdown_default_executor(timeout=60)  # type: ignore[call-arg]
        assert all(not t.is_alive() for t in executor._threads)
        return [str(w.message) for w in caught]

    assert run_on(loop_factory, main) == []


# -- closed loop ----------------------------------------------------------------------------


def test_closed_loop_refuses_run_in_executor(loop_factory: LoopFactory) -> None:
    loop = loop_factory()
    loop.run_until_complete(loop.run_in_executor(None, square, 2))
    executor = loop._default_executor  # type: ignore[attr-defined]
    loop.close()
    # close() shut the default executor down (without waiting).
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        executor.submit(square, 1)
    executor.shutdown(wait=True)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        for ex in (None, pool):
            with pytest.raises(RuntimeError) as info:
                loop.run_in_executor(ex, square, 1)
            assert str(info.value) == "Event loop is closed"

    async def to_thread() -> int:
        return await asyncio.to_thread(square, 1)

    coro = to_thread()
    with pytest.raises(RuntimeError, match=r"^Event loop is closed$"):
        loop.run_until_complete(coro)
    coro.close()
