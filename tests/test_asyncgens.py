"""Async generator hooks: firstiter/finalizer, shutdown_asyncgens and the late-start warning.

Each program runs on the stdlib loop and on aloop; the two must log the same
events and report the same errors.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import warnings
from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import Any

import pytest
from tests.support import LoopFactory, both, mask_addresses

import aloop

Program = Callable[[asyncio.AbstractEventLoop, list[Any]], Coroutine[Any, Any, None]]

# The loop the current program runs on.
program_loop: list[asyncio.AbstractEventLoop | None] = [None]


def normalize(value: Any) -> Any:
    """Addresses differ between runs; everything else must not."""
    if isinstance(value, str):
        return mask_addresses(value)
    if isinstance(value, tuple):
        return tuple(normalize(v) for v in value)
    if isinstance(value, list):
        return [normalize(v) for v in value]
    return value


def run_program(factory: LoopFactory, program: Program) -> tuple[list[Any], list[Any]]:
    """Run ``program(loop, log)``; return its log and what reached the exception handler."""
    loop = factory()
    program_loop[0] = loop
    log: list[Any] = []
    reported: list[Any] = []

    def handler(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        reported.append(
            (
                context["message"],
                type(exc).__name__,
                str(exc),
                sorted(context),
            )
        )

    loop.set_exception_handler(handler)
    try:
        loop.run_until_complete(program(loop, log))
    finally:
        loop.close()
    gc.collect()
    return normalize(log), sorted(normalize(reported))


async def ticker(
    log: list[Any], name: str, *, fail_on_close: bool = False
) -> AsyncGenerator[int, None]:
    """Yields forever; its finally awaits, then records whether it ran on the program's loop."""
    try:
        i = 0
        while True:
            yield i
            i += 1
    finally:
        await asyncio.sleep(0)
        log.append((f"{name} finally", asyncio.get_running_loop() is program_loop[0]))
        if fail_on_close:
            raise ValueError(f"{name} failed while closing")


# -- firstiter / finalizer hooks ------------------------------------------------------------


def test_hooks_are_the_loops_while_it_runs_and_restored_after(loop_factory: LoopFactory) -> None:
    seen: list[Any] = []

    def my_firstiter(agen: Any) -> None:
        seen.append("firstiter")

    def my_finalizer(agen: Any) -> None:
        seen.append("finalizer")

    old = sys.get_asyncgen_hooks()
    sys.set_asyncgen_hooks(firstiter=my_firstiter, finalizer=my_finalizer)
    try:
        loop = loop_factory()

        async def main() -> tuple[Any, Any]:
            hooks = sys.get_asyncgen_hooks()
            return getattr(hooks.firstiter, "__self__", None), getattr(
                hooks.finalizer, "__self__", None
            )

        try:
            owners = loop.run_until_complete(main())
            assert owners == (loop, loop)
            assert sys.get_asyncgen_hooks() == (my_firstiter, my_finalizer)

            # Also after run_forever ends with an exception.
            def interrupt() -> None:
                raise KeyboardInterrupt

            loop.call_soon(interrupt)
            with pytest.raises(KeyboardInterrupt):
                loop.run_forever()
            assert sys.get_asyncgen_hooks() == (my_firstiter, my_finalizer)
        finally:
            loop.close()
    finally:
        sys.set_asyncgen_hooks(*old)
    assert seen == []


def test_hooks_restored_to_none(loop_factory: LoopFactory) -> None:
    old = sys.get_asyncgen_hooks()
    sys.set_asyncgen_hooks(firstiter=None, finalizer=None)
    try:
        loop = loop_factory()
        loop.call_soon(loop.stop)
        loop.run_forever()
        loop.close()
        assert sys.get_asyncgen_hooks() == (None, None)
    finally:
        sys.set_asyncgen_hooks(*old)


def test_abandoned_generator_is_finalized_on_the_loop() -> None:
    async def program(loop: asyncio.AbstractEventLoop, log: list[Any]) -> None:
        gen = ticker(log, "abandoned")
        log.append(await gen.__anext__())
        log.append(await gen.__anext__())
        del gen  # mid-iteration: the finalizer hook schedules aclose() on the loop
        gc.collect()
        log.append("dropped")
        for _ in range(5):
            await asyncio.sleep(0)
        log.append("main done")

    log, reported = both(program, run_program)
    assert log == [0, 1, "dropped", ("abandoned finally", True), "main done"]
    assert reported == []


def test_generator_broken_out_of_is_finalized(loop_factory: LoopFactory) -> None:
    async def program(loop: asyncio.AbstractEventLoop, log: list[Any]) -> None:
        async for i in ticker(log, "broken"):
            if i == 2:
                break
        log.append("after loop")
        gc.collect()
        for _ in range(5):
            await asyncio.sleep(0)

    log, reported = run_program(loop_factory, program)
    assert log == ["after loop", ("broken finally", True)]
    assert reported == []


def test_finalizer_called_from_another_thread_wakes_the_loop(loop_factory: LoopFactory) -> None:
    """The last reference dies in a thread: the hook runs there, the loop must wake for it."""

    async def program(loop: asyncio.AbstractEventLoop, log: list[Any]) -> None:
        finalized = asyncio.Event()

        async def gen() -> AsyncGenerator[int, None]:
            try:
                yield 1
                yield 2
            finally:
                log.append(("finally in loop thread", threading.current_thread() is main))
                finalized.set()

        main = threading.current_thread()
        holder = [gen()]
        log.append(await holder[0].__anext__())

        def drop() -> None:
            log.append("dropping in thread")
            holder.clear()
            gc.collect()

        thread = threading.Thread(target=drop)
        loop.call_later(0.01, thread.start)
        await asyncio.wait_for(finalized.wait(), 30)
        thread.join()

    log, reported = run_program(loop_factory, program)
    assert log == [1, "dropping in thread", ("finally in loop thread", True)]
    assert reported == []


def test_failing_finalization_is_reported_as_asyncio_does() -> None:
    async def program(loop: asyncio.AbstractEventLoop, log: list[Any]) -> None:
        gen = ticker(log, "failing", fail_on_close=True)
        await gen.__anext__()
        del gen
        gc.collect()
        for _ in range(5):
            await asyncio.sleep(0)
        gc.collect()  # the failed aclose() task, whose exception nobody retrieved

    log, reported = both(program, run_program)
    assert log == [("failing finally", True)]
    assert [r[:3] for r in reported] == [
        ("Task exception was never retrieved", "ValueError", "failing failed while closing")
    ]


def test_generator_dropped_while_loop_is_stopped_is_finalized_on_next_run(
    loop_factory: LoopFactory,
) -> None:
    loop = loop_factory()
    program_loop[0] = loop
    log: list[Any] = []
    holder: list[AsyncGenerator[int, None]] = []

    async def start() -> None:
        holder.append(ticker(log, "dropped between runs"))
        await holder[0].__anext__()

    try:
        loop.run_until_complete(start())
        holder.clear()  # the hook runs now, outside any run: aclose() is only scheduled
        gc.collect()
        log.append("dropped")
        for _ in range(3):
            loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()
    assert log == ["dropped", ("dropped between runs finally", True)]


def test_generator_collected_after_close_is_left_alone(loop_factory: LoopFactory) -> None:
    loop = loop_factory()
    log: list[Any] = []
    holder: list[AsyncGenerator[int, None]] = []

    async def main() -> None:
        holder.append(ticker(log, "late"))
        await holder[0].__anext__()

    loop.run_until_complete(main())
    loop.close()
    holder.clear()  # the finalizer hook sees a closed loop: nothing is scheduled
    gc.collect()
    assert log == []


# -- shutdown_asyncgens ---------------------------------------------------------------------


def test_shutdown_asyncgens_closes_open_generators() -> None:
    async def program(loop: asyncio.AbstractEventLoop, log: list[Any]) -> None:
        gens = [ticker(log, f"gen{i}") for i in range(3)]
        for gen in gens:
            await gen.__anext__()
        never_started = ticker(log, "never started")
        finished = ticker(log, "finished")
        await finished.__anext__()
        await finished.aclose()
        log.append("shutting down")
        await loop.shutdown_asyncgens()
        log[2:] = sorted(log[2:])  # closed concurrently, in the WeakSet's order
        log.append([gen.ag_frame is None for gen in gens])  # type: ignore[attr-defined]
        with pytest.raises(StopAsyncIteration):
            await gens[0].__anext__()
        del never_started

    log, reported = both(program, run_program)
    assert log[0] == ("finished finally", True)
    assert log[1] == "shutting down"
    assert log[2:5] == [(f"gen{i} finally", True) for i in range(3)]
    assert log[5] == [True, True, True]
    assert reported == []


def test_shutdown_asyncgens_with_nothing_open(loop_factory: LoopFactory) -> None:
    async def program(loop: asyncio.AbstractEventLoop, log: list[Any]) -> None:
        await loop.shutdown_asyncgens()
        await loop.shutdown_asyncgens()
        log.append("ok")

    assert run_program(loop_factory, program) == (["ok"], [])


def test_shutdown_asyncgens_reports_aclose_errors_as_asyncio_does() -> None:
    async def program(loop: asyncio.AbstractEventLoop, log: list[Any]) -> None:
        good = ticker(log, "good")
        bad = ticker(log, "bad", fail_on_close=True)

        async def stubborn() -> AsyncGenerator[int, None]:
            try:
                yield 1
            finally:
                yield 2  # ignores GeneratorExit: aclose() raises RuntimeError

        obstinate = stubborn()
        for gen in (good, bad, obstinate):
            await gen.__anext__()
        log.append(repr(bad))
        await loop.shutdown_asyncgens()
        log[1:] = sorted(log[1:])  # closed concurrently, in the WeakSet's order
        log.append("shut down")

    log, reported = both(program, run_program)
    bad_repr = log[0]
    assert log[1:3] == [("bad finally", True), ("good finally", True)]
    assert log[3] == "shut down"
    assert sorted(reported) == sorted(
        [
            (
                f"an error occurred during closing of asynchronous generator {bad_repr}",
                "ValueError",
                "bad failed while closing",
                ["asyncgen", "exception", "message"],
            ),
            (
                "an error occurred during closing of asynchronous generator "
                "<async_generator object "
                "test_shutdown_asyncgens_reports_aclose_errors_as_asyncio_does.<locals>"
                ".program.<locals>.stubborn at 0xADDR>",
                "RuntimeError",
                "async generator ignored GeneratorExit",
                ["asyncgen", "exception", "message"],
            ),
        ]
    )


def test_generator_started_after_shutdown_warns() -> None:
    results = []
    for factory in (asyncio.new_event_loop, aloop.new_event_loop):
        log: list[Any] = []
        loop = factory()
        program_loop[0] = loop

        async def main(loop: asyncio.AbstractEventLoop = loop, log: list[Any] = log) -> Any:
            await loop.shutdown_asyncgens()
            gen = ticker(log, "late")
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                first = await gen.__anext__()
            # Still registered: shutdown_asyncgens would close it.
            await loop.shutdown_asyncgens()
            return first, [(w.category, str(w.message), w.source is loop) for w in caught]

        try:
            results.append((*normalize(loop.run_until_complete(main())), log))
        finally:
            loop.close()
    expected, got = results
    assert expected == (
        0,
        [
            (
                ResourceWarning,
                "asynchronous generator <async_generator object ticker at 0xADDR> "
                "was scheduled after loop.shutdown_asyncgens() call",
                True,
            )
        ],
        [("late finally", True)],
    )
    assert got == expected


def test_asyncio_run_shuts_down_generators_left_open(loop_factory: LoopFactory) -> None:
    log: list[Any] = []
    keep: list[AsyncGenerator[int, None]] = []

    async def main() -> None:
        gen = ticker(log, "left open")
        keep.append(gen)
        await gen.__anext__()
        log.append("main done")

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        program_loop[0] = runner.get_loop()
        runner.run(main())
    assert log == ["main done", ("left open finally", True)]
