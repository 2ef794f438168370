"""Deadlock reports for virtual-time loops: which tasks wait, and on what."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["VirtualTimeDeadlock", "describe_deadlock", "describe_task"]


class VirtualTimeDeadlock(RuntimeError):
    """Nothing can ever wake a virtual-time loop: no ready work, timer, I/O or held work."""


def _suspension_point(task: asyncio.Task[Any]) -> str:
    """Where the task's coroutine chain is suspended, innermost last."""
    places = []
    coro: Any = task.get_coro()
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            break
        places.append(f"{frame.f_code.co_name}() at {frame.f_code.co_filename}:{frame.f_lineno}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return " -> ".join(places) or "not started"


def describe_task(task: asyncio.Task[Any]) -> str:
    """One line: the task's name, what it awaits, and where it is suspended."""
    waiter = getattr(task, "_fut_waiter", None)
    awaiting = "nothing (scheduled)" if waiter is None else repr(waiter)
    return f"{task.get_name()!r} awaits {awaiting}, suspended in {_suspension_point(task)}"


def describe_deadlock(loop: Any, clock: Any) -> str:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    mode = "" if clock.autojump else " (manual clock: nothing called advance())"
    lines = [
        f"virtual-time deadlock at t={clock.now!r}{mode}: no callback is ready, no timer "
        "can fire, no I/O is registered and no outside work holds time, so nothing "
        f"can ever wake the loop. {len(tasks)} task(s) waiting:"
    ]
    lines.extend("  " + describe_task(task) for task in sorted(tasks, key=lambda t: t.get_name()))
    return "\n".join(lines)
