"""Entry points: ``run``, ``new_event_loop`` and the event loop policy."""

from __future__ import annotations

import asyncio
import functools
from asyncio import events
from collections.abc import Coroutine
from typing import Any, TypeVar

from aloop._core.clock import VirtualClock
from aloop.loop import Loop

__all__ = ["EventLoopPolicy", "new_event_loop", "run"]

_T = TypeVar("_T")


def new_event_loop(
    *, virtual_time: bool | VirtualClock = False, backend: str | None = None
) -> Loop:
    """A new aloop event loop (pass it as ``loop_factory`` to asyncio).

    ``virtual_time=True`` (or a ``VirtualClock``) runs it on virtual time.
    """
    return Loop(virtual_time=virtual_time, backend=backend)  # type: ignore[abstract]


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """asyncio's default policy, making aloop loops (Python 3.11-3.13)."""

    def new_event_loop(self) -> Loop:
        return Loop()  # type: ignore[abstract]  # network and subprocess API: issues 3, 4


def run(
    main: Coroutine[Any, Any, _T],
    *,
    debug: bool | None = None,
    virtual_time: bool | VirtualClock = False,
    trace: str | None = None,
) -> _T:
    """Run ``main`` on a new aloop loop with ``asyncio.run``'s exact semantics.

    The loop is created, ``main`` runs as a task, leftover tasks are cancelled,
    async generators and the default executor are shut down, and the loop is
    closed. Ctrl-C cancels the main task, as under ``asyncio.run``.

    ``virtual_time=True`` (or a ``VirtualClock``) runs it on virtual time:
    sleeps and timeouts take no real time. ``trace="out.json"`` records task
    steps, callbacks and I/O waits to a Perfetto / Chrome trace file.
    """
    if events._get_running_loop() is not None:
        # Same words as asyncio.run, so code that matches on them keeps working.
        raise RuntimeError("asyncio.run() cannot be called from a running event loop")
    recorder = None
    if trace is not None:
        from aloop.tooling.trace import Trace

        recorder = Trace()
    runner = asyncio.Runner(
        debug=debug,
        loop_factory=functools.partial(_make_loop, virtual_time=virtual_time, trace=recorder),
    )
    try:
        # asyncio.run makes its loop the current one for the run, and then
        # none; a Runner given a loop_factory does neither, so do it here.
        events.set_event_loop(runner.get_loop())
        return runner.run(main)
    finally:
        runner.close()
        events.set_event_loop(None)
        if recorder is not None and trace is not None:
            recorder.save(trace)


def _make_loop(*, virtual_time: bool | VirtualClock, trace: object) -> Loop:
    loop = new_event_loop(virtual_time=virtual_time)
    if trace is not None:
        loop.add_instrument(trace)
    return loop
