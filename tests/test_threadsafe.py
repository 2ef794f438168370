"""``call_soon_threadsafe`` and ``run_coroutine_threadsafe`` from many threads, on both loops.

Each call carries a unique id; the loop records the ids its callbacks see, so a
lost or doubled callback shows, and so does one run out of its thread's order.
Threads call while the loop runs, while it stops and restarts, and while it
closes: after ``close()`` every caller gets ``RuntimeError('Event loop is
closed')``. A lost wake-up (uvloop #720) would leave the loop asleep: every
program has a watchdog timer that stops it after ``DEADLINE`` seconds, so a
hang fails the test instead of hanging the run.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from tests.support import LoopFactory

THREADS = 16
CALLS = 5000
DEADLINE = 60.0


class Recorder:
    """Counts the ids the loop's callbacks see, and keeps each thread's order."""

    def __init__(self) -> None:
        self.seen: Counter[tuple[int, int]] = Counter()
        self.order: dict[int, list[int]] = {}
        self.count = 0

    def __call__(self, tid: int, i: int) -> None:
        self.count += 1
        self.seen[tid, i] += 1
        self.order.setdefault(tid, []).append(i)

    def check(self, accepted: dict[int, int]) -> None:
        """Each thread's first ``accepted[tid]`` calls ran once, in order; nothing else ran."""
        doubled = [k for k, n in self.seen.items() if n > 1]
        assert not doubled, f"callbacks run twice: {doubled[:5]}"
        for tid, n in accepted.items():
            assert self.order.get(tid, []) == list(range(n)), f"thread {tid}: lost or out of order"
        assert self.count == sum(accepted.values())


def callers(n: int, target: Callable[[int], None]) -> list[threading.Thread]:
    """``n`` started threads running ``target(tid)``, released together by a barrier."""
    barrier = threading.Barrier(n)

    def run(tid: int) -> None:
        barrier.wait()
        target(tid)

    threads = [threading.Thread(target=run, args=(t,), daemon=True) for t in range(n)]
    for t in threads:
        t.start()
    return threads


def join(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.join(DEADLINE)
        assert not t.is_alive(), "a caller thread hung"


def watchdog(loop: asyncio.AbstractEventLoop) -> asyncio.TimerHandle:
    """Stop the loop after DEADLINE: a lost wake-up then fails rather than hangs."""
    return loop.call_later(DEADLINE, loop.stop)


def test_many_threads_while_the_loop_runs(loop_factory: LoopFactory) -> None:
    loop = loop_factory()
    record = Recorder()
    total = THREADS * CALLS
    try:
        all_done: asyncio.Future[None] = loop.create_future()

        def note(tid: int, i: int) -> None:
            record(tid, i)
            if record.count == total and not all_done.done():
                all_done.set_result(None)

        def call(tid: int) -> None:
            for i in range(CALLS):
                loop.call_soon_threadsafe(note, tid, i)

        async def main() -> None:
            threads = callers(THREADS, call)
            await asyncio.wait_for(all_done, DEADLINE)
            join(threads)

        loop.run_until_complete(main())
    finally:
        loop.close()
    record.check(dict.fromkeys(range(THREADS), CALLS))


def test_racing_stop_and_restarts(loop_factory: LoopFactory) -> None:
    """Callbacks stop the loop every 997 calls; it is restarted until every call has run.

    The threads hold back their second half until the loop has stopped once:
    the first run could otherwise find all calls queued (the callers can keep
    the GIL from the loop's thread that long) and run them in one iteration.
    """
    loop = loop_factory()
    record = Recorder()
    total = THREADS * CALLS
    restarts = 0
    stopped_once = threading.Event()

    def note(tid: int, i: int) -> None:
        record(tid, i)
        n = record.count
        if n % 997 == 0 or n == total:
            loop.stop()

    def call(tid: int) -> None:
        for i in range(CALLS):
            if i == CALLS // 2:
                stopped_once.wait(DEADLINE)
            loop.call_soon_threadsafe(note, tid, i)

    try:
        dog = watchdog(loop)
        threads = callers(THREADS, call)
        while record.count < total and loop.time() < dog.when():
            loop.run_forever()
            restarts += 1
            stopped_once.set()
        join(threads)
    finally:
        loop.close()
    assert restarts > 1
    record.check(dict.fromkeys(range(THREADS), CALLS))


def test_callers_racing_close(loop_factory: LoopFactory) -> None:
    """Threads call until the loop closes under them: what ran is a prefix, then the error."""
    loop = loop_factory()
    record = Recorder()
    accepted = dict.fromkeys(range(THREADS), 0)
    errors: dict[int, BaseException] = {}
    started = threading.Event()

    def call(tid: int) -> None:
        i = 0
        while True:
            try:
                loop.call_soon_threadsafe(record, tid, i)
            except BaseException as exc:
                errors[tid] = exc
                return
            i += 1
            accepted[tid] = i
            started.set()

    threads = callers(THREADS, call)
    try:
        dog = watchdog(loop)

        def stop_when_busy() -> None:
            # Stop once callers are running and some of their callbacks have.
            if record.count >= 2000 or loop.time() >= dog.when():
                loop.stop()
            else:
                loop.call_soon(stop_when_busy)

        started.wait(DEADLINE)
        loop.call_soon(stop_when_busy)
        loop.run_forever()
    finally:
        loop.close()
    join(threads)
    for exc in errors.values():
        assert type(exc) is RuntimeError and str(exc) == "Event loop is closed"
    assert len(errors) == THREADS
    # A call accepted after the loop's last iteration never runs (close drops
    # it, on both loops); what did run is each thread's first calls, in order.
    for tid, order in record.order.items():
        assert order == list(range(len(order))) and len(order) <= accepted[tid]
    assert not [k for k, n in record.seen.items() if n > 1]
    assert record.count >= 2000


def test_after_close_the_documented_error(loop_factory: LoopFactory) -> None:
    loop = loop_factory()
    loop.close()
    raised: list[BaseException] = []

    async def never() -> None:
        pass

    def from_a_thread() -> None:
        for attempt in (
            lambda: loop.call_soon_threadsafe(print),
            lambda: asyncio.run_coroutine_threadsafe(coro, loop),
        ):
            try:
                attempt()
            except BaseException as exc:
                raised.append(exc)

    coro = never()
    t = threading.Thread(target=from_a_thread)
    t.start()
    t.join(DEADLINE)
    coro.close()
    assert [(type(e), str(e)) for e in raised] == [(RuntimeError, "Event loop is closed")] * 2


def test_run_coroutine_threadsafe_from_many_threads(loop_factory: LoopFactory) -> None:
    loop = loop_factory()
    results: dict[int, list[Any]] = {}
    per_thread = 300

    async def work(tid: int, i: int) -> tuple[int, int]:
        await asyncio.sleep(0)
        if i % 50 == 49:
            raise ValueError(tid, i)
        return tid, i

    def call(tid: int) -> None:
        futures = [asyncio.run_coroutine_threadsafe(work(tid, i), loop) for i in range(per_thread)]
        got: list[Any] = []
        for f in futures:
            try:
                got.append(f.result(DEADLINE))
            except ValueError as exc:
                got.append(exc.args)
        results[tid] = got

    async def main() -> None:
        threads = callers(THREADS, call)
        await asyncio.wait_for(asyncio.to_thread(join, threads), DEADLINE + 10)

    try:
        loop.run_until_complete(main())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()
    assert results == {t: [(t, i) for i in range(per_thread)] for t in range(THREADS)}


def wait_until_asleep(tid: int) -> None:
    """Spin until thread ``tid`` sleeps in epoll/poll/select (its wchan); give up after a while."""
    for _ in range(2000):  # bounded: where wchan reads "0" (hidden), just go on
        with open(f"/proc/self/task/{tid}/wchan") as f:
            where = f.read()
        if "poll" in where or "select" in where:
            return


def test_a_sleeping_loop_wakes_for_each_call(loop_factory: LoopFactory) -> None:
    """A call from another thread while the loop sleeps in poll wakes it (uvloop #720)."""
    loop = loop_factory()
    me = threading.get_native_id()

    def wake() -> None:
        wait_until_asleep(me)
        loop.call_soon_threadsafe(loop.stop)

    try:
        dog = watchdog(loop)
        for _ in range(100):
            t = threading.Thread(target=wake)
            loop.call_soon(t.start)
            loop.run_forever()
            t.join(DEADLINE)
            assert loop.time() < dog.when(), "the loop slept through call_soon_threadsafe"
        dog.cancel()
    finally:
        loop.close()


@pytest.mark.skipif(sys.version_info < (3, 14), reason="thread-safe handles are new in 3.14")
def test_cancel_from_another_thread_while_callbacks_run(loop_factory: LoopFactory) -> None:
    """A thread schedules, another cancels the even ones as the loop runs them: an odd
    one runs once, an even one at most once, and nothing is reported to the loop."""
    loop = loop_factory()
    record = Recorder()
    total = 20_000
    handles: list[asyncio.Handle] = []
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: errors.append(context))

    def produce(_: int) -> None:
        for i in range(total):
            handles.append(loop.call_soon_threadsafe(record, 0, i))

    def cancel_even(_: int) -> None:
        cancelled = 0
        while cancelled < total:
            if cancelled < len(handles):
                handles[cancelled].cancel()
                assert handles[cancelled].cancelled()
                cancelled += 2
            else:
                threading.Event().wait(0.0001)

    async def main() -> None:
        threads = callers(1, produce) + callers(1, cancel_even)
        await asyncio.wait_for(asyncio.to_thread(join, threads), DEADLINE + 10)
        await asyncio.sleep(0)

    try:
        loop.run_until_complete(main())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()
    assert not errors
    assert all(n == 1 for n in record.seen.values())
    assert all(record.seen[0, i] == 1 for i in range(1, total, 2)), "an uncancelled one was lost"
    assert all(h.cancelled() for h in handles[::2])
