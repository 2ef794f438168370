"""Instrument hook points of the scheduler.

The first of the two layers of instrumentation: Python calls at named
points, for a tool that runs code of its own at each event (the task
tracker's spawn hook, a user's ``Instrument``). An instrument is any object
with some of the methods named in ``HOOKS``; ``loop.add_instrument(obj)``
attaches it, ``loop.remove_instrument(obj)`` detaches it. The loop holds
``None`` instead of a registry while nothing is attached, so an unobserved
loop pays one ``is None`` test per batch of callbacks and nothing per
callback.

Hooks and their arguments:

- ``task_spawned(task)``: ``loop.create_task`` made a task.
- ``task_scheduled(task)``: a step of ``task`` was queued to run.
- ``before_task_step(task)`` / ``after_task_step(task)``: around one step.
- ``task_exited(task)``: the step just run finished the task.
- ``before_callback(handle)`` / ``after_callback(handle)``: around every
  callback the loop runs, task steps included.
- ``before_io_wait(timeout)`` / ``after_io_wait(event_count)``: around each
  poll; ``timeout`` is in seconds, negative for "until an event".

An instrument whose hook raises is logged and removed; the loop goes on.

The second layer, ``aloop._core.recorder``, is for tools that need every
step at a cost a Python call per event would not allow (traces, per-task
step counts): a ``RecorderClient``, attached by the same
``loop.add_instrument``, has the compiled recorder note the events, with
no Python call per event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from mypy_extensions import mypyc_attr

HOOKS: Final = (
    "task_spawned",
    "task_scheduled",
    "before_task_step",
    "after_task_step",
    "task_exited",
    "before_callback",
    "after_callback",
    "before_io_wait",
    "after_io_wait",
)
"""The names of the hook methods an instrument may define (see ``Instrument``)."""

logger: Final = logging.getLogger("aloop")


@mypyc_attr(allow_interpreted_subclasses=True)
class Instrument:
    """Optional base class: override only the hooks you need."""


class Instruments:
    """The instruments attached to one loop, indexed by hook name."""

    def __init__(self) -> None:
        self.attached: list[object] = []
        self._by_hook: dict[str, list[Callable[..., object]]] = {}
        self.callbacks = False
        self.task_steps = False
        self.io_waits = False
        self.spawns = False
        self.schedules = False
        self.per_handle = False
        self._deferring = False
        self._deferred: list[Any] = []

    def add(self, instrument: object) -> None:
        if instrument in self.attached:
            return
        self.attached.append(instrument)
        self._rebuild()

    def remove(self, instrument: object) -> None:
        """Detach ``instrument``; ``KeyError`` if it is not attached."""
        if instrument not in self.attached:
            raise KeyError(f"instrument {instrument!r} is not attached")
        self.attached.remove(instrument)
        self._rebuild()

    def _rebuild(self) -> None:
        by_hook: dict[str, list[Callable[..., object]]] = {}
        for instrument in self.attached:
            for name in HOOKS:
                method = getattr(instrument, name, None)
                if method is not None:
                    by_hook.setdefault(name, []).append(method)
        self._by_hook = by_hook
        self.callbacks = "before_callback" in by_hook or "after_callback" in by_hook
        self.task_steps = any(
            name in by_hook for name in ("before_task_step", "after_task_step", "task_exited")
        )
        self.io_waits = "before_io_wait" in by_hook or "after_io_wait" in by_hook
        self.spawns = "task_spawned" in by_hook
        self.schedules = "task_scheduled" in by_hook
        # Only these need the slower run step that wraps every callback.
        self.per_handle = self.callbacks or self.task_steps

    def defer_schedules(self) -> None:
        """Hold ``task_scheduled`` reports until the task being built is reported."""
        self._deferring = True

    def spawned(self, task: Any) -> None:
        """Report a new task (None: creating it failed), then the steps it queued."""
        deferred, self._deferred = self._deferred, []
        self._deferring = False
        if self.spawns and task is not None:
            self.call("task_spawned", task)
        for queued in deferred:
            self.call("task_scheduled", queued)

    def scheduled(self, task: Any) -> None:
        if self._deferring:
            self._deferred.append(task)
        else:
            self.call("task_scheduled", task)

    def call(self, hook: str, arg: Any) -> None:
        """Call ``hook(arg)`` on every instrument that has it."""
        methods = self._by_hook.get(hook)
        if not methods:
            return
        for method in list(methods):
            try:
                method(arg)
            except Exception:
                self._drop(method, hook)

    def _drop(self, method: Callable[..., object], hook: str) -> None:
        instrument = getattr(method, "__self__", method)
        logger.exception("instrument %r raised in %s and was removed", instrument, hook)
        if instrument in self.attached:
            self.remove(instrument)
