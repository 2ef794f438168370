"""aloop demo: a small asyncio program, run on aloop, that shows what the loop did.

The program uses each of the event loop's jobs from the guide: coroutines and
tasks, timers, a thread for a blocking call, a process for CPU work, an async
generator and a queue. An instrument attached to the loop records each task's
life cycle (created, scheduled, running, done), and the same program then runs
on the stdlib loop to show the output is the same.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from typing import Any

import aloop
from aloop.inspect import task_outcome


def fib(n: int) -> int:
    """CPU-bound work for the process pool."""
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def blocking_read(path: str) -> int:
    """A blocking call, run in a thread."""
    time.sleep(0.02)
    with open(path, "rb") as f:
        return len(f.read())


async def ticks(count: int, interval: float) -> AsyncIterator[int]:
    for i in range(count):
        await asyncio.sleep(interval)
        yield i


async def producer(queue: asyncio.Queue[int]) -> None:
    async for tick in ticks(5, 0.01):
        await queue.put(tick * tick)
    await queue.put(-1)


async def consumer(queue: asyncio.Queue[int]) -> list[int]:
    seen = []
    while (item := await queue.get()) >= 0:
        seen.append(item)
    return seen


async def program() -> list[str]:
    loop = asyncio.get_running_loop()
    out = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    async with asyncio.TaskGroup() as group:
        group.create_task(producer(queue), name="producer")
        consumed = group.create_task(consumer(queue), name="consumer")
        size = group.create_task(asyncio.to_thread(blocking_read, __file__), name="thread")
    out.append(f"consumer got {consumed.result()}")
    out.append(f"a thread read {size.result() > 0 and 'this file'}")
    with concurrent.futures.ProcessPoolExecutor(max_workers=2) as pool:
        results = await asyncio.gather(*(loop.run_in_executor(pool, fib, n) for n in (20, 22)))
    out.append(f"processes computed fib(20), fib(22) = {results}")
    try:
        async with asyncio.timeout(0.05):
            await asyncio.sleep(10)
    except TimeoutError:
        out.append("a 10 s sleep timed out after 0.05 s")
    return out


class LifeCycle:
    """An aloop instrument: per-task history of created, scheduled, running, done."""

    def __init__(self) -> None:
        # Keyed by task: a TaskGroup names its tasks only after creating them.
        self.history: dict[asyncio.Task[Any], list[str]] = defaultdict(list)
        self.counts: Counter[str] = Counter()

    def task_spawned(self, task: asyncio.Task[Any]) -> None:
        self.history[task].append("created")

    def task_scheduled(self, task: asyncio.Task[Any]) -> None:
        self.counts["scheduled"] += 1

    def before_task_step(self, task: asyncio.Task[Any]) -> None:
        self.counts["steps"] += 1
        steps = self.history[task]
        if "running" not in steps:
            steps.append("running")

    def task_exited(self, task: asyncio.Task[Any]) -> None:
        # Not task.exception(): that would mark a failure as retrieved.
        self.history[task].append(f"done ({task_outcome(task)})")

    def before_callback(self, handle: Any) -> None:
        self.counts["callbacks"] += 1

    def after_io_wait(self, events: int) -> None:
        self.counts["I/O waits"] += 1


def main() -> None:
    mode = "mypyc-compiled" if aloop.COMPILED else "interpreted"
    print(f"aloop {aloop.__version__} ({mode}) on Python {sys.version.split()[0]}\n")

    loop = aloop.new_event_loop()
    life = LifeCycle()
    loop.add_instrument(life)
    with asyncio.Runner(loop_factory=lambda: loop) as runner:
        started = time.perf_counter()
        on_aloop = runner.run(program())
        elapsed = time.perf_counter() - started
    print("The program's output on aloop:")
    for line in on_aloop:
        print("  " + line)
    print(f"  (took {elapsed * 1000:.0f} ms)\n")

    print("What the loop saw (each task: created -> running -> done):")
    for task, states in life.history.items():
        print(f"  {task.get_name():<10} {' -> '.join(states)}")
    print("  totals: " + ", ".join(f"{k} {v}" for k, v in sorted(life.counts.items())))

    on_asyncio = asyncio.run(program())
    verdict = "the same" if on_asyncio == on_aloop else f"DIFFERENT: {on_asyncio}"
    print(f"\nThe same program on the stdlib asyncio loop printed {verdict}.")


if __name__ == "__main__":
    main()
