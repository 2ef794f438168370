"""Instrument hook points: what they report, and that a bad instrument is dropped."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import pytest

import aloop


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def task_spawned(self, task: asyncio.Task[Any]) -> None:
        self.events.append(("spawned", task.get_name()))

    def task_scheduled(self, task: asyncio.Task[Any]) -> None:
        self.events.append(("scheduled", task.get_name()))

    def before_task_step(self, task: asyncio.Task[Any]) -> None:
        self.events.append(("step", task.get_name()))

    def after_task_step(self, task: asyncio.Task[Any]) -> None:
        self.events.append(("stepped", task.get_name()))

    def task_exited(self, task: asyncio.Task[Any]) -> None:
        self.events.append(("exited", task.get_name()))

    def before_io_wait(self, timeout: float) -> None:
        self.events.append(("io_wait", timeout >= 0))

    def after_io_wait(self, count: int) -> None:
        self.events.append(("io_done", count))


def test_task_life_cycle_is_reported(aloop_loop: aloop.Loop) -> None:
    rec = Recorder()
    aloop_loop.add_instrument(rec)

    async def child() -> None:
        await asyncio.sleep(0)

    async def main() -> None:
        await aloop_loop.create_task(child(), name="child")

    aloop_loop.run_until_complete(aloop_loop.create_task(main(), name="main"))
    task_events = [e for e in rec.events if e[0] not in ("io_wait", "io_done")]
    assert task_events[:2] == [("spawned", "main"), ("scheduled", "main")]
    child_events = [e[0] for e in task_events if e[1] == "child"]
    # sleep(0) queues the next step from inside the current one.
    assert child_events == [
        "spawned",
        "scheduled",
        "step",
        "scheduled",
        "stepped",
        "step",
        "stepped",
        "exited",
    ]
    assert task_events[-1] == ("exited", "main")


def test_callbacks_are_wrapped(aloop_loop: aloop.Loop) -> None:
    seen: list[str] = []

    class Callbacks(aloop.Instrument):
        def before_callback(self, handle: Any) -> None:
            seen.append("before " + repr(handle))

        def after_callback(self, handle: Any) -> None:
            seen.append("after")

    aloop_loop.add_instrument(Callbacks())
    aloop_loop.call_soon(print, "x")
    aloop_loop.call_soon(aloop_loop.stop)
    aloop_loop.run_forever()
    assert seen[0].startswith("before <Handle print(") and seen[1] == "after"
    assert len(seen) == 4


def test_io_wait_reports_events(aloop_loop: aloop.Loop) -> None:
    rec = Recorder()
    a, b = socket.socketpair()
    aloop_loop.add_instrument(rec)
    aloop_loop.add_reader(a, lambda: (a.recv(1), aloop_loop.stop()))
    aloop_loop.call_later(0.01, b.send, b"x")
    aloop_loop.run_forever()
    aloop_loop.remove_reader(a)
    assert ("io_done", 1) in rec.events
    a.close()
    b.close()


def test_failing_instrument_is_logged_and_removed(
    aloop_loop: aloop.Loop, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        calls = 0

        def before_callback(self, handle: Any) -> None:
            Broken.calls += 1
            raise RuntimeError("instrument bug")

    broken = Broken()
    rec = Recorder()
    aloop_loop.add_instrument(broken)
    aloop_loop.add_instrument(rec)
    ran: list[int] = []
    for i in range(3):
        aloop_loop.call_soon(ran.append, i)
    aloop_loop.call_soon(aloop_loop.stop)
    with caplog.at_level(logging.ERROR, logger="aloop"):
        aloop_loop.run_forever()
    assert ran == [0, 1, 2]
    assert Broken.calls == 1
    assert "instrument" in caplog.records[0].getMessage()
    with pytest.raises(KeyError):
        aloop_loop.remove_instrument(broken)
    aloop_loop.remove_instrument(rec)
    assert aloop_loop._instruments is None


def test_nothing_attached_means_no_registry(aloop_loop: aloop.Loop) -> None:
    rec = Recorder()
    assert aloop_loop._instruments is None
    aloop_loop.add_instrument(rec)
    aloop_loop.add_instrument(rec)  # attaching twice is a no-op
    aloop_loop.remove_instrument(rec)
    assert aloop_loop._instruments is None
    with pytest.raises(KeyError):
        aloop_loop.remove_instrument(rec)


def test_hook_names_are_public() -> None:
    assert set(aloop.HOOKS) == {
        "task_spawned",
        "task_scheduled",
        "before_task_step",
        "after_task_step",
        "task_exited",
        "before_callback",
        "after_callback",
        "before_io_wait",
        "after_io_wait",
    }


def test_failed_task_creation_does_not_hold_back_reports(aloop_loop: aloop.Loop) -> None:
    rec = Recorder()
    aloop_loop.add_instrument(rec)
    with pytest.raises(TypeError):
        aloop_loop.create_task("not a coroutine")  # type: ignore[arg-type]

    async def later() -> None:
        pass

    aloop_loop.run_until_complete(aloop_loop.create_task(later(), name="later"))
    names = [e for e in rec.events if e[1] == "later"]
    assert names[:3] == [("spawned", "later"), ("scheduled", "later"), ("step", "later")]
