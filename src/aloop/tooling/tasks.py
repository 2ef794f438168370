"""Every task's life: state, parent, children, steps, CPU time and how it ended.

``TaskTracker`` records each task from creation to exit: ``track(loop)``
hooks task creation (parents, creation sites) and, with ``detail``, has the
loop's compiled recorder (``aloop._core.recorder``) count every task's steps
and time in them, with no Python call per step. ``snapshot(loop)`` combines those
records with what each live task is doing right now (what it awaits, where it
is suspended) into ``TaskInfo`` rows; ``format_tree`` prints them as the task
tree, each task under the task that created it.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import os
import sys
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aloop._core.recorder import Recorder, RecorderClient, TaskStats
from aloop._core.taskinfo import (
    _await_chain,
    _timer_for,
    awaited_tasks,
    awaiting,
    suspension_stack,
    task_outcome,
)

if TYPE_CHECKING:
    from aloop.loop import Loop

__all__ = [
    "TaskInfo",
    "TaskRecord",
    "TaskTracker",
    "format_tree",
    "snapshot",
    "track",
    "tree_order",
    "untrack",
]

_SKIPPED_DIRS = (
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),  # aloop
    os.path.dirname(os.path.abspath(asyncio.__file__)),
)

# States of the guide's life cycle; "waiting" is a started task that awaits something.
CREATED, SCHEDULED, RUNNING, WAITING = "created", "scheduled", "running", "waiting"
FINISHED, FAILED, CANCELLED = "finished", "failed", "cancelled"


@dataclass(eq=False)
class TaskRecord:
    """What the tracker saw of one task."""

    task: weakref.ref[asyncio.Task[Any]]
    last_name: str
    created: float
    parent: TaskRecord | None = None
    state: str = CREATED
    steps: int = 0
    cpu: float = 0.0
    longest_step: float = 0.0
    cancelled_by: str | None = None
    ended: float | None = None
    created_at: str | None = None
    children: list[TaskRecord] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The task's name now (names may be set after creation), or its last one."""
        task = self.task()
        if task is not None:
            self.last_name = task.get_name()
        return self.last_name


@dataclass(frozen=True)
class TaskInfo:
    """One task in a snapshot."""

    name: str
    state: str
    parent: str | None
    children: tuple[str, ...]
    awaiting: str
    stack: tuple[str, ...]
    age: float
    steps: int
    #: Seconds spent in the task's steps (wall time of each step: CPU time
    #: unless a step blocks; in bursts of short callbacks, a group's time is
    #: split evenly among them). Counted with ``track(loop, detail=True)``.
    cpu: float
    cancelled_by: str | None
    #: The tasks this one waits on now (a task, a gather's, a TaskGroup's).
    waits_on: tuple[str, ...] = ()
    #: The tasks waiting on this one: the awaited-by graph, reversed ``waits_on``.
    awaited_by: tuple[str, ...] = ()
    #: The task's coroutine, as ``main()`` (its qualified name); "" if unknown.
    coro: str = ""


class TaskTracker:
    """Each task's life cycle on one loop: parents, creation sites, steps, end."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, history: int = 1000) -> None:
        self._loop = loop
        # Live tasks only: a record must not keep its task alive.
        self.records: weakref.WeakKeyDictionary[asyncio.Task[Any], TaskRecord] = (
            weakref.WeakKeyDictionary()
        )
        #: The most recently ended tasks' records, newest last.
        self.ended: collections.deque[TaskRecord] = collections.deque(maxlen=history)
        #: Whether steps are counted (see ``track``).
        self.detail = True
        # The loop's recorder, while it counts steps for this tracker.
        self._recorder: Recorder | None = None
        # The instruments ``track`` attached for it (``untrack`` removes them).
        self._hooks: list[object] = []

    def record(self, task: asyncio.Task[Any]) -> TaskRecord:
        """The task's record, made on first sight for tasks created before tracking."""
        rec = self.records.get(task)
        if rec is None:
            rec = TaskRecord(weakref.ref(task), task.get_name(), time.monotonic())
            self.records[task] = rec
        return rec

    def stats(self, task: asyncio.Task[Any]) -> TaskStats | None:
        """The recorder's step counts of a live ``task`` (None: not counted)."""
        recorder = self._recorder
        return None if recorder is None else recorder.stats_of(task)

    # -- hook ----------------------------------------------------------------

    def task_spawned(self, task: asyncio.Task[Any]) -> None:
        parent = asyncio.current_task(self._loop)
        rec = TaskRecord(weakref.ref(task), task.get_name(), time.monotonic())
        rec.created_at = _creation_site()
        if parent is not None:
            rec.parent = self.record(parent)
            rec.parent.children.append(rec)
        self.records[task] = rec

    # -- from the recorder (loop thread) ---------------------------------------

    def _exited(self, task: asyncio.Task[Any], stats: TaskStats) -> None:
        rec = self.record(task)
        _copy_stats(rec, stats)
        rec.last_name = task.get_name()
        rec.ended = time.monotonic()
        rec.state = task_outcome(task)
        self.ended.append(rec)

    def _cancelled(self, task: asyncio.Task[Any]) -> None:
        """A cancel woke ``task``: whoever runs now asked for it."""
        rec = self.record(task)
        if rec.cancelled_by is None:
            current = asyncio.current_task(self._loop)
            rec.cancelled_by = current.get_name() if current is not None else "a loop callback"


def _copy_stats(rec: TaskRecord, stats: TaskStats) -> None:
    rec.steps = stats.steps
    rec.cpu = stats.seconds
    rec.longest_step = stats.longest


class _StepCounter(RecorderClient):
    """Has the loop's compiled recorder count steps for a tracker."""

    def __init__(self, tracker: TaskTracker) -> None:
        self._tracker = tracker

    def on_attach(self, loop: Any, recorder: Recorder) -> None:
        tracker = self._tracker
        recorder.start_counting(tracker._exited, tracker._cancelled)
        tracker._recorder = recorder

    def on_detach(self, loop: Any, recorder: Recorder) -> None:
        recorder.stop_counting()
        self._tracker._recorder = None


def _creation_site() -> str | None:
    """``file:line in func`` of the code that created the task (outside aloop and asyncio)."""
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_SKIPPED_DIRS):
            return f"{filename}:{frame.f_lineno} in {frame.f_code.co_name}"
        frame = frame.f_back  # type: ignore[assignment]
    return None


class _SpawnHook:
    """The tracker's spawn hook alone: parents and creation sites, nothing per step."""

    def __init__(self, tracker: TaskTracker) -> None:
        self.task_spawned = tracker.task_spawned


# loop -> its tracker. Kept off the loop: an attribute set on a compiled loop
# fills its instance __dict__, which every method call made from C then searches.
_trackers: weakref.WeakKeyDictionary[Any, TaskTracker] = weakref.WeakKeyDictionary()


def tracker_of(loop: Any) -> TaskTracker | None:
    """The loop's tracker, if one is attached."""
    return _trackers.get(loop)


def track(loop: Loop, *, detail: bool = True) -> TaskTracker:
    """The loop's tracker, attaching one on first use.

    It hooks task creation (parents, children, creation sites); states are
    read from the tasks when asked. With ``detail`` (the default) the loop's
    compiled recorder also counts each task's steps and time in them, and
    notes who cancelled whom: a clock read per step, no Python call.

    It also adds the task's parent and creation site to what the loop's
    exception handler reports about a task ("Task exception was never
    retrieved", "Task was destroyed but it is pending!").
    """
    tracker = _trackers.get(loop)
    if tracker is None:
        tracker = TaskTracker(loop)
        tracker.detail = detail
        tracker._hooks = [_SpawnHook(tracker)]
        if detail:
            tracker._hooks.append(_StepCounter(tracker))
        for hook in tracker._hooks:
            loop.add_instrument(hook)
        _trackers[loop] = tracker
        loop.set_exception_handler(_Enricher(tracker, loop.get_exception_handler()))
    return tracker


def untrack(loop: Loop) -> None:
    """Detach the loop's tracker, if any: no more hooks, the exception handler
    as it was. Call it on the loop's thread (or while the loop is not running)."""
    tracker: TaskTracker | None = _trackers.get(loop)
    if tracker is None:
        return
    for hook in tracker._hooks:
        loop.remove_instrument(hook)
    tracker._hooks = []
    del _trackers[loop]
    handler = loop.get_exception_handler()
    if isinstance(handler, _Enricher) and handler._tracker is tracker:
        loop.set_exception_handler(handler._inner)


class _Enricher:
    """Exception handler adding tracked facts about the task, then handing on."""

    def __init__(self, tracker: TaskTracker, inner: Any) -> None:
        self._tracker = tracker
        self._inner = inner

    def __call__(self, loop: Any, context: dict[str, Any]) -> None:
        task = context.get("task") or context.get("future")
        rec = self._tracker.records.get(task) if isinstance(task, asyncio.Task) else None
        if rec is not None:
            context.setdefault("task_parent", rec.parent.name if rec.parent else None)
            context.setdefault("task_created_at", rec.created_at)
        if self._inner is not None:
            self._inner(loop, context)
        else:
            loop.default_exception_handler(context)


def _state(task: asyncio.Task[Any], loop: Any) -> str:
    if task.done():
        return task_outcome(task)
    # Read from the task itself: what it awaits, or whether it runs right now.
    if getattr(task, "_fut_waiter", None) is not None:
        return WAITING
    return RUNNING if asyncio.current_task(loop) is task else SCHEDULED


def snapshot(loop: Any, *, include_done: bool = False) -> list[TaskInfo]:
    """Every task of ``loop`` now, tracked details included where a tracker is attached."""
    tracker: TaskTracker | None = _trackers.get(loop)
    tasks = set(asyncio.all_tasks(loop))
    now = time.monotonic()
    rows: list[TaskInfo] = []
    if tracker is not None and include_done:
        rows.extend(_ended_row(rec, now) for rec in tracker.ended)
        # Done, but the recorder has not run the task's done callback yet.
        for task, seen in list(tracker.records.items()):
            if seen.ended is None and task.done():
                stats = tracker.stats(task)
                ending = dataclasses.replace(seen, state=task_outcome(task))
                if stats is not None:
                    _copy_stats(ending, stats)
                rows.append(_ended_row(ending, now))
    for task in tasks:
        rec = tracker.records.get(task) if tracker is not None else None
        stats = tracker.stats(task) if tracker is not None else None
        if rec is not None and stats is not None:
            _copy_stats(rec, stats)
        rows.append(
            TaskInfo(
                name=task.get_name(),
                state=_state(task, loop),
                parent=rec.parent.name if rec and rec.parent else None,
                children=tuple(child.name for child in rec.children) if rec else (),
                awaiting=describe_wait(task, loop),
                stack=tuple(suspension_stack(task)),
                age=now - rec.created if rec else 0.0,
                steps=stats.steps if stats else rec.steps if rec else 0,
                cpu=stats.seconds if stats else rec.cpu if rec else 0.0,
                cancelled_by=rec.cancelled_by if rec else None,
                waits_on=tuple(awaited.get_name() for awaited in awaited_tasks(task)),
                coro=coro_name(task),
            )
        )
    return sorted(_with_awaited_by(rows), key=lambda row: row.name)


def coro_name(task: asyncio.Task[Any]) -> str:
    """``main()``: the qualified name of the coroutine the task runs."""
    coro = task.get_coro()
    if coro is None:
        return ""
    name = getattr(coro, "__qualname__", None) or type(coro).__qualname__
    return f"{name}()"


def describe_wait(task: asyncio.Task[Any], loop: Any) -> str:
    """What ``task`` waits for, in words a reader of ``ps`` can act on.

    A sleep says how long is left (or how late it is), a stream read or
    drain names the transport's peer and fd, a queue, lock, event,
    semaphore or condition names the call; the rest as ``awaiting`` says.
    """
    waiter = getattr(task, "_fut_waiter", None)
    if waiter is None or task.done() or isinstance(waiter, asyncio.Task):
        return awaiting(task, loop)
    if getattr(waiter, "_children", None) is not None:  # a gather
        return awaiting(task, loop)
    timer = _timer_for(loop, waiter)
    if timer is not None:
        left = timer.when() - loop.time()
        if left >= 0:
            return f"sleep ({left:.3f} s left)"
        return f"sleep (overdue by {-left:.3f} s: the loop is late)"
    primitive = _primitive_wait(task)
    return primitive if primitive is not None else awaiting(task, loop)


# (method, class) of the innermost coroutine -> what the task waits for.
_PRIMITIVES: tuple[tuple[str, type[Any], str], ...] = (
    ("get", asyncio.Queue, "queue.get(): the queue is empty"),
    ("put", asyncio.Queue, "queue.put(): the queue is full"),
    ("join", asyncio.Queue, "queue.join(): items not yet done"),
    ("wait", asyncio.Event, "event.wait()"),
    ("wait", asyncio.Condition, "condition.wait()"),
    ("acquire", asyncio.Lock, "lock.acquire(): the lock is held"),
    ("acquire", asyncio.Semaphore, "semaphore.acquire(): no slot free"),
    ("wait", asyncio.Barrier, "barrier.wait()"),
)
_PRIMITIVE_METHODS = frozenset(
    [method for method, _, _ in _PRIMITIVES] + ["_wait_for_data", "_drain_helper"]
)


def _primitive_wait(task: asyncio.Task[Any]) -> str | None:
    """The outermost primitive in the await chain (a barrier waits in a condition)."""
    for frame in _await_chain(task):
        name = frame.f_code.co_name
        if name not in _PRIMITIVE_METHODS:
            continue
        owner = frame.f_locals.get("self")
        if name == "_wait_for_data" and isinstance(owner, asyncio.StreamReader):
            return f"read from {_transport_text(getattr(owner, '_transport', None))}"
        if name == "_drain_helper":
            transport = getattr(owner, "_transport", None)
            if transport is None:
                return "drain(): the write buffer is full"
            return f"drain(): write to {_transport_text(transport)} (its buffer is full)"
        for method, cls, text in _PRIMITIVES:
            if name == method and isinstance(owner, cls):
                return text
    return None


def _transport_text(transport: Any) -> str:
    """``127.0.0.1:5432 (fd 7)``: a transport's peer and fd, as far as known."""
    if transport is None:
        return "a closed transport"
    peer: Any = None
    fd = -1
    try:
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("socket")
        pipe = transport.get_extra_info("pipe")
        if sock is not None:
            fd = sock.fileno()
        elif pipe is not None:
            fd = pipe.fileno()
            peer = peer or "a pipe"
    except Exception:  # a transport being closed on the loop thread right now
        pass
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = f"[{peer[0]}]" if ":" in str(peer[0]) else str(peer[0])
        text = f"{host}:{peer[1]}"
    elif peer:
        text = str(peer)
    else:
        text = type(transport).__name__
    return f"{text} (fd {fd})" if fd >= 0 else text


def _with_awaited_by(rows: list[TaskInfo]) -> list[TaskInfo]:
    """The rows with ``awaited_by`` filled in from everyone's ``waits_on``."""
    waiters: dict[str, list[str]] = {}
    for row in rows:
        for name in row.waits_on:
            waiters.setdefault(name, []).append(row.name)
    return [
        dataclasses.replace(row, awaited_by=tuple(waiters[row.name]))
        if row.name in waiters
        else row
        for row in rows
    ]


def _ended_row(rec: TaskRecord, now: float) -> TaskInfo:
    return TaskInfo(
        name=rec.name,
        state=rec.state,
        parent=rec.parent.name if rec.parent else None,
        children=tuple(child.name for child in rec.children),
        awaiting="nothing (done)",
        stack=(),
        age=now - rec.created,
        steps=rec.steps,
        cpu=rec.cpu,
        cancelled_by=rec.cancelled_by,
    )


def tree_order(rows: list[TaskInfo]) -> list[tuple[TaskInfo, int]]:
    """The rows depth first, each under its parent (a row whose parent is not
    among them is a root), with its depth."""
    names = {row.name for row in rows}
    kids: dict[str | None, list[TaskInfo]] = {}
    for row in rows:
        kids.setdefault(row.parent if row.parent in names else None, []).append(row)
    out: list[tuple[TaskInfo, int]] = []
    stack = [(row, 0) for row in reversed(kids.get(None, []))]
    while stack:
        row, depth = stack.pop()
        out.append((row, depth))
        stack.extend((kid, depth + 1) for kid in reversed(kids.pop(row.name, [])))
    return out


def format_tree(rows: list[TaskInfo]) -> str:
    """The tasks as a tree under their parents, one line each."""
    lines: list[str] = []
    for row, depth in tree_order(rows):
        detail = f"{row.state}, awaits {row.awaiting}" if row.state == WAITING else row.state
        named = f"{row.name} {row.coro}" if row.coro else row.name
        lines.append(f"{'  ' * depth}{named} [{detail}] steps={row.steps}")
    return "\n".join(lines)
