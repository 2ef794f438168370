"""Entry points: ``run`` and ``new_event_loop`` (the policy is in ``policy.py``)."""

from __future__ import annotations

import asyncio
import os
from asyncio import events
from collections.abc import Coroutine
from typing import Any, TypeVar

from aloop._core.clock import VirtualClock
from aloop.loop import Loop

__all__ = ["new_event_loop", "run"]

_T = TypeVar("_T")


def new_event_loop(
    *, virtual_time: bool | VirtualClock = False, backend: str | None = None
) -> Loop:
    """A new aloop event loop (pass it as ``loop_factory`` to asyncio).

    ``virtual_time=True`` (or a ``VirtualClock``) runs it on virtual time.
    """
    return Loop(virtual_time=virtual_time, backend=backend)


def run(
    main: Coroutine[Any, Any, _T],
    *,
    debug: bool | None = None,
    virtual_time: bool | VirtualClock = False,
    trace: str | None = None,
    monitor: bool | None = None,
) -> _T:
    """Run ``main`` on a new aloop loop with ``asyncio.run``'s exact semantics.

    The loop is created, ``main`` runs as a task, leftover tasks are cancelled,
    async generators and the default executor are shut down, and the loop is
    closed. Ctrl-C cancels the main task, as under ``asyncio.run``.

    ``virtual_time=True`` (or a ``VirtualClock``) runs it on virtual time:
    sleeps and timeouts take no real time. ``trace="out.json"`` records task
    steps, callbacks and I/O waits to a Perfetto / Chrome trace file.
    ``monitor=True`` (default: the ``ALOOP_MONITOR`` environment variable)
    serves ``python -m aloop ps/pstree/top/cancel/trace PID``.
    """
    if events._get_running_loop() is not None:
        # Same words as asyncio.run, so code that matches on them keeps working.
        raise RuntimeError("asyncio.run() cannot be called from a running event loop")
    if monitor is None:
        monitor = os.environ.get("ALOOP_MONITOR", "") not in ("", "0")
    loop = new_event_loop(virtual_time=virtual_time)
    runner = asyncio.Runner(debug=debug, loop_factory=lambda: loop)
    tools = _Tooling()
    try:
        tools.start(loop, trace, monitor)
        # asyncio.run makes its loop the current one for the run, and then
        # none; a Runner given a loop_factory does neither, so do it here.
        events.set_event_loop(runner.get_loop())
        return runner.run(main)
    finally:
        tools.stop_monitor()
        runner.close()
        events.set_event_loop(None)
        tools.save_trace()


class _Tooling:
    """The trace and monitor ``run`` was asked for (imported only when asked)."""

    def __init__(self) -> None:
        self._trace_path: str | None = None
        self._trace: Any = None
        self._monitor: Any = None

    def start(self, loop: Loop, trace: str | None, monitor: bool) -> None:
        self._trace_path = trace
        if trace is not None:
            from aloop.tooling.trace import Trace

            self._trace = Trace()
            loop.add_instrument(self._trace)
        if monitor:
            from aloop.tooling.monitor import Monitor

            self._monitor = Monitor(loop).start()

    def stop_monitor(self) -> None:
        if self._monitor is not None:
            self._monitor.stop()

    def save_trace(self) -> None:
        if self._trace is not None and self._trace_path is not None:
            self._trace.save(self._trace_path)
