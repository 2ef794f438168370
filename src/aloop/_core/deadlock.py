"""Deadlock reports for virtual-time loops: which tasks wait, and on what."""

from __future__ import annotations

import asyncio
from typing import Any

from aloop._core.taskinfo import awaiting, suspension_stack

__all__ = ["VirtualTimeDeadlock", "describe_deadlock", "describe_task"]


class VirtualTimeDeadlock(RuntimeError):
    """Nothing can ever wake a virtual-time loop: no ready work, timer, I/O or held work."""


def describe_task(task: asyncio.Task[Any]) -> str:
    """One line: the task's name, what it awaits, and where it is suspended."""
    where = " -> ".join(suspension_stack(task)) or "not started"
    return f"{task.get_name()!r} awaits {awaiting(task)}, suspended in {where}"


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
