"""The compiled recorder (aloop._core.recorder): traces and per-step counts.

What a Trace draws and what aloop.inspect counts per task, read from the
recorder's ring rather than from instrument hooks (those are in test_hooks.py).
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import random
import time
import weakref
from typing import Any

import pytest
from tests.test_hooks import Recorder as HookLog

import aloop
import aloop.inspect
from aloop._core import recorder
from aloop._core.recorder import GROUP, ContextTable, StatsTable, TaskStats, task_context
from aloop.tooling.trace import Trace


def _trace_run(loop: aloop.Loop, main: Any, trace: Any = None, **trace_args: Any) -> dict[str, Any]:
    """Run ``main`` with a trace (``trace``, or a new one) recording: its JSON."""
    trace = trace if trace is not None else Trace(**trace_args)
    loop.add_instrument(trace)
    loop.run_until_complete(main)
    loop.remove_instrument(trace)
    return trace.to_json()


def _by_name(data: dict[str, Any]) -> dict[str, list[str]]:
    """Track name -> the names of its events, in order."""
    names, kinds = _by_track(data)
    return {name: kinds.get(track, []) for track, name in names.items()}


def _by_track(data: dict[str, Any]) -> tuple[dict[int, str], dict[int, list[str]]]:
    names = {e["tid"]: e["args"]["name"] for e in data["traceEvents"] if e["name"] == "thread_name"}
    kinds: dict[int, list[str]] = {}
    for e in data["traceEvents"]:
        if e["ph"] != "M":
            kinds.setdefault(e["tid"], []).append(e["name"])
    return names, kinds


def test_trace_uses_the_recorder_not_hooks(aloop_loop: aloop.Loop) -> None:
    trace = Trace()
    aloop_loop.add_instrument(trace)
    assert aloop_loop._instruments is None and aloop_loop._recorder is not None
    aloop_loop.remove_instrument(trace)
    assert aloop_loop._recorder is None
    with pytest.raises(KeyError):
        aloop_loop.remove_instrument(trace)


def test_trace_tracks_reused_ids_and_renamed_tasks(aloop_loop: aloop.Loop) -> None:
    async def child(i: int) -> None:
        await asyncio.sleep(0)
        if i == 0:
            asyncio.current_task().set_name("renamed")  # type: ignore[union-attr]

    async def main() -> None:
        asyncio.current_task().set_name("main")  # type: ignore[union-attr]
        for i in range(50):  # one at a time: finished tasks' ids get reused
            await aloop_loop.create_task(child(i), name=f"child-{i}")

    data = _trace_run(aloop_loop, aloop_loop.create_task(main()))
    names, kinds = _by_track(data)
    assert sorted(names.values()) == sorted(
        ["event loop", "main", "renamed", *(f"child-{i}" for i in range(1, 50))]
    )
    for track, name in names.items():
        if name.startswith("child") or name == "renamed":
            assert kinds[track] == ["spawned", "step", "step", "finished"], (name, kinds[track])


def test_trace_ring_keeps_the_latest_events(aloop_loop: aloop.Loop) -> None:
    async def spin() -> None:
        for _ in range(1000):
            await asyncio.sleep(0)

    data = _trace_run(aloop_loop, spin(), max_events=100)
    events = [e for e in data["traceEvents"] if e["ph"] != "M"]
    # 100 records: each step's start (a batch needs no end record: the next
    # callback or I/O wait ends it), the exit, the loop stopping, and the
    # clock readings (one per step at most, one per GROUP in a burst).
    assert 50 <= len(events) <= 100
    assert "finished" in [e["name"] for e in events[-3:]]
    stamps = [e["ts"] for e in events]
    assert stamps == sorted(stamps)


def test_traces_share_the_ring_each_with_its_window(aloop_loop: aloop.Loop) -> None:
    async def named(name: str) -> None:
        await asyncio.sleep(0)

    first, second = Trace(), Trace()
    aloop_loop.add_instrument(first)
    aloop_loop.run_until_complete(aloop_loop.create_task(named("a"), name="a"))
    aloop_loop.add_instrument(second)
    aloop_loop.run_until_complete(aloop_loop.create_task(named("b"), name="b"))
    aloop_loop.remove_instrument(first)
    aloop_loop.run_until_complete(aloop_loop.create_task(named("c"), name="c"))
    aloop_loop.remove_instrument(second)
    assert aloop_loop._recorder is None
    seen_first = set(_by_track(first.to_json())[0].values())
    seen_second = set(_by_track(second.to_json())[0].values())
    assert {"a", "b"} <= seen_first and "c" not in seen_first
    assert {"b", "c"} <= seen_second and "a" not in seen_second


def test_trace_keeps_no_task_alive(aloop_loop: aloop.Loop) -> None:
    async def child() -> None:
        await asyncio.sleep(0)

    trace = Trace()
    aloop_loop.add_instrument(trace)
    task = aloop_loop.create_task(child())
    aloop_loop.run_until_complete(task)
    ref = weakref.ref(task)
    task = None  # type: ignore[assignment]
    gc.collect()
    assert ref() is None
    aloop_loop.remove_instrument(trace)


def test_trace_with_hooks_and_debug(aloop_loop: aloop.Loop) -> None:
    rec = HookLog()  # every hook on, beside the trace
    aloop_loop.add_instrument(rec)
    aloop_loop.set_debug(True)

    async def child() -> None:
        await asyncio.sleep(0)

    async def main() -> None:
        await aloop_loop.create_task(child(), name="child")

    data = _trace_run(aloop_loop, main())
    names, kinds = _by_track(data)
    track = next(t for t, n in names.items() if n == "child")
    assert kinds[track] == ["spawned", "step", "step", "finished"]
    assert ("exited", "child") in rec.events


def test_step_counts_are_compiled_not_hooked(aloop_loop: aloop.Loop) -> None:
    tracker = aloop.inspect.track(aloop_loop)
    assert aloop_loop._recorder is not None and aloop_loop._recorder.counting

    async def busy() -> None:
        for _ in range(5):
            sum(range(20_000))
            await asyncio.sleep(0)

    async def main() -> list[aloop.inspect.TaskInfo]:
        task = asyncio.create_task(busy(), name="busy")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        rows = aloop.inspect.snapshot(aloop_loop)
        await task
        return rows

    live = {row.name: row for row in aloop_loop.run_until_complete(main())}
    assert live["busy"].steps == 2 and live["busy"].cpu > 0
    ended = next(rec for rec in tracker.ended if rec.name == "busy")
    assert ended.steps == 6 and ended.state == "finished"
    assert ended.cpu >= live["busy"].cpu and ended.longest_step <= ended.cpu


def test_stats_table_matches_a_dict() -> None:
    rng = random.Random(7)
    for _ in range(50):
        table, ref = StatsTable(), {}
        for _ in range(rng.randint(1, 2000)):
            op = rng.random()
            if ref and op >= 0.5:
                key = rng.choice(list(ref))
            else:  # ids are 16-byte aligned; small ones collide on purpose
                key = rng.choice([rng.randrange(1, 2**47) & ~15, rng.randrange(1, 64) * 16])
            if op < 0.6:
                ref[key] = TaskStats(key)
                table.put(key, ref[key])
            elif op < 0.9:
                assert table.pop(key) is ref.pop(key, None)
            else:
                assert table.get(key) is ref.get(key)
            assert len(table) == len(ref)
        assert all(table.get(key) is stats for key, stats in ref.items())


def test_context_table_matches_a_dict() -> None:
    rng = random.Random(11)
    pool = [contextvars.Context() for _ in range(300)]
    for _ in range(30):
        table, ref = ContextTable(), {}  # ref: id(context) -> (context, stats)
        for _ in range(rng.randint(1, 1500)):
            op = rng.random()
            context = pool[rng.randrange(len(pool))]
            if op < 0.6:
                stats = TaskStats(id(context))
                ref[id(context)] = stats
                table.put(context, stats)
            elif op < 0.9:
                assert table.pop(context) is ref.pop(id(context), None)
            else:
                assert table.get(context) is ref.get(id(context))
        assert table.used == len(ref)
        assert all(table.get(c) is ref.get(id(c)) for c in pool)


def _step_counts(loop: aloop.Loop, main: Any) -> dict[str, tuple[int, str]]:
    """Run ``main`` with per-step counting on: name -> (steps, state) of each ended task."""
    tracker = aloop.inspect.track(loop)
    loop.run_until_complete(main)
    loop.run_until_complete(asyncio.sleep(0))  # the last exits' done callbacks
    return {rec.name: (rec.steps, rec.state) for rec in tracker.ended}


def test_tasks_sharing_a_context_are_told_apart(aloop_loop: aloop.Loop) -> None:
    shared = contextvars.copy_context()

    async def steps(n: int) -> None:
        for _ in range(n):
            await asyncio.sleep(0)

    async def main() -> None:
        a = aloop_loop.create_task(steps(3), name="a", context=shared)
        b = aloop_loop.create_task(steps(5), name="b", context=shared)
        c = aloop_loop.create_task(steps(2), name="c")
        await asyncio.gather(a, b, c)

    # A trace alone first (steps recorded by Context where none is shared),
    # then per-step counting, then a trace while counting.
    for data in (_trace_run(aloop_loop, main()), None):
        if data is None:
            ended = _step_counts(aloop_loop, main())
            assert ended["a"] == (4, "finished")
            assert ended["b"] == (6, "finished")
            assert ended["c"] == (3, "finished")
            data = _trace_run(aloop_loop, main())
        by_name = _by_name(data)
        assert by_name["a"] == ["spawned", *["step"] * 4, "finished"]
        assert by_name["b"] == ["spawned", *["step"] * 6, "finished"]
        assert by_name["c"] == ["spawned", *["step"] * 3, "finished"]


async def _wait_for(future: asyncio.Future[None]) -> None:
    await future


def test_tasks_made_outside_create_task_are_followed(aloop_loop: aloop.Loop) -> None:
    async def steps(n: int) -> None:
        for _ in range(n):
            await asyncio.sleep(0)

    seen_live: dict[str, list[str]] = {}

    async def main(trace: Trace | None = None) -> None:
        # Not through loop.create_task: found at their first step, or (a C
        # task, while only a trace records) when the trace is read.
        direct = asyncio.Task(steps(2), loop=aloop_loop, name="direct")
        python_task = asyncio.tasks._PyTask(steps(2), loop=aloop_loop, name="python")  # type: ignore[attr-defined]
        await asyncio.gather(direct, python_task)
        if trace is not None:
            gate = aloop_loop.create_future()
            late = asyncio.Task(_wait_for(gate), loop=aloop_loop, name="late")
            await asyncio.sleep(0)  # late's first step has run
            seen_live.update(_by_name(trace.to_json()))  # read while late lives
            gate.set_result(None)
            await late

    # A trace alone: the direct task is gone when it is read, so its steps
    # have a track of their own without its name; one alive then is named.
    trace = Trace()
    by_name = _by_name(_trace_run(aloop_loop, main(trace), trace))
    assert by_name["python"] == ["step"] * 3 + ["finished"]
    unnamed = [kinds for name, kinds in by_name.items() if name.startswith("task 0x")]
    assert ["step"] * 3 in unnamed
    assert seen_live["late"] == ["step"]
    # Counting finds every task at its first step, and a trace then names them all.
    ended = _step_counts(aloop_loop, main())
    assert ended["direct"] == (3, "finished")
    assert ended["python"] == (3, "finished")
    by_name = _by_name(_trace_run(aloop_loop, main()))
    assert by_name["direct"] == ["step"] * 3 + ["finished"]
    assert by_name["python"] == ["step"] * 3 + ["finished"]


def test_trace_alone_records_steps_by_context(aloop_loop: aloop.Loop) -> None:
    async def steps(n: int) -> None:
        for _ in range(n):
            await asyncio.sleep(0)

    trace = Trace()
    aloop_loop.add_instrument(trace)
    rec = aloop_loop._recorder
    assert rec is not None and rec.by_context

    async def main() -> None:
        await asyncio.gather(*(steps(3) for _ in range(5)))

    aloop_loop.run_until_complete(main())
    assert any(type(code) is contextvars.Context for code in rec.codes)
    aloop_loop.remove_instrument(trace)
    # The trace's copy holds no Context: a kept trace keeps none alive.
    window = trace._window
    assert window is not None
    assert all(type(code) is int for code in window.codes)
    assert not any(isinstance(obj, (tuple, contextvars.Context)) for obj in window.objs)
    _, kinds = _by_track(trace.to_json())
    steps_per_task = sorted(k.count("step") for t, k in kinds.items() if t != 0)
    assert steps_per_task[-5:] == [4] * 5


def test_trace_follows_a_context_from_one_task_to_the_next(aloop_loop: aloop.Loop) -> None:
    reused = contextvars.copy_context()

    async def steps(n: int) -> None:
        for _ in range(n):
            await asyncio.sleep(0)

    read_early: dict[str, list[str]] = {}

    async def main(trace: Trace) -> None:
        await aloop_loop.create_task(steps(2), name="first", context=reused)
        await aloop_loop.create_task(steps(3), name="second", context=reused)
        third = aloop_loop.create_task(steps(4), name="third", context=reused)
        await asyncio.sleep(0)
        read_early.update(_by_name(trace.to_json()))  # third is alive
        await third

    trace = Trace()
    by_name = _by_name(_trace_run(aloop_loop, main(trace), trace))
    assert by_name["first"] == ["spawned", *["step"] * 3, "finished"]
    assert by_name["second"] == ["spawned", *["step"] * 4, "finished"]
    assert by_name["third"] == ["spawned", *["step"] * 5, "finished"]
    assert read_early["first"] == by_name["first"]
    assert read_early["second"] == by_name["second"]
    assert read_early["third"] == ["spawned", "step"]


def test_task_context_is_the_one_the_task_runs_in(aloop_loop: aloop.Loop) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="none")
    seen: list[contextvars.Context] = []

    async def body() -> None:
        var.set("mine")
        await asyncio.sleep(0)

    async def main() -> None:
        given = contextvars.copy_context()
        tasks = [
            aloop_loop.create_task(body()),
            aloop_loop.create_task(body(), context=given),
            asyncio.Task(body(), loop=aloop_loop),
            asyncio.tasks._PyTask(body(), loop=aloop_loop),  # type: ignore[attr-defined]
        ]
        for task in tasks:  # done callbacks in other Contexts come after it
            task.add_done_callback(lambda t: None, context=contextvars.Context())
        await asyncio.sleep(0)
        for task in tasks:
            context = task_context(task)
            assert type(context) is contextvars.Context
            seen.append(context)  # type: ignore[arg-type]
        assert seen[1] is given
        await asyncio.gather(*tasks)

    aloop_loop.run_until_complete(main())
    assert [context[var] for context in seen] == ["mine"] * 4


def _run_an_old_task(loop: aloop.Loop, observe: Any) -> None:
    """Run a task "old" that took its first step before ``observe()`` was called."""
    gate = loop.create_future()

    async def old() -> None:
        await gate
        await asyncio.sleep(0)

    task = loop.create_task(old(), name="old")
    loop.run_until_complete(asyncio.sleep(0))  # its first step, unobserved
    observe()
    gate.set_result(None)
    loop.run_until_complete(task)
    loop.run_until_complete(asyncio.sleep(0))  # its exit's done callback


def test_tasks_older_than_the_recorder_are_counted(aloop_loop: aloop.Loop) -> None:
    _run_an_old_task(aloop_loop, lambda: aloop.inspect.track(aloop_loop))
    tracker = aloop.inspect.track(aloop_loop)
    ended = {rec.name: rec for rec in tracker.ended}
    assert ended["old"].steps == 2 and ended["old"].state == "finished"


def test_tasks_older_than_a_trace_are_traced(aloop_loop: aloop.Loop) -> None:
    trace = Trace()
    _run_an_old_task(aloop_loop, lambda: aloop_loop.add_instrument(trace))
    aloop_loop.remove_instrument(trace)
    by_name = _by_name(trace.to_json())
    assert by_name["old"] == ["step", "step", "finished"]


def test_exit_is_drawn_where_the_last_step_ended(aloop_loop: aloop.Loop) -> None:
    async def child() -> None:
        await asyncio.sleep(0)
        sum(range(50_000))  # a step long enough to see

    async def main() -> None:
        await aloop_loop.create_task(child(), name="child")
        await asyncio.sleep(0.01)

    data = _trace_run(aloop_loop, main())
    names, _ = _by_track(data)
    track = next(t for t, n in names.items() if n == "child")
    events = [e for e in data["traceEvents"] if e.get("tid") == track and e["ph"] != "M"]
    last_step = [e for e in events if e["name"] == "step"][-1]
    finished = next(e for e in events if e["name"] == "finished")
    assert finished["ts"] == pytest.approx(last_step["ts"] + last_step["dur"])
    # The recorder's own done callback is not drawn as a callback.
    callbacks = [e for e in data["traceEvents"] if e["name"] == "callback"]
    assert not any("_task_exited" in e["args"]["handle"] for e in callbacks)


def test_recorder_done_callback_runs_in_an_empty_context(aloop_loop: aloop.Loop) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var")

    async def child() -> None:
        pass

    def spawn() -> asyncio.Task[None]:
        var.set("the spawner's")
        return aloop_loop.create_task(child())

    trace = Trace()
    aloop_loop.add_instrument(trace)
    task = contextvars.copy_context().run(spawn)
    callbacks = list(task._callbacks or [])  # type: ignore[attr-defined]
    aloop_loop.run_until_complete(task)
    aloop_loop.remove_instrument(trace)
    assert len(callbacks) == 1
    assert len(callbacks[0][1]) == 0  # not a copy of the spawner's context


def test_short_callbacks_are_timed_in_groups(aloop_loop: aloop.Loop) -> None:
    async def spin() -> None:
        for _ in range(300):
            await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*(aloop_loop.create_task(spin(), name=f"s{i}") for i in range(4)))

    trace = Trace()
    aloop_loop.add_instrument(trace)
    aloop_loop.run_until_complete(main())
    rec = aloop_loop._recorder
    assert rec is not None
    written = rec.index
    read = sum(type(code) is float for code in rec.codes[:written])  # readings
    aloop_loop.remove_instrument(trace)
    # sleep(0) steps take a few microseconds: about one reading per GROUP
    # records (fewer groups where the machine is busy: half is plenty to show it).
    assert GROUP == 16 and read < (written - read) / 2
    events = [e for e in trace.events if e["name"] == "step"]
    assert len(events) == 4 * 301 + 2  # and main: start, and back from gather
    assert sum("timing" in e["args"] for e in events) > len(events) / 2
    starts = [e["ts"] for e in events]  # spans do not nest: closed in start order
    assert starts == sorted(starts) and all(e["dur"] >= 0 for e in events)


def test_long_callbacks_are_timed_exactly(aloop_loop: aloop.Loop) -> None:
    async def blocking() -> None:
        for _ in range(5):
            time.sleep(0.005)  # a step that blocks the loop: worth a reading each
            await asyncio.sleep(0)

    tracker = aloop.inspect.track(aloop_loop)
    data = _trace_run(aloop_loop, aloop_loop.create_task(blocking(), name="blocking"))
    aloop_loop.run_until_complete(asyncio.sleep(0))
    names, _ = _by_track(data)
    track = next(t for t, n in names.items() if n == "blocking")
    steps = [e for e in data["traceEvents"] if e.get("tid") == track and e["name"] == "step"]
    assert len(steps) == 6
    assert all(e["dur"] >= 4_500 and "timing" not in e["args"] for e in steps[:5])
    ended = next(rec for rec in tracker.ended if rec.name == "blocking")
    assert ended.steps == 6 and 0.025 <= ended.cpu and ended.longest_step >= 0.0045


def _wakeups_and_a_cancel(loop: aloop.Loop) -> Any:
    """A worker woken by sleep(0), by a future and by a timer; a victim cancelled
    by a ``call_soon(task.cancel)`` (a callback bound to the task, not a step)."""

    async def worker() -> None:
        for _ in range(5):
            await asyncio.sleep(0)  # the next step is scheduled by the task itself
            fut = loop.create_future()
            loop.call_later(0.001, fut.set_result, None)
            await fut  # the next step is the future waking the task

    async def victim() -> None:
        await asyncio.sleep(10)

    async def main() -> None:
        w = loop.create_task(worker(), name="worker")
        v = loop.create_task(victim(), name="victim")
        await asyncio.sleep(0)
        loop.call_soon(v.cancel)
        await asyncio.gather(w, v, return_exceptions=True)

    return main()


def test_wakeups_are_steps_and_task_methods_are_callbacks(aloop_loop: aloop.Loop) -> None:
    ended = _step_counts(aloop_loop, _wakeups_and_a_cancel(aloop_loop))
    assert ended["worker"] == (11, "finished")
    assert ended["victim"] == (2, "cancelled")  # its start, and the step that raised
    data = _trace_run(aloop_loop, _wakeups_and_a_cancel(aloop_loop))
    handles = [e["args"]["handle"] for e in data["traceEvents"] if e["name"] == "callback"]
    assert any("cancel" in text for text in handles), handles


@pytest.mark.skipif(
    aloop._purity.is_compiled(),
    reason="counts calls by patching the recorder module; a compiled module cannot be patched",
)
def test_task_steps_take_the_fast_path(
    aloop_loop: aloop.Loop, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow: list[object] = []
    real = recorder._begin_other

    def counting(rec: Any, handle: Any, now: object) -> Any:
        slow.append(handle._callback)
        return real(rec, handle, now)

    monkeypatch.setattr(recorder, "_begin_other", counting)
    ended = _step_counts(aloop_loop, _wakeups_and_a_cancel(aloop_loop))
    assert ended["worker"] == (11, "finished")
    # At most each task's first step (four tasks, with run_until_complete's)
    # takes the slow way; the rest are looked up by Context, wakeups included.
    task_steps = [cb for cb in slow if recorder._is_step(cb)]
    assert len(task_steps) <= 4, task_steps
