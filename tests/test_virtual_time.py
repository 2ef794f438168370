"""Virtual time: the same programs on a real clock and on aloop's virtual clock."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

import aloop

Program = Callable[[list[str]], Coroutine[Any, Any, None]]

# Real-clock runs take real time: the programs below use this unit for every
# delay, so the real run stays short while the ordering is the same. Events
# that must keep their order are at least half a unit apart, so a loaded
# machine's stalls (tens of ms) cannot reorder the real-clock run.
UNIT = 0.05


def events_on(program: Program, **loop_options: Any) -> tuple[list[str], float]:
    """Run ``program`` on aloop; return its event log and the loop time it took."""
    log: list[str] = []
    loop = aloop.new_event_loop(**loop_options)
    try:
        start = loop.time()
        loop.run_until_complete(program(log))
        return log, loop.time() - start
    finally:
        loop.close()


def same_order(program: Program) -> list[str]:
    """The program logs the same events on real and virtual time; return them."""
    real, _ = events_on(program)
    virtual, _ = events_on(program, virtual_time=True)
    assert virtual == real
    return virtual


async def sleepers(log: list[str]) -> None:
    async def sleeper(name: str, units: float) -> None:
        await asyncio.sleep(units * UNIT)
        log.append(name)

    await asyncio.gather(sleeper("c", 3), sleeper("a", 1), sleeper("b", 2), sleeper("a2", 1))


async def timeouts(log: list[str]) -> None:
    try:
        await asyncio.wait_for(asyncio.sleep(5 * UNIT), 2 * UNIT)
    except TimeoutError:
        log.append("wait_for timed out")
    async with asyncio.timeout(3 * UNIT):
        await asyncio.sleep(UNIT)
        log.append("finished inside timeout")
    try:
        async with asyncio.timeout(UNIT):
            await asyncio.sleep(10 * UNIT)
    except TimeoutError:
        log.append("timeout block expired")
    log.append(str(await asyncio.wait_for(asyncio.sleep(UNIT, "result"), 3 * UNIT)))


async def taskgroup_cancellation(log: list[str]) -> None:
    async def worker(name: str, units: int) -> None:
        try:
            await asyncio.sleep(units * UNIT)
            log.append(f"{name} done")
        except asyncio.CancelledError:
            log.append(f"{name} cancelled")
            raise

    async def failer() -> None:
        await asyncio.sleep(2 * UNIT)
        log.append("failer raises")
        raise ValueError("boom")

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(worker("fast", 1))
            group.create_task(worker("slow", 5))
            group.create_task(failer())
    except* ValueError:
        log.append("group failed")


async def retries_with_backoff(log: list[str]) -> None:
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 4:
            raise ConnectionError(f"attempt {attempts}")
        return "ok"

    delay = UNIT
    while True:
        try:
            log.append(await flaky())
            return
        except ConnectionError as exc:
            log.append(f"{exc}, retry in {delay / UNIT:g} units")
            await asyncio.sleep(delay)
            delay *= 2


async def periodic(log: list[str]) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    ticks = 0

    def tick() -> None:
        nonlocal ticks
        ticks += 1
        log.append(f"tick {ticks}")
        if ticks < 4:
            # A fixed schedule (call_at), as a periodic job should: no drift.
            loop.call_at(start + (ticks + 1) * 2 * UNIT, tick)

    loop.call_at(start + 2 * UNIT, tick)
    await asyncio.sleep(5 * UNIT)
    log.append("halfway")
    await asyncio.sleep(4 * UNIT)


@pytest.mark.parametrize(
    "program", [sleepers, timeouts, taskgroup_cancellation, retries_with_backoff, periodic]
)
def test_same_events_in_the_same_order_as_real_time(program: Program) -> None:
    assert same_order(program)


def test_virtual_time_is_exact_and_takes_no_real_time() -> None:
    async def day(log: list[str]) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(24):
            await asyncio.sleep(3600)
            log.append(f"{loop.time():g}")

    log, elapsed = events_on(day, virtual_time=True)
    assert elapsed == 86400.0
    assert log == [f"{3600 * h:g}" for h in range(1, 25)]


def test_clock_starts_at_zero_or_the_given_start() -> None:
    async def now() -> float:
        return asyncio.get_running_loop().time()

    assert aloop.run(now(), virtual_time=True) == 0.0
    assert aloop.run(now(), virtual_time=aloop.VirtualClock(start=1000.0)) == 1000.0


def test_executor_jobs_hold_time() -> None:
    """A timer must not overtake a thread that is still running in real time."""

    async def main(log: list[str]) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(1.0, log.append, "timer at t=1")

        def work() -> str:
            time.sleep(0.05)  # real time; virtual time must wait for it
            return "thread finished"

        log.append(await asyncio.to_thread(work))
        log.append(f"t={loop.time():g}")
        await asyncio.sleep(2)

    log, elapsed = events_on(main, virtual_time=True)
    assert log == ["thread finished", "t=0", "timer at t=1"]
    assert elapsed == 2.0


def test_a_hold_keeps_time_for_an_outside_thread() -> None:
    clock = aloop.VirtualClock()

    async def main(log: list[str]) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(5, log.append, "timeout fired")
        done = loop.create_future()
        hold = clock.hold()
        hold.acquire()

        def outside() -> None:
            time.sleep(0.05)
            loop.call_soon_threadsafe(done.set_result, "outside thread called back")
            hold.release()

        thread = threading.Thread(target=outside)
        thread.start()
        log.append(await done)
        thread.join()
        await asyncio.sleep(10)

    log, _ = events_on(main, virtual_time=clock)
    assert log == ["outside thread called back", "timeout fired"]


def test_deadlock_is_reported_with_the_waiting_tasks() -> None:
    async def stuck_child(event: asyncio.Event) -> None:
        await event.wait()

    async def main() -> None:
        event = asyncio.Event()
        child = asyncio.create_task(stuck_child(event), name="child")
        await child

    with pytest.raises(aloop.VirtualTimeDeadlock) as info:
        aloop.run(main(), virtual_time=True)
    message = str(info.value)
    assert message.startswith("virtual-time deadlock at t=0.0")
    assert "'child' awaits <Future pending" in message
    assert "stuck_child() at " in message and "test_virtual_time.py" in message
    assert "2 task(s) waiting" in message


def test_real_io_keeps_working_under_virtual_time() -> None:
    """An echo over a socketpair completes even with a far timeout pending."""

    async def main(log: list[str]) -> None:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        loop.add_reader(b, lambda: b.send(b.recv(100).upper()))
        for word in (b"ping", b"pong"):
            got = loop.create_future()
            loop.add_reader(a, lambda g=got: g.done() or g.set_result(a.recv(100)))
            a.send(word)
            log.append((await asyncio.wait_for(got, 30)).decode())
            loop.remove_reader(a)
        loop.remove_reader(b)
        a.close()
        b.close()
        log.append(f"t={loop.time():g}")

    log, _ = events_on(main, virtual_time=True)
    assert log == ["PING", "PONG", "t=0"]


def test_manual_clock_advance_and_wait_idle() -> None:
    clock = aloop.VirtualClock(autojump=False)

    async def main(log: list[str]) -> None:
        loop = asyncio.get_running_loop()

        async def sleeper() -> None:
            await asyncio.sleep(5)
            log.append(f"woke at {loop.time():g}")

        task = asyncio.create_task(sleeper())
        await clock.wait_idle()
        log.append(f"idle at {loop.time():g}, done={task.done()}")
        clock.advance(4)
        await clock.wait_idle()
        log.append(f"idle at {loop.time():g}, done={task.done()}")
        clock.advance(1)
        await task

    log, elapsed = events_on(main, virtual_time=clock)
    assert log == ["idle at 0, done=False", "idle at 4, done=False", "woke at 5"]
    assert elapsed == 5.0


def test_manual_clock_that_is_never_advanced_deadlocks_clearly() -> None:
    async def main() -> None:
        await asyncio.sleep(1)

    with pytest.raises(aloop.VirtualTimeDeadlock, match="manual clock"):
        aloop.run(main(), virtual_time=aloop.VirtualClock(autojump=False))


def test_bad_input() -> None:
    clock = aloop.VirtualClock()
    with pytest.raises(ValueError, match="cannot advance time backwards"):
        clock.advance(-1)
    loop = aloop.new_event_loop()
    loop.call_later(10, print)
    with pytest.raises(RuntimeError, match="timers scheduled on real time"):
        loop.use_virtual_time()
    loop.close()

    loop = aloop.new_event_loop()

    async def switch() -> None:
        loop.use_virtual_time()

    with pytest.raises(RuntimeError, match="cannot switch a running event loop"):
        loop.run_until_complete(switch())
    loop.close()


def test_switching_a_stopped_loop_to_virtual_time() -> None:
    loop = aloop.new_event_loop()
    assert loop.virtual_clock is None
    clock = loop.use_virtual_time()
    assert loop.virtual_clock is clock
    loop.run_until_complete(asyncio.sleep(100))
    assert loop.time() == 100.0
    loop.close()


def test_tcp_echo_and_a_subprocess_complete_under_virtual_time() -> None:
    """Real I/O under virtual time: timeouts must not jump ahead of real work."""
    import sys

    async def main(log: list[str]) -> None:
        loop = asyncio.get_running_loop()

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write((await reader.readline()).upper())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 30)
        writer.write(b"ping\n")
        log.append((await asyncio.wait_for(reader.readline(), 30)).decode().strip())
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()

        # The child sleeps in real time; the 30 s virtual timeout must not fire first.
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import time; time.sleep(0.2); print('child done')",
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        log.append(out.decode().strip())
        log.append(f"exit {proc.returncode}, t={loop.time():g}")

    log, _ = events_on(main, virtual_time=True)
    assert log == ["PING", "child done", "exit 0, t=0"]
