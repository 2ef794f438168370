"""aloop.inspect: task states, tree, what tasks await, and who cancelled whom."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import socket
import time
from pathlib import Path
from typing import Any

import pytest

import aloop
import aloop.inspect


def test_fan_out_tree_states_and_waits() -> None:
    loop = aloop.new_event_loop()
    aloop.inspect.track(loop)
    seen: dict[str, aloop.inspect.TaskInfo] = {}
    tree: list[str] = []

    async def fetch(i: int, gate: asyncio.Event) -> int:
        await gate.wait()
        return i

    async def sleeper() -> None:
        await asyncio.sleep(30)

    async def reader(sock: socket.socket) -> bytes:
        return await _readable(sock)

    async def _readable(sock: socket.socket) -> bytes:
        fut = loop.create_future()
        loop.add_reader(sock, fut.set_result, None)
        try:
            await fut
        finally:
            loop.remove_reader(sock)
        return sock.recv(1)

    async def crawler() -> list[int]:
        gate = asyncio.Event()
        workers = [asyncio.create_task(fetch(i, gate), name=f"fetch-{i}") for i in range(3)]
        sleepy = asyncio.create_task(sleeper(), name="sleeper")
        a, b = socket.socketpair()
        io = asyncio.create_task(reader(a), name="reader")
        gathered = asyncio.gather(*workers)
        await asyncio.sleep(0.01)
        for row in aloop.inspect.snapshot(loop):
            seen[row.name] = row
        tree.append(aloop.inspect.format_tree(aloop.inspect.snapshot(loop)))
        gate.set()
        b.send(b"x")
        await io
        sleepy.cancel()
        a.close()
        b.close()
        return await gathered

    assert loop.run_until_complete(loop.create_task(crawler(), name="crawler")) == [0, 1, 2]
    loop.close()

    # The crawler took the snapshot itself: it is the running task.
    assert seen["crawler"].state == "running"
    assert seen["crawler"].children == ("fetch-0", "fetch-1", "fetch-2", "sleeper", "reader")
    assert seen["fetch-1"].parent == "crawler" and seen["fetch-1"].state == "waiting"
    assert seen["fetch-1"].stack[0].startswith("fetch() at ")
    assert any(frame.startswith("wait() at ") for frame in seen["fetch-1"].stack)
    # A sleep says how long is left, not the loop's absolute clock.
    assert re.fullmatch(r"sleep \(29\.\d{3} s left\)", seen["sleeper"].awaiting)
    assert seen["fetch-1"].awaiting == "event.wait()"
    assert seen["fetch-1"].coro == "test_fan_out_tree_states_and_waits.<locals>.fetch()"
    assert seen["reader"].awaiting.startswith("I/O: fd ") and "readable" in seen["reader"].awaiting
    assert seen["crawler"].steps == 2  # its first step, and the one taking the snapshot
    lines = tree[0].splitlines()
    assert lines[0].startswith("crawler test_fan_out_tree_states_and_waits.<locals>.crawler()")
    fetch_line = next(line for line in lines if line.startswith("  fetch-0 "))
    assert fetch_line.endswith(".<locals>.fetch() [waiting, awaits event.wait()] steps=1")
    assert "sleeper() [waiting, awaits sleep (" in tree[0]


def test_awaited_by_graph() -> None:
    loop = aloop.new_event_loop()
    rows: dict[str, aloop.inspect.TaskInfo] = {}

    async def main() -> None:
        gate = asyncio.Event()

        async def idle() -> None:
            await gate.wait()

        async def boss() -> None:
            await asyncio.create_task(idle(), name="worker")

        async def gatherer() -> None:
            inner = asyncio.gather(asyncio.create_task(idle(), name="g2"))
            await asyncio.gather(asyncio.create_task(idle(), name="g1"), inner)

        async def owner() -> None:
            async with asyncio.TaskGroup() as group:
                group.create_task(idle(), name="m1")
                group.create_task(idle(), name="m2")

        waiting = [
            asyncio.create_task(coro, name=name)
            for coro, name in ((boss(), "boss"), (gatherer(), "gatherer"), (owner(), "owner"))
        ]
        await asyncio.sleep(0.01)
        rows.update((row.name, row) for row in aloop.inspect.snapshot(loop))
        gate.set()
        await asyncio.gather(*waiting)

    loop.run_until_complete(main())
    loop.close()
    assert rows["boss"].waits_on == ("worker",) and rows["worker"].awaited_by == ("boss",)
    assert rows["gatherer"].waits_on == ("g1", "g2")  # the nested gather's too
    assert rows["g2"].awaited_by == ("gatherer",)
    assert sorted(rows["owner"].waits_on) == ["m1", "m2"]  # leaving its TaskGroup
    assert rows["m1"].awaited_by == ("owner",) and rows["m2"].awaited_by == ("owner",)
    assert rows["worker"].waits_on == () and rows["boss"].awaited_by == ()


def test_ended_tasks_say_how_and_who_cancelled() -> None:
    loop = aloop.new_event_loop()
    tracker = aloop.inspect.track(loop)
    reported: list[str] = []
    loop.set_exception_handler(lambda lp, ctx: reported.append(ctx["message"]))

    async def victim() -> None:
        await asyncio.sleep(10)

    async def crash() -> None:
        raise ValueError("fire and forget")

    async def killer(target: asyncio.Task[None]) -> None:
        target.cancel()

    async def main() -> list[aloop.inspect.TaskInfo]:
        asyncio.current_task().set_name("main")  # type: ignore[union-attr]
        v = asyncio.create_task(victim(), name="victim")
        crashed = asyncio.create_task(crash(), name="crash")
        await asyncio.sleep(0)
        await asyncio.create_task(killer(v), name="killer")
        await asyncio.gather(v, crashed, return_exceptions=True)
        return aloop.inspect.snapshot(loop, include_done=True)

    rows = {row.name: row for row in loop.run_until_complete(main())}
    loop.close()
    assert rows["victim"].state == "cancelled"
    assert rows["victim"].cancelled_by == "killer"
    assert rows["crash"].state == "failed"
    assert rows["killer"].state == "finished"
    assert rows["killer"].parent == "main"
    assert all(rec.state in {"finished", "failed", "cancelled"} for rec in tracker.records.values())


def test_snapshot_without_tracker_still_sees_tasks() -> None:
    loop = aloop.new_event_loop()

    async def main() -> list[aloop.inspect.TaskInfo]:
        background = asyncio.create_task(asyncio.sleep(5), name="bg")
        await asyncio.sleep(0)
        rows = aloop.inspect.snapshot(loop)
        background.cancel()
        return rows

    rows = {row.name: row for row in loop.run_until_complete(main())}
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()
    assert rows["bg"].state == "waiting" and rows["bg"].awaiting.startswith("sleep (")
    assert rows["bg"].parent is None  # parents are known only from tracking


def test_tracking_costs_nothing_when_off() -> None:
    loop = aloop.new_event_loop()
    assert loop._instruments is None
    aloop.inspect.track(loop)
    assert loop._instruments is not None
    assert aloop.inspect.track(loop) is aloop.inspect.track(loop)
    loop.close()


def test_untrack_and_monitor_stop_take_every_hook_off(tmp_path: Path) -> None:
    from aloop.tooling.monitor import Monitor
    from aloop.tooling.tasks import tracker_of

    loop = aloop.new_event_loop()

    def handler(loop: Any, context: dict[str, Any]) -> None:
        pass

    loop.set_exception_handler(handler)
    aloop.inspect.track(loop, detail=True)
    assert loop._instruments is not None and loop._recorder is not None
    assert loop.get_exception_handler() is not handler
    aloop.inspect.untrack(loop)
    assert loop._instruments is None and loop._recorder is None
    assert loop.get_exception_handler() is handler
    aloop.inspect.untrack(loop)  # nothing left to take off
    tracker = aloop.inspect.track(loop)  # and on again, afresh
    assert tracker is aloop.inspect.track(loop)
    aloop.inspect.untrack(loop)

    attributes = set(vars(loop))
    monitor = Monitor(loop, path=str(tmp_path / "m.sock"), detail=True).start()
    # Nothing is set on the loop itself (a compiled loop's __dict__ stays empty).
    assert set(vars(loop)) == attributes
    assert loop._recorder is not None and loop._measure_idle
    monitor.stop()
    assert loop._instruments is None and loop._recorder is None and not loop._measure_idle
    # A tracker the monitor found attached is the user's: it stays.
    tracker = aloop.inspect.track(loop)
    Monitor(loop, path=str(tmp_path / "m.sock")).start().stop()
    assert tracker_of(loop) is tracker
    loop.close()


def test_watchdog_reports_a_block_while_it_is_happening(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from aloop.tooling.watchdog import Watchdog

    loop = aloop.new_event_loop()
    seen_during_block: list[int] = []

    def blocking_callback(watchdog: Watchdog) -> None:
        # Block until the watchdog has spoken (or give up after 10 s), then
        # note what it had reported before this callback returned.
        before = len(watchdog.reports)
        deadline = time.monotonic() + 10
        while len(watchdog.reports) == before and time.monotonic() < deadline:
            time.sleep(0.01)
        seen_during_block.append(len(watchdog.reports) - before)

    async def blocking_task(watchdog: Watchdog) -> None:
        await asyncio.sleep(0)
        blocking_callback(watchdog)

    with caplog.at_level(logging.WARNING, logger="aloop.watchdog"), Watchdog(loop, 0.05) as dog:
        loop.call_soon(blocking_callback, dog)
        loop.run_until_complete(loop.create_task(blocking_task(dog), name="blocker"))
        loop.run_until_complete(asyncio.sleep(0.1))  # quick callbacks: no report
    loop.close()
    assert seen_during_block == [1, 1]
    assert len(dog.reports) == 2
    assert dog.reports[0].what == "a callback (not a task step)"
    assert dog.reports[1].what.startswith("task 'blocker'")
    assert "in blocking_callback" in dog.reports[1].stack
    assert "event loop blocked for" in caplog.records[0].getMessage()


def test_loop_stats() -> None:
    from aloop.tooling.stats import LoopStats

    loop = aloop.new_event_loop()
    stats = LoopStats(loop)
    a, b = socket.socketpair()

    async def main() -> None:
        loop.call_later(0.01, b.send, b"x")
        fut = loop.create_future()
        loop.add_reader(a, fut.set_result, None)
        await fut
        loop.remove_reader(a)
        await asyncio.gather(*(asyncio.sleep(0.01) for _ in range(10)))

    loop.run_until_complete(main())
    snap = stats.snapshot()
    loop.close()
    a.close()
    b.close()
    assert snap.callbacks >= 20  # ten sleeps' timers and wake-ups, the gather, the main task
    assert snap.iterations >= 3 and snap.polls >= 2 and snap.io_events >= 1
    assert snap.idle > 0 and snap.busy > 0
    assert 0 < snap.utilisation < 1
    assert snap.tasks_alive == 0


def test_trace_file_is_valid_chrome_trace_json(tmp_path: Path) -> None:
    out = tmp_path / "trace.json"

    async def child(i: int) -> int:
        await asyncio.sleep(0.001 * i)
        return i

    async def main() -> int:
        asyncio.get_running_loop().call_soon(print, "a plain callback")
        results = await asyncio.gather(
            *(asyncio.create_task(child(i), name=f"child-{i}") for i in range(3))
        )
        return sum(results)

    assert aloop.run(main(), trace=str(out)) == 3
    data = json.loads(out.read_text())
    events = data["traceEvents"]
    names = {e["tid"]: e["args"]["name"] for e in events if e["name"] == "thread_name"}
    assert names[0] == "event loop"
    assert {"child-0", "child-1", "child-2"} <= set(names.values())
    for event in events:
        assert event["ph"] in {"X", "i", "M"} and event["pid"] == 1
        if event["ph"] != "M":
            assert event["ts"] >= 0 and event["tid"] in names
        if event["ph"] == "X":
            assert event["dur"] >= 0
    by_track: dict[int, list[dict[str, Any]]] = {}
    for event in events:
        if event["ph"] == "X":
            by_track.setdefault(event["tid"], []).append(event)
    for spans in by_track.values():  # spans on one track never overlap
        spans.sort(key=lambda e: e["ts"])
        for a, b in itertools.pairwise(spans):
            assert a["ts"] + a["dur"] <= b["ts"] + 1e-3
    child_track = next(t for t, n in names.items() if n == "child-1")
    kinds = [e["name"] for e in events if e.get("tid") == child_track and e["ph"] != "M"]
    assert kinds[0] == "spawned" and kinds[-1] == "finished" and kinds.count("step") == 2
    assert any(e["name"] == "I/O wait" for e in events)
    assert any(e["name"] == "callback" and "print" in e["args"]["handle"] for e in events)


def test_never_retrieved_exception_names_parent_and_creation_site(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = aloop.new_event_loop()
    aloop.inspect.track(loop)

    async def crash() -> None:
        raise ValueError("nobody looks at me")

    async def main() -> None:
        asyncio.current_task().set_name("main")  # type: ignore[union-attr]
        asyncio.create_task(crash(), name="fire-and-forget")  # noqa: RUF006 (the point)
        for _ in range(3):
            await asyncio.sleep(0)

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.run_until_complete(main())
    loop.close()
    messages = [r.getMessage() for r in caplog.records]
    report = next(m for m in messages if m.startswith("Task exception was never retrieved"))
    assert "task_parent: 'main'" in report
    assert re.search(r"task_created_at: '.*test_inspect.py:\d+ in main'", report), report
    assert "fire-and-forget" in report


def test_server_with_many_connections() -> None:
    loop = aloop.new_event_loop()
    aloop.inspect.track(loop)
    connections = 50
    rows: list[aloop.inspect.TaskInfo] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        task.set_name(f"conn-{len(handlers)}")
        handlers.append(task)
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()
        writer.close()

    async def client(port: int, echoed: asyncio.Semaphore) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hello\n")
        assert await reader.readline() == b"hello\n"
        echoed.release()
        try:
            await reader.read()
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        echoed = asyncio.Semaphore(0)
        clients = [
            asyncio.create_task(client(port, echoed), name=f"client-{i}")
            for i in range(connections)
        ]
        for _ in range(connections):
            await echoed.acquire()
        rows.extend(aloop.inspect.snapshot(loop))
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
        await asyncio.gather(*handlers)  # each sees its client's EOF
        server.close()
        await server.wait_closed()

    handlers: list[asyncio.Task[Any]] = []
    loop.run_until_complete(loop.create_task(main(), name="main"))
    loop.close()
    by_name = {row.name: row for row in rows}
    handler_rows = [row for row in rows if row.name.startswith("conn-")]
    assert len(handler_rows) == connections
    for row in handler_rows:
        assert row.state == "waiting" and row.parent is None  # started by an accept callback
        assert row.stack[0].startswith("handle() at ")
        assert any(frame.startswith("readline() at ") for frame in row.stack)
        assert row.steps >= 2 and row.cpu > 0
    assert {f"client-{i}" for i in range(connections)} <= set(by_name["main"].children)
    assert all(by_name[f"client-{i}"].state == "waiting" for i in range(connections))
    # A stream read names the transport's peer and fd, not the reader's future.
    for row in rows:
        if row.name.startswith(("conn-", "client-")):
            assert re.fullmatch(r"read from 127\.0\.0\.1:\d+ \(fd \d+\)", row.awaiting), row
    tree = aloop.inspect.format_tree(rows)
    assert tree.count("[waiting, awaits read from 127.0.0.1:") == 2 * connections


def test_waits_name_the_primitive_the_transport_and_lateness() -> None:
    loop = aloop.new_event_loop()
    rows: dict[str, aloop.inspect.TaskInfo] = {}

    async def main() -> None:
        empty: asyncio.Queue[int] = asyncio.Queue()
        full: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
        full.put_nowait(0)
        lock, semaphore, condition = asyncio.Lock(), asyncio.Semaphore(0), asyncio.Condition()
        barrier = asyncio.Barrier(2)
        await lock.acquire()

        async def wait_on_condition() -> None:
            async with condition:
                await condition.wait()

        accepted: list[asyncio.StreamWriter] = []  # kept open, never read from
        server = await asyncio.start_server(lambda r, w: accepted.append(w), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.transport.set_write_buffer_limits(high=1)

        async def drain() -> None:
            writer.write(b"x" * (64 << 20))  # more than the kernel buffers: paused
            await writer.drain()

        waits = {
            "get": empty.get(),
            "put": full.put(1),
            "lock": lock.acquire(),
            "semaphore": semaphore.acquire(),
            "condition": wait_on_condition(),
            "barrier": barrier.wait(),
            "drain": drain(),
            "late": asyncio.sleep(0.01),
        }
        tasks = [asyncio.create_task(coro, name=name) for name, coro in waits.items()]
        for _ in range(5):
            await asyncio.sleep(0)
        time.sleep(0.05)  # block: the 0.01 s sleep's timer is now overdue
        rows.update((row.name, row) for row in aloop.inspect.snapshot(loop))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writer.transport.abort()
        for peer in accepted:
            peer.transport.abort()
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())
    loop.close()
    assert rows["get"].awaiting == "queue.get(): the queue is empty"
    assert rows["put"].awaiting == "queue.put(): the queue is full"
    assert rows["lock"].awaiting == "lock.acquire(): the lock is held"
    assert rows["semaphore"].awaiting == "semaphore.acquire(): no slot free"
    assert rows["condition"].awaiting == "condition.wait()"
    assert rows["barrier"].awaiting == "barrier.wait()"
    drain = rows["drain"].awaiting
    assert re.fullmatch(
        r"drain\(\): write to 127\.0\.0\.1:\d+ \(fd \d+\) \(its buffer is full\)", drain
    )
    assert re.fullmatch(r"sleep \(overdue by 0\.\d{3} s: the loop is late\)", rows["late"].awaiting)
