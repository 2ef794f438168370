"""Event-loop microbenchmarks.

Each benchmark takes a fresh, not yet running loop and a scale factor (1.0 is the full
size) and returns a `Result`: one per-operation figure (lower is better) plus what the
benchmark actually did (`observed`) and what it should have done (`expected`), so that a
loop which is fast because it skipped work is caught rather than celebrated.

The bodies are kept small and identical for every loop: whatever bookkeeping they do
(a counter, a closure call) is a constant added to every loop's figure.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

Loop = asyncio.AbstractEventLoop


@dataclass
class Result:
    """Outcome of one benchmark run on one loop."""

    value: float
    workload: str
    observed: dict[str, int]
    expected: dict[str, int]
    extra: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Benchmark:
    """A named benchmark; `warmup` runs it once at a small scale on a throwaway loop.

    `clock` says what `Result.value` is based on: "wall" (perf_counter; such results also
    carry wall_s and cpu_s in `extra`, so the runner can show a CPU-time view), "cpu"
    (process time), or "none" (not a time)."""

    name: str
    title: str
    unit: str
    func: Callable[[Loop, float], Result]
    warmup: bool = True
    clock: Literal["wall", "cpu", "none"] = "wall"


def scaled(n: int, scale: float, minimum: int = 1) -> int:
    """`n` times `scale`, never below `minimum`."""
    return max(minimum, round(n * scale))


class Stopwatch:
    """Wall time (perf_counter, the reported figure) plus process CPU time, which is
    kept in `extra` to tell a slow loop from a descheduled process on a busy machine."""

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def stop(self) -> tuple[float, dict[str, float]]:
        wall = time.perf_counter() - self.wall
        cpu = time.process_time() - self.cpu
        return wall, {"wall_s": wall, "cpu_s": cpu}


def count_label(n: int) -> str:
    """1000000 -> '1M', 100000 -> '100k', 1500 -> '1500'."""
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 10_000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


# -- 1. call_soon chained -----------------------------------------------------------


def bench_chain(loop: Loop, scale: float) -> Result:
    """Each callback schedules the next one; the loop runs one callback per iteration."""
    n = scaled(1_000_000, scale)
    call_soon = loop.call_soon
    count = 0

    def step() -> None:
        nonlocal count
        count += 1
        if count < n:
            call_soon(step)
        else:
            loop.stop()

    call_soon(step)
    watch = Stopwatch()
    loop.run_forever()
    elapsed, times = watch.stop()
    return Result(
        value=elapsed / n * 1e9,
        workload=f"{count_label(n)} callbacks",
        observed={"callbacks": count},
        expected={"callbacks": n},
        extra=times,
    )


# -- 2. call_soon in batches --------------------------------------------------------


def bench_batch(loop: Loop, scale: float) -> Result:
    """A driver schedules 1000 callbacks and itself; each iteration runs 1001 callbacks."""
    batch = 1000
    rounds = scaled(1000, scale)
    call_soon = loop.call_soon
    count = 0
    rounds_done = 0

    def callback() -> None:
        nonlocal count
        count += 1

    def driver() -> None:
        nonlocal rounds_done
        if rounds_done == rounds:
            loop.stop()
            return
        rounds_done += 1
        for _ in range(batch):
            call_soon(callback)
        call_soon(driver)

    call_soon(driver)
    watch = Stopwatch()
    loop.run_forever()
    elapsed, times = watch.stop()
    n = batch * rounds
    return Result(
        value=elapsed / n * 1e9,
        workload=f"{count_label(n)} callbacks",
        observed={"callbacks": count, "batches": rounds_done},
        expected={"callbacks": n, "batches": rounds},
        extra=times,
    )


# -- 3. sleep(0) task switching -----------------------------------------------------


async def _switcher(switches: int) -> int:
    done = 0
    for _ in range(switches):
        await asyncio.sleep(0)
        done += 1
    return done


def bench_sleep0(loop: Loop, scale: float) -> Result:
    """1000 tasks each yield to the loop `switches` times with `await asyncio.sleep(0)`."""
    tasks = 1000
    switches = scaled(1000, scale)

    async def main() -> list[int]:
        return await asyncio.gather(*[_switcher(switches) for _ in range(tasks)])

    watch = Stopwatch()
    done = loop.run_until_complete(main())
    elapsed, times = watch.stop()
    n = tasks * switches
    return Result(
        value=elapsed / n * 1e9,
        workload=f"{tasks} tasks x {switches}",
        observed={"switches": sum(done), "tasks": len(done)},
        expected={"switches": n, "tasks": tasks},
        extra=times,
    )


# -- 4. Future ping-pong ------------------------------------------------------------


class _Channel:
    """Two one-shot futures that the ping and pong tasks replace on every exchange."""

    def __init__(self, loop: Loop) -> None:
        self.loop = loop
        self.to_pong: asyncio.Future[int] = loop.create_future()
        self.to_ping: asyncio.Future[int] = loop.create_future()


async def _pinger(channel: _Channel, rounds: int) -> int:
    create_future = channel.loop.create_future
    correct = 0
    for i in range(rounds):
        reply: asyncio.Future[int] = create_future()
        channel.to_ping = reply
        channel.to_pong.set_result(i)
        if await reply == i + 1:
            correct += 1
    return correct


async def _ponger(channel: _Channel, rounds: int) -> int:
    create_future = channel.loop.create_future
    for _ in range(rounds):
        value = await channel.to_pong
        channel.to_pong = create_future()
        channel.to_ping.set_result(value + 1)
    return rounds


def bench_pingpong(loop: Loop, scale: float) -> Result:
    """Two tasks wake each other through fresh Futures; one round trip is two wake-ups."""
    rounds = scaled(100_000, scale)
    channel = _Channel(loop)

    async def main() -> tuple[int, int]:
        return await asyncio.gather(_pinger(channel, rounds), _ponger(channel, rounds))

    watch = Stopwatch()
    correct, ponged = loop.run_until_complete(main())
    elapsed, times = watch.stop()
    return Result(
        value=elapsed / rounds * 1e9,
        workload=f"{count_label(rounds)} round trips",
        observed={"correct_replies": correct, "pongs": ponged},
        expected={"correct_replies": rounds, "pongs": rounds},
        extra=times,
    )


# -- 5. spawn and gather ------------------------------------------------------------


async def _identity(i: int) -> int:
    return i


def bench_gather(loop: Loop, scale: float) -> Result:
    """Create `n` trivial tasks with loop.create_task and gather their results."""
    n = scaled(100_000, scale)

    async def main() -> tuple[tuple[float, dict[str, float]], list[int]]:
        watch = Stopwatch()
        tasks = [loop.create_task(_identity(i)) for i in range(n)]
        results = await asyncio.gather(*tasks)
        return watch.stop(), results

    (elapsed, times), results = loop.run_until_complete(main())
    in_place = sum(1 for i, r in enumerate(results) if r == i)
    return Result(
        value=elapsed / n * 1e6,
        workload=f"{count_label(n)} tasks",
        observed={"results": len(results), "in_place": in_place},
        expected={"results": n, "in_place": n},
        extra=times,
    )


# -- 6. call_later timers, half cancelled -------------------------------------------

TIMER_WINDOW = 0.5  # seconds over which the timers' delays are spread at full scale


def bench_timers(loop: Loop, scale: float) -> Result:
    """Schedule `n` call_later timers with random delays, cancel every second one, run
    until the last live timer fires. Figure: process CPU time per scheduled timer, since
    the wall time is mostly the window being waited out."""
    n = scaled(100_000, scale, minimum=2)
    window = TIMER_WINDOW * min(1.0, scale * 10)
    rng = random.Random(1234)
    delays = [rng.random() * window for _ in range(n)]
    live = (n + 1) // 2
    fired = 0
    wrongly_fired = 0

    def on_timer() -> None:
        nonlocal fired
        fired += 1
        if fired == live:
            loop.stop()

    def on_cancelled() -> None:
        nonlocal wrongly_fired
        wrongly_fired += 1

    def start() -> None:
        handles = [
            loop.call_later(d, on_timer if i % 2 == 0 else on_cancelled)
            for i, d in enumerate(delays)
        ]
        for handle in handles[1::2]:
            handle.cancel()

    loop.call_soon(start)
    watch = Stopwatch()
    loop.run_forever()
    _, times = watch.stop()
    # Outlive every deadline so that a cancelled timer that still fires is counted.
    loop.run_until_complete(asyncio.sleep(window * 0.1 + 0.01))
    return Result(
        value=times["cpu_s"] / n * 1e9,
        workload=f"{count_label(n)} timers",
        observed={"fired": fired, "cancelled_fired": wrongly_fired},
        expected={"fired": live, "cancelled_fired": 0},
        extra=times,
    )


# -- 7. memory per idle task --------------------------------------------------------

MEM_MIN_TASKS = 10_000  # below this an RSS delta is mostly page and arena granularity

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """Resident set size of this process (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE_SIZE


async def _idle(future: asyncio.Future[int], started: list[int]) -> int:
    started[0] += 1
    return await future


class _IdleTasks:
    """`n` tasks, each suspended on its own Future."""

    def __init__(self, loop: Loop, n: int) -> None:
        self.loop = loop
        self.started = [0]
        self.futures: list[asyncio.Future[int]] = [loop.create_future() for _ in range(n)]
        self.tasks = [loop.create_task(_idle(f, self.started)) for f in self.futures]
        # The sleep's task is scheduled after all others, so one pass starts them all.
        for _ in range(10):
            if self.started[0] == n:
                break
            loop.run_until_complete(asyncio.sleep(0))

    def waiting(self) -> int:
        return sum(1 for t in self.tasks if not t.done())

    def finish(self) -> int:
        """Resolve every Future, run the tasks to completion, count correct results."""
        for i, future in enumerate(self.futures):
            future.set_result(i)
        results = self.loop.run_until_complete(asyncio.gather(*self.tasks))
        return sum(1 for i, r in enumerate(results) if r == i)


def _idle_task_bytes(loop: Loop, n: int, traced: bool) -> Result:
    _IdleTasks(loop, 100).finish()  # warm up: imports, free lists, loop internals
    gc.collect()
    if traced:
        tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0] if traced else rss_bytes()
    idle = _IdleTasks(loop, n)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0] if traced else rss_bytes()
    if traced:
        tracemalloc.stop()
    started, waiting = idle.started[0], idle.waiting()
    finished = idle.finish()
    return Result(
        value=(after - before) / n,
        workload=f"{count_label(n)} tasks",
        observed={"started": started, "waiting": waiting, "finished": finished},
        expected={"started": n, "waiting": n, "finished": n},
        extra={"delta_bytes": float(after - before)},
    )


def bench_mem_100k(loop: Loop, scale: float) -> Result:
    """RSS growth per task for 100k tasks each awaiting its own Future."""
    return _idle_task_bytes(loop, scaled(100_000, scale, MEM_MIN_TASKS), traced=False)


def bench_mem_1m(loop: Loop, scale: float) -> Result:
    """RSS growth per task for 1M tasks each awaiting its own Future."""
    return _idle_task_bytes(loop, scaled(1_000_000, scale, MEM_MIN_TASKS), traced=False)


def bench_mem_traced(loop: Loop, scale: float) -> Result:
    """tracemalloc growth per task for 100k idle tasks (deterministic, no RSS noise)."""
    return _idle_task_bytes(loop, scaled(100_000, scale, MEM_MIN_TASKS), traced=True)


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("chain", "call_soon chained", "ns/callback", bench_chain),
    Benchmark("batch", "call_soon batches of 1000", "ns/callback", bench_batch),
    Benchmark("sleep0", "sleep(0) switching", "ns/switch", bench_sleep0),
    Benchmark("pingpong", "Future ping-pong, 2 tasks", "ns/round trip", bench_pingpong),
    Benchmark("gather", "spawn + gather", "us/task", bench_gather),
    Benchmark("timers", "call_later, half cancelled", "CPU ns/timer", bench_timers, clock="cpu"),
    Benchmark(
        "mem_100k", "idle task RSS", "bytes/task", bench_mem_100k, warmup=False, clock="none"
    ),
    Benchmark("mem_1m", "idle task RSS", "bytes/task", bench_mem_1m, warmup=False, clock="none"),
    Benchmark(
        "mem_traced",
        "idle task tracemalloc",
        "bytes/task",
        bench_mem_traced,
        warmup=False,
        clock="none",
    ),
)

BY_NAME: dict[str, Benchmark] = {b.name: b for b in BENCHMARKS}
