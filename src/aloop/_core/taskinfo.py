"""What a task is doing: where its coroutine is suspended and what it awaits.

Used by deadlock reports and by the task inspector (``aloop.inspect``).
Cold code: it walks coroutine frames and the loop's timers and fd table.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import FrameType
from typing import Any

__all__ = ["awaited_tasks", "awaiting", "suspension_stack", "task_outcome"]


def task_outcome(task: asyncio.Future[Any]) -> str:
    """ "finished", "failed" or "cancelled" for a done task, without consuming it.

    ``task.exception()`` would mark the exception as retrieved, and asyncio
    would then never report "Task exception was never retrieved": an
    observer must not change what the program sees, so read ``_exception``.
    """
    if task.cancelled():
        return "cancelled"
    return "failed" if getattr(task, "_exception", None) is not None else "finished"


def suspension_stack(task: asyncio.Task[Any]) -> list[str]:
    """``func() at file:line`` for each coroutine in the await chain, outermost first."""
    return [
        f"{frame.f_code.co_name}() at {frame.f_code.co_filename}:{frame.f_lineno}"
        for frame in _await_chain(task)
    ]


def _await_chain(task: asyncio.Task[Any]) -> Iterator[FrameType]:
    """The frames of the coroutines (or generators) in the task's await chain, outermost first."""
    coro: Any = task.get_coro()
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            return
        yield frame
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)


def _timer_for(loop: Any, future: Any) -> Any:
    """The loop timer that will resolve ``future`` (as asyncio.sleep schedules one)."""
    for timer in getattr(loop, "_scheduled", ()):
        args = timer._args
        if args and args[0] is future and not timer._cancelled:
            return timer
    return None


def _fd_for(loop: Any, future: Any) -> str | None:
    """``fd N readable``/``writable`` if an fd handle will resolve ``future``."""
    fds = getattr(loop, "_fds", None)
    if fds is None:
        return None
    for fd, entry in fds.entries.items():
        for kind, handle in (("readable", entry.reader), ("writable", entry.writer)):
            if handle is None:
                continue
            callback = handle._callback
            if getattr(callback, "__self__", None) is future or future in (handle._args or ()):
                return f"fd {fd} {kind}"
    return None


def awaiting(task: asyncio.Task[Any], loop: Any = None) -> str:
    """What ``task`` waits for, in words: a task, a gather, a sleep, I/O or a future."""
    if task.done():
        return "nothing (done)"
    waiter = getattr(task, "_fut_waiter", None)
    if waiter is None:
        return "nothing (scheduled to run)"
    if isinstance(waiter, asyncio.Task):
        return f"task {waiter.get_name()!r}"
    children = getattr(waiter, "_children", None)
    if children is not None:
        pending = sum(1 for child in children if not child.done())
        return f"gather of {len(children)} ({pending} pending)"
    loop = loop if loop is not None else task.get_loop()
    timer = _timer_for(loop, waiter)
    if timer is not None:
        left = timer.when() - loop.time()
        return f"sleep until t={timer.when():.3f} ({left:.3f} s left)"
    io = _fd_for(loop, waiter)
    if io is not None:
        return f"I/O: {io}"
    return repr(waiter)


def awaited_tasks(task: asyncio.Task[Any]) -> list[asyncio.Task[Any]]:
    """The tasks ``task`` waits on right now: the one it awaits, a gather's
    (nested gathers included), or the pending tasks of a ``TaskGroup`` it is
    leaving (its owner waits on a plain future of the group's)."""
    found: list[asyncio.Task[Any]] = []
    if task.done():
        return found
    waiter = getattr(task, "_fut_waiter", None)
    if waiter is not None:
        _tasks_behind(waiter, found)
    for group in _groups_being_left(task):
        found.extend(member for member in getattr(group, "_tasks", ()) if not member.done())
    unique: dict[int, asyncio.Task[Any]] = {id(fut): fut for fut in found}
    return list(unique.values())


def _tasks_behind(future: Any, found: list[asyncio.Task[Any]]) -> None:
    if isinstance(future, asyncio.Task):
        found.append(future)
        return
    for child in getattr(future, "_children", None) or ():  # a gather
        _tasks_behind(child, found)


def _groups_being_left(task: asyncio.Task[Any]) -> list[Any]:
    """The TaskGroups whose ``__aexit__`` is in the task's await chain."""
    groups = []
    for frame in _await_chain(task):
        if frame.f_code.co_name == "__aexit__":
            owner = frame.f_locals.get("self")
            if isinstance(owner, asyncio.TaskGroup):
                groups.append(owner)
    return groups
